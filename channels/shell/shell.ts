import readline from 'node:readline';
import type { ChannelAdapter, ChannelReadiness, EnvInputRequest, InboundMessage, KeyResult, OutgoingMessage, SentRef } from '../types.ts';
import type { ChannelRef } from '../../src/queue/types.ts';
import { t, type Lang } from '../../src/i18n/index.ts';
import { formatTime } from '../../src/chat/router.ts';

export interface ShellOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Called when the input ends (Ctrl-D, or the end of a piped script). */
  onEnd?: () => void;
  lang?: Lang;
}

const CHAT: ChannelRef = { channel: 'shell', chat_id: 'local', user_id: 'local' };

/**
 * The terminal channel (the embedded default): one local user, workspace `local`. Reads
 * lines whether or not stdin is a TTY, so a script can drive it; prints replies, streams
 * tokens as they arrive, and prints the one-time link for key entry.
 * Lines are handled one at a time, in order, so scripted sessions are deterministic.
 */
export class ShellChannel implements ChannelAdapter {
  readonly name = 'shell';
  readonly capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: 100_000 };
  private rl?: readline.Interface;
  private seq = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ShellOptions) {}

  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.rl = readline.createInterface({ input: this.opts.input, terminal: false, crlfDelay: Infinity });
    this.rl.on('line', (line) => {
      const text = line.trim();
      if (!text) return;
      const msg: InboundMessage = {
        channel: 'shell',
        chat: CHAT,
        messageId: String(++this.seq),
        senderId: 'local',
        workspace: 'local',
        isPrivate: true,
        lang: this.opts.lang,
        text,
        kind: 'text',
      };
      this.queue = this.queue.then(() => onMessage(msg)).catch(() => undefined);
    });
    this.rl.on('close', () => {
      void this.queue.then(() => this.opts.onEnd?.());
    });
  }

  /** Resolves when every line read so far has been handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  async stop(): Promise<void> {
    this.rl?.close();
  }

  /** The terminal is always there: ready. */
  readiness(): ChannelReadiness {
    return { ready: true, state: 'ready' };
  }

  private write(s: string): void {
    this.opts.output.write(s);
  }

  async send(_chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    let text = msg.text;
    // Command choices are already listed (numbered) in the text; only links need printing.
    const extra = (msg.choices ?? [])
      .flat()
      .filter((c) => c.url)
      .map((c) => `  [${c.label}] ${c.url}`);
    if (extra.length) text += '\n' + extra.join('\n');
    this.write(`bot> ${text.replace(/\n/g, '\n     ')}\n`);
    return { chat: CHAT, messageId: String(++this.seq) };
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    return this.send(chat, {
      text: t(req.lang, 'byok.form_text', { vendor: req.vendor_name, model: req.model_name, reason: req.reason, expires: formatTime(req.expires_at), url: req.url }),
    });
  }

  async keyResult(chat: ChannelRef, result: KeyResult): Promise<void> {
    await this.send(chat, { text: result.text });
  }

  /** Prints tokens as they arrive, then a newline. */
  async streamReply(_chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string> {
    let full = '';
    this.write('bot> ');
    for await (const c of chunks) {
      full += c;
      this.write(c.replace(/\n/g, '\n     '));
    }
    this.write((full ? '' : t(lang, 'relay.empty')) + '\n');
    return full;
  }
}
