import { ByokError } from '../errors.ts';
import type { FinalFailureHandler, HookedJobRunner } from './inprocess-runner.ts';
import type { JobHandler } from './types.ts';

/** The queue of one channel's notices. BullMQ queue names must not contain ':'. */
export function notifyQueueName(channel: string): string {
  const safe = String(channel).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return `notify-${safe || '_'}`;
}

/**
 * Notices routed per channel: one queue per channel name (`notify-telegram`,
 * `notify-wechat`...), each consumed only by the processes that run that channel. A WeChat
 * notice thus reaches the one process logged in to WeChat instead of bouncing between
 * processes on "no such channel" retries; a process that runs no channels (a worker) only
 * produces. A notice for a channel nobody runs yet waits in its queue.
 *
 * Same contract as a single runner (HookedJobRunner): `enqueue` routes by the payload's
 * `channel.channel`; `serve(channel)` before or after `start()` consumes that channel's queue.
 */
export class NotifyQueues implements HookedJobRunner {
  private readonly runners = new Map<string, HookedJobRunner>();
  private readonly handlers: Array<[string, JobHandler<unknown>]> = [];
  private readonly hooks: FinalFailureHandler[] = [];
  private readonly served = new Set<string>();
  private started = false;
  private closed = false;

  constructor(
    readonly kind: 'bullmq' | 'inprocess',
    /** Creates the runner of one queue (same retry policy and concurrency for every channel). */
    private readonly make: (queueName: string) => HookedJobRunner,
  ) {}

  register<T>(name: string, handler: JobHandler<T>): void {
    this.handlers.push([name, handler as JobHandler<unknown>]);
    for (const r of this.runners.values()) r.register(name, handler);
  }

  onFinalFailure(handler: FinalFailureHandler): void {
    this.hooks.push(handler);
    for (const r of this.runners.values()) r.onFinalFailure(handler);
  }

  /** Consumes the notices of `channel` in this process (from start() on). */
  async serve(channel: string): Promise<void> {
    const q = notifyQueueName(channel);
    if (this.served.has(q)) return;
    this.served.add(q);
    if (this.started) await this.runner(q).start();
  }

  /** Queue names this process consumes. */
  servedQueues(): string[] {
    return [...this.served];
  }

  async enqueue<T>(name: string, data: T, opts?: { jobId?: string; delayMs?: number }): Promise<string> {
    const channel = (data as { channel?: { channel?: unknown } } | undefined)?.channel?.channel;
    if (typeof channel !== 'string' || channel === '') throw new ByokError('invalid_input', 'a notice needs a channel');
    return this.runner(notifyQueueName(channel)).enqueue(name, data, opts);
  }

  /** Notices are queued by events, never on a timer. */
  async schedule(): Promise<void> {
    throw new ByokError('internal', 'notice queues take no scheduled jobs; schedule on a runner of its own');
  }

  async start(): Promise<void> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    this.started = true;
    for (const q of this.served) await this.runner(q).start();
  }

  /** Waits for the queues this process consumes (others may have no consumer at all). */
  async drain(): Promise<void> {
    await Promise.all([...this.served].map((q) => this.runner(q).drain()));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.runners.values()].map((r) => r.close()));
  }

  private runner(queueName: string): HookedJobRunner {
    let r = this.runners.get(queueName);
    if (!r) {
      if (this.closed) throw new ByokError('internal', 'job runner is closed');
      r = this.make(queueName);
      for (const [name, h] of this.handlers) r.register(name, h);
      for (const h of this.hooks) r.onFinalFailure(h);
      this.runners.set(queueName, r);
    }
    return r;
  }
}
