import { ByokError } from '../../src/errors.ts';
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import qrcodeTerminal from 'qrcode-terminal';
import { types as wxTypes, WechatyBuilder, type Wechaty, type WechatyOptions } from 'wechaty';
import type { Config } from '../../src/config.ts';
import { markdownToPlain, splitParagraphs } from '../../src/chat/markdown.ts';
import { formatTime } from '../../src/chat/time.ts';
import { splitMessage } from '../../src/chat/split.ts';
import { t, type Lang } from '../../src/i18n/index.ts';
import type { Logger } from '../../src/log.ts';
import type { ChannelCapabilities, ChannelRef, ChannelReadiness, EnvInputRequest, InboundMessage, OutgoingMessage, SentRef, ChannelCore, Streaming, GroupAdmin, HttpMount, Readiness } from '../../src/channel.ts';
import { createServicePuppet, PuppetSupervisor, serviceCacheDir, tcpProbe, type BackoffOptions, type SupervisedPuppet } from './connection.ts';
import { groupWorkspaceOf, renderChoices, workspaceOf } from './ids.ts';
import { SendPacer, type PacerOptions } from './pacer.ts';

/** The parts of a Wechaty message the adapter reads (keeps the adapter testable). */
/** Headers a reverse proxy or tunnel adds to what it forwards. */
const FORWARDING_HEADERS = ['x-forwarded-for', 'forwarded', 'x-real-ip', 'cf-connecting-ip', 'x-forwarded-host'] as const;

export interface MessageLike {
  id: string;
  self(): boolean;
  talker(): { id: string; name(): string; type(): number };
  room(): undefined | { id: string };
  type(): number;
  text(): string;
  age(): number;
  mentionSelf(): Promise<boolean>;
  mentionText(): Promise<string>;
}

// Defined beside the connection code that holds it (connection.ts must not import this file).
import type { PuppetInstance } from './connection.ts';
export type { PuppetInstance };

export interface WechatChannelOptions {
  config: Config;
  logger: Logger;
  /** A puppet instance (tests: PuppetMock); default: `config.wechat.puppet` by name. */
  puppet?: Exclude<PuppetInstance, string>;
  /** Send pacing; defaults: 1 s apart per chat, 40 per minute with bursts of 5 overall. */
  pacing?: PacerOptions;
  /** Longest message sent in one piece (default 2000 characters). */
  maxMessageLength?: number;
  /**
   * The user's language preference for texts the adapter sends on its own (the non-text
   * note). Wire it to the router's prefs so `/lang en` applies; default Chinese.
   */
  langOf?: (workspace: string) => Promise<Lang | undefined>;
  /** Print the login QR code in the terminal (default: yes). */
  printQr?: boolean;
  /** Memory card name (default `<dataDir>/wechaty`, i.e. `wechaty.memory-card.json`). */
  memoryName?: string;
  /** Messages older than this (seconds) when they arrive are ignored: history replayed after login. */
  maxAgeSeconds?: number;
  /** Reconnect backoff while the provider is unreachable (default 1 s doubling to 15 s). */
  backoff?: BackoffOptions;
}

/** The puppet-service package: built here so it never stops the provider (see connection.ts). */
const SERVICE_PUPPET = 'wechaty-puppet-service';
/** Message ids remembered to drop a provider's replay of what was already answered. */
const SEEN_IDS = 5000;

export const WECHAT_MAX_MESSAGE = 2000;
/** /wechat/qr fetches per client per minute (the operator's page refreshes it by hand). */
export const QR_GETS_PER_MINUTE = 30;

function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.replace(/^::ffff:/i, '');
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

function qrSecretOf(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^Bearer\s+\S/i.test(auth)) return auth.replace(/^Bearer\s+/i, '').trim();
  const q = (req.query as Record<string, unknown> | undefined)?.secret;
  return typeof q === 'string' && q.length > 0 ? q : undefined;
}

/** Constant time whatever the lengths: compares digests. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** Non-text messages that get the short "text only" note (in private chats). */
const MEDIA_TYPES = new Set<number>([
  wxTypes.Message.Attachment,
  wxTypes.Message.Audio,
  wxTypes.Message.Emoticon,
  wxTypes.Message.Image,
  wxTypes.Message.Video,
  wxTypes.Message.Url,
  wxTypes.Message.MiniProgram,
  wxTypes.Message.Location,
  wxTypes.Message.ChatHistory,
  wxTypes.Message.Contact,
]);

/**
 * WeChat through Wechaty. The puppet comes from the environment (WECHATY_PUPPET,
 * WECHATY_PUPPET_SERVICE_TOKEN) or is injected. The login QR code is printed and served as
 * a PNG at /wechat/qr until someone scans it; the session is kept in a memory card under
 * the data dir. Users are `wx:<contact id>`, rooms `wx:room-<room id>`; replies default to
 * Chinese; sends are split at 2,000 characters and paced per chat and globally.
 *
 * In rooms the bot answers commands (`/...`) and messages that @mention it; any other room
 * message is only checked by the pasted-key guard (and answered when it carries a key).
 */
export class WechatChannel implements ChannelCore, Streaming, GroupAdmin, HttpMount, Readiness {
  readonly name = 'wechat';
  readonly capabilities: ChannelCapabilities;
  readonly pacer: SendPacer;
  private readonly logger: Logger;
  private bot?: Wechaty;
  private qr?: { value: string; at: number };
  private loggedIn = false;
  private seq = 0;
  private readonly inbound = new Map<string, Promise<void>>();
  private onMessage?: (msg: InboundMessage) => Promise<void>;
  private supervisor?: PuppetSupervisor;
  /** Built here as a puppet-service client (local stop, cache under the data dir). */
  private service = false;
  /** Chats whose answer could not be sent while the provider was away: told once it is back. */
  private readonly owed = new Map<string, ChannelRef>();
  private readonly seen = new Set<string>();
  /** Display names of recent room askers, for the @mention of the answer. */
  private readonly names = new Map<string, string>();

  constructor(private readonly opts: WechatChannelOptions) {
    this.logger = opts.logger;
    this.pacer = new SendPacer(opts.pacing);
    this.capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: opts.maxMessageLength ?? WECHAT_MAX_MESSAGE };
  }

  /** The running Wechaty instance (after start). */
  get wechaty(): Wechaty | undefined {
    return this.bot;
  }

  /** True while a login QR code is waiting for a scan. */
  get waitingForScan(): boolean {
    return !!this.qr && !this.loggedIn;
  }

  /** The connection supervisor (state, reconnect attempts, last reconnect time). */
  get connection(): PuppetSupervisor | undefined {
    return this.supervisor;
  }

  /**
   * Starts Wechaty and returns without waiting for the provider: when it is unreachable the
   * supervisor keeps retrying with backoff for as long as the process runs (/readyz says so).
   */
  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.onMessage = onMessage;
    this.pacer.open();
    const { config } = this.opts;
    const name = this.memoryFile.replace(/\.memory-card\.json$/, '');
    fs.mkdirSync(path.dirname(name), { recursive: true });
    let options: WechatyOptions;
    if (this.opts.puppet) options = { name, puppet: this.opts.puppet };
    else if (config.wechat?.puppet === SERVICE_PUPPET) {
      const cacheDir = serviceCacheDir(config.dataDir);
      fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
      options = { name, puppet: await createServicePuppet({ token: config.wechat.token, cacheDir }) };
    } else if (config.wechat?.puppet)
      options = {
        name,
        puppet: config.wechat.puppet as Extract<WechatyOptions, { puppetOptions?: unknown }>['puppet'],
        ...(config.wechat.token ? { puppetOptions: { token: config.wechat.token } } : {}),
      } as WechatyOptions;
    else throw new ByokError('config', 'wechat: set WECHATY_PUPPET (e.g. wechaty-puppet-wechat4u) or pass a puppet');

    const bot = WechatyBuilder.build(options);
    this.bot = bot;
    // The puppet instance exists after init(); its own events drive the connection state
    // (Wechaty's login/logout events need a contact lookup that fails while disconnected).
    await bot.init();
    const puppet = bot.puppet as unknown as SupervisedPuppet & { on(ev: string, fn: (p: Record<string, unknown>) => void): unknown };
    const service = !this.opts.puppet && config.wechat?.puppet === SERVICE_PUPPET;
    this.service = service;
    const sup = new PuppetSupervisor(puppet, {
      logger: this.logger,
      backoff: this.opts.backoff,
      // The library reads the same variable for its endpoint.
      probe: service ? tcpProbe(process.env.WECHATY_PUPPET_SERVICE_ENDPOINT) : undefined,
      onState: (state) => {
        if (state === 'logged_in') void this.flushApologies();
      },
    });
    this.supervisor = sup;
    puppet.on('scan', (p) => {
      const status = Number(p.status);
      if (status === wxTypes.ScanStatus.Waiting || status === wxTypes.ScanStatus.Timeout) sup.onScan();
    });
    puppet.on('login', () => {
      this.loggedIn = true;
      this.qr = undefined;
      sup.onLogin();
      void this.saveSession();
    });
    puppet.on('logout', (p) => {
      this.loggedIn = false;
      sup.onLogout(typeof p.data === 'string' ? p.data : undefined);
    });
    bot.on('scan', (value: string, status: number) => this.onScan(value, status));
    // While reconnecting, every failed attempt is an error event: the supervisor logs those.
    bot.on('error', (e) => (sup.up ? this.logger.warn({ err: e }, 'wechat: puppet error') : this.logger.debug({ err: e }, 'wechat: puppet error')));
    bot.on('message', (m) => {
      void this.receive(m as unknown as MessageLike).catch((e) => this.logger.error({ err: e }, 'wechat: inbound message failed'));
    });
    await bot.start();
    sup.afterStart();
    this.logger.info({ puppet: this.opts.puppet ? 'injected' : config.wechat?.puppet, memory: this.memoryFile, state: sup.state }, 'wechat: started');
  }

  /**
   * Stops the local client only: a puppet-service provider keeps the account logged in, so
   * a restart needs no new scan.
   */
  async stop(): Promise<void> {
    this.pacer.close();
    const bot = this.bot;
    if (!bot) return;
    await this.supervisor?.stop();
    await this.saveSession();
    await bot.stop().catch((e) => this.logger.warn({ err: e }, 'wechat: stop failed'));
    this.bot = undefined;
    this.loggedIn = false;
    this.logger.info(this.service ? 'wechat: stopped (the account stays logged in at the provider)' : 'wechat: stopped');
  }

  /** /readyz: ready only while logged in on a live connection. */
  readiness(): ChannelReadiness {
    const sup = this.supervisor;
    if (!sup) return { ready: false, state: 'starting' };
    return { ready: sup.up, state: sup.state, ...(sup.detail ? { detail: sup.detail } : {}) };
  }

  /** Resolves when every inbound message received so far has been handled. */
  async idle(): Promise<void> {
    while (this.inbound.size) await Promise.all([...this.inbound.values()]);
  }

  /** Memory card file (the puppet's session: treat it like a password). */
  get memoryFile(): string {
    return `${this.opts.memoryName ?? path.join(this.opts.config.dataDir, 'wechaty')}.memory-card.json`;
  }

  private async saveSession(): Promise<void> {
    try {
      await (this.bot as unknown as { memory?: { save(): Promise<void> } })?.memory?.save();
      if (fs.existsSync(this.memoryFile)) fs.chmodSync(this.memoryFile, 0o600);
    } catch (e) {
      this.logger.warn({ err: e }, 'wechat: could not save the session memory card');
    }
  }

  private onScan(value: string, status: number): void {
    if (status === wxTypes.ScanStatus.Waiting || status === wxTypes.ScanStatus.Timeout) {
      this.qr = { value, at: Date.now() };
      this.logger.info({ status: wxTypes.ScanStatus[status] }, 'wechat: scan the QR code to log in (also at /wechat/qr)');
      if (this.opts.printQr !== false) qrcodeTerminal.generate(value, { small: true }, (s: string) => process.stderr.write(`${s}\n`));
    } else {
      this.logger.info({ status: wxTypes.ScanStatus[status] }, 'wechat: scan status');
      if (status === wxTypes.ScanStatus.Confirmed) this.qr = undefined;
    }
  }

  /**
   * The login QR logs whoever scans it first into the bot: it is served only to a loopback
   * peer (the TCP peer itself, never X-Forwarded-For; behind a proxy every request comes from
   * loopback, so then loopback alone is not enough) or with BYOK_ADMIN_SECRET (`?secret=` or
   * `Authorization: Bearer`). Anyone else gets the same 404 as a missing route. Rate-limited
   * per client before the secret is looked at, so the limit also bounds guessing.
   */
  mount(server: FastifyInstance): void {
    const { config } = this.opts;
    const limited = (req: FastifyRequest): Promise<boolean> =>
      server.hasDecorator('limitPerClient') ? server.limitPerClient(req, 'wechat-qr', QR_GETS_PER_MINUTE, 60_000) : Promise.resolve(this.localLimit(req.socket.remoteAddress));
    server.get('/wechat/qr', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      const peer = req.socket.remoteAddress;
      // A reverse proxy on the same host (nginx, a tunnel) makes every peer loopback: a
      // request it forwarded (forwarding headers) is not local, whatever TRUST_PROXY says.
      const forwarded = FORWARDING_HEADERS.some((h) => req.headers[h] !== undefined);
      const local = isLoopback(peer) && !(config.trustProxyHops > 0) && !forwarded;
      const notFound = () => reply.code(404).send({ ok: false, code: 'not_found', error: 'Not found.' });
      if (await limited(req)) {
        this.logger.warn({ route: '/wechat/qr', reason: 'rate_limited' }, 'wechat: login QR refused');
        if (!local) return notFound();
        return reply.code(429).header('Retry-After', '60').send({ ok: false, code: 'rate_limited' });
      }
      if (!local) {
        const given = qrSecretOf(req);
        if (!config.adminSecret || !given || !sameSecret(given, config.adminSecret)) {
          this.logger.warn({ route: '/wechat/qr', reason: given ? 'wrong_secret' : 'not_loopback', trust_proxy: config.trustProxyHops }, 'wechat: login QR refused');
          return notFound();
        }
      }
      if (!this.waitingForScan) return reply.code(404).send({ ok: false, waiting_for_scan: false });
      const png = await QRCode.toBuffer(this.qr!.value, { type: 'png', width: 320, margin: 2 });
      return reply.type('image/png').send(png);
    });
  }

  private qrHits = new Map<string, { n: number; until: number }>();

  /** Without the secure-input server's shared limiter (a bare server in tests): per process. */
  private localLimit(peer: string | undefined): boolean {
    const now = Date.now();
    const k = peer ?? 'unknown';
    const e = this.qrHits.get(k);
    if (!e || e.until <= now) {
      if (this.qrHits.size > 10_000) this.qrHits.clear();
      this.qrHits.set(k, { n: 1, until: now + 60_000 });
      return false;
    }
    return ++e.n > QR_GETS_PER_MINUTE;
  }

  /** Maps a Wechaty message to the chat core's InboundMessage, or undefined when it is ignored. */
  async toInbound(m: MessageLike): Promise<InboundMessage | 'nontext' | undefined> {
    if (m.self()) return undefined;
    const talker = m.talker();
    if (talker.type() === wxTypes.Contact.Official) return undefined;
    if (this.opts.maxAgeSeconds !== 0 && m.age() > (this.opts.maxAgeSeconds ?? 300)) return undefined;
    const room = m.room();
    const type = m.type();
    if (type !== wxTypes.Message.Text) return !room && MEDIA_TYPES.has(type) ? 'nontext' : undefined;
    let text = m.text() ?? '';
    // In a room only commands and @mentions are ours to answer; the core's key guard sees the rest too.
    let addressed = !room;
    if (room) {
      if (await m.mentionSelf().catch(() => false)) {
        text = (await m.mentionText().catch(() => text)) || text;
        addressed = true;
      } else addressed = text.trim().startsWith('/');
    }
    const chat: ChannelRef = { channel: 'wechat', chat_id: room ? room.id : talker.id, user_id: talker.id };
    return {
      channel: 'wechat',
      chat,
      messageId: m.id,
      senderId: talker.id,
      senderName: talker.name(),
      workspace: workspaceOf(talker.id),
      groupWorkspace: room ? groupWorkspaceOf(room.id) : undefined,
      isPrivate: !room,
      addressed_to_bot: addressed,
      lang: 'zh',
      text: text.trim(),
      kind: 'text',
    };
  }

  private async receive(m: MessageLike): Promise<void> {
    // A provider may replay what it delivered before a reconnect: answer each message once.
    if (m.id) {
      if (this.seen.has(m.id)) return;
      this.seen.add(m.id);
      if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.values().next().value!);
    }
    const inbound = await this.toInbound(m);
    if (!inbound) return;
    const talker = m.talker();
    if (inbound !== 'nontext' && !inbound.isPrivate && inbound.senderName) {
      this.names.set(inbound.senderId, inbound.senderName);
      if (this.names.size > 1000) this.names.delete(this.names.keys().next().value!);
    }
    if (inbound === 'nontext') {
      const lang = (await this.opts.langOf?.(workspaceOf(talker.id)).catch(() => undefined)) ?? 'zh';
      await this.send({ channel: 'wechat', chat_id: talker.id, user_id: talker.id }, { text: t(lang, 'nontext.note') });
      return;
    }
    // One message at a time per chat, in arrival order.
    const key = inbound.chat.chat_id;
    const prev = this.inbound.get(key) ?? Promise.resolve();
    const run = prev.then(() => this.onMessage?.(inbound)).catch((e) => this.logger.error({ err: e }, 'wechat: handler failed'));
    this.inbound.set(key, run);
    await run;
    if (this.inbound.get(key) === run) this.inbound.delete(key);
  }

  async send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    const text = renderChoices(msg.format === 'markdown' ? markdownToPlain(msg.text) : msg.text, msg.choices);
    return this.sendParts(chat, splitMessage(text, this.partLimit(chat)));
  }

  /**
   * Model answers: WeChat shows Markdown literally, so it becomes plain text, split at
   * paragraph boundaries. Collected first (WeChat cannot edit a sent message).
   */
  async streamReply(chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string> {
    let full = '';
    for await (const c of chunks) full += c;
    const plain = markdownToPlain(full);
    await this.sendParts(chat, plain ? splitParagraphs(plain, this.partLimit(chat)) : [t(lang, 'relay.empty')]);
    return full;
  }

  private isRoom(chat: ChannelRef): boolean {
    return !!chat.user_id && chat.user_id !== chat.chat_id;
  }

  /** Room answers start with an @mention: leave room for it. */
  private partLimit(chat: ChannelRef): number {
    return this.capabilities.maxMessageLength - (this.isRoom(chat) ? 40 : 0);
  }

  /**
   * Sends in order through the pacer. In a room the first part @mentions the asker. A part
   * that cannot be sent (the provider is away) marks the chat: once logged in again, the
   * user is asked to send the message again.
   */
  private async sendParts(chat: ChannelRef, parts: string[]): Promise<SentRef> {
    const bot = this.bot;
    if (!bot) throw new Error('wechat: not started');
    const mention = this.isRoom(chat) ? await this.mentionOf(chat.user_id!) : undefined;
    let last: string | undefined;
    try {
      for (const [i, part] of parts.entries()) {
        const text = i === 0 && mention ? `@${mention}\u2005${part}` : part;
        const id = await this.pacer.schedule(chat.chat_id, () =>
          i === 0 && mention ? bot.puppet.messageSendText(chat.chat_id, text, [chat.user_id!]) : bot.puppet.messageSendText(chat.chat_id, text),
        );
        last = typeof id === 'string' && id ? id : undefined;
      }
    } catch (e) {
      if (this.bot && this.supervisor?.state !== 'stopped') {
        this.owed.set(chat.chat_id, chat);
        this.logger.warn({ err: e, state: this.supervisor?.state }, 'wechat: send failed; the user will be asked to send again once reconnected');
      }
      throw e;
    }
    return { chat, messageId: last ?? `wx-${++this.seq}` };
  }

  private async mentionOf(contactId: string): Promise<string | undefined> {
    const known = this.names.get(contactId);
    if (known) return known;
    try {
      const p = await this.bot?.puppet.contactPayload(contactId);
      return p?.name || undefined;
    } catch {
      return undefined;
    }
  }

  /** After a reconnect: one short apology per chat whose answer was lost. */
  private async flushApologies(): Promise<void> {
    const chats = [...this.owed.values()];
    this.owed.clear();
    for (const chat of chats) {
      const lang = (await this.opts.langOf?.(workspaceOf(chat.user_id ?? chat.chat_id)).catch(() => undefined)) ?? 'zh';
      await this.sendParts(chat, [t(lang, 'wechat.sorry_reconnected')]).catch((e) => this.logger.warn({ err: e }, 'wechat: apology not sent'));
    }
    if (chats.length) this.logger.info({ chats: chats.length }, 'wechat: asked users to send again after the reconnect');
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    const text = t(req.lang, 'wechat.form_text', {
      vendor: req.vendor_name,
      model: req.model_name,
      reason: req.reason,
      expires: formatTime(req.expires_at, req.lang, req.tz),
      url: req.url,
    });
    return this.send(chat, { text, noPreview: true });
  }

  /** Room owner (or a room admin the puppet reports) when known; anyone when the owner is unknown. */
  async isGroupAdmin(msg: InboundMessage): Promise<boolean> {
    if (msg.isPrivate) return true;
    const bot = this.bot;
    if (!bot) return false;
    try {
      const payload = await bot.puppet.roomPayload(msg.chat.chat_id);
      const admins = [payload.ownerId, ...(payload.adminIdList ?? [])].filter((x): x is string => !!x);
      // Same rule as Telegram; when the puppet does not know the owner nobody may switch the
      // room's model (a member could otherwise route the room to their own endpoint).
      return admins.includes(msg.senderId);
    } catch (e) {
      this.logger.warn({ err: e }, 'wechat: room payload unavailable');
      return false;
    }
  }
}

