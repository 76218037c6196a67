import type { ChannelAdapter, InboundMessage, SentRef } from '../channel.ts';
import { t, type Lang } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import type { ChannelRef } from '../queue/types.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel, type Registry } from '../registry/index.ts';
import { getWire } from '../vendors/wires/index.ts';
import type { ChatMessage, Secrets, StreamEvent } from '../vendors/types.ts';
import { VendorError } from '../vendors/errors.ts';
import { outcomeText } from './outcomes.ts';
import { CLI_NAMES, isLoginAgain, withModelCredentials, type CredentialStore, type CredentialVault } from '../credentials/index.ts';
import { scrubWith } from '../secrets/scrub.ts';
import type { PlatformModels } from './platform.ts';
import { splitMessage } from './split.ts';
import type { ChatStateStore } from './state.ts';
import { thinkingCall } from './commands/think.ts';
import { providerOf, type UsageLedger } from './usage.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, VendorIdleTimeout, vendorLabel, watchVendor } from './waiting.ts';

/** The part of the vault the relay may use: presence checks and scoped opening. */
export interface RelayKeys {
  has(workspace: string, envVar: string): Promise<boolean>;
  withKey<T>(workspace: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
}

export interface RelayDeps {
  vault: RelayKeys;
  usage: UsageLedger;
  state: ChatStateStore;
  logger: Logger;
  registry?: Registry;
  /** The refresh lock of OAuth credential files (oauth_json models need it, and vault.put). */
  store?: CredentialStore;
  platform?: PlatformModels;
  /** Operator environment for platform model keys. */
  env?: NodeJS.ProcessEnv;
  /** Minimum interval between streaming edits (Telegram allows about one per second per chat). */
  editIntervalMs?: number;
  /** A vendor silent this long is given up on with a notice (BYOK_VENDOR_IDLE_TIMEOUT_SECONDS; 0: never). */
  idleTimeoutMs?: number;
}

/**
 * Sends one user message to the chat's model and streams the answer back. The key is
 * opened only for the duration of the vendor call and wiped afterwards.
 */
export class Relay {
  constructor(private deps: RelayDeps) {}

  async reply(
    msg: InboundMessage,
    adapter: ChannelAdapter,
    lang: Lang,
    target: { selector?: string; owner: string },
    text: string,
    offerKeyForm: (model: CustomModel) => Promise<void>,
  ): Promise<void> {
    const send = (s: string) => adapter.send(msg.chat, { text: s });
    if (!target.selector) {
      await send(t(lang, 'relay.no_model'));
      return;
    }
    const model = await this.resolve(target.selector, target.owner);
    if (!model) {
      await send(t(lang, 'model.unknown', { query: target.selector }));
      return;
    }
    if (model.status === 'removed') {
      await send(t(lang, 'model.removed', { id: model.id }));
      return;
    }
    const isPlatform = model.vendor === 'platform';
    if (!isPlatform && !model.key_optional) {
      for (const env of [model.api_key_env, ...model.extra_env_vars]) {
        if (!(await this.deps.vault.has(target.owner, env))) {
          await send(t(lang, model.status === 'validating' ? 'relay.validating' : 'relay.key_missing', { model: model.name }));
          if (model.status !== 'validating' && target.owner === msg.workspace) await offerKeyForm(model);
          return;
        }
      }
    }
    const scope = msg.isPrivate ? msg.workspace : (msg.groupWorkspace ?? msg.workspace);
    const history = (await this.deps.state.get(scope)).history;
    // `/think`: the chat's choice for this model (src/chat/commands/think.ts).
    const thinkChoice = target.selector ? (await this.deps.state.getPrefs(scope)).thinking?.[target.selector] : undefined;
    const messages: ChatMessage[] = [...history, { role: 'user', content: text }];
    const usageKey = isPlatform ? model.id : MODEL_SELECTOR_PREFIX + model.id;

    // `m`: the model as this credential must be called (an OAuth token's own host or project).
    const run = async (secrets: Secrets, m: CustomModel = model): Promise<string> => {
      try {
        return await call(secrets, m);
      } catch (e) {
        // While the key is still open: a vendor error echoing it (cut short, URL-encoded) is scrubbed.
        const v = e as { outcome?: unknown; message?: unknown };
        if (v && typeof v.outcome === 'string' && typeof v.message === 'string') v.message = scrubWith(v.message, secrets);
        throw e;
      }
    };
    const call = async (secrets: Secrets, m: CustomModel): Promise<string> => {
      const wire = getWire(m.wire);
      const controller = new AbortController();
      let usage: { input: number; output: number } | undefined;
      // Typing at once, "still waiting" when no text comes, and a give-up when the vendor goes quiet.
      const think = thinkingCall(m, thinkChoice);
      const events = watchVendor(wire.stream(think.model, secrets, messages, { signal: controller.signal, thinking: think.thinking }), (ev) => ev.type === 'text' && !!ev.text, {
        idleTimeoutMs: this.deps.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
        typing: adapter.typing ? () => adapter.typing!(msg.chat) : undefined,
        notice: () => send(t(lang, 'relay.still_waiting', { vendor: vendorLabel(model, lang) })),
        abort: () => controller.abort(),
      });
      const chunks = textChunks(events, (u) => (usage = u));
      const answer = await this.present(adapter, msg.chat, chunks, lang);
      const provider = { provider: providerOf(model) };
      if (usage) await this.deps.usage.record(target.owner, usageKey, usage.input, usage.output, model.pricing, provider);
      else await this.deps.usage.record(target.owner, usageKey, 0, 0, undefined, provider);
      return answer;
    };

    let answer: string;
    try {
      answer = isPlatform ? await this.withPlatformKey(model, run) : await this.withSecrets(target.owner, model, run);
    } catch (e) {
      if (e instanceof VendorIdleTimeout) {
        await send(t(lang, 'relay.vendor_timeout', { vendor: vendorLabel(model, lang), seconds: Math.round(e.idleMs / 1000) }));
        this.deps.logger.warn({ outcome: 'vendor_idle_timeout', model: model.id, idle_ms: e.idleMs }, 'vendor call failed');
        return;
      }
      const v = e as { outcome?: string; retryAfterMs?: number; message?: string };
      if (!isPlatform && isLoginAgain(e) && model.oauth) {
        // The CLI login behind an OAuth file is gone: only a new login helps. Its models say so
        // in /byok list (key_error) and the user gets the one thing to do.
        const cli = CLI_NAMES[model.oauth.provider];
        await this.deps.registry?.set_key_status(target.owner, model.api_key_env, 'key_error', { code: 'invalid_key', message: `${cli} refused the saved login: log in again in ${cli} and paste the new file` });
        await send(t(lang, 'cred.login_again', { cli, model: model.name, id: model.id }));
        this.deps.logger.warn({ outcome: 'invalid_key', model: model.id, reason: 'oauth_login_again' }, 'vendor call failed');
        return;
      }
      if (v && typeof v.outcome === 'string') {
        // The vendor does not serve the model: /byok list says so instead of "ready".
        if (!isPlatform && v.outcome === 'invalid_model') {
          await this.deps.registry?.set_status(target.owner, model.id, 'model_problem', { code: 'invalid_model', message: v.message ?? 'invalid_model' });
        }
        await send(outcomeText(lang, v.outcome, { model, message: v.message, retryAfterMs: v.retryAfterMs }));
        this.deps.logger.warn({ outcome: v.outcome, model: model.id }, 'vendor call failed');
        return;
      }
      throw e;
    }
    // It answered: a model marked model_problem works again (fixed at the vendor or by an edit).
    if (!isPlatform && model.status === 'model_problem') await this.deps.registry?.set_status(target.owner, model.id, 'active');
    await this.deps.state.appendExchange(scope, text, answer);
  }

  private async resolve(selector: string, owner: string): Promise<CustomModel | undefined> {
    if (selector.startsWith(MODEL_SELECTOR_PREFIX)) {
      const res = await this.deps.registry?.get(owner, selector);
      return res?.ok ? res.model : undefined;
    }
    return this.deps.platform?.models.find((m) => m.id === selector);
  }

  /**
   * Opens every secret of the model; a key deleted since the presence check is invalid_key.
   * OAuth files: the access token, refreshed ahead of expiry and once on a 401 (src/credentials).
   */
  private async withSecrets<T>(owner: string, model: CustomModel, fn: (s: Secrets, m: CustomModel) => Promise<T>): Promise<T> {
    const vault = this.deps.vault as RelayKeys & Partial<Pick<CredentialVault, 'put'>>;
    const r = await withModelCredentials({ vault, store: this.deps.store }, owner, model, (m, s) => fn(s, m));
    if (r === undefined) throw new VendorError('invalid_key', 'key missing', { whatToDo: 'resubmit_key' });
    return r;
  }

  private async withPlatformKey<T>(model: CustomModel, fn: (s: Secrets) => Promise<T>): Promise<T> {
    const raw = (this.deps.env ?? process.env)[model.api_key_env];
    const key = new TextEncoder().encode(raw ?? '');
    try {
      return await fn({ [model.api_key_env]: key });
    } finally {
      key.fill(0);
    }
  }

  /** Shows the streamed answer: the channel's own streaming, else send-then-edit, else one send. */
  private async present(adapter: ChannelAdapter, chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string> {
    if (adapter.streamReply) return adapter.streamReply(chat, chunks, lang);
    const max = adapter.capabilities.maxMessageLength;
    let full = '';
    if (!adapter.capabilities.editMessages || !adapter.edit) {
      for await (const c of chunks) full += c;
      for (const part of splitMessage(full || t(lang, 'relay.empty'), max)) await adapter.send(chat, { text: part });
      return full;
    }
    const interval = this.deps.editIntervalMs ?? 1000;
    // Parts before the last are stable once the text has grown past them (the split only
    // looks at the first `max` characters of what is left), so they are finalised by index.
    let ref: SentRef | undefined;
    let done = 0; // parts already finalised in their own messages
    let lastShown = '';
    let lastEdit = 0;
    const show = async (text: string) => {
      if (ref) await adapter.edit!(ref, { text });
      else ref = await adapter.send(chat, { text });
    };
    const flush = async (final: boolean) => {
      const parts = splitMessage(full, max);
      while (done < parts.length - 1) {
        await show(parts[done]);
        done += 1;
        ref = undefined;
        lastShown = '';
      }
      const tail = parts[done] ?? '';
      if (!tail || tail === lastShown) return;
      if (!final && Date.now() - lastEdit < interval) return;
      await show(tail);
      lastShown = tail;
      lastEdit = Date.now();
    };
    for await (const c of chunks) {
      full += c;
      await flush(false);
    }
    if (!full) await adapter.send(chat, { text: t(lang, 'relay.empty') });
    else await flush(true);
    return full;
  }
}

async function* textChunks(events: AsyncIterable<StreamEvent>, onUsage: (u: { input: number; output: number }) => void): AsyncIterable<string> {
  for await (const ev of events) {
    if (ev.type === 'text' && ev.text) yield ev.text;
    else if (ev.type === 'usage') onUsage({ input: ev.input_tokens, output: ev.output_tokens });
  }
}
