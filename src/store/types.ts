import { ByokError } from '../errors.ts';

/**
 * The persistence contract shared by the embedded file store and the Redis store.
 * Two kinds of data:
 *  - documents: small JSON-able values per (scope, name), read-modify-written atomically
 *    under a per-scope lock (custom models, the sealed vault, chat state, usage);
 *  - ephemeral values with a TTL (one-time tokens, pending submissions, rate counters),
 *    with an atomic take for single-use redemption.
 * A scope is a workspace id (`local`, `tg:123`, `wx:abc`) or a system scope (`_system`).
 * Nothing stored here may be a plaintext key: callers store sealed boxes only.
 */
export interface Store {
  readonly kind: 'file' | 'redis';
  getDoc<T>(scope: string, name: string): Promise<T | undefined>;
  /**
   * Atomically read, transform and write one document. `mutate` receives the current value
   * (undefined when absent) and returns the new value (undefined deletes) and a result for
   * the caller. Concurrent updates of the same scope are serialised (across processes too).
   */
  updateDoc<T, R>(
    scope: string,
    name: string,
    mutate: (current: T | undefined) => Promise<{ value: T | undefined; result: R }> | { value: T | undefined; result: R },
  ): Promise<R>;
  /** Scopes that hold a document of this name (for master-key rotation, admin tools). */
  listScopes(name: string): Promise<string[]>;

  putEphemeral(key: string, value: string, ttlMs: number): Promise<void>;
  getEphemeral(key: string): Promise<string | undefined>;
  /** Returns the value and deletes it in one step; of two concurrent takes only one gets it. */
  takeEphemeral(key: string): Promise<string | undefined>;
  deleteEphemeral(key: string): Promise<void>;
  /**
   * Stores `value` only when `key` holds nothing (SET NX PX): true when this call stored it.
   * Of two concurrent callers, across processes too, exactly one gets true (dedupe, claims).
   */
  putEphemeralIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /** Increments a counter that expires `ttlMs` after its first increment. */
  incr(key: string, ttlMs: number): Promise<number>;
  /**
   * A token bucket shared by every process on this store (Telegram's per-bot send limit):
   * refills at `ratePerSec` up to `burst`. Takes one token when more than `reserve` would be
   * left over and answers 0; otherwise takes nothing and answers the ms to wait before asking
   * again. `reserve` keeps room for callers that pass a smaller one (final messages before
   * previews).
   */
  takeToken(bucket: string, opts: TokenBucketOptions): Promise<number>;

  /** Whether the backend is reachable right now (Redis connected); absent means always (files). */
  connected?(): boolean;

  /** Removes expired values a backend does not expire itself (the file store); returns how many. */
  sweepExpired?(): Promise<number>;

  close(): Promise<void>;
}

export interface TokenBucketOptions {
  ratePerSec: number;
  burst: number;
  /** Tokens that must stay in the bucket after this take (default 0). */
  reserve?: number;
}

export function checkBucket(opts: TokenBucketOptions): void {
  const ok = (n: number | undefined, min: number) => n === undefined || (Number.isFinite(n) && n >= min);
  if (!ok(opts.ratePerSec, Number.MIN_VALUE) || !ok(opts.burst, 1) || !ok(opts.reserve, 0)) {
    throw new ByokError('invalid_input', 'a token bucket needs ratePerSec > 0, burst >= 1 and reserve >= 0');
  }
}

/** The bucket arithmetic both stores share: refill by elapsed time, take one above `reserve`. */
export function bucketStep(
  state: { tokens: number; at: number } | undefined,
  now: number,
  opts: TokenBucketOptions,
): { state: { tokens: number; at: number }; waitMs: number } {
  const { ratePerSec, burst } = opts;
  const reserve = Math.max(0, opts.reserve ?? 0);
  const tokens = state ? Math.min(burst, state.tokens + (Math.max(0, now - state.at) * ratePerSec) / 1000) : burst;
  if (tokens >= 1 + reserve) return { state: { tokens: tokens - 1, at: now }, waitMs: 0 };
  return { state: { tokens, at: now }, waitMs: Math.max(1, Math.ceil(((1 + reserve - tokens) * 1000) / ratePerSec)) };
}

/** Workspace ids live in src/workspace.ts; re-exported for the store's callers. */
export { isValidWorkspace, SYSTEM_SCOPE, WORKSPACE_RE } from '../workspace.ts';
