import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ByokError } from '../errors.ts';
import { closeRedis, createRedis, isRedisClient } from '../redis.ts';
import { isValidWorkspace, SYSTEM_SCOPE, type Store } from './types.ts';

/**
 * Redis store: several bot and worker processes share one Redis.
 *
 * Keys (all under `prefix`):
 *   doc:{<scope>}:<name>   a document, JSON text
 *   lock:{<scope>}         the per-scope update lock (random token, PX)
 *   scopes:<name>          set of scopes holding a document of that name (listScopes)
 *   eph:<key>              ephemeral values (SET PX, GETDEL)
 *   ctr:<key>              rate counters (INCR + PEXPIRE on first increment)
 * The scope sits in a hash tag `{...}` so a document and its lock share a cluster slot
 * and the fenced write script below is valid on Redis Cluster too.
 *
 * Why a lock and not WATCH/MULTI: `updateDoc` runs an arbitrary, possibly async `mutate`
 * (the vault seals inside it). With optimistic WATCH/MULTI every conflict re-runs
 * `mutate`, 50 concurrent writers cost O(n²) mutate calls, side effects in `mutate` would
 * repeat, and WATCH needs a dedicated connection per in-flight transaction. A per-scope
 * lock serialises writers (the same contract the file store gives), calls `mutate`
 * exactly once per update and works over one shared connection.
 * The lock is SET NX PX with a random token, retried with jittered exponential backoff,
 * renewed while `mutate` runs, released by compare-and-delete. Because a lock can still
 * expire under a long pause (GC, a stopped VM), the write itself is fenced: a Lua script
 * writes only if the lock still holds our token, so a writer that lost its lock fails
 * loudly instead of overwriting a newer value. Within one process, updates of the same
 * scope also queue locally first, so contention does not spin on Redis.
 */
const LOCK_TTL_MS = 10_000;
const LOCK_WAIT_MS = 30_000;

// KEYS[1] lock, KEYS[2] doc; ARGV[1] token, ARGV[2] 'set' | 'del', ARGV[3] value
const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'del' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[3]) end
return 1`;
// KEYS[1] lock; ARGV[1] token
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// KEYS[1] lock; ARGV[1] token, ARGV[2] ttl
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
// KEYS[1] counter; ARGV[1] ttl. Sets the expiry on the first increment (or if it is missing).
const INCR_TTL = `
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

const DOC_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

export interface RedisStoreOptions {
  lockTtlMs?: number;
  lockWaitMs?: number;
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly redis: Redis;
  private readonly owned: boolean;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;

  /** `redis` is a URL (the store owns and closes the client) or a client (left open on close). */
  constructor(
    redis: Redis | string,
    readonly prefix = 'byok:',
    opts: RedisStoreOptions = {},
  ) {
    if (typeof redis === 'string') {
      this.redis = createRedis(redis);
      this.owned = true;
    } else if (isRedisClient(redis)) {
      this.redis = redis;
      this.owned = false;
    } else {
      throw new ByokError('config', 'RedisStore needs a Redis URL or an ioredis client');
    }
    this.lockTtlMs = opts.lockTtlMs ?? LOCK_TTL_MS;
    this.lockWaitMs = opts.lockWaitMs ?? LOCK_WAIT_MS;
  }

  private checkScope(scope: string): void {
    if (scope !== SYSTEM_SCOPE && !isValidWorkspace(scope)) {
      throw new ByokError('invalid_input', `invalid workspace id "${String(scope).slice(0, 80)}"`);
    }
  }

  private docKey(scope: string, name: string): string {
    this.checkScope(scope);
    if (!DOC_NAME_RE.test(name)) throw new ByokError('invalid_input', `invalid document name "${String(name).slice(0, 80)}"`);
    return `${this.prefix}doc:{${scope}}:${name}`;
  }

  private lockKey(scope: string): string {
    return `${this.prefix}lock:{${scope}}`;
  }

  async getDoc<T>(scope: string, name: string): Promise<T | undefined> {
    const text = await this.redis.get(this.docKey(scope, name));
    return text === null ? undefined : (JSON.parse(text) as T);
  }

  async updateDoc<T, R>(
    scope: string,
    name: string,
    mutate: (current: T | undefined) => Promise<{ value: T | undefined; result: R }> | { value: T | undefined; result: R },
  ): Promise<R> {
    const key = this.docKey(scope, name);
    return this.withLocalQueue(scope, () =>
      this.withLock(scope, async (token) => {
        const text = await this.redis.get(key);
        const current = text === null ? undefined : (JSON.parse(text) as T);
        const { value, result } = await mutate(current);
        const ok =
          value === undefined
            ? await this.redis.eval(FENCED_WRITE, 2, this.lockKey(scope), key, token, 'del', '')
            : await this.redis.eval(FENCED_WRITE, 2, this.lockKey(scope), key, token, 'set', JSON.stringify(value));
        if (ok !== 1) {
          throw new ByokError('conflict', `lost the lock on workspace ${scope} before writing ${name}; nothing was written`);
        }
        // Still under the lock, so the set follows the document's presence in order.
        const setKey = `${this.prefix}scopes:${name}`;
        if (value === undefined) await this.redis.srem(setKey, scope);
        else await this.redis.sadd(setKey, scope);
        return result;
      }),
    );
  }

  async listScopes(name: string): Promise<string[]> {
    if (!DOC_NAME_RE.test(name)) throw new ByokError('invalid_input', `invalid document name "${String(name).slice(0, 80)}"`);
    const scopes = await this.redis.smembers(`${this.prefix}scopes:${name}`);
    return scopes.sort();
  }

  private ephKey(key: string): string {
    return `${this.prefix}eph:${key}`;
  }

  async putEphemeral(key: string, value: string, ttlMs: number): Promise<void> {
    await this.redis.set(this.ephKey(key), value, 'PX', ttl(ttlMs));
  }

  async getEphemeral(key: string): Promise<string | undefined> {
    return (await this.redis.get(this.ephKey(key))) ?? undefined;
  }

  async takeEphemeral(key: string): Promise<string | undefined> {
    // GETDEL (Redis ≥ 6.2) is one atomic command: of two concurrent takers only one gets it.
    return (await this.redis.getdel(this.ephKey(key))) ?? undefined;
  }

  async deleteEphemeral(key: string): Promise<void> {
    await this.redis.del(this.ephKey(key));
  }

  async incr(key: string, ttlMs: number): Promise<number> {
    return Number(await this.redis.eval(INCR_TTL, 1, `${this.prefix}ctr:${key}`, ttl(ttlMs)));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
    if (this.owned) await closeRedis(this.redis);
  }

  private async withLocalQueue<R>(scope: string, fn: () => Promise<R>): Promise<R> {
    const prev = this.chains.get(scope) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    this.chains.set(scope, run);
    try {
      return await run;
    } finally {
      if (this.chains.get(scope) === run) this.chains.delete(scope);
    }
  }

  private async withLock<R>(scope: string, fn: (token: string) => Promise<R>): Promise<R> {
    const lock = this.lockKey(scope);
    const token = randomBytes(16).toString('hex');
    const deadline = Date.now() + this.lockWaitMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      if ((await this.redis.set(lock, token, 'PX', this.lockTtlMs, 'NX')) === 'OK') break;
      if (Date.now() > deadline) throw new ByokError('internal', `workspace ${scope} is locked`);
      await sleep(wait / 2 + Math.random() * wait);
    }
    // Renew while mutate runs; the fenced write catches a lock lost anyway.
    const renew = setInterval(() => {
      this.redis.eval(RENEW, 1, lock, token, this.lockTtlMs).catch(() => undefined);
    }, Math.max(50, Math.floor(this.lockTtlMs / 3)));
    renew.unref();
    try {
      return await fn(token);
    } finally {
      clearInterval(renew);
      await this.redis.eval(RELEASE, 1, lock, token).catch(() => undefined);
    }
  }
}

function ttl(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new ByokError('invalid_input', `ttl must be a positive number of ms, got ${ms}`);
  return Math.max(1, Math.ceil(ms));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
