import { randomBytes } from 'node:crypto';
import { ByokError, isByokError } from '../errors.ts';
import type { CustomModel } from '../registry/index.ts';
import { recordVersion, VAULT_DOC, type KeyMeta, type PutOptions, type VaultDoc } from '../secrets/vault.ts';
import type { Store } from '../store/types.ts';
import { VendorError } from '../vendors/errors.ts';
import type { NetOptions } from '../vendors/net.ts';
import type { OAuthConfig } from '../vendors/template-schema.ts';
import { isLoginAgain, loginAgainError } from './errors.ts';
import { REFRESH_TIMEOUT_MS, refreshTokenSet } from './refresh.ts';
import { deserializeTokenSet, serializeTokenSet } from './serialize.ts';
import { CLI_NAMES, needsRefresh, type TokenSet } from './types.ts';

/**
 * One refresh at a time per stored credential, across every process sharing the store.
 *
 * The lock is a lease: an ephemeral value set-if-absent with a TTL (Redis SET NX PX; the file
 * store's O_EXCL file), named after the credential AND the record version it refreshes
 * (recordVersion: the nonce, new on every seal). Whoever takes it re-reads the record, and
 * refreshes only when the version is still the one it saw; the others poll until the version
 * changes and use the set that was stored. A lease is never extended: a crashed holder's
 * lease lapses after `leaseMs` and the next caller takes over. The holder's token request is
 * cut well before the lease lapses, so two holders of one version never both hold a live
 * refresh request. And because the name carries the version, releasing a lease can never
 * release a lease on a newer version.
 *
 * Rotation safety (Qwen Code and Claude Code rotate refresh tokens: the old one dies when a
 * new one is issued): the new set is stored with vault.put(..., {ifVersion}) right after the
 * token response, before anything else is done with it. The remaining window: a process that
 * dies between the endpoint issuing the new tokens and that put (a few ms of network and one
 * store write) loses them; the stored refresh token is then the rotated-away one and the next
 * refresh gets invalid_grant, i.e. "log in again" — nothing here can recover tokens that were
 * never received. A holder whose put is refused (the record changed under it: the user pasted
 * a new file, or its lease lapsed during a stalled store write) drops its set and uses the
 * stored one, which is the newer login.
 */
export interface RefreshLockTimes {
  /** Lease lifetime; the token request is cut `LEASE_MARGIN_MS` before it. */
  leaseMs: number;
  /** How long a caller waits for another process's refresh before giving up (transient). */
  waitMs: number;
  /** Poll interval while waiting. */
  pollMs: number;
  /** How long a refused refresh token is remembered, so waiters fail at once without asking again. */
  refusedMs: number;
}

export const DEFAULT_REFRESH_LOCK: RefreshLockTimes = { leaseMs: 30_000, waitMs: 35_000, pollMs: 50, refusedMs: 60_000 };
const LEASE_MARGIN_MS = 5_000;

export type CredentialStore = Pick<Store, 'getDoc' | 'getEphemeral' | 'putEphemeral' | 'putEphemeralIfAbsent' | 'deleteEphemeral'>;

export interface CredentialVault {
  withKey<T>(ws: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
  put(ws: string, envVar: string, key: Uint8Array, meta?: KeyMeta, opts?: PutOptions): Promise<unknown>;
}

export interface CredentialDeps {
  vault: CredentialVault;
  store: CredentialStore;
  /** The token endpoints' network policy (default: the process-wide vendor policy). */
  net?: NetOptions;
  now?: () => number;
  lock?: Partial<RefreshLockTimes>;
  /** Replaces refreshTokenSet (tests). */
  refresh?: typeof refreshTokenSet;
}

/** A sealed token set as read, with the record version it was read at. */
export interface StoredSet {
  ts: TokenSet;
  version: string;
  meta?: KeyMeta;
}

function recordIn(doc: VaultDoc | undefined, env: string) {
  return doc && typeof doc === 'object' && Object.hasOwn(doc, env) ? doc[env] : undefined;
}

/**
 * Opens the stored set with the version it was sealed at. The version is read before and after
 * opening; a seal in between (another process's refresh) makes it read again, so a set is
 * never paired with a version it does not belong to.
 */
export async function readStoredSet(deps: CredentialDeps, ws: string, env: string, cfg: OAuthConfig): Promise<StoredSet | undefined> {
  for (let i = 0; i < 5; i++) {
    const rec = recordIn(await deps.store.getDoc<VaultDoc>(ws, VAULT_DOC), env);
    const version = recordVersion(rec);
    if (!rec || !version) return undefined;
    const ts = await deps.vault.withKey(ws, env, async (key) => deserializeTokenSet(cfg.provider, key));
    if (!ts) return undefined;
    if (recordVersion(recordIn(await deps.store.getDoc<VaultDoc>(ws, VAULT_DOC), env)) === version) return { ts, version, ...(rec.meta && { meta: rec.meta }) };
  }
  throw new ByokError('conflict', `the stored ${env} kept changing while it was read; try again`);
}

const leaseKey = (ws: string, env: string, version: string) => `oauth-refresh:${ws}:${env}:${version}`;
const refusedKey = (ws: string, env: string, version: string) => `oauth-refused:${ws}:${env}:${version}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function gone(env: string): VendorError {
  return new VendorError('invalid_key', `the stored credential ${env} was deleted`, { whatToDo: 'resubmit_key' });
}

/**
 * A fresh token set for `model`'s credential, refreshed by exactly one process. `seen` is the
 * set the caller holds: when the stored version differs from it, someone else refreshed (or
 * the user pasted a new file) and the stored set is used as it is, unless it too needs a
 * refresh. `force` (after a 401) refreshes even an unexpired set, once per version.
 */
export async function refreshShared(deps: CredentialDeps, ws: string, model: CustomModel, seen: StoredSet, opts: { force: boolean }): Promise<StoredSet & { refreshedHere: boolean }> {
  const cfg = model.oauth!;
  const env = model.api_key_env;
  const times = { ...DEFAULT_REFRESH_LOCK, ...deps.lock };
  const now = deps.now ?? Date.now;
  const skewMs = cfg.refresh_skew_seconds * 1000;
  const deadline = now() + times.waitMs;
  let base = seen;
  for (;;) {
    const cur = await readStoredSet(deps, ws, env, cfg);
    if (!cur) throw gone(env);
    if (cur.version !== base.version) {
      if (!needsRefresh(cur.ts, now(), skewMs)) return { ...cur, refreshedHere: false };
      base = cur; // a newer set that is itself stale (an old file pasted again): refresh that one
    } else if (!opts.force && !needsRefresh(cur.ts, now(), skewMs)) {
      return { ...cur, refreshedHere: false };
    }
    const refused = await deps.store.getEphemeral(refusedKey(ws, env, base.version));
    if (refused !== undefined) throw loginAgainError(cfg.provider, undefined, refused || undefined);
    const lease = leaseKey(ws, env, base.version);
    if (await deps.store.putEphemeralIfAbsent(lease, randomBytes(8).toString('hex'), times.leaseMs)) {
      const done = await refreshUnderLease(deps, ws, env, cfg, base, times, lease);
      if (done) return done;
      continue; // the record changed before or during our refresh: look again
    }
    if (now() > deadline) {
      throw new VendorError('vendor_unavailable', `another process has been refreshing the ${CLI_NAMES[cfg.provider]} login for too long`, { whatToDo: 'try_later' });
    }
    await sleep(times.pollMs + Math.floor(Math.random() * times.pollMs));
  }
}

async function refreshUnderLease(
  deps: CredentialDeps,
  ws: string,
  env: string,
  cfg: OAuthConfig,
  base: StoredSet,
  times: RefreshLockTimes,
  lease: string,
): Promise<(StoredSet & { refreshedHere: boolean }) | undefined> {
  try {
    // Under the lease, read again: a refresh that finished between our read and the lease
    // has stored a new version, and that one is used (no second refresh).
    const cur = await readStoredSet(deps, ws, env, cfg);
    if (!cur) throw gone(env);
    if (cur.version !== base.version) return undefined;
    const refresh = deps.refresh ?? refreshTokenSet;
    const signal = AbortSignal.timeout(Math.max(1_000, Math.min(REFRESH_TIMEOUT_MS, times.leaseMs - LEASE_MARGIN_MS)));
    let next: TokenSet;
    try {
      next = await refresh(cur.ts, cfg, { signal, net: deps.net, now: deps.now });
    } catch (e) {
      // Waiters on this version fail the same way instead of sending the dead token again.
      if (isLoginAgain(e)) await deps.store.putEphemeral(refusedKey(ws, env, cur.version), '', times.refusedMs).catch(() => undefined);
      throw e;
    }
    // Stored before anything else: a rotated refresh token exists only in this process until then.
    const bytes = serializeTokenSet(next);
    const maskFrom = new TextEncoder().encode(next.refresh_token);
    try {
      await deps.vault.put(ws, env, bytes, cur.meta, { ifVersion: cur.version, maskFrom });
    } catch (e) {
      if (isByokError(e) && e.code === 'conflict') return undefined;
      throw e;
    } finally {
      bytes.fill(0);
      maskFrom.fill(0);
    }
    const stored = await readStoredSet(deps, ws, env, cfg);
    if (!stored) throw gone(env);
    return { ...stored, refreshedHere: true };
  } finally {
    await deps.store.deleteEphemeral(lease).catch(() => undefined);
  }
}
