/**
 * Typed errors with stable codes. User-facing APIs never throw these at the caller:
 * they convert them into `{ ok: false, error, code }` results (see `result.ts`).
 */
export type ErrorCode =
  | 'invalid_input'
  | 'not_found'
  | 'conflict'
  | 'immutable'
  | 'unknown_vendor'
  | 'need_env_input'
  | 'unsafe_url'
  | 'too_large'
  | 'expired'
  | 'already_used'
  | 'stale_key_id'
  /** Sealed under a master key this process does not have (misconfigured or mid-rotation): transient, never final. */
  | 'master_key_unavailable'
  | 'rate_limited'
  | 'forbidden'
  | 'invalid_key'
  | 'invalid_model'
  | 'quota_exceeded'
  | 'vendor_unavailable'
  | 'unreachable'
  | 'rejected'
  | 'key_in_chat'
  | 'config'
  /** A vendor template (templates/*.yaml) or the template policy (BYOK_TEMPLATES…) cannot be used: the operator's to fix. */
  | 'template'
  /** A `byok` command line that cannot run as given (CLI exit code 2). */
  | 'usage'
  | 'internal';

export class ByokError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ByokError';
    this.code = code;
    this.details = details;
  }
}

export function isByokError(e: unknown): e is ByokError {
  return e instanceof ByokError;
}
