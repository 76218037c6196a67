import type { InboundMessage } from '../types.ts';
import { detectKeys } from '../../src/secrets/detector.ts';
import { langFromCode } from '../../src/i18n/index.ts';

/** The minimal shapes we read from a Bot API update (grammY's types are wider). */
export interface TgUser {
  id: number;
  is_bot?: boolean;
  first_name?: string;
  last_name?: string;
  username?: string;
  language_code?: string;
}
export interface TgChat {
  id: number;
  type: 'private' | 'group' | 'supergroup' | 'channel' | string;
  title?: string;
}
export interface TgMessage {
  message_id: number;
  date?: number;
  chat: TgChat;
  from?: TgUser;
  text?: string;
  caption?: string;
  forward_origin?: unknown;
  forward_date?: number;
  forward_from?: unknown;
  is_automatic_forward?: boolean;
  quote?: { text?: string };
}
export interface TgCallbackQuery {
  id: string;
  from: TgUser;
  message?: TgMessage;
  data?: string;
}
export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  edited_message?: TgMessage;
  callback_query?: TgCallbackQuery;
}

export const CHANNEL = 'telegram';

export function workspaceOf(userId: number | string): string {
  return `tg:${userId}`;
}

export function groupWorkspaceOf(chatId: number | string): string {
  return `tg:group:${chatId}`;
}

function displayName(u: TgUser): string | undefined {
  const name = [u.first_name, u.last_name].filter(Boolean).join(' ');
  return name || u.username || undefined;
}

/** A `/cmd@OtherBot` addressed to another bot in a group. */
export function addressedElsewhere(text: string, botUsername: string | undefined): boolean {
  if (!botUsername) return false;
  const m = /^\/[A-Za-z0-9_]+@([A-Za-z0-9_]+)/.exec(text);
  return !!m && m[1].toLowerCase() !== botUsername.toLowerCase();
}

/**
 * Maps a message-bearing update (message, edited message) to the chat core's
 * InboundMessage. Callback queries are mapped by the adapter (they need decoding and an
 * answer). Returns undefined for updates without text (stickers, joins...) and for
 * commands addressed to another bot.
 */
export function messageToInbound(update: TgUpdate, botUsername?: string): InboundMessage | undefined {
  const edited = !update.message && !!update.edited_message;
  const m = update.message ?? update.edited_message;
  if (!m || !m.from || m.from.is_bot) return undefined;
  const parts = [m.text, m.caption].filter((s): s is string => typeof s === 'string' && s.length > 0);
  const text = parts.join('\n');
  if (!text) return undefined;
  // A command for another bot is not ours to answer, unless it carries a key: the guard must see it.
  if (addressedElsewhere(text, botUsername) && !detectKeys(text).refused) return undefined;
  const forwarded = !!(m.forward_origin || m.forward_date || m.forward_from || m.is_automatic_forward);
  const kind: InboundMessage['kind'] = edited ? 'edited' : forwarded ? 'forwarded' : m.text ? 'text' : 'caption';
  return base(m.chat, m.from, { messageId: String(m.message_id), text, kind });
}

export function base(
  chat: TgChat,
  from: TgUser,
  rest: Pick<InboundMessage, 'text' | 'kind'> & Partial<InboundMessage>,
): InboundMessage {
  const isPrivate = chat.type === 'private';
  const lang = from.language_code ? langFromCode(from.language_code) : undefined;
  return {
    channel: CHANNEL,
    chat: { channel: CHANNEL, chat_id: String(chat.id), user_id: String(from.id), ...(lang ? { lang } : {}) },
    senderId: String(from.id),
    senderName: displayName(from),
    workspace: workspaceOf(from.id),
    groupWorkspace: isPrivate ? undefined : groupWorkspaceOf(chat.id),
    isPrivate,
    lang,
    ...rest,
  };
}
