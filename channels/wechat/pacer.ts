/**
 * Send pacing for WeChat. Personal WeChat accounts get limited (or banned) for bursts, so
 * every outgoing message goes through one queue:
 *
 * - per chat: messages leave in order, at least `perChatIntervalMs` apart;
 * - globally: a token bucket (`burst` tokens, refilled at `globalPerMinute` per minute)
 *   caps the account's total send rate; waiters are served first come, first served.
 *
 * Timers and the clock are read at call time (setTimeout, Date.now), so vitest fake
 * timers drive it in tests.
 */
export interface PacerOptions {
  /** Minimum gap between two sends to the same chat (default 1000 ms). */
  perChatIntervalMs?: number;
  /** Sustained global rate, messages per minute (default 40). 0 or Infinity: no global cap. */
  globalPerMinute?: number;
  /** Messages that may leave at once before the global rate applies (default 5). */
  burst?: number;
}

export const DEFAULT_PACING: Required<PacerOptions> = { perChatIntervalMs: 1000, globalPerMinute: 40, burst: 5 };

const sleep = (ms: number): Promise<void> =>
  ms > 0
    ? new Promise((resolve) => {
        const t = setTimeout(resolve, ms);
        (t as { unref?: () => void }).unref?.();
      })
    : Promise.resolve();

export class SendPacer {
  readonly opts: Required<PacerOptions>;
  /** Tail of each chat's queue and the time its last message left. */
  private readonly chats = new Map<string, { tail: Promise<unknown>; last: number; pending: number }>();
  private bucketTail: Promise<unknown> = Promise.resolve();
  private tokens: number;
  private refilledAt: number;
  private closed = false;

  constructor(opts: PacerOptions = {}) {
    this.opts = { ...DEFAULT_PACING, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
    if (this.opts.burst < 1) this.opts.burst = 1;
    this.tokens = this.opts.burst;
    this.refilledAt = Date.now();
  }

  /** Runs `fn` when the chat's interval and the global bucket allow; resolves with its result. */
  schedule<T>(chatKey: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('pacer closed'));
    let chat = this.chats.get(chatKey);
    if (!chat) {
      chat = { tail: Promise.resolve(), last: -Infinity, pending: 0 };
      this.chats.set(chatKey, chat);
    }
    const c = chat;
    c.pending++;
    const run = c.tail.then(async () => {
      try {
        await sleep(c.last + this.opts.perChatIntervalMs - Date.now());
        await this.takeToken();
        if (this.closed) throw new Error('pacer closed');
        c.last = Date.now();
        return await fn();
      } finally {
        if (--c.pending === 0 && this.chats.get(chatKey) === c) {
          // Keep the entry only while it still constrains the next send.
          const keepFor = c.last + this.opts.perChatIntervalMs - Date.now();
          if (keepFor <= 0) this.chats.delete(chatKey);
          else
            void sleep(keepFor).then(() => {
              if (c.pending === 0 && this.chats.get(chatKey) === c) this.chats.delete(chatKey);
            });
        }
      }
    });
    c.tail = run.catch(() => undefined);
    return run;
  }

  /** Number of chats with queued or recent sends (for tests and metrics). */
  get activeChats(): number {
    return this.chats.size;
  }

  /** Refuses new sends and lets queued ones fail fast once their turn comes. */
  close(): void {
    this.closed = true;
  }

  /** Accepts sends again after close() (the channel was restarted). */
  open(): void {
    this.closed = false;
  }

  private takeToken(): Promise<void> {
    const rate = this.opts.globalPerMinute;
    if (!rate || !Number.isFinite(rate)) return Promise.resolve();
    const perMs = rate / 60_000;
    const take = async (): Promise<void> => {
      for (;;) {
        const now = Date.now();
        this.tokens = Math.min(this.opts.burst, this.tokens + (now - this.refilledAt) * perMs);
        this.refilledAt = now;
        if (this.tokens >= 1 || this.closed) {
          this.tokens -= 1;
          return;
        }
        await sleep(Math.ceil((1 - this.tokens) / perMs));
      }
    };
    const p = this.bucketTail.then(take);
    this.bucketTail = p.catch(() => undefined);
    return p;
  }
}
