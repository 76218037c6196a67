import { randomBytes } from 'node:crypto';
import { ByokError } from '../errors.ts';
import { closeRedis, createRedis, isCluster, isRedisClient, type RedisClient } from '../redis.ts';
import { checkBucket, isValidWorkspace, SYSTEM_SCOPE, type Store, type TokenBucketOptions } from './types.ts';

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
 *
 * Round trips per update (each is a wake-up of this process and of Redis): one script takes
 * the lock and reads the document; one pipeline adds the scope to its index (still under
 * the lock) and runs the fenced write that also releases the lock. A delete needs one more:
 * the scope leaves the index only after the fenced delete succeeded, still under the lock,
 * so the index never misses a scope whose document exists. (If the fenced write fails, the
 * index may hold a scope whose document is absent: listScopes callers already read each
 * scope's document and skip the missing.) Scripts go by EVALSHA; a client the store
 * creates pipelines automatically (commands issued in the same tick share one write).
 *
 * On Redis Cluster every script and pipeline must stay in one hash slot. The doc and lock
 * of a scope share `{scope}`, but `scopes:<name>` (one set per document name, across all
 * scopes) lives in another slot, and a global index cannot share every scope's slot. So
 * on a cluster the index and the fenced write are split, keeping the same order and the
 * same invariant: SADD is awaited before the fenced write, and only when the document did
 * not exist (an existing document's scope is already indexed, and only leaves the index
 * under this lock); on delete, SREM is awaited before the lock is released. An update of
 * an existing document is still two round trips; a create or a delete costs one more.
 */
const LOCK_TTL_MS = 10_000;
const LOCK_WAIT_MS = 30_000;

// KEYS[1] lock, KEYS[2] doc; ARGV[1] token, ARGV[2] ttl. Takes the lock and, when taken, reads the document.
const ACQUIRE_READ = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return {1, redis.call('GET', KEYS[2])} end
return {0}`;
// KEYS[1] lock, KEYS[2] doc; ARGV[1] token, ARGV[2] 'set' | 'del', ARGV[3] value, ARGV[4] '1' to release the lock too
const FENCED_WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'del' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[3]) end
if ARGV[4] == '1' then redis.call('DEL', KEYS[1]) end
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

// KEYS[1] bucket hash; ARGV[1] rate per second, ARGV[2] burst, ARGV[3] reserve. Redis's own
// clock, so every process sees one bucket. Returns 0 (a token taken) or the ms to wait.
const TAKE_TOKEN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, burst, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(v[1]), tonumber(v[2])
if tokens == nil or at == nil then tokens = burst else tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000) end
local wait = 0
if tokens >= 1 + reserve then tokens = tokens - 1 else wait = math.max(1, math.ceil((1 + reserve - tokens) * 1000 / rate)) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait`;

/** The scripts, defined on the client as commands (EVALSHA, EVAL on NOSCRIPT). */
const SCRIPTS = {
  byokAcquireRead: { numberOfKeys: 2, lua: ACQUIRE_READ },
  byokFencedWrite: { numberOfKeys: 2, lua: FENCED_WRITE },
  byokRelease: { numberOfKeys: 1, lua: RELEASE },
  byokRenew: { numberOfKeys: 1, lua: RENEW },
  byokIncrTtl: { numberOfKeys: 1, lua: INCR_TTL },
  byokTakeToken: { numberOfKeys: 1, lua: TAKE_TOKEN },
} as const;
type ScriptName = keyof typeof SCRIPTS;
type ScriptCall = (...args: Array<string | number>) => Promise<unknown>;
/** A pipeline with the scripts as chainable commands (ioredis adds defined commands to pipelines). */
type ScriptPipeline = { [K in ScriptName]: (...args: Array<string | number>) => ScriptPipeline } & {
  sadd(key: string, member: string): ScriptPipeline;
  srem(key: string, member: string): ScriptPipeline;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
};

const DOC_NAME_RE = /^[a-z][a-z0-9_]{0,63}$/;

export interface RedisStoreOptions {
  lockTtlMs?: number;
  lockWaitMs?: number;
}

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly redis: RedisClient;
  private readonly owned: boolean;
  /** Cluster: index and fenced write go to different slots, never in one pipeline. */
  private readonly cluster: boolean;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly tokenPrefix = randomBytes(16).toString('hex');
  private tokenSeq = 0;

  /** `redis` is a URL (the store owns and closes the client) or a client (left open on close). */
  constructor(
    redis: RedisClient | string,
    readonly prefix = 'byok:',
    opts: RedisStoreOptions = {},
  ) {
    if (typeof redis === 'string') {
      this.redis = createRedis(redis, { enableAutoPipelining: true });
      this.owned = true;
    } else if (isRedisClient(redis)) {
      this.redis = redis;
      this.owned = false;
    } else {
      throw new ByokError('config', 'RedisStore needs a Redis URL or an ioredis client');
    }
    this.cluster = isCluster(this.redis);
    this.lockTtlMs = opts.lockTtlMs ?? LOCK_TTL_MS;
    this.lockWaitMs = opts.lockWaitMs ?? LOCK_WAIT_MS;
    for (const [name, def] of Object.entries(SCRIPTS)) {
      if (typeof (this.redis as unknown as Record<string, unknown>)[name] !== 'function') this.redis.defineCommand(name, def);
    }
  }

  private script(name: ScriptName): ScriptCall {
    return (...args) => (this.redis as unknown as Record<ScriptName, ScriptCall>)[name](...args);
  }

  private pipeline(): ScriptPipeline {
    return this.redis.pipeline() as unknown as ScriptPipeline;
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
    return this.withLocalQueue(scope, async () => {
      const lock = this.lockKey(scope);
      // Unique per holder: a random per-store prefix and a counter (no entropy draw per update).
      const token = `${this.tokenPrefix}${(++this.tokenSeq).toString(36)}`;
      const text = await this.acquireAndRead(scope, lock, key, token);
      // Renew while mutate runs; the fenced write catches a lock lost anyway.
      const renew = setInterval(() => {
        this.script('byokRenew')(lock, token, this.lockTtlMs).catch(() => undefined);
      }, Math.max(50, Math.floor(this.lockTtlMs / 3)));
      renew.unref();
      let released = false;
      try {
        const current = text === null ? undefined : (JSON.parse(text) as T);
        const { value, result } = await mutate(current);
        const setKey = `${this.prefix}scopes:${name}`;
        let ok: unknown;
        if (value !== undefined && this.cluster) {
          // Two slots: the index first (awaited, still under our lock), then the fenced write.
          if (text === null) await this.redis.sadd(setKey, scope);
          ok = await this.script('byokFencedWrite')(lock, key, token, 'set', JSON.stringify(value), '1');
          if (ok === 1) released = true;
        } else if (value !== undefined) {
          // One round trip: the index first (still under our lock), then the fenced write,
          // which releases the lock when it writes.
          const res = await this.pipeline().sadd(setKey, scope).byokFencedWrite(lock, key, token, 'set', JSON.stringify(value), '1').exec();
          const [idxErr] = res![0]!;
          const [writeErr, written] = res![1]!;
          if (writeErr) throw writeErr;
          ok = written;
          if (ok === 1) released = true;
          if (idxErr) throw idxErr;
        } else {
          ok = await this.script('byokFencedWrite')(lock, key, token, 'del', '', '0');
          if (ok === 1 && this.cluster) {
            // Two slots: SREM must land before the release, or a new holder's SADD could be undone.
            await this.redis.srem(setKey, scope);
            released = true;
            await this.script('byokRelease')(lock, token).catch(() => undefined); // else it expires
          } else if (ok === 1) {
            // The scope leaves the index only once the document is gone, under our lock.
            const res = await this.pipeline().srem(setKey, scope).byokRelease(lock, token).exec();
            released = true;
            if (res![0]![0]) throw res![0]![0];
          }
        }
        if (ok !== 1) {
          throw new ByokError('conflict', `lost the lock on workspace ${scope} before writing ${name}; nothing was written`);
        }
        return result;
      } finally {
        clearInterval(renew);
        if (!released) await this.script('byokRelease')(lock, token).catch(() => undefined);
      }
    });
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

  async putEphemeralIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.ephKey(key), value, 'PX', ttl(ttlMs), 'NX')) === 'OK';
  }

  async takeToken(bucket: string, opts: TokenBucketOptions): Promise<number> {
    checkBucket(opts);
    return Number(await this.script('byokTakeToken')(`${this.prefix}bucket:${bucket}`, opts.ratePerSec, opts.burst, opts.reserve ?? 0));
  }

  async incr(key: string, ttlMs: number): Promise<number> {
    return Number(await this.script('byokIncrTtl')(`${this.prefix}ctr:${key}`, ttl(ttlMs)));
  }

  connected(): boolean {
    return this.redis.status === 'ready';
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

  /** Takes the scope's lock (waiting with jittered backoff) and returns the document's text. */
  private async acquireAndRead(scope: string, lock: string, key: string, token: string): Promise<string | null> {
    const deadline = Date.now() + this.lockWaitMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 100)) {
      const r = (await this.script('byokAcquireRead')(lock, key, token, this.lockTtlMs)) as [number, string | null];
      if (r[0] === 1) return r[1] ?? null;
      if (Date.now() > deadline) throw new ByokError('internal', `workspace ${scope} is locked`);
      await sleep(wait / 2 + Math.random() * wait);
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
