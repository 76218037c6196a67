import type { Chat, Update, User } from 'grammy/types';
import type { InboundMessage } from '../../src/channel.ts';
import { langFromCode } from '../../src/i18n/index.ts';

export const CHANNEL = 'telegram';

export function workspaceOf(userId: number | string): string {
  return `tg:${userId}`;
}

export function groupWorkspaceOf(chatId: number | string): string {
  return `tg:group:${chatId}`;
}

function displayName(u: User): string | undefined {
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
 * answer). Returns undefined for updates without text (stickers, joins...) and for bots;
 * a command for another bot comes back with `addressed_to_bot: false`.
 */
export function messageToInbound(update: Update, botUsername?: string): InboundMessage | undefined {
  const edited = !update.message && !!update.edited_message;
  const m = update.message ?? update.edited_message;
  if (!m || !m.from || m.from.is_bot) return undefined;
  const parts = [m.text, m.caption].filter((s): s is string => typeof s === 'string' && s.length > 0);
  const text = parts.join('\n');
  if (!text) return undefined;
  // A command for another bot is not ours to answer, but the core's key guard still sees it.
  const addressed_to_bot = !addressedElsewhere(text, botUsername);
  // `forward_date` is what Bot API servers before 7.0 sent instead of `forward_origin`.
  const forwarded = !!(m.forward_origin || m.is_automatic_forward || 'forward_date' in m);
  const kind: InboundMessage['kind'] = edited ? 'edited' : forwarded ? 'forwarded' : m.text ? 'text' : 'caption';
  return base(m.chat, m.from, { messageId: String(m.message_id), text, kind, addressed_to_bot });
}

export function base(
  chat: Pick<Chat, 'id' | 'type'>,
  from: User,
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
    addressed_to_bot: true,
    lang,
    ...rest,
  };
}
