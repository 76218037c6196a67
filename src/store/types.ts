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
  /** Increments a counter that expires `ttlMs` after its first increment. */
  incr(key: string, ttlMs: number): Promise<number>;

  /** Removes expired values a backend does not expire itself (the file store); returns how many. */
  sweepExpired?(): Promise<number>;

  close(): Promise<void>;
}

/** Workspace ids: `local`, `tg:<id>`, `tg:group:<id>`, `wx:<id>`; nothing that could escape a folder. */
export const WORKSPACE_RE = /^(local|tg:-?\d{1,20}|tg:group:-?\d{1,20}|wx:[A-Za-z0-9@._-]{1,128}|[a-z][a-z0-9-]{0,63})$/;
export const SYSTEM_SCOPE = '_system';

export function isValidWorkspace(ws: string): boolean {
  return WORKSPACE_RE.test(ws) && !ws.includes('..');
}
