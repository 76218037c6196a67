import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { ByokError } from '../errors.ts';
import { clientFromSpec, closeRedis, duplicateRedis, isCluster, isClusterUrl, isRedisClient, type RedisClient } from '../redis.ts';
import { isUnrecoverable, UnrecoverableJobError } from './errors.ts';
import {
  assertJobId,
  checkRetry,
  retryDelay,
  toError,
  type FinalFailure,
  type FinalFailureHandler,
  type HookedJobRunner,
  type RunnerLogger,
} from './inprocess-runner.ts';
import { DEFAULT_RETRY, type JobHandler, type RetryPolicy, type ScheduleOptions } from './types.ts';

export interface BullMQRunnerOptions {
  /**
   * A Redis URL (`redis+cluster://…` for a cluster), ioredis options (the runner creates and
   * closes its clients), or a client, single or Cluster (left open on close).
   */
  connection: string | RedisOptions | RedisClient;
  /**
   * Key prefix; BullMQ's own `prefix` option gets it without the trailing colon, so every
   * key is `<prefix><queueName>:...` (default `byok:` → `byok:jobs:wait`). On a Redis
   * Cluster it becomes a hash tag (`{byok}:jobs:wait`): BullMQ's scripts touch many keys
   * of a queue at once, and a cluster only runs them when all sit in one slot.
   */
  prefix?: string;
  /** Default `jobs`. Must not contain `:`. */
  queueName?: string;
  retry?: RetryPolicy;
  /** Jobs this worker runs at once (default 4). */
  concurrency?: number;
  /** BullMQ lock duration (default 30 s, BullMQ's; createRunner passes config.jobLockMs, 5 s). Renewed at half of it. */
  lockDuration?: number;
  /** How often the worker looks for stalled jobs (default 30 s, BullMQ's). */
  stalledInterval?: number;
  /** Times a job may stall before it is failed (default 1, BullMQ's). */
  maxStalledCount?: number;
  logger?: RunnerLogger;
}

/** Custom backoff type carrying its cap (see backoffFor): workers started with another policy still honour it. */
const CAPPED = 'capped-exponential-';

/**
 * The distributed runner. A Queue produces (bot processes), a Worker created by `start()`
 * consumes (`npm run worker`), in any number of processes sharing one Redis.
 * - Retries: `attempts` + capped exponential backoff (delay = retry.backoffMs), through a
 *   custom strategy named after the cap, so that `maxBackoffMs` holds even for workers
 *   started with another policy and a vendor's Retry-After stretches the wait (retryDelay).
 * - `UnrecoverableJobError` fails a job at once, without burning retries: it reaches BullMQ
 *   as BullMQ's own UnrecoverableError, and the final-failure hook gets ours back (its cause).
 * - `removeOnComplete` / `removeOnFail`: nothing of a finished job stays in Redis.
 *   Handler return values are dropped (the worker returns null) so they never reach the
 *   job hash or the events stream either.
 * - A worker killed mid-job: its lock expires, another worker's stalled checker moves the
 *   job back to wait and it runs again (handlers must be idempotent per job id).
 */
export class BullMQRunner implements HookedJobRunner {
  readonly kind = 'bullmq' as const;
  readonly queueName: string;
  readonly bullPrefix: string;
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  private readonly finalHooks: FinalFailureHandler[] = [];
  private readonly hooksInFlight = new Set<Promise<void>>();
  /** Job objects this process is running or settling (identity is unique per attempt). */
  private readonly localActive = new Set<Job>();
  private readonly retry: RetryPolicy;
  private readonly opts: BullMQRunnerOptions;
  private readonly owned: RedisClient[] = [];
  private readonly queueConn: RedisClient;
  private readonly queue: Queue;
  private worker?: Worker;
  private closed = false;

  constructor(opts: BullMQRunnerOptions) {
    this.opts = opts;
    this.retry = checkRetry(opts.retry ?? DEFAULT_RETRY);
    this.queueName = opts.queueName ?? 'jobs';
    if (this.queueName.includes(':')) throw new ByokError('config', 'queue name must not contain ":"');
    const bullPrefix = (opts.prefix ?? 'byok:').replace(/:+$/, '') || 'bull';
    this.bullPrefix = onCluster(opts.connection) ? hashTagged(bullPrefix) : bullPrefix;
    const onError = (err: Error) => this.opts.logger?.warn({ err }, 'redis connection error');
    if (isRedisClient(opts.connection)) {
      this.queueConn = opts.connection;
    } else {
      // Commands issued in the same tick (concurrent enqueues) share one socket write.
      this.queueConn = clientFromSpec(opts.connection, { onError, enableAutoPipelining: true });
      this.owned.push(this.queueConn);
    }
    this.queue = new Queue(this.queueName, { connection: this.queueConn, prefix: this.bullPrefix });
    this.queue.on('error', (err) => this.opts.logger?.error({ err }, 'job queue error'));
  }

  register<T>(name: string, handler: JobHandler<T>): void {
    this.handlers.set(name, handler as JobHandler<unknown>);
  }

  onFinalFailure(handler: FinalFailureHandler): void {
    this.finalHooks.push(handler);
  }

  async enqueue<T>(name: string, data: T, opts: { jobId?: string; delayMs?: number } = {}): Promise<string> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    if (opts.jobId !== undefined) assertJobId(opts.jobId);
    const jobOpts: JobsOptions = {
      attempts: this.retry.attempts,
      backoff: backoffFor(this.retry),
      removeOnComplete: true,
      removeOnFail: true,
    };
    // With an existing (pending) id BullMQ returns that job and adds nothing.
    if (opts.jobId !== undefined) jobOpts.jobId = opts.jobId;
    if (opts.delayMs && opts.delayMs > 0) jobOpts.delay = opts.delayMs;
    // bullmq's Queue is untyped here (one queue carries several job names): its data is `any`.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const job = await this.queue.add(name, data as any, jobOpts);
    return job.id!;
  }

  /**
   * A BullMQ job scheduler with id `name`: one per Redis, whichever process upserts it. The
   * first upsert sets the first run to now + firstDelayMs + jitter (startDate), so a fleet
   * starting at once does not fire; a later upsert with the same interval keeps the pending
   * run's time (BullMQ replaces the delayed job at the same millis). `everyMs` 0 removes it.
   * Runs are not retried (attempts 1) and leave nothing behind (removeOnComplete/Fail).
   * Keep scheduled jobs in a queue of their own: its delayed job never lets drain() finish.
   */
  async schedule<T>(name: string, everyMs: number, opts: ScheduleOptions<T> = {}): Promise<void> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    if (name.includes(':')) throw new ByokError('invalid_input', `scheduler id "${name}" must not contain ":"`);
    if (!(everyMs > 0)) {
      await this.queue.removeJobScheduler(name);
      return;
    }
    const jitter = Math.floor(Math.random() * Math.max(0, opts.jitterMs ?? 0));
    const every = Math.max(1_000, Math.round(everyMs));
    await this.queue.upsertJobScheduler(
      name,
      { every, startDate: Date.now() + Math.max(0, opts.firstDelayMs ?? every) + jitter },
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the scheduler's template data (see add above)
      { name, data: (opts.data ?? {}) as any, opts: { attempts: 1, removeOnComplete: true, removeOnFail: true } },
    );
  }

  async start(): Promise<void> {
    if (this.closed) throw new ByokError('internal', 'job runner is closed');
    if (this.worker) return;
    const o = this.opts;
    // Workers block on Redis: their connection must retry forever (maxRetriesPerRequest: null;
    // on a cluster, in every node's options).
    const conn = isRedisClient(o.connection)
      ? duplicateRedis(o.connection, { maxRetriesPerRequest: null })
      : clientFromSpec(o.connection, {
          maxRetriesPerRequest: null,
          // Concurrent jobs' moveToActive / moveToFinished calls issued in one tick share a write.
          enableAutoPipelining: true,
          onError: (err) => o.logger?.warn({ err }, 'redis connection error'),
        });
    this.owned.push(conn);
    const worker = new Worker(this.queueName, (job) => this.process(job), {
      connection: conn,
      prefix: this.bullPrefix,
      concurrency: Math.max(1, o.concurrency ?? 4),
      ...(o.lockDuration !== undefined && { lockDuration: o.lockDuration }),
      ...(o.stalledInterval !== undefined && { stalledInterval: o.stalledInterval }),
      ...(o.maxStalledCount !== undefined && { maxStalledCount: o.maxStalledCount }),
      settings: { backoffStrategy: cappedBackoff },
    });
    worker.on('error', (err) => o.logger?.error({ err }, 'job worker error'));
    worker.on('completed', (job) => this.settled(job));
    worker.on('failed', (job, err) => {
      if (job) this.onFailed(job, err);
    });
    this.worker = worker;
    await worker.waitUntilReady();
  }

  private async process(job: Job): Promise<null> {
    const id = job.id!;
    this.localActive.add(job);
    try {
      const handler = this.handlers.get(job.name);
      if (!handler) throw new UnrecoverableJobError(`no handler registered for job "${job.name}"`, 'internal');
      await handler(job.data, { attempt: job.attemptsMade + 1, maxAttempts: job.opts.attempts ?? 1, jobId: id });
      return null;
    } catch (e) {
      throw toBullMQ(e);
    } finally {
      // Normally cleared by the completed/failed event; this covers a lost lock, where
      // BullMQ emits neither, so drain() cannot hang on it.
      setTimeout(() => this.settled(job), 5_000).unref();
    }
  }

  private settled(job: Job | undefined): void {
    if (job) this.localActive.delete(job);
  }

  private onFailed(job: Job, e: Error): void {
    const err = fromBullMQ(toError(e));
    const unrecoverable = isUnrecoverable(err);
    const maxAttempts = job.opts.attempts ?? 1;
    // 'failed' fires after every failed attempt; only the last one (or a definite answer) is final.
    if (unrecoverable || job.attemptsMade >= maxAttempts) {
      const failure: FinalFailure = { name: job.name, data: job.data, jobId: job.id!, attempts: job.attemptsMade, maxAttempts, error: err, unrecoverable };
      for (const hook of this.finalHooks) {
        const p: Promise<void> = Promise.resolve()
          .then(() => hook(failure))
          .catch((x) => this.opts.logger?.error({ err: toError(x), job: job.name, jobId: job.id }, 'final-failure hook failed'))
          .finally(() => this.hooksInFlight.delete(p));
        this.hooksInFlight.add(p);
      }
    }
    this.settled(job);
  }

  /**
   * Resolves when the queue has no waiting, prioritized, active or delayed job, and this
   * process has no job or final-failure hook still settling. (A producer-only process
   * can call it too: it watches Redis, not its own worker.)
   */
  async drain(): Promise<void> {
    let quiet = 0;
    // Two quiet polls in a row: the worker's connection may report a move before ours does.
    while (quiet < 2) {
      const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'waiting-children');
      const busy = Object.values(counts).some((n) => n > 0) || this.localActive.size > 0 || this.hooksInFlight.size > 0;
      quiet = busy ? 0 : quiet + 1;
      if (this.hooksInFlight.size > 0) await Promise.allSettled([...this.hooksInFlight]);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Closes the worker (waiting for running jobs), the queue and the clients this runner created. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.worker?.close();
      await Promise.allSettled([...this.hooksInFlight]);
      await this.queue.close();
    } finally {
      await Promise.all(this.owned.map((c) => closeRedis(c)));
    }
  }
}

/** Our definite failure in the form BullMQ recognises; the original rides along as its cause. */
function toBullMQ(e: unknown): unknown {
  if (!(e instanceof UnrecoverableJobError)) return e;
  const mapped = new UnrecoverableError(e.message);
  (mapped as Error & { cause?: unknown }).cause = e;
  return mapped;
}

/** Back from BullMQ: the final-failure hook sees the handler's own error, as in process. */
function fromBullMQ(e: Error): Error {
  const cause = (e as Error & { cause?: unknown }).cause;
  return e instanceof UnrecoverableError && cause instanceof UnrecoverableJobError ? cause : e;
}

function onCluster(connection: BullMQRunnerOptions['connection']): boolean {
  if (typeof connection === 'string') return isClusterUrl(connection);
  return isRedisClient(connection) && isCluster(connection);
}

/** `byok` → `{byok}`; a prefix that already holds a hash tag keeps it. */
export function hashTagged(prefix: string): string {
  return /\{[^{}]+\}/.test(prefix) ? prefix : `{${prefix}}`;
}

/** Our own strategy (see retryDelay): capped exponential, stretched to a vendor's Retry-After. */
export function backoffFor(retry: RetryPolicy): JobsOptions['backoff'] {
  if (retry.attempts <= 1 || retry.backoffMs <= 0) return undefined;
  return { type: `${CAPPED}${Math.round(retry.maxBackoffMs)}`, delay: retry.backoffMs };
}

function cappedBackoff(attemptsMade: number, type?: string, err?: Error, job?: { opts: JobsOptions }): number {
  // A job queued by a process with another backoff scheme (a mixed deployment): say which.
  if (!type?.startsWith(CAPPED)) throw new ByokError('config', `unknown backoff strategy ${type}`);
  const cap = Number(type.slice(CAPPED.length));
  const backoff = job?.opts.backoff;
  const base = typeof backoff === 'object' ? (backoff.delay ?? 0) : Number(backoff ?? 0);
  return retryDelay({ attempts: Number.MAX_SAFE_INTEGER, backoffMs: base, maxBackoffMs: cap }, attemptsMade, err);
}
