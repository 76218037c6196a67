import { ByokError } from '../errors.ts';
import type { VendorOutcome } from './types.ts';

/** What the user should do about a classified vendor answer (a message key for the UI). */
export type WhatToDo =
  | 'none'
  | 'resubmit_key'
  | 'check_model'
  | 'check_billing'
  | 'wait'
  | 'try_later'
  | 'check_base_url'
  | 'check_request';

export type FailureOutcome = Exclude<VendorOutcome, 'ok'>;

/**
 * A classified vendor failure thrown by `Wire.stream` (the probe returns it as a ProbeResult
 * instead). `message` never carries key material: it went through `scrubVendorMessage`.
 * `code` (the ByokError code) equals `outcome`.
 */
export class VendorError extends ByokError {
  readonly outcome: FailureOutcome;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly whatToDo: WhatToDo;
  /** The vendor's own error code/type when it gave one (e.g. `insufficient_quota`). */
  readonly vendorCode?: string;
  constructor(
    outcome: FailureOutcome,
    message: string,
    opts: { status?: number; retryAfterMs?: number; whatToDo: WhatToDo; vendorCode?: string },
  ) {
    super(outcome, message, {
      outcome,
      what_to_do: opts.whatToDo,
      ...(opts.status !== undefined ? { status: opts.status } : {}),
      ...(opts.retryAfterMs !== undefined ? { retry_after_ms: opts.retryAfterMs } : {}),
    });
    this.name = 'VendorError';
    this.outcome = outcome;
    this.status = opts.status;
    this.retryAfterMs = opts.retryAfterMs;
    this.whatToDo = opts.whatToDo;
    this.vendorCode = opts.vendorCode;
  }

  /** Transient classes the job runner may retry (with `retryAfterMs` when given). */
  get retryable(): boolean {
    return this.outcome === 'rate_limited' || this.outcome === 'vendor_unavailable' || this.outcome === 'unreachable';
  }
}

export function isVendorError(e: unknown): e is VendorError {
  return e instanceof VendorError;
}
