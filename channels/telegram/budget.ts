import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Transformer } from 'grammy';
import type { Store } from '../../src/store/types.ts';

/**
 * One outbound budget per bot token, shared by every process through the store's token
 * bucket: Telegram limits a bot to about 30 messages per second across all its chats, no
 * matter how many processes send them.
 *
 * Two priorities. Final messages and ordinary sends wait for a token (FIFO per process,
 * so chats are served in the order they asked). Previews (drafts, streaming edits) take a
 * token only while more than `previewReserve` would be left over and never while a final
 * waits in this process; otherwise they are skipped (BudgetSkipped) and the stream's next
 * tick coalesces whatever arrived meanwhile.
 */
export interface BudgetOptions {
  /** Tokens per second for the bot (default 25). */
  ratePerSec?: number;
  /** Bucket size (default 5): rate + burst is the most any one second can carry (30, Telegram's figure). */
  burst?: number;
  /** Tokens previews must leave for final messages (default 2). */
  previewReserve?: number;
}

/**
 * Methods that do not send or change messages: reads, configuration, callback answers
 * (their spinner must stop at once; they are not messages). Everything else counts.
 */
const EXEMPT = new Set([
  'getUpdates',
  'getMe',
  'getChat',
  'getChatMember',
  'getChatAdministrators',
  'getFile',
  'getWebhookInfo',
  'getMyCommands',
  'setWebhook',
  'deleteWebhook',
  'setMyCommands',
  'deleteMyCommands',
  'setMyName',
  'setMyDescription',
  'setMyShortDescription',
  'setChatMenuButton',
  'answerCallbackQuery',
  'answerInlineQuery',
  'logOut',
  'close',
]);

export function isBudgeted(method: string): boolean {
  return !EXEMPT.has(method);
}

/** Thrown instead of sending a preview when the budget is short. */
export class BudgetSkipped extends Error {
  constructor(readonly method: string) {
    super(`telegram budget short: ${method} preview skipped`);
    this.name = 'BudgetSkipped';
  }
}

const priority = new AsyncLocalStorage<'low'>();

/** Runs `fn` with its Bot API calls marked as previews (skipped when the budget is short). */
export function asPreview<T>(fn: () => Promise<T>): Promise<T> {
  return priority.run('low', fn);
}

/** The bucket name: a hash of the token, never the token itself. */
export function bucketName(token: string): string {
  return `tg:bot:${createHash('sha256').update(`byok-telegram-budget:${token}`).digest('hex').slice(0, 24)}`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SendBudget {
  readonly ratePerSec: number;
  readonly burst: number;
  readonly previewReserve: number;
  private readonly waiters: Array<() => void> = [];
  private pumping = false;

  constructor(
    private readonly store: Store,
    readonly bucket: string,
    opts: BudgetOptions = {},
  ) {
    this.ratePerSec = opts.ratePerSec ?? 25;
    this.burst = opts.burst ?? 5;
    this.previewReserve = Math.min(opts.previewReserve ?? 2, Math.max(0, this.burst - 1));
  }

  /** Waits for a token (final messages, ordinary sends). */
  take(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      if (!this.pumping) void this.pump();
    });
  }

  /** One try for a preview: true when a token was taken. */
  async tryPreview(): Promise<boolean> {
    if (this.waiters.length > 0) return false;
    const wait = await this.store.takeToken(this.bucket, { ratePerSec: this.ratePerSec, burst: this.burst, reserve: this.previewReserve });
    return wait === 0;
  }

  /** Only the head of the local queue asks the store, so waiting finals do not flood Redis. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiters.length > 0) {
        let wait: number;
        try {
          wait = await this.store.takeToken(this.bucket, { ratePerSec: this.ratePerSec, burst: this.burst, reserve: 0 });
        } catch {
          // The store is unreachable: pace locally rather than stall every send.
          wait = Math.ceil(1000 / this.ratePerSec);
          await sleep(wait);
          this.waiters.shift()?.();
          continue;
        }
        if (wait === 0) this.waiters.shift()?.();
        else await sleep(Math.min(wait, 1000));
      }
    } finally {
      this.pumping = false;
    }
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** The grammY API transformer: install it innermost (auto-retry outside, so retries pay too). */
  transformer(): Transformer {
    return async (prev, method, payload, signal) => {
      if (isBudgeted(method)) {
        if (priority.getStore() === 'low') {
          if (!(await this.tryPreview())) throw new BudgetSkipped(method);
        } else {
          await this.take();
        }
      }
      return prev(method, payload, signal);
    };
  }
}
