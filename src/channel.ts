import type { Lang } from './i18n/index.ts';
import type { ChannelRef } from './queue/types.ts';

/**
 * The channel contract, owned by the core: a small required part every channel implements
 * (telegram, wechat, shell, the tests' recording channel) plus named optional capabilities
 * a channel composes when its platform has them. No web framework types: a channel that
 * mounts HTTP routes narrows the server handle to its framework's type itself.
 */

export type { ChannelRef, Lang };

/** A button (Telegram) or numbered choice (WeChat, shell). */
export interface Choice {
  label: string;
  /** Callback data (Telegram), or the command the user would type. */
  data?: string;
  url?: string;
  /** Telegram Mini App URL (private chats only). */
  webAppUrl?: string;
}

export interface OutgoingMessage {
  text: string;
  /** Rows of choices; channels without buttons render them as a numbered list. */
  choices?: Choice[][];
  /** Disable link previews (always for secure-form links). */
  noPreview?: boolean;
  /** Telegram protect_content. */
  protect?: boolean;
  format?: 'plain' | 'markdown';
}

export interface InboundMessage {
  channel: string;
  /** Chat reference for replies. */
  chat: ChannelRef;
  messageId?: string;
  senderId: string;
  senderName?: string;
  /** Workspace of the sender (`tg:<id>`, `wx:<id>`, `local`). */
  workspace: string;
  /** Workspace of the group when in a group (`tg:group:<id>`). */
  groupWorkspace?: string;
  isPrivate: boolean;
  /**
   * Whether the bot should answer it (private chat, a command for this bot, an @mention).
   * Channels pass every text-bearing message; the core checks it for pasted keys first and
   * drops it afterwards when false.
   */
  addressed_to_bot: boolean;
  lang?: Lang;
  /** Text, caption, edited or forwarded text: every text-bearing part, joined. */
  text: string;
  kind: 'text' | 'caption' | 'edited' | 'forwarded' | 'callback' | 'other';
  /** Callback data for button taps. */
  callbackData?: string;
}

export interface EnvInputRequest {
  workspace: string;
  model_id: string;
  vendor: string;
  vendor_name: string;
  model_name: string;
  env_vars: string[];
  reason: string;
  url: string;
  expires_at: string;
  lang: Lang;
  /** The user's time zone (IANA) for showing `expires_at`; absent: the language's default. */
  tz?: string;
}

export interface SentRef {
  chat: ChannelRef;
  messageId: string;
  /** How a secure form was presented: a Mini App form then requires the channel's launch check. */
  launch?: 'web_app' | 'link';
}

export interface KeyResult {
  workspace: string;
  model_id: string;
  outcome: string;
  text: string;
  masked?: string;
  vendor_name?: string;
  model_name?: string;
  lang: Lang;
}

export interface ChannelReadiness {
  ready: boolean;
  /** Short machine-readable state: `logged_in`, `reconnecting`, `waiting_for_scan`, `polling`, ... */
  state: string;
  /** What an operator should know (the last error, the reconnect attempt). No user data. */
  detail?: string;
}

export interface ChannelCapabilities {
  deleteInbound: boolean;
  editMessages: boolean;
  buttons: boolean;
  /** Max characters per message. */
  maxMessageLength: number;
}

/** What every channel implements. */
export interface ChannelCore {
  /** The channel's id (`telegram`, `wechat`, `shell`): the `channel` of its ChannelRefs. */
  readonly name: string;
  readonly capabilities: ChannelCapabilities;
  start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef>;
  /** Present the one-time secure form in the channel's own way (card, text prompt, link). */
  requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef>;
}

export interface Editable {
  edit(ref: SentRef, msg: OutgoingMessage): Promise<void>;
}

export interface Deletable {
  /** Delete an inbound message; resolves false when the platform refuses (too old, no right). */
  deleteInbound(msg: InboundMessage): Promise<boolean>;
}

export interface KeyResults {
  /** Show a key validation result; Telegram edits the card. Default: send the text. */
  keyResult(chat: ChannelRef, result: KeyResult): Promise<void>;
}

export interface PrivateLinks {
  /** A link that continues `payload` in a private chat with the bot (Telegram deep link). */
  privateChatLink(payload: string): string | undefined;
}

export interface GroupAdmin {
  /** Whether the sender may change the group's settings (group admin / room owner). A channel without it fails closed. */
  isGroupAdmin(msg: InboundMessage): Promise<boolean>;
}

export interface Typing {
  /**
   * Shows that the bot is working on an answer (Telegram: the "typing…" chat action, which
   * lasts about 5 s; the relay renews it while the vendor has sent no text yet).
   */
  typing(chat: ChannelRef): Promise<void>;
}

export interface Streaming {
  /** Stream a reply progressively in the channel's own way; default: core send/edit loop. */
  streamReply(chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string>;
}

export interface HttpMount {
  /**
   * Register HTTP routes on the app's server before it listens (Telegram webhook, WeChat QR).
   * The handle is the app's web server; the channel narrows it to that framework's type.
   */
  mount(server: unknown): void;
}

/** The request a secure form arrives with, as far as a launch check reads it. */
export interface FormLaunchRequest {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface FormLaunchRecord {
  workspace: string;
  channel: ChannelRef;
  launch?: 'web_app' | 'link';
}

export interface FormLaunchCheck {
  /**
   * Extra check when the secure form is opened or submitted for a request this channel
   * issued (Telegram Mini App initData). Return false to refuse (403).
   */
  verifyFormLaunch(record: FormLaunchRecord, req: FormLaunchRequest): Promise<boolean>;
}

export interface Readiness {
  /**
   * Whether the channel can take and answer messages now (GET /readyz): e.g. WeChat logged in,
   * the Telegram webhook registered or polling running. Absent: ready once started.
   */
  readiness(): ChannelReadiness;
}

/** Every optional capability, by name. */
export type ChannelCapability = Editable & Deletable & KeyResults & PrivateLinks & GroupAdmin & Typing & Streaming & HttpMount & FormLaunchCheck & Readiness;

/** A channel as the core sees it: the required part plus whichever capabilities it has. */
export type ChannelAdapter = ChannelCore & Partial<ChannelCapability>;
