import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import qrcodeTerminal from 'qrcode-terminal';
import { types as wxTypes, WechatyBuilder, type Wechaty, type WechatyOptions } from 'wechaty';
import type { Config } from '../../src/config.ts';
import { formatTime } from '../../src/chat/router.ts';
import { splitMessage } from '../../src/chat/split.ts';
import { t, type Lang } from '../../src/i18n/index.ts';
import type { Logger } from '../../src/log.ts';
import type { ChannelRef } from '../../src/queue/types.ts';
import { detectKeys } from '../../src/secrets/detector.ts';
import type { ChannelAdapter, EnvInputRequest, InboundMessage, OutgoingMessage, SentRef } from '../types.ts';
import { groupWorkspaceOf, renderChoices, workspaceOf } from './ids.ts';
import { SendPacer, type PacerOptions } from './pacer.ts';

/** The parts of a Wechaty message the adapter reads (keeps the adapter testable). */
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

export type PuppetInstance = Extract<WechatyOptions, { puppet?: unknown }>['puppet'];

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
}

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
export class WechatChannel implements ChannelAdapter {
  readonly name = 'wechat';
  readonly capabilities: ChannelAdapter['capabilities'];
  readonly pacer: SendPacer;
  private readonly logger: Logger;
  private bot?: Wechaty;
  private qr?: { value: string; at: number };
  private loggedIn = false;
  private seq = 0;
  private readonly inbound = new Map<string, Promise<void>>();
  private onMessage?: (msg: InboundMessage) => Promise<void>;

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

  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.onMessage = onMessage;
    this.pacer.open();
    const { config } = this.opts;
    const name = this.memoryFile.replace(/\.memory-card\.json$/, '');
    fs.mkdirSync(path.dirname(name), { recursive: true });
    let options: WechatyOptions;
    if (this.opts.puppet) options = { name, puppet: this.opts.puppet };
    else if (config.wechat?.puppet)
      options = {
        name,
        puppet: config.wechat.puppet as Extract<WechatyOptions, { puppetOptions?: unknown }>['puppet'],
        ...(config.wechat.token ? { puppetOptions: { token: config.wechat.token } } : {}),
      } as WechatyOptions;
    else throw new Error('wechat: set WECHATY_PUPPET (e.g. wechaty-puppet-wechat4u) or pass a puppet');

    const bot = WechatyBuilder.build(options);
    this.bot = bot;
    bot.on('scan', (value: string, status: number) => this.onScan(value, status));
    bot.on('login', (user) => {
      this.loggedIn = true;
      this.qr = undefined;
      this.logger.info({ user: user.id }, 'wechat: logged in');
      void this.saveSession();
    });
    bot.on('logout', (user) => {
      this.loggedIn = false;
      this.logger.warn({ user: user.id }, 'wechat: logged out; waiting for a new scan');
    });
    bot.on('error', (e) => this.logger.warn({ err: e }, 'wechat: puppet error'));
    bot.on('message', (m) => {
      void this.receive(m as unknown as MessageLike).catch((e) => this.logger.error({ err: e }, 'wechat: inbound message failed'));
    });
    await bot.start();
    this.logger.info({ puppet: this.opts.puppet ? 'injected' : config.wechat?.puppet, memory: this.memoryFile }, 'wechat: started');
  }

  async stop(): Promise<void> {
    this.pacer.close();
    const bot = this.bot;
    if (!bot) return;
    await this.saveSession();
    await bot.stop().catch((e) => this.logger.warn({ err: e }, 'wechat: stop failed'));
    this.bot = undefined;
    this.loggedIn = false;
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
      const local = isLoopback(peer) && !(config.trustProxyHops > 0);
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
    if (room) {
      if (await m.mentionSelf().catch(() => false)) text = (await m.mentionText().catch(() => text)) || text;
      else if (!text.trim().startsWith('/') && !detectKeys(text).refused) return undefined;
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
      lang: 'zh',
      text: text.trim(),
      kind: 'text',
    };
  }

  private async receive(m: MessageLike): Promise<void> {
    const inbound = await this.toInbound(m);
    if (!inbound) return;
    const talker = m.talker();
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
    const bot = this.bot;
    if (!bot) throw new Error('wechat: not started');
    const text = renderChoices(msg.text, msg.choices);
    let last: string | undefined;
    for (const part of splitMessage(text, this.capabilities.maxMessageLength)) {
      const id = await this.pacer.schedule(chat.chat_id, () => bot.puppet.messageSendText(chat.chat_id, part));
      last = typeof id === 'string' && id ? id : undefined;
    }
    return { chat, messageId: last ?? `wx-${++this.seq}` };
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    const text = t(req.lang, 'wechat.form_text', {
      vendor: req.vendor_name,
      model: req.model_name,
      reason: req.reason,
      expires: formatTime(req.expires_at),
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

