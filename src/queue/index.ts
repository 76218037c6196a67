import type { Config } from '../config.ts';
import { InProcessRunner, type HookedJobRunner, type RunnerLogger } from './inprocess-runner.ts';
import { NotifyQueues } from './notify-queues.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './types.ts';

// Type only: the runner itself (and with it bullmq) is loaded by createRunner when REDIS_URL is set.
export type { BullMQRunner, BullMQRunnerOptions } from './bullmq-runner.ts';
export {
  InProcessRunner,
  isUnrecoverable,
  type FinalFailure,
  type FinalFailureHandler,
  type HookedJobRunner,
  type InProcessRunnerOptions,
  type RunnerLogger,
} from './inprocess-runner.ts';
export * from './types.ts';
export { NotifyQueues, notifyQueueName } from './notify-queues.ts';

/**
 * BullMQ job lock (ms) unless told otherwise: renewed every half of it while a job runs, so
 * a short lock costs a renewal every few seconds but lets another worker pick up the jobs of
 * a crashed one within seconds (BullMQ's 30 s made the last results of a crash wait ~35 s).
 * Set BYOK_JOB_LOCK_MS higher when handlers can block the event loop for seconds.
 */
export const DEFAULT_JOB_LOCK_MS = 5_000;

export interface CreateRunnerOptions {
  retry?: RetryPolicy;
  concurrency?: number;
  /** BullMQ queue name (default `jobs`). */
  queueName?: string;
  /** BullMQ only: stalled-job settings (default: config.jobLockMs or 5 s, checked every half of it). */
  lockDuration?: number;
  stalledInterval?: number;
  logger?: RunnerLogger;
}

/**
 * BullMQ on Redis when `REDIS_URL` is set (producers and `npm run worker` processes share
 * the queue), else the in-process runner. Same handlers, same retry policy. Async because
 * the BullMQ runner (and bullmq, ioredis) is imported only then: embedded mode never loads it.
 */
export async function createRunner(
  config: Pick<Config, 'redisUrl' | 'redisPrefix'> & { jobLockMs?: number },
  opts: CreateRunnerOptions = {},
): Promise<HookedJobRunner> {
  return (await runnerFactory(config, opts))(opts.queueName);
}

/** Notices, one queue per channel (see NotifyQueues); same runner kind and options as createRunner. */
export async function createNotifyQueues(
  config: Pick<Config, 'redisUrl' | 'redisPrefix'> & { jobLockMs?: number },
  opts: Omit<CreateRunnerOptions, 'queueName'> = {},
): Promise<NotifyQueues> {
  // The runner module is loaded once here: a channel's queue is then made on its first notice.
  const make = await runnerFactory(config, opts);
  return new NotifyQueues(config.redisUrl ? 'bullmq' : 'inprocess', (queueName) => make(queueName));
}

async function runnerFactory(
  config: Pick<Config, 'redisUrl' | 'redisPrefix'> & { jobLockMs?: number },
  opts: Omit<CreateRunnerOptions, 'queueName'>,
): Promise<(queueName?: string) => HookedJobRunner> {
  const retry = opts.retry ?? DEFAULT_RETRY;
  const url = config.redisUrl;
  if (url) {
    const { BullMQRunner } = await import('./bullmq-runner.ts');
    const lock = config.jobLockMs || DEFAULT_JOB_LOCK_MS;
    return (queueName) =>
      new BullMQRunner({
        connection: url,
        prefix: config.redisPrefix,
        queueName,
        retry,
        concurrency: opts.concurrency,
        lockDuration: opts.lockDuration ?? lock,
        // A stalled job is moved on the second check after its lock expired: check twice per lock period.
        stalledInterval: opts.stalledInterval ?? Math.max(500, Math.round(lock / 2)),
        logger: opts.logger,
      });
  }
  return () => new InProcessRunner({ retry, concurrency: opts.concurrency, logger: opts.logger });
}
