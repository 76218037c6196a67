import readline from 'node:readline';
import type { ChannelRef, ChannelReadiness, EnvInputRequest, InboundMessage, KeyResult, OutgoingMessage, SentRef, ChannelCore, KeyResults, Streaming, Readiness } from '../../src/channel.ts';
import { t, type Lang } from '../../src/i18n/index.ts';
import { formatTime } from '../../src/chat/time.ts';
import { renderChoices } from '../wechat/ids.ts';

export interface ShellOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Called when the input ends (Ctrl-D, or the end of a piped script). */
  onEnd?: () => void;
  lang?: Lang;
  /** Quiet time that ends a burst of lines (a paste); default PASTE_WINDOW_MS. */
  pasteWindowMs?: number;
}

const CHAT: ChannelRef = { channel: 'shell', chat_id: 'local', user_id: 'local' };

/**
 * Lines arriving closer together than this are one paste, hence one message. A paste reaches
 * readline in one read (a few over a slow ssh link, well under this); nobody types a second
 * line this fast.
 */
export const PASTE_WINDOW_MS = 80;

/** A command is one line (`/byok example`); it is never joined with the lines around it. */
const COMMAND_RE = /^\/[A-Za-z]/;

/**
 * The terminal channel (the embedded default): one local user, workspace `local`. Reads
 * lines whether or not stdin is a TTY, so a script can drive it; prints replies, streams
 * tokens as they arrive, and prints the one-time link for key entry.
 *
 * One message per burst: lines that arrive within PASTE_WINDOW_MS of each other (a pasted
 * API example) are joined with "\n" into one message. A line ending in a backslash always
 * continues onto the next one (curl style), so a long example can also be typed or pasted
 * in pieces. A command line (`/…`) is sent on its own at once, so a script can mix commands
 * and text. Messages are handled one at a time, in order, so scripted sessions are
 * deterministic.
 */
export class ShellChannel implements ChannelCore, KeyResults, Streaming, Readiness {
  readonly name = 'shell';
  readonly capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: 100_000 };
  private rl?: readline.Interface;
  private seq = 0;
  private queue: Promise<void> = Promise.resolve();
  /** Lines of the message being gathered. */
  private pending: string[] = [];
  private timer?: NodeJS.Timeout;
  private flushWaiters: Array<() => void> = [];
  private onMessage?: (msg: InboundMessage) => Promise<void>;
  /** What the last write left on the current output line (see send). */
  private line: 'clean' | 'prefix' | 'text' = 'clean';

  constructor(private readonly opts: ShellOptions) {}

  async start(onMessage: (msg: InboundMessage) => Promise<void>): Promise<void> {
    this.onMessage = onMessage;
    this.rl = readline.createInterface({ input: this.opts.input, terminal: false, crlfDelay: Infinity });
    this.rl.on('line', (line) => this.take(line));
    this.rl.on('close', () => {
      this.flush();
      void this.queue.then(() => this.opts.onEnd?.());
    });
  }

  private take(line: string): void {
    if (!this.pending.length && !line.trim()) return;
    if (COMMAND_RE.test(line.trimStart())) {
      const open = this.pending.at(-1);
      // Inside a backslash block the line belongs to the block; otherwise it stands alone.
      if (!(open !== undefined && open.trimEnd().endsWith('\\'))) {
        this.flush();
        this.pending.push(line);
        if (!line.trimEnd().endsWith('\\')) this.flush();
        return;
      }
    }
    this.pending.push(line);
    clearTimeout(this.timer);
    this.timer = undefined;
    // A trailing backslash: the message goes on; wait for the next line however long it takes.
    if (line.trimEnd().endsWith('\\')) return;
    this.timer = setTimeout(() => this.flush(), this.opts.pasteWindowMs ?? PASTE_WINDOW_MS);
  }

  /** Sends the gathered lines as one message. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const text = this.pending.join('\n').trim();
    this.pending = [];
    if (text && this.onMessage) {
      const onMessage = this.onMessage;
      const msg: InboundMessage = {
        channel: 'shell',
        chat: CHAT,
        messageId: String(++this.seq),
        senderId: 'local',
        workspace: 'local',
        isPrivate: true,
        addressed_to_bot: true,
        lang: this.opts.lang,
        text,
        kind: 'text',
      };
      this.queue = this.queue.then(() => onMessage(msg)).catch(() => undefined);
    }
    for (const w of this.flushWaiters.splice(0)) w();
  }

  /**
   * Resolves when every line read so far has been handled (after the paste window closes).
   * An open backslash block is not waited for: it ends only with more input.
   */
  async idle(): Promise<void> {
    while (this.timer) await new Promise<void>((r) => this.flushWaiters.push(r));
    await this.queue;
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
    // No buttons here: command choices the text does not already list are listed with the
    // command to type, as on WeChat ("which one?" with nothing to pick was a dead end).
    const commands = (msg.choices ?? []).flat().filter((c) => !c.url && !c.webAppUrl && c.data && !text.includes(c.data));
    if (commands.length) text = renderChoices(text, [commands]);
    const extra = (msg.choices ?? [])
      .flat()
      .filter((c) => c.url)
      .map((c) => `  [${c.label}] ${c.url}`);
    if (extra.length) text += '\n' + extra.join('\n');
    // A streamed answer cut short (a vendor error) left its line open: a bare prompt is
    // reused (no "bot> bot> "), partial text is ended first.
    const prefix = this.line === 'prefix' ? '' : this.line === 'text' ? '\nbot> ' : 'bot> ';
    this.write(`${prefix}${text.replace(/\n/g, '\n     ')}\n`);
    this.line = 'clean';
    return { chat: CHAT, messageId: String(++this.seq) };
  }

  async requestEnvInput(chat: ChannelRef, req: EnvInputRequest): Promise<SentRef> {
    return this.send(chat, {
      text: t(req.lang, 'byok.form_text', { vendor: req.vendor_name, model: req.model_name, reason: req.reason, expires: formatTime(req.expires_at, req.lang, req.tz), url: req.url }),
    });
  }

  async keyResult(chat: ChannelRef, result: KeyResult): Promise<void> {
    await this.send(chat, { text: result.text });
  }

  /**
   * Prints tokens as they arrive, then a newline. The prompt shows at once (the bot is on it);
   * a notice sent meanwhile ("still waiting for …") takes that line, and the answer gets a new one.
   */
  async streamReply(_chat: ChannelRef, chunks: AsyncIterable<string>, lang: Lang): Promise<string> {
    let full = '';
    const prompt = () => {
      if (this.line === 'clean') this.write('bot> ');
      if (this.line !== 'text') this.line = 'prefix';
    };
    prompt();
    for await (const c of chunks) {
      if (!c) continue;
      prompt();
      full += c;
      this.write(c.replace(/\n/g, '\n     '));
      this.line = 'text';
    }
    prompt();
    this.write((full ? '' : t(lang, 'relay.empty')) + '\n');
    this.line = 'clean';
    return full;
  }
}
