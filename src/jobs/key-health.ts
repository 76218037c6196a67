import type { Config } from '../config.ts';
import type { Lang } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import { JOB_KEY_EXPIRY, JOB_KEY_HEALTH, JOB_NOTIFY, type ChannelRef, type JobRunner, type NotifyPayload } from '../queue/types.ts';
import type { Registry, CustomModel } from '../registry/index.ts';
import { probeWithCredentials } from '../credentials/index.ts';
import type { KeyHealthStatus, Vault } from '../secrets/vault.ts';
import { SYSTEM_SCOPE, isValidWorkspace, type Store } from '../store/types.ts';
import type { ProbeResult, Secrets } from '../vendors/types.ts';
import { getWire } from '../vendors/wires/index.ts';
import { channelForWorkspace, deleteKeyGroup, keyGroups, type KeyGroup } from './keys.ts';

/**
 * The life of stored keys after validation, as two repeating jobs on a runner of their own:
 *
 * key-health (every BYOK_KEY_HEALTH_INTERVAL_HOURS, default 24, 0 = off): re-checks each
 * stored key with the cheapest call (the wire's `probe`, on one model that uses the key),
 * BYOK_KEY_HEALTH_CONCURRENCY (4) at a time. The answer is kept in the key's plain meta
 * (`meta.health`, and `validated_at` on ok), never re-sealing the key. A key the vendor now
 * refuses (invalid_key) or that ran out of quota (quota_exceeded) sets its models to
 * key_error and the user is told once per change (notice id = key + state entered); a key
 * that stays refused is not told again; a key that works again puts those models back to
 * active. Rate limits, outages and timeouts change nothing. A key checked (or validated)
 * less than ~one interval ago is skipped, so restarts and manual runs cause no probe storm.
 * oauth_json credentials are checked through src/credentials (withModelCredentials): the
 * access token is refreshed when due, one process at a time, and the re-sealed record's
 * version fences the health update; `probeOAuth` replaces that probe (tests).
 *
 * key-expiry (every BYOK_KEY_EXPIRY_SWEEP_MINUTES, default 15, 0 = off): a key past its
 * `meta.expires_at` is deleted (the pair, for AWS) and its models set to pending_key; a day
 * before, one "expires tomorrow" notice. Each notice once (`expiry-<ws>-<env>-<expires_at>-
 * warn|gone`; the notifier dedupes by notice id, the warning is also recorded in meta). The
 * vault treats an expired key as absent already, so between expiry and the sweep the key is
 * not used. Its own, more frequent job: expiry needs minutes of precision, health a day.
 */

/** Skip keys checked within this share of an interval (schedulers fire a little early or late). */
const RECENT_SHARE = 0.9;
/** The "expires tomorrow" notice, this long before expiry. */
export const EXPIRY_WARNING_MS = 24 * 3_600_000;
/** No warning for a key stored with less life than this (a one-day key would be warned at once). */
const WARN_MIN_LIFE_MS = 25 * 3_600_000;
/** Random delay added to the first run of each job (and every in-process run): a fraction of the interval, at most 1 h. */
export function jitterFor(intervalMs: number): number {
  return Math.min(Math.round(intervalMs * 0.1), 3_600_000);
}

export interface KeyJobsDeps {
  store: Store;
  vault: Vault;
  registry: Registry;
  notifyQueue: Pick<JobRunner, 'enqueue'>;
  logger: Logger;
  intervalMs: number;
  concurrency: number;
  /** One probe's limit (config.validateProbeTimeoutMs). */
  probeTimeoutMs: number;
  /** Replaces the wire's probe (tests, benchmarks). */
  probe?: (model: CustomModel, secrets: Secrets, opts?: { signal?: AbortSignal }) => Promise<ProbeResult>;
  /** oauth_json keys: replaces the probe through the credentials module (which refreshes tokens as needed). */
  probeOAuth?: (workspace: string, model: CustomModel, opts: { signal: AbortSignal }) => Promise<ProbeResult | undefined>;
  now?: () => number;
  /** Aborted when the process stops: a run takes no further key (the rest waits for the next turn). */
  signal?: AbortSignal;
}

export interface HealthReport {
  workspaces: number;
  checked: number;
  ok: number;
  invalid_key: number;
  quota_exceeded: number;
  /** rate_limited, vendor_unavailable, unreachable, and answers about the model rather than the key. */
  inconclusive: number;
  notified: number;
  skipped_recent: number;
  skipped_oauth: number;
  /** No live model uses the key: nothing to probe with. */
  skipped_unused: number;
  skipped_expired: number;
  failed: number;
}

export interface ExpiryReport {
  workspaces: number;
  expired: number;
  warned: number;
}

const DEFINITE = new Set<string>(['invalid_key', 'quota_exceeded']);

/** Runs `fn` over `items`, at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(n, items.length)) }, async () => {
      while (i < items.length && !signal?.aborted) await fn(items[i++]!);
    }),
  );
}

async function workspaces(store: Store): Promise<string[]> {
  return (await store.listScopes('vault')).filter((ws) => ws !== SYSTEM_SCOPE && isValidWorkspace(ws));
}

/** A BullMQ job id from a notice id (no ':'; never an integer). */
export function noticeJobId(noticeId: string): string {
  return `notify-${noticeId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 250);
}

async function noticeChannel(store: Store, ws: string, channel: ChannelRef | undefined): Promise<ChannelRef> {
  const ch = { ...(channel ?? channelForWorkspace(ws)) };
  // A card's message id belongs to the form that stored the key: key notices are new messages.
  delete ch.message_id;
  if (!ch.lang) {
    const prefs = await store.getDoc<{ lang?: Lang }>(ws, 'prefs').catch(() => undefined);
    if (prefs?.lang) ch.lang = prefs.lang;
  }
  return ch;
}

function pickModel(g: KeyGroup): CustomModel | undefined {
  const rank = (m: CustomModel) => (m.status === 'active' ? 0 : m.status === 'key_error' ? 1 : 2);
  return [...g.models].sort((a, b) => rank(a) - rank(b))[0];
}

function isOAuth(g: KeyGroup): boolean {
  return g.kind === 'oauth_json' || g.models.some((m) => m.credential_kind === 'oauth_json');
}

export async function runKeyHealth(deps: KeyJobsDeps, opts: { force?: boolean } = {}): Promise<HealthReport> {
  const now = deps.now ?? Date.now;
  const report: HealthReport = { workspaces: 0, checked: 0, ok: 0, invalid_key: 0, quota_exceeded: 0, inconclusive: 0, notified: 0, skipped_recent: 0, skipped_oauth: 0, skipped_unused: 0, skipped_expired: 0, failed: 0 };
  const probe = deps.probe ?? ((m, s, o) => getWire(m.wire).probe(m, s, o));
  const tasks: Array<{ ws: string; g: KeyGroup }> = [];
  for (const ws of await workspaces(deps.store)) {
    report.workspaces++;
    for (const g of await keyGroups({ store: deps.store, registry: deps.registry, vault: deps.vault }, ws)) {
      if (g.expired) report.skipped_expired++;
      else if (!g.models.length) report.skipped_unused++;
      else {
        const last = Math.max(...[g.health.checked_at, g.meta.validated_at, g.updated_at].map((x) => (x ? Date.parse(x) : 0)).filter(Number.isFinite));
        if (!opts.force && now() - last < deps.intervalMs * RECENT_SHARE) report.skipped_recent++;
        else tasks.push({ ws, g });
      }
    }
  }
  if (report.skipped_oauth) deps.logger.info({ skipped: report.skipped_oauth }, 'key-health: oauth credentials are not checked (no credentials module wired)');
  await pool(tasks, deps.concurrency, async ({ ws, g }) => {
    try {
      await checkOne(deps, probe, ws, g, report, now);
    } catch (e) {
      report.failed++;
      deps.logger.warn({ err: e, workspace: ws, env_var: g.env_var }, 'key-health: check failed');
    }
  }, deps.signal);
  deps.logger.info({ ...report }, 'key-health run done');
  return report;
}

async function checkOne(deps: KeyJobsDeps, probe: NonNullable<KeyJobsDeps['probe']>, ws: string, g: KeyGroup, report: HealthReport, now: () => number): Promise<void> {
  const model = pickModel(g)!;
  const signal = AbortSignal.timeout(deps.probeTimeoutMs);
  const probed =
    isOAuth(g) && deps.probeOAuth
      ? await deps.probeOAuth(ws, model, { signal }).then((r) => r && { result: r, version: g.version })
      : await probeWithCredentials({ vault: deps.vault, store: deps.store }, ws, model, probe, { signal });
  if (!probed) return; // deleted meanwhile
  const { result } = probed;
  // An OAuth refresh during the probe re-sealed the record: the answer is about the new version.
  const version = probed.version ?? g.version;
  report.checked++;
  const at = new Date(now()).toISOString();
  if (result.outcome === 'ok') {
    report.ok++;
    const prev = g.meta.health;
    await deps.vault.updateMeta(ws, g.env_var, (m) => ({ ...m, validated_at: at, health: { status: 'ok', checked_at: at, since: prev?.status === 'ok' ? (prev.since ?? at) : at } }), { ifVersion: version });
    // Working again (quota topped up): the models the health check had stopped run again.
    for (const m of g.models) {
      if (m.status === 'key_error' && DEFINITE.has(m.last_error?.code ?? '')) await deps.registry.set_status(ws, m.id, 'active');
    }
    return;
  }
  if (!DEFINITE.has(result.outcome)) {
    report.inconclusive++;
    return;
  }
  const status = result.outcome as KeyHealthStatus;
  report[status as 'invalid_key' | 'quota_exceeded']++;
  const prev = g.meta.health;
  if (prev?.status === status) {
    await deps.vault.updateMeta(ws, g.env_var, (m) => ({ ...m, health: { ...prev, checked_at: at } }), { ifVersion: version });
    return; // told already
  }
  const message = (result.message ?? status).slice(0, 300);
  for (const m of g.models) {
    // A model whose replacement key is being checked is left to that check.
    if (m.status !== 'validating' && m.status !== 'pending_key') await deps.registry.set_status(ws, m.id, 'key_error', { code: status, message });
  }
  // Named by the state left (stable until the meta below is written): a re-run after a crash
  // here queues the same notice id, which the notifier sends once.
  const notice_id = `health-${ws}-${g.env_var}-${status}-${prev?.checked_at ?? g.version ?? g.updated_at}`;
  const payload: NotifyPayload = {
    kind: 'key_unhealthy',
    channel: await noticeChannel(deps.store, ws, g.meta.channel),
    workspace: ws,
    model_id: model.id,
    model_ids: g.models.map((m) => m.id),
    outcome: status,
    ...(g.masked && { masked_key: g.masked }),
    env_var: g.env_var,
    vendor_name: g.vendor_name,
    checked_at: at,
    notice_id,
  };
  await deps.notifyQueue.enqueue(JOB_NOTIFY, payload, { jobId: noticeJobId(notice_id) });
  report.notified++;
  await deps.vault.updateMeta(ws, g.env_var, (m) => ({ ...m, health: { status, checked_at: at, since: at } }), { ifVersion: version });
}

export async function runExpirySweep(deps: Omit<KeyJobsDeps, 'intervalMs' | 'concurrency' | 'probeTimeoutMs' | 'probe' | 'probeOAuth'>): Promise<ExpiryReport> {
  const now = (deps.now ?? Date.now)();
  const report: ExpiryReport = { workspaces: 0, expired: 0, warned: 0 };
  for (const ws of await workspaces(deps.store)) {
    report.workspaces++;
    for (const g of await keyGroups({ store: deps.store, registry: deps.registry, vault: deps.vault }, ws)) {
      const exp = g.expires_at ? Date.parse(g.expires_at) : NaN;
      if (!Number.isFinite(exp)) continue;
      const base = {
        channel: await noticeChannel(deps.store, ws, g.meta.channel),
        workspace: ws,
        model_id: g.models[0]?.id ?? '',
        model_ids: g.models.map((m) => m.id),
        ...(g.masked && { masked_key: g.masked }),
        env_var: g.env_var,
        vendor_name: g.vendor_name,
        expires_at: g.expires_at,
      };
      if (exp <= now) {
        // Notice first: a crash before the delete re-queues the same notice id (sent once);
        // the other order could delete the key and never say so.
        const notice_id = `expiry-${ws}-${g.env_var}-${g.expires_at}-gone`;
        await deps.notifyQueue.enqueue(JOB_NOTIFY, { kind: 'key_expired', outcome: 'key_expired', notice_id, ...base } satisfies NotifyPayload, { jobId: noticeJobId(notice_id) });
        await deleteKeyGroup(deps, ws, g.env_vars, { code: 'key_expired', message: 'the key reached the expiry chosen when it was entered and was deleted' });
        report.expired++;
        deps.logger.info({ workspace: ws, env_var: g.env_var }, 'expired key deleted');
      } else if (exp - now <= EXPIRY_WARNING_MS && g.meta.expiry_warned !== g.expires_at && exp - Date.parse(g.updated_at ?? '') > WARN_MIN_LIFE_MS) {
        const notice_id = `expiry-${ws}-${g.env_var}-${g.expires_at}-warn`;
        await deps.notifyQueue.enqueue(JOB_NOTIFY, { kind: 'key_expiring', outcome: 'key_expiring', notice_id, ...base } satisfies NotifyPayload, { jobId: noticeJobId(notice_id) });
        await deps.vault.updateMeta(ws, g.env_var, (m) => ({ ...m, expiry_warned: g.expires_at }), { ifVersion: g.version });
        report.warned++;
      }
    }
  }
  if (report.expired || report.warned) deps.logger.info({ ...report }, 'key-expiry sweep done');
  return report;
}

/** Registers both jobs' handlers on `runner` (the process that consumes it runs them). */
export function registerKeyJobs(runner: Pick<JobRunner, 'register'>, deps: KeyJobsDeps): void {
  runner.register(JOB_KEY_HEALTH, async () => void (await runKeyHealth(deps)));
  runner.register(JOB_KEY_EXPIRY, async () => void (await runExpirySweep(deps)));
}

/**
 * Schedules both jobs (interval 0 removes a schedule). The first run comes one interval plus
 * jitter after the first process schedules it; in Redis mode the schedule is shared, so
 * restarts and more processes neither fire it early nor add runs.
 */
export async function scheduleKeyJobs(runner: Pick<JobRunner, 'schedule'>, config: Pick<Config, 'keyHealthIntervalMs' | 'keyExpirySweepMs'>): Promise<void> {
  await runner.schedule(JOB_KEY_HEALTH, config.keyHealthIntervalMs, { jitterMs: jitterFor(config.keyHealthIntervalMs) });
  await runner.schedule(JOB_KEY_EXPIRY, config.keyExpirySweepMs, { jitterMs: jitterFor(config.keyExpirySweepMs) });
}
