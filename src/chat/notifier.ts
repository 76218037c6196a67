import { randomBytes } from 'node:crypto';
import type { ChannelAdapter } from '../channel.ts';
import { ByokError } from '../errors.ts';
import { t, type Lang } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import type { JobContext, NotifyPayload } from '../queue/types.ts';
import type { Registry } from '../registry/index.ts';
import type { Store } from '../store/types.ts';
import { getTemplate } from '../vendors/templates.ts';
import { localizeTemplateName, templateName } from '../vendors/template-name.ts';
import { outcomeText } from './outcomes.ts';
import { formatTime } from './time.ts';

/** How long a sender holds a notice's claim (a crashed sender's claim lapses after it). */
const CLAIM_MS = 60_000;
/** A sent notice is remembered this long (re-runs after outages, re-enqueues after crashes). */
const SENT_MS = 7 * 24 * 60 * 60_000;
/** How long a second sender waits in place for the first to finish before retrying later. */
const WAIT_FOR_HOLDER_MS = 3_000;

/** Another process is sending this notice right now: the job runner retries it later. */
export class NoticeBusyError extends Error {
  constructor(readonly retryAfterMs: number) {
    super('notice is being sent by another process');
    this.name = 'NoticeBusyError';
  }
}

export interface NotifierDeps {
  registry: Registry;
  logger: Logger;
  /** Claims and sent-markers (shared by every process): each notice id is sent once. Without it, no dedupe. */
  store?: Pick<Store, 'getEphemeral' | 'putEphemeral' | 'putEphemeralIfAbsent' | 'deleteEphemeral'>;
  /** Claim lifetime, ms (default 60 s). */
  claimMs?: number;
  /** The user's time zone for times in notices (`/tz`); absent: the language's default. */
  tzOf?: (workspace: string) => Promise<string | undefined>;
}

/**
 * Channel-agnostic delivery of key-validation results to the chat that asked. Channels
 * plug in with addChannel; a channel with `keyResult` (Telegram) edits its card, others
 * get a plain message. Notices are routed per channel (NotifyQueues), so a payload for a
 * channel this process does not run should not arrive; if it does, it is an error and the
 * job runner retries it.
 *
 * Idempotent per notice id (the payload's `notice_id`, else the job id): a job that runs
 * again after losing its lock in a Redis outage, or the same notice under two job ids,
 * sends one message. The sender takes a short claim, sends, then marks the notice sent.
 */
export class Notifier {
  private readonly channels = new Map<string, ChannelAdapter>();
  private readonly claimMs: number;

  constructor(private readonly deps: NotifierDeps) {
    this.claimMs = deps.claimMs ?? CLAIM_MS;
  }

  addChannel(adapter: ChannelAdapter): void {
    this.channels.set(adapter.name, adapter);
  }

  async deliver(p: NotifyPayload, ctx?: Pick<JobContext, 'jobId'>): Promise<void> {
    const adapter = this.channels.get(p.channel.channel);
    // Retried: another process (or this one, once the channel is added) may run it.
    if (!adapter) throw new ByokError('not_found', `no channel "${p.channel.channel}" in this process`, { channel: p.channel.channel });
    const id = p.notice_id ?? ctx?.jobId;
    const store = this.deps.store;
    if (!id || !store) return this.send(adapter, p);
    const sentKey = `notified:${id}`;
    const claimKey = `notify-lock:${id}`;
    if ((await store.getEphemeral(sentKey)) !== undefined) return this.skipped(p);
    const claim = randomBytes(12).toString('hex');
    const deadline = Date.now() + Math.min(WAIT_FOR_HOLDER_MS, this.claimMs);
    while (!(await store.putEphemeralIfAbsent(claimKey, claim, this.claimMs))) {
      // Usually the holder finishes within milliseconds: wait for its marker in place.
      if ((await store.getEphemeral(sentKey)) !== undefined) return this.skipped(p);
      if (Date.now() >= deadline) throw new NoticeBusyError(Math.ceil(this.claimMs / 4));
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      // The holder before us may have finished between our two reads.
      if ((await store.getEphemeral(sentKey)) !== undefined) return this.skipped(p);
      await this.send(adapter, p);
      await store.putEphemeral(sentKey, '1', SENT_MS);
    } finally {
      // Only our own claim (it may have lapsed and been taken during a very slow send).
      if ((await store.getEphemeral(claimKey).catch(() => undefined)) === claim) await store.deleteEphemeral(claimKey).catch(() => undefined);
    }
  }

  private skipped(p: NotifyPayload): void {
    this.deps.logger.info({ channel: p.channel.channel, outcome: p.outcome, model: p.model_id }, 'key result already delivered');
  }

  private async send(adapter: ChannelAdapter, p: NotifyPayload): Promise<void> {
    const lang: Lang = p.channel.lang ?? 'en';
    if (p.kind && p.kind !== 'key_result') {
      // A stored key's life: a message of its own (never an edit of the form's card).
      const tz = await this.deps.tzOf?.(p.workspace).catch(() => undefined);
      await adapter.send(p.channel, { text: keyNoticeText(lang, p, tz), noPreview: true });
      this.deps.logger.info({ channel: p.channel.channel, kind: p.kind, outcome: p.outcome }, 'key notice delivered');
      return;
    }
    const got = await this.deps.registry.get(p.workspace, p.model_id);
    const model = got.ok ? got.model : { id: p.model_id, name: p.model_id, vendor: '' };
    const text = outcomeText(lang, p.outcome, {
      model,
      masked: p.masked_key,
      message: p.message,
      // A key result: a refused key (out of quota too) was not kept, so /byok test has nothing to test.
      reason: p.reason ?? (p.outcome === 'quota_exceeded' ? 'not_kept' : undefined),
      status: p.status,
      retryAfterMs: p.retry_after_ms,
    });
    if (adapter.keyResult) {
      await adapter.keyResult(p.channel, {
        workspace: p.workspace,
        model_id: p.model_id,
        outcome: p.outcome,
        text,
        masked: p.masked_key,
        vendor_name: vendorName(model.vendor, lang),
        model_name: model.name,
        lang,
      });
    } else {
      await adapter.send(p.channel, { text, noPreview: true });
    }
    this.deps.logger.info({ channel: p.channel.channel, outcome: p.outcome, model: p.model_id }, 'key result delivered');
  }
}

/** Text of a key-life notice (expiring, expired, refused at a health check). */
export function keyNoticeText(lang: Lang, p: NotifyPayload, tz?: string): string {
  const ids = p.model_ids?.length ? p.model_ids : p.model_id ? [p.model_id] : [];
  const params = {
    // Named by the worker in English (it does not know the reader): shown in the reader's language.
    vendor: p.vendor_name ? localizeTemplateName(p.vendor_name, lang) : (p.env_var ?? ''),
    masked: p.masked_key ?? '****',
    env: p.env_var ?? '',
    id: p.model_id,
    models: ids.map((id) => `custom/${id}`).join(', '),
    time: p.expires_at ? formatTime(p.expires_at, lang, tz) : '',
  };
  switch (p.kind) {
    case 'key_expiring':
      return t(lang, p.model_id ? 'notice.key_expiring' : 'notice.key_expiring_unused', params);
    case 'key_expired':
      return t(lang, p.model_id ? 'notice.key_expired' : 'notice.key_expired_unused', params);
    default:
      return t(lang, p.outcome === 'quota_exceeded' ? 'notice.key_quota' : 'notice.key_invalid', params);
  }
}

/** A template's name in the reader's language; a vendor with no template as it is. */
function vendorName(vendor: string, lang: Lang): string {
  const tpl = getTemplate(vendor);
  return tpl ? templateName(tpl, lang) : vendor;
}
