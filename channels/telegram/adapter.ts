import { ByokError } from '../../src/errors.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Bot, type Api, type Transformer } from 'grammy';
import type { CallbackQuery, Update, UserFromGetMe } from 'grammy/types';
import { run, sequentialize, type RunnerHandle } from '@grammyjs/runner';
import { autoRetry } from '@grammyjs/auto-retry';
import type { ChannelRef, ChannelReadiness, Choice, EnvInputRequest, FormLaunchRecord, FormLaunchRequest, InboundMessage, KeyResult, OutgoingMessage, SentRef, ChannelCore, Editable, Deletable, KeyResults, PrivateLinks, GroupAdmin, Typing, Streaming, HttpMount, FormLaunchCheck, Readiness } from '../../src/channel.ts';
import type { Config } from '../../src/config.ts';
import type { Logger } from '../../src/log.ts';
import type { Store } from '../../src/store/types.ts';
import { langFromCode, t, type Lang } from '../../src/i18n/index.ts';
import { splitMessage } from '../../src/chat/split.ts';
import { formatTime } from '../../src/chat/time.ts';
import { asPreview, BudgetSkipped, bucketName, SendBudget, type BudgetOptions } from './budget.ts';
import { CallbackCodec, decodeCallback, pageRows, TtlMap, uid36, type InlineButton } from './callbacks.ts';
import { commandList } from './commands.ts';
import { escapeHtml, isNotModified, isParseError, markdownToHtml } from './format.ts';
import { base, CHANNEL, messageToInbound, workspaceOf } from './inbound.ts';
import { verifyInitData } from './initdata.ts';
import { paintStream } from './stream.ts';

export const TELEGRAM_MAX_MESSAGE = 4096;
/** Parts are cut a little below 4,096 so Markdown → HTML never pushes one over the limit. */
const PART_MAX = 4000;
const ALLOWED_UPDATES = ['message', 'edited_message', 'callback_query'] as const;
/** An update being handled holds its key as 'p' for this long, renewed while it runs. */
const LEASE_MS = 15_000;
/** How long claiming an update may take before the webhook answers 503 (store unreachable). */
const CLAIM_DEADLINE_MS = 5_000;

/** `p`'s value, or undefined when it takes longer than `ms` (p keeps running). */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((r) => {
    timer = setTimeout(() => r(undefined), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
const RENEW_MS = 5_000;
/** A handled update stays 'd' (done) as long as Telegram may re-send it. */
const DONE_TTL_MS = 24 * 3600_000;
const CARD_TTL_MS = 24 * 3600_000;
/** Seconds Telegram is asked to wait before re-sending an update we cannot take now. */
const RETRY_AFTER_S = 5;
/** After the drain deadline, how long aborted streams get to post their last words. */
const ABORT_GRACE_MS = 5_000;

export interface TelegramChannelOptions {
  config: Config;
  logger: Logger;
  /**
   * The app's store: menu pages, long callback data, cards, update dedupe and the outbound
   * budget live there, so every process of the bot shares them.
   */
  store: Store;
  /** Overrides for config.telegram (tests, benchmarks). */
  token?: string;
  apiRoot?: string;
  webhookUrl?: string;
  webhookSecret?: string;
  /**
   * Mini App (`web_app`) buttons for secure forms in private chats: 'auto' when the form
   * URL is https (Telegram refuses others), 'always', or 'never' (URL buttons only).
   */
  webApp?: 'auto' | 'always' | 'never';
  /** Refuse a Telegram-issued form submitted without Mini App initData (default false). */
  requireInitData?: boolean;
  /** Max age of Mini App initData (auth_date), seconds. Default 1 hour. */
  initDataMaxAgeSec?: number;
  /** Stream with sendMessageDraft in private chats when the Bot API offers it (default 'auto'). */
  drafts?: 'auto' | 'never';
  /** Minimum interval between streaming updates in a private chat, ms (default 1000). */
  editIntervalMs?: number;
  /** The same in groups (Telegram allows about 20 messages a minute per group; default 3000). */
  groupEditIntervalMs?: number;
  /** The outbound budget shared by every process of this bot (default 30/s, burst 30); false disables it. */
  budget?: BudgetOptions | false;
  /** stop(): how long in-flight updates may finish before their streams are cut (default 20 s). */
  drainMs?: number;
  /** Auto-retry on 429 and 5xx: attempts (default 5) and max retry_after honoured, seconds. */
  retry?: { maxRetryAttempts?: number; maxDelaySeconds?: number };
  /** Extra API transformers, installed last (outermost): tests stub methods here. */
  transformers?: Transformer[];
  /** Polling runner: retry interval on errors (ms or strategy). */
  pollRetryInterval?: number | 'exponential' | 'quadratic';
  /** Buttons per picker page (default 8). */
  pickerPageSize?: number;
  /** Menus older than this are refused as stale (default 30 min). */
  pickerTtlMs?: number;
  /** Skip getMe at start (benchmarks with a stub API). */
  botInfo?: { id: number; username: string; first_name?: string };
}

/** The options of sendMessage / editMessageText besides chat, message and text (grammY's own types). */
type SendExtra = NonNullable<Parameters<Api['sendMessage']>[2]>;
type EditExtra = NonNullable<Parameters<Api['editMessageText']>[3]>;

interface PickerState {
  owner: string;
  rows: InlineButton[][];
  lang: Lang;
}

/** An update this process claimed and is handling. */
interface UpdateClaim {
  key: string;
  renew?: NodeJS.Timeout;
  /** The last lease renewal in flight: the 'd' write must land after it. */
  renewing: Promise<unknown>;
  finished?: Promise<void>;
}

/** A streamed answer in flight (stop() cuts those still running at the drain deadline). */
interface StreamHandle {
  controller: AbortController;
  done: Promise<unknown>;
}

/** True when every promise settled within `ms`. */
async function settledWithin(ps: Promise<unknown>[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const all = Promise.allSettled(ps).then(() => true);
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([all, late]);
  } finally {
    clearTimeout(timer);
  }
}

function safeEqual(a: string | undefined, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = createHmac('sha256', 'cmp').update(a).digest();
  const y = createHmac('sha256', 'cmp').update(b).digest();
  return timingSafeEqual(x, y) && a.length === b.length;
}

/**
 * The Telegram channel (grammY). Long polling with @grammyjs/runner, or a webhook route on
 * the app's HTTP server when a webhook URL is configured (secret token checked on every
 * update). Built for several processes of one bot: menu state lives in the store, each
 * update is claimed in the store before anything happens (Telegram re-sends; only one
 * process acts), and outgoing calls spend one budget per bot shared through the store
 * (plus 429/5xx retries).
 */
export class TelegramChannel implements ChannelCore, Editable, Deletable, KeyResults, PrivateLinks, GroupAdmin, Typing, Streaming, HttpMount, FormLaunchCheck, Readiness {
  readonly name = CHANNEL;
  readonly capabilities = { deleteInbound: true, editMessages: true, buttons: true, maxMessageLength: TELEGRAM_MAX_MESSAGE };
  readonly bot: Bot;
  readonly webhookPath?: string;
  /** The outbound budget (undefined when disabled). */
  readonly budget?: SendBudget;
  private readonly token: string;
  private readonly botId: string;
  private readonly webhookUrl?: string;
  private readonly webhookSecret?: string;
  private readonly logger: Logger;
  private readonly store: Store;
  private readonly opts: TelegramChannelOptions;
  private readonly codec: CallbackCodec;
  private readonly pickerTtlMs: number;
  /** The first reply to a menu tap edits the menu message (keyed by the inbound chat ref object). */
  private readonly editTargets = new WeakMap<ChannelRef, string>();
  /** Per process is fine: a minute of staleness on admin rights is accepted. */
  private readonly adminCache = new TtlMap<boolean>(60_000);
  /** The update each handler works for (streams read it to mark their update done when cut). */
  private readonly claims = new AsyncLocalStorage<UpdateClaim>();
  private readonly active = new Set<Promise<unknown>>();
  /** Claims whose lease this process renews. */
  private readonly held = new Set<UpdateClaim>();
  private readonly streams = new Set<StreamHandle>();
  private draftsSupported: boolean;
  private onMessage?: (msg: InboundMessage) => Promise<void>;
  private runner?: RunnerHandle;
  private started = false;
  /** Webhook mode: whether setWebhook succeeded (for /readyz). */
  private webhookSet = false;
  private webhookError?: string;
  private webhookRetry?: NodeJS.Timeout;
  private stopping = false;

  constructor(opts: TelegramChannelOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    if (!opts.store) throw new ByokError('config', 'TelegramChannel needs the app store');
    this.store = opts.store;
    const tg = opts.config.telegram;
    const token = opts.token ?? tg?.token;
    if (!token) throw new ByokError('config', 'TELEGRAM_BOT_TOKEN is not set');
    this.token = token;
    // The numeric part of the token is the bot's public id.
    this.botId = /^(\d+):/.exec(token)?.[1] ?? bucketName(token).slice(7, 23);
    const apiRoot = opts.apiRoot ?? tg?.apiRoot;
    this.webhookUrl = opts.webhookUrl ?? tg?.webhookUrl;
    if (this.webhookUrl) {
      const u = new URL(this.webhookUrl);
      this.webhookPath = u.pathname && u.pathname !== '/' ? u.pathname : '/telegram/webhook';
      // Every process behind the load balancer derives the same secret from the token.
      this.webhookSecret = opts.webhookSecret ?? tg?.webhookSecret ?? createHmac('sha256', 'byok-telegram-webhook').update(token).digest('hex');
      if (!/^[A-Za-z0-9_-]{1,256}$/.test(this.webhookSecret)) throw new ByokError('config', 'TELEGRAM_WEBHOOK_SECRET may use A-Z a-z 0-9 _ - only (1-256 characters)');
    }
    this.draftsSupported = (opts.drafts ?? 'auto') === 'auto';
    this.pickerTtlMs = opts.pickerTtlMs ?? 30 * 60_000;
    this.codec = new CallbackCodec(this.store, this.pickerTtlMs);

    const botInfo: UserFromGetMe | undefined = opts.botInfo
      ? { is_bot: true, first_name: 'bot', can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false, can_connect_to_business: false, has_main_web_app: false, has_topics_enabled: false, allows_users_to_create_topics: false, can_manage_bots: false, supports_join_request_queries: false, ...opts.botInfo }
      : undefined;
    this.bot = new Bot(token, { client: apiRoot ? { apiRoot } : undefined, botInfo });
    // Innermost: the shared budget; around it auto-retry (a retried call pays again).
    if (opts.budget !== false) {
      this.budget = new SendBudget(this.store, bucketName(token), opts.budget ?? {});
      this.bot.api.config.use(this.budget.transformer());
    }
    this.bot.api.config.use(autoRetry({ maxRetryAttempts: opts.retry?.maxRetryAttempts ?? 5, maxDelaySeconds: opts.retry?.maxDelaySeconds ?? 60 }));
    for (const tr of opts.transformers ?? []) this.bot.api.config.use(tr);

    // Polling: claim each update before anything happens (webhook updates arrive claimed).
    this.bot.use(async (ctx, next) => {
      if (this.claims.getStore()) return next();
      const r = await this.track(() => this.claimAndRun(ctx.update.update_id, next, true));
      if (r !== 'done') this.logger.info({ update: ctx.update.update_id, state: r }, 'telegram: update already taken; skipped');
    });
    // One chat's updates are handled in order; different chats run concurrently.
    this.bot.use(sequentialize((ctx) => (ctx.chat?.id ?? ctx.from?.id)?.toString()));
    this.bot.use(async (ctx) => this.dispatch(ctx.update));
    this.bot.catch((err) => this.logger.error({ err: err.error, update: err.ctx?.update?.update_id }, 'telegram update failed'));
  }

  get username(): string | undefined {
    try {
      return this.bot.botInfo.username;
    } catch {
      return this.opts.botInfo?.username;
    }
  }

  /** Updates being handled by this process right now. */
  get inFlight(): number {
    return this.active.size;
  }

  /** Streamed answers in progress in this process. */
  get streaming(): number {
    return this.streams.size;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * The webhook answers only once the update is handled: Telegram is the durable queue.
   * 200 after handling (or for a duplicate already done); 503 + Retry-After while another
   * process handles the same update (the re-send then finds it done, or, if that process
   * died, its lease expired and the update is handled here) and while this one stops.
   */
  mount(server: FastifyInstance): void {
    if (!this.webhookPath || !this.webhookSecret) return;
    const secret = this.webhookSecret;
    server.post(this.webhookPath, { bodyLimit: 1024 * 1024 }, async (req, reply) => {
      const got = req.headers['x-telegram-bot-api-secret-token'];
      if (!safeEqual(typeof got === 'string' ? got : undefined, secret)) return reply.code(401).send({ ok: false, error: 'unauthorized' });
      const later = (error: string) => reply.code(503).header('retry-after', String(RETRY_AFTER_S)).send({ ok: false, error });
      if (this.stopping) return later('stopping');
      if (!this.started) return later('starting');
      const update = req.body as Update | undefined;
      if (!update || typeof update !== 'object' || typeof update.update_id !== 'number') return reply.code(400).send({ ok: false, error: 'not an update' });
      const r = await this.track(() => this.claimAndRun(update.update_id, () => this.bot.handleUpdate(update), false));
      if (r === 'busy') return later('in progress elsewhere');
      return reply.code(200).send({ ok: true });
    });
  }

  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.onMessage = onMessage;
    this.stopping = false;
    if (!this.opts.botInfo) await this.bot.init();
    await this.registerCommands();
    if (this.webhookUrl) {
      await this.registerWebhook(2_000);
      this.started = true;
      this.logger.info({ path: this.webhookPath, bot: this.username }, 'telegram webhook mode');
      return;
    }
    await this.bot.api.deleteWebhook().catch((e) => this.logger.warn({ err: e }, 'telegram deleteWebhook failed'));
    this.started = true;
    this.runner = run(this.bot, {
      runner: { fetch: { timeout: 30, allowed_updates: [...ALLOWED_UPDATES] }, retryInterval: this.opts.pollRetryInterval ?? 'exponential', silent: true },
    });
    this.logger.info({ bot: this.username }, 'telegram long polling');
  }

  /** /readyz: the webhook is registered, or long polling is running. */
  readiness(): ChannelReadiness {
    if (!this.started) return { ready: false, state: this.stopping ? 'stopping' : 'starting' };
    if (this.webhookUrl) return this.webhookSet ? { ready: true, state: 'webhook' } : { ready: false, state: 'webhook_not_set', ...(this.webhookError ? { detail: this.webhookError } : {}) };
    return this.runner?.isRunning() ? { ready: true, state: 'polling' } : { ready: false, state: 'polling_stopped' };
  }

  /**
   * setWebhook, retried with backoff (to 60 s) while the channel runs: a Bot API hiccup at
   * start must not leave the process unready (/readyz 503) until someone restarts it.
   */
  private async registerWebhook(retryMs: number): Promise<void> {
    if (this.stopping || !this.webhookUrl) return;
    try {
      await this.bot.api.setWebhook(this.webhookUrl, {
        secret_token: this.webhookSecret,
        allowed_updates: [...ALLOWED_UPDATES],
        // Each update holds its connection until answered: room for that many at once.
        max_connections: 100,
        drop_pending_updates: false,
      });
      if (!this.webhookSet && this.webhookError) this.logger.info('telegram setWebhook succeeded after a retry');
      this.webhookSet = true;
      this.webhookError = undefined;
    } catch (e) {
      this.webhookSet = false;
      this.webhookError = String((e as Error)?.message ?? e).slice(0, 200);
      this.logger.error({ err: e, retryInMs: retryMs }, 'telegram setWebhook failed; retrying');
      this.webhookRetry = setTimeout(() => void this.registerWebhook(Math.min(retryMs * 2, 60_000)), retryMs);
      this.webhookRetry.unref();
    }
  }

  /**
   * Stops taking updates (the webhook answers 503, polling stops fetching), lets in-flight
   * updates finish for up to `drainMs`, then cuts the streams still running: each chat gets
   * what arrived plus a notice, and their updates are marked done.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.webhookRetry) clearTimeout(this.webhookRetry);
    const runner = this.runner;
    this.runner = undefined;
    if (runner?.isRunning()) await runner.stop();
    const drainMs = this.opts.drainMs ?? 20_000;
    if (this.active.size > 0 && !(await settledWithin([...this.active], drainMs))) {
      const cut = [...this.streams];
      this.logger.warn({ inFlight: this.active.size, streams: cut.length }, 'telegram: drain deadline passed; cutting streams');
      for (const s of cut) s.controller.abort();
      await settledWithin(
        cut.map((s) => s.done),
        ABORT_GRACE_MS,
      );
    }
    // Whatever still runs keeps no lease: once it lapses, Telegram's re-send is handled elsewhere.
    for (const c of this.held) clearInterval(c.renew);
    this.started = false;
  }

  /** Runs `fn` counted as in flight (stop() waits for it). */
  private track<T>(fn: () => Promise<T>): Promise<T> {
    const p = fn();
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.active.add(settled);
    void settled.then(() => this.active.delete(settled));
    return p;
  }

  private updateKey(updateId: number): string {
    return `tg:update:${this.botId}:${updateId}`;
  }

  /**
   * Claims the update across processes and runs `handle` once: 'done' when handled here,
   * 'duplicate' when it was handled before, 'busy' while another process holds its lease.
   * A failing handler still marks the update done (the user saw an error; repeating side
   * effects would be worse); `rethrow` passes the error on (the runner's error handler).
   */
  private async claimAndRun(updateId: number, handle: () => Promise<unknown>, rethrow: boolean): Promise<'done' | 'duplicate' | 'busy'> {
    const key = this.updateKey(updateId);
    // The claim answers within CLAIM_DEADLINE_MS even when the store hangs (a Redis outage:
    // ioredis queues commands until it reconnects): 'busy' makes Telegram re-send later. A
    // claim that lands after the deadline is a lease nobody renews; it lapses in LEASE_MS.
    const claimed = await withDeadline(
      (async () => {
        if (await this.store.putEphemeralIfAbsent(key, 'p', LEASE_MS)) return 'claimed' as const;
        const state = await this.store.getEphemeral(key);
        if (state === 'd') return 'duplicate' as const;
        // Gone between the two reads (a lease just expired): one more try.
        if (state === undefined && (await this.store.putEphemeralIfAbsent(key, 'p', LEASE_MS))) return 'claimed' as const;
        return 'busy' as const;
      })(),
      CLAIM_DEADLINE_MS,
    ).catch((e) => {
      this.logger.warn({ err: e, update: updateId }, 'telegram: could not claim an update; it will be re-sent');
      return 'busy' as const;
    });
    if (claimed === undefined) {
      this.logger.warn({ update: updateId }, 'telegram: the store did not answer in time; the update will be re-sent');
      return 'busy';
    }
    if (claimed !== 'claimed') return claimed;
    const claim: UpdateClaim = { key, renewing: Promise.resolve() };
    this.held.add(claim);
    claim.renew = setInterval(() => {
      claim.renewing = this.store.putEphemeral(key, 'p', LEASE_MS).catch((e) => this.logger.warn({ err: e }, 'telegram: update lease renewal failed'));
    }, RENEW_MS);
    try {
      await this.claims.run(claim, handle);
    } catch (e) {
      if (rethrow) throw e;
      this.logger.error({ err: (e as { error?: unknown }).error ?? e, update: updateId }, 'telegram update failed');
    } finally {
      await this.markDone(claim);
    }
    return 'done';
  }

  /** Idempotent; after it no lease renewal can turn the key back to 'p'. */
  private markDone(claim: UpdateClaim): Promise<void> {
    if (!claim.finished) {
      clearInterval(claim.renew);
      this.held.delete(claim);
      claim.finished = claim.renewing
        .then(() => this.store.putEphemeral(claim.key, 'd', DONE_TTL_MS))
        .catch((e) => this.logger.warn({ err: e }, 'telegram: could not mark an update done'));
    }
    return claim.finished;
  }

  private async registerCommands(): Promise<void> {
    try {
      await this.bot.api.setMyCommands(commandList('en'));
      await this.bot.api.setMyCommands(commandList('zh'), { language_code: 'zh' });
    } catch (e) {
      this.logger.warn({ err: e }, 'telegram setMyCommands failed');
    }
  }

  // ------------------------------------------------------------------ inbound

  /** Public for benchmarks and tests: handles one update as the bot middleware does. */
  async dispatch(update: Update): Promise<void> {
    if (!this.onMessage) return;
    if (update.callback_query) return this.onCallback(update.callback_query);
    const msg = messageToInbound(update, this.username);
    if (msg) await this.onMessage(msg);
  }

  private async onCallback(cq: CallbackQuery): Promise<void> {
    const lang = langFromCode(cq.from.language_code);
    let answered = false;
    const answer = async (key?: 'telegram.picker_stale' | 'telegram.picker_foreign') => {
      if (answered) return;
      answered = true;
      await this.bot.api
        .answerCallbackQuery(cq.id, key ? { text: t(lang, key), show_alert: key === 'telegram.picker_foreign' } : undefined)
        .catch((e) => this.logger.debug({ err: e }, 'answerCallbackQuery failed'));
    };
    try {
      const d = decodeCallback(cq.data);
      const m = cq.message;
      if (!m || d.kind === 'invalid') return await answer('telegram.picker_stale');
      if (d.kind !== 'command') {
        if (d.owner !== '0' && d.owner !== String(cq.from.id)) return await answer('telegram.picker_foreign');
        const ttl = this.pickerTtlMs;
        if (m.date !== undefined && (m.date === 0 || Date.now() / 1000 - m.date > ttl / 1000)) return await answer('telegram.picker_stale');
      }
      if (d.kind === 'page') {
        const st = await this.getPicker(String(m.chat.id), m.message_id);
        if (!st) return await answer('telegram.picker_stale');
        await answer();
        await this.bot.api
          .editMessageReplyMarkup(m.chat.id, m.message_id, { reply_markup: { inline_keyboard: this.pickerPage(st, d.page) } })
          .catch((e) => {
            if (!isNotModified(e)) throw e;
          });
        return;
      }
      const data = d.kind === 'long' ? await this.codec.long(d.key) : d.data;
      if (!data) return await answer('telegram.picker_stale');
      await answer();
      const msg = base(m.chat, cq.from, { text: '', kind: 'callback', callbackData: data, messageId: String(m.message_id) });
      if (d.kind !== 'command') this.editTargets.set(msg.chat, String(m.message_id));
      await this.onMessage!(msg);
    } finally {
      await answer();
    }
  }

  // ------------------------------------------------------------------ outbound

  private async keyboard(chat: ChannelRef, rows: Choice[][] | undefined, allowWebApp: boolean): Promise<InlineButton[][] | undefined> {
    if (!rows?.length) return undefined;
    return Promise.all(rows.map((row) => Promise.all(row.map((c) => this.codec.button(c, chat.user_id, allowWebApp)))));
  }

  /** Picker pages live in the store so a page tap works on any process. */
  private pickerKey(chatId: string, messageId: number | string): string {
    return `tg:picker:${chatId}:${messageId}`;
  }

  private async getPicker(chatId: string, messageId: number): Promise<PickerState | undefined> {
    const v = await this.store.getEphemeral(this.pickerKey(chatId, messageId));
    return v === undefined ? undefined : (JSON.parse(v) as PickerState);
  }

  private cardKey(workspace: string, modelId: string): string {
    return `tg:card:${workspace}|${modelId}`;
  }

  private pickerPage(st: PickerState, page: number): InlineButton[][] {
    const size = this.opts.pickerPageSize ?? 8;
    const p = pageRows(st.rows, page, size);
    const owner = uid36(st.owner);
    const nav: InlineButton[] = [];
    if (p.page > 0) nav.push({ text: t(st.lang, 'telegram.prev'), callback_data: `p|${owner}|${p.page - 1}` });
    nav.push({ text: t(st.lang, 'telegram.page', { page: p.page + 1, pages: p.pages }), callback_data: `p|${owner}|${p.page}` });
    if (p.page < p.pages - 1) nav.push({ text: t(st.lang, 'telegram.next'), callback_data: `p|${owner}|${p.page + 1}` });
    return [...p.rows, nav];
  }

  private isPrivateRef(chat: ChannelRef): boolean {
    // In Telegram a private chat's id is the user's id; groups are negative.
    return chat.user_id !== undefined ? chat.chat_id === chat.user_id : !chat.chat_id.startsWith('-');
  }

  /** sendMessage with HTML, falling back to plain text when Telegram cannot parse the markup. */
  private async sendText(chatId: string, text: string, html: string | undefined, extra: SendExtra): Promise<number> {
    const call = (body: string, parse: boolean) => this.bot.api.sendMessage(Number(chatId), body, { ...extra, ...(parse ? { parse_mode: 'HTML' as const } : {}) });
    if (html !== undefined) {
      try {
        return (await call(html, true)).message_id;
      } catch (e) {
        if (!isParseError(e)) throw e;
      }
    }
    return (await call(text, false)).message_id;
  }

  private async editText(chatId: string, messageId: string, text: string, html: string | undefined, extra: EditExtra): Promise<void> {
    const call = (body: string, parse: boolean) => this.bot.api.editMessageText(Number(chatId), Number(messageId), body, { ...extra, ...(parse ? { parse_mode: 'HTML' as const } : {}) });
    try {
      if (html !== undefined) {
        try {
          await call(html, true);
          return;
        } catch (e) {
          if (!isParseError(e)) throw e;
        }
      }
      await call(text, false);
    } catch (e) {
      if (!isNotModified(e)) throw e;
    }
  }

  private extras(msg: OutgoingMessage, markup: InlineButton[][] | undefined): SendExtra {
    return {
      ...(markup ? { reply_markup: { inline_keyboard: markup } } : {}),
      ...(msg.noPreview ? { link_preview_options: { is_disabled: true } } : {}),
      ...(msg.protect ? { protect_content: true } : {}),
    };
  }

  async send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    const target = this.editTargets.get(chat);
    if (target) {
      this.editTargets.delete(chat);
      try {
        await this.edit({ chat, messageId: target }, msg);
        return { chat, messageId: target };
      } catch (e) {
        this.logger.debug({ err: e }, 'telegram: editing the menu failed; sending');
      }
    }
    const lang: Lang = chat.lang ?? 'en';
    const allowWebApp = this.isPrivateRef(chat);
    let markup = await this.keyboard(chat, msg.choices, allowWebApp);
    const size = this.opts.pickerPageSize ?? 8;
    const paged = !!markup && markup.length > size && !!chat.user_id && markup.every((r) => r.every((b) => 'callback_data' in b && !!b.callback_data));
    const all = markup;
    if (paged) markup = this.pickerPage({ owner: chat.user_id!, rows: all!, lang }, 0);
    const parts = msg.text.length > TELEGRAM_MAX_MESSAGE ? splitMessage(msg.text, PART_MAX) : [msg.text || '…'];
    let id = 0;
    for (let i = 0; i < parts.length; i++) {
      const last = i === parts.length - 1;
      const html = msg.format === 'markdown' ? markdownToHtml(parts[i]) : undefined;
      id = await this.sendText(chat.chat_id, parts[i], html, this.extras(msg, last ? markup : undefined));
    }
    if (paged) await this.store.putEphemeral(this.pickerKey(chat.chat_id, id), JSON.stringify({ owner: chat.user_id!, rows: all!, lang } satisfies PickerState), this.pickerTtlMs);
    return { chat, messageId: String(id) };
  }

  async edit(ref: SentRef, msg: OutgoingMessage): Promise<void> {
    const markup = await this.keyboard(ref.chat, msg.choices, this.isPrivateRef(ref.chat));
    const text = (msg.text || '…').slice(0, TELEGRAM_MAX_MESSAGE);
    const html = msg.format === 'markdown' ? markdownToHtml(text) : undefined;
    await this.editText(ref.chat.chat_id, ref.messageId, text, html, {
      reply_markup: { inline_keyboard: markup ?? [] },
      ...(msg.noPreview ? { link_preview_options: { is_disabled: true } } : {}),
    });
  }

  async deleteInbound(msg: InboundMessage): Promise<boolean> {
    if (!msg.messageId || msg.kind === 'callback') return false;
    try {
      // The Bot API answers `true` or an error (thrown).
      await this.bot.api.deleteMessage(Number(msg.chat.chat_id), Number(msg.messageId));
      return true;
    } catch (e) {
      this.logger.info({ err: e, private: msg.isPrivate }, 'telegram: could not delete a message carrying a key');
      return false;
    }
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    const lang = req.lang;
    const html = t(lang, 'telegram.card', {
      vendor: escapeHtml(req.vendor_name),
      model: escapeHtml(req.model_name),
      reason: escapeHtml(req.reason),
      expires: escapeHtml(formatTime(req.expires_at, req.lang, req.tz)),
    });
    const plain = html.replace(/<\/?b>/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    const label = t(lang, 'telegram.open_form');
    const mode = this.opts.webApp ?? 'auto';
    const webApp = this.isPrivateRef(chat) && (mode === 'always' || (mode === 'auto' && req.url.startsWith('https://')));
    const extra = (button: InlineButton) => ({
      reply_markup: { inline_keyboard: [[button]] },
      link_preview_options: { is_disabled: true },
      protect_content: true,
    });
    let id: number;
    let launch: 'web_app' | 'link' = 'link';
    if (webApp) {
      try {
        id = await this.sendText(chat.chat_id, plain, html, extra({ text: label, web_app: { url: req.url } }));
        launch = 'web_app';
      } catch (e) {
        // Mini Apps refused (e.g. the domain is not set for the bot): the one-time link instead.
        this.logger.warn({ err: e }, 'telegram: web_app button refused; sending a URL button');
        id = await this.sendText(chat.chat_id, plain, html, extra({ text: label, url: req.url }));
      }
    } else {
      id = await this.sendText(chat.chat_id, plain, html, extra({ text: label, url: req.url }));
    }
    await this.store.putEphemeral(this.cardKey(req.workspace, req.model_id), JSON.stringify({ chat_id: chat.chat_id, message_id: String(id) }), CARD_TTL_MS);
    return { chat, messageId: String(id), launch };
  }

  async keyResult(chat: ChannelRef, result: KeyResult): Promise<void> {
    const lang = result.lang;
    const ok = result.outcome === 'ok';
    const html = ok
      ? t(lang, 'telegram.card_ok', {
          vendor: escapeHtml(result.vendor_name ?? ''),
          model: escapeHtml(result.model_name ?? result.model_id),
          masked: escapeHtml(result.masked ?? '****'),
        })
      : t(lang, 'telegram.card_error', { text: escapeHtml(result.text) });
    const plain = html.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    const markup: InlineButton[][] = ok || result.outcome === 'pending_retry' ? [] : [[{ text: t(lang, 'telegram.new_form'), callback_data: `/byok key ${result.model_id}`.slice(0, 64) }]];
    const cardKey = this.cardKey(result.workspace, result.model_id);
    let card: { chat_id: string; message_id: string } | undefined = chat.message_id ? { chat_id: chat.chat_id, message_id: chat.message_id } : undefined;
    if (!card) {
      const v = await this.store.getEphemeral(cardKey);
      card = v === undefined ? undefined : (JSON.parse(v) as { chat_id: string; message_id: string });
    }
    if (card && card.chat_id === chat.chat_id) {
      try {
        await this.editText(chat.chat_id, card.message_id, plain, html, { reply_markup: { inline_keyboard: markup }, link_preview_options: { is_disabled: true } });
        if (ok) await this.store.deleteEphemeral(cardKey);
        return;
      } catch (e) {
        this.logger.info({ err: e }, 'telegram: could not edit the card; sending the result');
      }
    }
    await this.sendText(chat.chat_id, plain, html, {
      ...(markup.length ? { reply_markup: { inline_keyboard: markup } } : {}),
      link_preview_options: { is_disabled: true },
    });
  }

  privateChatLink(payload: string): string | undefined {
    const u = this.username;
    if (!u) return undefined;
    const p = payload.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64);
    return `https://t.me/${u}?start=${p}`;
  }

  async isGroupAdmin(msg: InboundMessage): Promise<boolean> {
    if (msg.isPrivate) return true;
    const key = `${msg.chat.chat_id}:${msg.senderId}`;
    const cached = this.adminCache.get(key);
    if (cached !== undefined) return cached;
    try {
      const m = await this.bot.api.getChatMember(Number(msg.chat.chat_id), Number(msg.senderId));
      const admin = m.status === 'creator' || m.status === 'administrator';
      this.adminCache.set(key, admin);
      return admin;
    } catch (e) {
      this.logger.warn({ err: e }, 'telegram getChatMember failed');
      return false;
    }
  }

  /** The "typing…" action (about 5 s on screen); a preview for the budget: skipped when it runs short. */
  async typing(chat: ChannelRef): Promise<void> {
    await asPreview(() => this.bot.api.sendChatAction(Number(chat.chat_id), 'typing'));
  }

  /**
   * Streams an answer: drafts (sendMessageDraft) in private chats where the Bot API offers
   * them, else a message edited as it grows. The vendor is read without waiting for
   * Telegram; at most one preview per interval per chat (slower in groups) shows the latest
   * text, and previews are skipped when the bot's shared budget runs low. Long answers are
   * split at paragraph/code boundaries; Markdown that Telegram rejects is sent as plain text.
   * Cut by stop(): what arrived is finalised and a notice follows.
   */
  async streamReply(chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string> {
    const priv = this.isPrivateRef(chat);
    const interval = priv ? (this.opts.editIntervalMs ?? 1000) : (this.opts.groupEditIntervalMs ?? 3000);
    const chatId = chat.chat_id;
    let useDraft = this.draftsSupported && priv;
    let draftId = randomInt(1, 2 ** 31 - 1);
    let messageId: string | undefined; // the preview message (edits mode)

    const preview = async (text: string) => {
      const html = markdownToHtml(text);
      if (useDraft) {
        try {
          await asPreview(async () => {
            try {
              await this.bot.api.sendMessageDraft(Number(chatId), draftId, html, { parse_mode: 'HTML' });
            } catch (e) {
              if (!isParseError(e)) throw e;
              await this.bot.api.sendMessageDraft(Number(chatId), draftId, text);
            }
          });
          return;
        } catch (e) {
          if (e instanceof BudgetSkipped) throw e;
          this.logger.info({ err: e }, 'telegram: sendMessageDraft unavailable; streaming with edits');
          this.draftsSupported = false;
          useDraft = false;
        }
      }
      if (messageId) await asPreview(() => this.editText(chatId, messageId!, text, html, {}));
      else messageId = String(await asPreview(() => this.sendText(chatId, text, html, {})));
    };
    const finalize = async (text: string, shown: string) => {
      // An edited preview already showing this exact text is final as it is.
      if (messageId && text !== shown) await this.editText(chatId, messageId, text, markdownToHtml(text), {});
      else if (!messageId) await this.sendText(chatId, text, markdownToHtml(text), {});
      messageId = undefined;
      draftId = randomInt(1, 2 ** 31 - 1);
    };

    const claim = this.claims.getStore();
    const controller = new AbortController();
    const run = (async () => {
      const r = await paintStream(chunks, {
        intervalMs: interval,
        partMax: PART_MAX,
        ops: { preview, finalize },
        signal: controller.signal,
        onPreviewError: (e) => this.logger.debug({ err: e }, 'telegram: streaming preview failed'),
      });
      if (r.aborted) {
        await this.sendText(chatId, t(lang, 'telegram.cut_off'), undefined, {}).catch((e) => this.logger.warn({ err: e }, 'telegram: could not send the cut-off notice'));
        if (claim) await this.markDone(claim);
      } else if (!r.text) {
        await this.sendText(chatId, t(lang, 'relay.empty'), undefined, {});
      }
      return r.text;
    })();
    const handle: StreamHandle = { controller, done: run.catch(() => undefined) };
    this.streams.add(handle);
    try {
      return await run;
    } finally {
      this.streams.delete(handle);
    }
  }

  // ------------------------------------------------------------------ secure form

  async verifyFormLaunch(record: FormLaunchRecord, req: FormLaunchRequest & { telegramInitData?: string }): Promise<boolean> {
    if (record.channel.channel !== CHANNEL) return true;
    const raw = req.telegramInitData ?? req.headers['x-telegram-init-data'];
    const initData = typeof raw === 'string' && raw.length > 0 ? raw : undefined;
    // A form shown as a Mini App can only be submitted from inside Telegram by the user who
    // asked; a plain link (groups, http, fallback) carries no launch data.
    if (!initData) return !(this.opts.requireInitData || record.launch === 'web_app');
    const res = verifyInitData(initData, this.token, { maxAgeSec: this.opts.initDataMaxAgeSec ?? 3600 });
    if (!res.ok || !res.user) {
      this.logger.warn({ reason: res.ok ? 'no_user' : res.reason }, 'telegram: Mini App launch data refused');
      return false;
    }
    const expectedUser = record.channel.user_id ?? record.channel.chat_id;
    // The user who asked; the workspace is theirs, or a group's whose admin asked (/group key),
    // the form being sent to that admin's private chat.
    const match = String(res.user.id) === expectedUser && (workspaceOf(res.user.id) === record.workspace || record.workspace.startsWith('tg:group:'));
    if (!match) this.logger.warn({ reason: 'other_user' }, 'telegram: Mini App opened by another user');
    return match;
  }
}
