import { ByokError, type ErrorCode } from '../errors.ts';

/**
 * A definite failure of a job: both runners fail it at once, without retries (the BullMQ
 * runner hands BullMQ its own UnrecoverableError for it). Any other error is retried with
 * backoff. Defined here, not re-exported from bullmq, so that only the BullMQ runner loads
 * bullmq. `code` says what was definite (e.g. the vendor's `invalid_key`); default `rejected`.
 */
export class UnrecoverableJobError extends ByokError {
  constructor(message: string, code: ErrorCode = 'rejected', details?: Record<string, unknown>) {
    super(code, message, details);
    this.name = 'UnrecoverableJobError';
  }
}

/** A definite failure: ours, or BullMQ's own (a job that ran out of stalls, seen by the BullMQ runner). */
export function isUnrecoverable(err: unknown): boolean {
  return err instanceof UnrecoverableJobError || (err instanceof Error && err.name === 'UnrecoverableError');
}
