import { ByokError } from '../errors.ts';
import { isUnrecoverable, UnrecoverableJobError } from './errors.ts';
import { DEFAULT_RETRY, type JobContext, type JobHandler, type JobRunner, type RetryPolicy, type ScheduleOptions } from './types.ts';

/** What the final-failure hook learns: the job, its last error, and how many tries it had. */
export interface FinalFailure<T = unknown> {
  name: string;
  data: T;
  jobId: string;
  /** Attempts made (1 when the handler threw UnrecoverableJobError on the first try). */
  attempts: number;
  maxAttempts: number;
  error: Error;
  /** True when the handler gave a definite answer (UnrecoverableJobError) rather than running out of tries. */
  unrecoverable: boolean;
}

/** Runs after the last attempt failed (or an UnrecoverableJobError), once per job. */
export type FinalFailureHandler = (failure: FinalFailure) => void | Promise<void>;

/** Both runners: the JobRunner contract plus the final-failure hook and drain. */
export interface HookedJobRunner extends JobRunner {
  onFinalFailure(handler: FinalFailureHandler): void;
  drain(): Promise<void>;
}

export interface RunnerLogger {
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export { isUnrecoverable };

/** Delay before retry number `failedAttempts` (1-based): base·2^(n-1), capped. Same formula as BullMQ's exponential. */
export function backoffDelay(retry: RetryPolicy, failedAttempts: number): number {
  return Math.min(Math.round(retry.backoffMs * 2 ** (failedAttempts - 1)), retry.maxBackoffMs);
}

/** The longest wait a vendor's Retry-After may impose on one retry. */
export const RETRY_AFTER_MAX_MS = 5 * 60_000;

/**
 * The delay both runners use: the exponential backoff, or longer when the error says how
 * long the vendor wants us to wait (`retryAfterMs`, from a 429's Retry-After), bounded.
 */
export function retryDelay(retry: RetryPolicy, failedAttempts: number, err?: unknown): number {
  const base = backoffDelay(retry, failedAttempts);
  const after = (err as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof after === 'number' && after > base ? Math.min(Math.round(after), RETRY_AFTER_MAX_MS) : base;
}

/** BullMQ's rules for custom job ids, enforced by both runners so they behave alike. */
export function assertJobId(jobId: string): void {
  if (typeof jobId !== 'string' || jobId === '' || jobId.length > 256) throw new ByokError('invalid_input', 'job id must be a non-empty string');
  if (`${parseInt(jobId, 10)}` === jobId) throw new ByokError('invalid_input', `job id "${jobId}" must not be an integer`);
  if (jobId.includes(':')) throw new ByokError('invalid_input', `job id "${jobId}" must not contain ":"`);
}

export function checkRetry(retry: RetryPolicy): RetryPolicy {
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) throw new ByokError('config', 'retry.attempts must be an integer ≥ 1');
  if (!(retry.backoffMs >= 0) || !(retry.maxBackoffMs >= 0)) throw new ByokError('config', 'retry backoff must be ≥ 0');
  return retry;
}

export function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export interface InProcessRunnerOptions {
  retry?: RetryPolicy;
  /** Jobs running at once (default 4). */
  concurrency?: number;
  logger?: RunnerLogger;
}

interface PendingJob {
  id: string;
  name: string;
  data: unknown;
  failed: number;
  timer?: NodeJS.Timeout;
}

/**
 * The embedded runner: same handlers and retry policy as BullMQ, in memory. Payloads are
 * JSON round-tripped on enqueue, as BullMQ serialises them, so a handler sees the same
 * data under both runners. Pending jobs live only in this process: a crash loses them,
 * which is why the distributed setup uses BullMQ.
 */
export class InProcessRunner implements HookedJobRunner {
  readonly kind = 'inprocess' as const;
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  private readonly finalHooks: FinalFailureHandler[] = [];
  private readonly jobs = new Map<string, PendingJob>();
  private readonly ready: PendingJob[] = [];
  private readonly hooksInFlight = new Set<Promise<void>>();
  private readonly running = new Set<Promise<void>>();
  /** Repeating jobs (schedule): one timer per name. */
  private readonly schedules = new Map<string, NodeJS.Timeout>();
  private idleWaiters: Array<() => void> = [];
  private readonly retry: RetryPolicy;
  private readonly concurrency: number;
  private readonly logger?: RunnerLogger;
  private seq = 0;
  private started = false;
  private closed = false;

  constructor(opts: InProcessRunnerOptions = {}) {
    this.retry = checkRetry(opts.retry ?? DEFAULT_RETRY);
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.logger = opts.logger;
  }

  register<T>(name: string, handler: JobHandler<T>): void {
    this.handlers.set(name, handler as JobHandler<unknown>);
  }

  onFinalFailure(handler: FinalFailureHandler): void {
    this.finalHooks.push(handler);
  }

  async enqueue<T>(name: string, data: T, opts: { jobId?: string; delayMs?: number } = {}): Promise<string> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    if (opts.jobId !== undefined) {
      assertJobId(opts.jobId);
      // Idempotent while pending, like BullMQ: the same id is not queued twice.
      if (this.jobs.has(opts.jobId)) return opts.jobId;
    }
    let id = opts.jobId;
    while (id === undefined || (opts.jobId === undefined && this.jobs.has(id))) id = String(++this.seq);
    const job: PendingJob = { id, name, data: data === undefined ? undefined : JSON.parse(JSON.stringify(data)), failed: 0 };
    this.jobs.set(id, job);
    if (opts.delayMs && opts.delayMs > 0) this.delayJob(job, opts.delayMs);
    else this.ready.push(job);
    this.pump();
    return id;
  }

  async start(): Promise<void> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    this.started = true;
    this.pump();
  }

  /**
   * A timer: first run after `firstDelayMs` (default one interval) plus jitter, then every
   * `everyMs` plus jitter. Each turn enqueues one job under a fixed id, so a run still going
   * when the next turn comes is not doubled. Timers do not hold the process open.
   */
  async schedule<T>(name: string, everyMs: number, opts: ScheduleOptions<T> = {}): Promise<void> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    const prev = this.schedules.get(name);
    if (prev) clearTimeout(prev);
    this.schedules.delete(name);
    if (!(everyMs > 0)) return;
    const jitter = () => Math.floor(Math.random() * Math.max(0, opts.jitterMs ?? 0));
    const jobId = `sched-${name}`.replace(/:/g, '_');
    const arm = (delay: number) => {
      const timer = setTimeout(() => {
        if (this.closed || this.schedules.get(name) !== timer) return;
        void this.enqueue(name, opts.data, { jobId }).catch((e) => this.logger?.warn({ err: toError(e), job: name }, 'scheduled job not queued'));
        arm(everyMs + jitter());
      }, delay);
      timer.unref();
      this.schedules.set(name, timer);
    };
    arm(Math.max(0, opts.firstDelayMs ?? everyMs) + jitter());
  }

  /** Resolves when nothing is waiting, delayed or running, and final-failure hooks are done. */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops taking jobs, cancels pending retries, waits for running jobs to finish. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.schedules.values()) clearTimeout(timer);
    this.schedules.clear();
    for (const job of this.jobs.values()) if (job.timer) clearTimeout(job.timer);
    this.ready.length = 0;
    await Promise.allSettled([...this.running]);
    await Promise.allSettled([...this.hooksInFlight]);
    this.jobs.clear();
    this.wakeIdle();
  }

  private delayJob(job: PendingJob, delayMs: number): void {
    job.timer = setTimeout(() => {
      job.timer = undefined;
      if (this.closed) return;
      this.ready.push(job);
      this.pump();
    }, delayMs);
  }

  private pump(): void {
    while (this.started && !this.closed && this.running.size < this.concurrency && this.ready.length > 0) {
      const job = this.ready.shift()!;
      const p: Promise<void> = this.run(job).finally(() => {
        this.running.delete(p);
        this.pump();
        this.wakeIdle();
      });
      this.running.add(p);
    }
  }

  private async run(job: PendingJob): Promise<void> {
    const ctx: JobContext = { attempt: job.failed + 1, maxAttempts: this.retry.attempts, jobId: job.id };
    try {
      const handler = this.handlers.get(job.name);
      if (!handler) throw new UnrecoverableJobError(`no handler registered for job "${job.name}"`, 'internal');
      await handler(job.data, ctx);
      this.jobs.delete(job.id);
    } catch (e) {
      const err = toError(e);
      job.failed += 1;
      const unrecoverable = isUnrecoverable(err);
      if (!unrecoverable && job.failed < this.retry.attempts) {
        // Shutting down: drop the retry quietly rather than report a final failure.
        if (this.closed) this.jobs.delete(job.id);
        else this.delayJob(job, retryDelay(this.retry, job.failed, e));
        return;
      }
      this.jobs.delete(job.id);
      this.fireFinal({ name: job.name, data: job.data, jobId: job.id, attempts: job.failed, maxAttempts: this.retry.attempts, error: err, unrecoverable });
    }
  }

  private fireFinal(failure: FinalFailure): void {
    for (const hook of this.finalHooks) {
      const p: Promise<void> = Promise.resolve()
        .then(() => hook(failure))
        .catch((e) => this.logger?.error({ err: toError(e), job: failure.name, jobId: failure.jobId }, 'final-failure hook failed'))
        .finally(() => {
          this.hooksInFlight.delete(p);
          this.wakeIdle();
        });
      this.hooksInFlight.add(p);
    }
  }

  private isIdle(): boolean {
    return this.jobs.size === 0 && this.running.size === 0 && this.hooksInFlight.size === 0;
  }

  private wakeIdle(): void {
    if (!this.isIdle() || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
