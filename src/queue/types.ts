/**
 * One job-runner interface, two implementations: BullMQ on Redis (`REDIS_URL`) and an
 * in-process runner (embedded default). Same handlers, same retry policy.
 * A handler throws `UnrecoverableJobError` (./errors.ts) for a definite failure that must
 * not be retried; any other error is retried with backoff until attempts run out.
 * Nothing here loads bullmq: only the BullMQ runner does.
 */
export { UnrecoverableJobError } from './errors.ts';

export const JOB_VALIDATE_KEY = 'validate-key';
export const JOB_NOTIFY = 'notify';
/** Periodic re-check of stored keys (src/jobs/key-health.ts). */
export const JOB_KEY_HEALTH = 'key-health';
/** Periodic expiry sweep of stored keys (src/jobs/key-health.ts). */
export const JOB_KEY_EXPIRY = 'key-expiry';

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

/**
 * What a notice is about: the result of a submitted key (default), or a stored key's life:
 * expiring tomorrow, expired and deleted, refused by the vendor at a health check.
 */
export type NoticeKind = 'key_result' | 'key_expiring' | 'key_expired' | 'key_unhealthy';

export interface NotifyPayload {
  /** Absent: key_result (every notice queued before this field existed). */
  kind?: NoticeKind;
  channel: ChannelRef;
  workspace: string;
  /** The model the notice is about (key notices: one model that used the key; '' when none did). */
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
  /** Key notices: the key's name (never the key). */
  env_var?: string;
  /** Key notices: who the key is for (template display name or host). */
  vendor_name?: string;
  /** key_expiring / key_expired: when the key expires / expired (ISO). */
  expires_at?: string;
  /** key_unhealthy: when the vendor refused it (ISO). */
  checked_at?: string;
  /** Key notices: every model that used the key. */
  model_ids?: string[];
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

/** A repeating job (see JobRunner.schedule). */
export interface ScheduleOptions<T = unknown> {
  /** Delay before the first run (default: one interval): a (re)start never fires at once. */
  firstDelayMs?: number;
  /** Up to this much random delay is added to the first run (and, in process, to every run). */
  jitterMs?: number;
  /** The payload of every run. */
  data?: T;
}

export interface JobRunner {
  readonly kind: 'bullmq' | 'inprocess';
  /** Register the handler for a job name (before start). */
  register<T>(name: string, handler: JobHandler<T>): void;
  /** Jobs are removed on completion and on failure: nothing lingers in Redis. */
  enqueue<T>(name: string, data: T, opts?: { jobId?: string; delayMs?: number }): Promise<string>;
  /**
   * Runs job `name` (its registered handler) every `everyMs`. BullMQ: one job scheduler per
   * name, shared by every process on the Redis (upserting it again at another process's start
   * keeps its timing; only one of them runs each turn). In process: a timer, cleared on
   * close. `everyMs` 0 removes the schedule. A run is never retried: the next turn is.
   */
  schedule<T>(name: string, everyMs: number, opts?: ScheduleOptions<T>): Promise<void>;
  /** Start consuming (a producer-only process does not call this). */
  start(): Promise<void>;
  /** Resolves when no job is waiting or running (tests, graceful shutdown). */
  drain?(): Promise<void>;
  close(): Promise<void>;
}
