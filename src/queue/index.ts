import type { Config } from '../config.ts';
import { BullMQRunner } from './bullmq-runner.ts';
import { InProcessRunner, type HookedJobRunner, type RunnerLogger } from './inprocess-runner.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './types.ts';

export { BullMQRunner, type BullMQRunnerOptions } from './bullmq-runner.ts';
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

export interface CreateRunnerOptions {
  retry?: RetryPolicy;
  concurrency?: number;
  /** BullMQ queue name (default `jobs`). */
  queueName?: string;
  /** BullMQ only: stalled-job settings (defaults are BullMQ's: 30 s lock, 30 s check). */
  lockDuration?: number;
  stalledInterval?: number;
  logger?: RunnerLogger;
}

/**
 * BullMQ on Redis when `REDIS_URL` is set (producers and `npm run worker` processes share
 * the queue), else the in-process runner. Same handlers, same retry policy.
 */
export function createRunner(config: Pick<Config, 'redisUrl' | 'redisPrefix'>, opts: CreateRunnerOptions = {}): HookedJobRunner {
  const retry = opts.retry ?? DEFAULT_RETRY;
  if (config.redisUrl) {
    return new BullMQRunner({
      connection: config.redisUrl,
      prefix: config.redisPrefix,
      queueName: opts.queueName,
      retry,
      concurrency: opts.concurrency,
      lockDuration: opts.lockDuration,
      stalledInterval: opts.stalledInterval,
      logger: opts.logger,
    });
  }
  return new InProcessRunner({ retry, concurrency: opts.concurrency, logger: opts.logger });
}
