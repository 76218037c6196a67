import type { EnvInputRequest, InboundMessage, KeyResult, OutgoingMessage, SentRef, ChannelCore, KeyResults } from '../../src/channel.ts';
import type { ChannelRef } from '../../src/queue/types.ts';

/** A channel that records what the bot sends; tests push inbound messages with `say`. */
export class RecordingChannel implements ChannelCore, KeyResults {
  readonly name: string;
  readonly capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: 4096 };
  readonly sent: Array<{ chat: ChannelRef; text: string; choices?: OutgoingMessage['choices'] }> = [];
  readonly forms: EnvInputRequest[] = [];
  readonly results: KeyResult[] = [];
  private handler?: (msg: InboundMessage) => Promise<void>;
  private seq = 0;

  constructor(name = 'test') {
    this.name = name;
  }

  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.handler = onMessage;
  }
  async stop(): Promise<void> {}

  async send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    this.sent.push({ chat, text: msg.text, ...(msg.choices ? { choices: msg.choices } : {}) });
    return { chat, messageId: String(++this.seq) };
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    this.forms.push(req);
    return this.send(chat, { text: `form ${req.url}` });
  }

  async keyResult(chat: ChannelRef, result: KeyResult): Promise<void> {
    this.results.push(result);
    await this.send(chat, { text: result.text });
  }

  /** Sends a message from `userId` (privately, or in group `group`) and waits until it is handled. */
  async say(text: string, userId = '1', opts: { group?: string; lang?: 'en' | 'zh'; addressed?: boolean } = {}): Promise<void> {
    if (!this.handler) throw new Error('channel not started');
    const chatId = opts.group ?? userId;
    await this.handler({
      channel: this.name,
      chat: { channel: this.name, chat_id: chatId, user_id: userId },
      messageId: String(++this.seq),
      senderId: userId,
      workspace: `tg:${userId}`,
      groupWorkspace: opts.group ? `tg:group:${opts.group}` : undefined,
      isPrivate: !opts.group,
      addressed_to_bot: opts.addressed ?? true,
      lang: opts.lang ?? 'en',
      text,
      kind: 'text',
    });
  }

  /** The text of the last message sent. */
  last(): string {
    return this.sent.at(-1)?.text ?? '';
  }

  texts(): string {
    return this.sent.map((s) => s.text).join('\n');
  }
}
