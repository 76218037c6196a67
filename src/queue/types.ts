/**
 * One job-runner interface, two implementations: BullMQ on Redis (`REDIS_URL`) and an
 * in-process runner (embedded default). Same handlers, same retry policy.
 * A handler throws `UnrecoverableError` (re-exported from bullmq) for a definite failure
 * that must not be retried; any other error is retried with backoff until attempts run out.
 */
export { UnrecoverableError } from 'bullmq';

export const JOB_VALIDATE_KEY = 'validate-key';
export const JOB_NOTIFY = 'notify';

/** Only references and the sealed box: never a plaintext key. */
export interface ValidateKeyPayload {
  workspace: string;
  model_id: string;
  /** Submission id: the sealed box lives in the store under this id until the job is done. */
  submission_id: string;
  /** Hash of the redeemed token, so the form can show the status. */
  token_hash: string;
  channel?: ChannelRef;
  lang?: 'en' | 'zh';
  /** When this round was queued (ms since the epoch): the validation's time budget counts from it. */
  queued_at?: number;
}

/** Where a notification goes: a channel name and that channel's chat reference. */
export interface ChannelRef {
  channel: string; // 'shell' | 'telegram' | 'wechat' | 'cli' | 'test'
  chat_id: string;
  /** Message to edit (the Telegram card), when the channel supports it. */
  message_id?: string;
  user_id?: string;
  lang?: 'en' | 'zh';
}

export interface NotifyPayload {
  channel: ChannelRef;
  workspace: string;
  model_id: string;
  outcome: string; // ok | invalid_key | ... | pending_retry
  masked_key?: string;
  message?: string;
  /**
   * Identifies the notice across job ids and re-runs (the submission id, plus the round for
   * "pending" notices): the notifier sends each notice id once.
   */
  notice_id?: string;
  /** pending_retry: what the vendor said last (rate_limited, vendor_unavailable, unreachable). */
  reason?: string;
  /** The vendor's HTTP status, when it answered. */
  status?: number;
  /** The vendor's Retry-After, ms. */
  retry_after_ms?: number;
}

export interface JobContext {
  attempt: number; // 1-based
  maxAttempts: number;
  jobId: string;
}

export type JobHandler<T = unknown> = (data: T, ctx: JobContext) => Promise<unknown>;

export interface RetryPolicy {
  attempts: number;
  backoffMs: number; // exponential base
  maxBackoffMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, backoffMs: 1000, maxBackoffMs: 30_000 };

export interface JobRunner {
  readonly kind: 'bullmq' | 'inprocess';
  /** Register the handler for a job name (before start). */
  register<T>(name: string, handler: JobHandler<T>): void;
  /** Jobs are removed on completion and on failure: nothing lingers in Redis. */
  enqueue<T>(name: string, data: T, opts?: { jobId?: string; delayMs?: number }): Promise<string>;
  /** Start consuming (a producer-only process does not call this). */
  start(): Promise<void>;
  /** Resolves when no job is waiting or running (tests, graceful shutdown). */
  drain?(): Promise<void>;
  close(): Promise<void>;
}
