import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { createStore } from '../../src/store/index.ts';
import { keysWithPrefix, useTestRedis } from '../support/redis.ts';
import { storeContract } from '../support/store-contract.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------

storeContract('FileStore', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-store-'));
  return {
    open: () => new FileStore(dir),
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
});

describe('FileStore specifics', () => {
  it('sweepExpired removes expired one-time values and stale leftovers, keeps live ones', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-sweep-'));
    try {
      const s = new FileStore(dir);
      await s.putEphemeral('old', 'x', 1);
      await s.putEphemeral('live', 'y', 60_000);
      const eph = path.join(dir, 'ephemeral');
      const stale = path.join(eph, 'abc.json.taken-0123ab');
      await fs.writeFile(stale, '{}');
      const past = new Date(Date.now() - 5 * 60_000);
      await fs.utimes(stale, past, past);
      await sleep(10);
      expect(await s.sweepExpired()).toBe(2);
      expect(await s.getEphemeral('live')).toBe('y');
      expect((await fs.readdir(eph)).length).toBe(1);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Redis token bucket across instances', () => {
  const r = useTestRedis();
  it('two stores (processes) spend one budget', async () => {
    const a = new RedisStore(r.url, r.prefix);
    const b = new RedisStore(r.url, r.prefix);
    try {
      const opts = { ratePerSec: 1, burst: 6 };
      const got = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).takeToken('shared', opts)));
      expect(got.filter((w) => w === 0)).toHaveLength(6);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('Redis backend', () => {
  const redisCtx = useTestRedis('store');

  storeContract('RedisStore', async () => {
    const prefix = redisCtx.sub('s');
    return {
      open: () => new RedisStore(redisCtx.url, prefix),
      cleanup: async () => {
        // Locks are released: only documents, scope sets and live ephemerals may remain.
        const left = await keysWithPrefix(redisCtx.redis, prefix);
        expect(left.filter((k) => k.startsWith(`${prefix}lock:`))).toEqual([]);
        if (left.length) await redisCtx.redis.del(...left);
      },
    };
  });

  describe('RedisStore specifics', () => {
    it('keeps documents as JSON under <prefix>doc:{scope}:name', async () => {
      const prefix = redisCtx.sub('layout');
      const s = new RedisStore(redisCtx.url, prefix);
      try {
        await s.updateDoc('tg:5', 'custom_models', () => ({ value: { models: ['m'] }, result: null }));
        expect(await redisCtx.redis.get(`${prefix}doc:{tg:5}:custom_models`)).toBe('{"models":["m"]}');
        expect(await redisCtx.redis.smembers(`${prefix}scopes:custom_models`)).toEqual(['tg:5']);
        await s.putEphemeral('t1', 'x', 10_000);
        const pttl = await redisCtx.redis.pttl(`${prefix}eph:t1`);
        expect(pttl).toBeGreaterThan(9_000);
        await s.incr('c1', 10_000);
        expect(await redisCtx.redis.pttl(`${prefix}ctr:c1`)).toBeGreaterThan(9_000);
      } finally {
        await s.close();
      }
    });

    it('fences the write: a writer that lost its lock writes nothing', async () => {
      const prefix = redisCtx.sub('fence');
      const s = new RedisStore(redisCtx.url, prefix);
      try {
        await s.updateDoc('local', 'vault', () => ({ value: { v: 1 }, result: null }));
        const lockKey = `${prefix}lock:{local}`;
        await expect(
          s.updateDoc('local', 'vault', async () => {
            // Simulate expiry under a long pause and another process taking the lock.
            expect(await redisCtx.redis.exists(lockKey)).toBe(1);
            await redisCtx.redis.set(lockKey, 'someone-else', 'PX', 5_000);
            return { value: { v: 2 }, result: null };
          }),
        ).rejects.toMatchObject({ code: 'conflict' });
        expect(await s.getDoc('local', 'vault')).toEqual({ v: 1 });
        // Our release did not delete the other holder's lock.
        expect(await redisCtx.redis.get(lockKey)).toBe('someone-else');
        await redisCtx.redis.del(lockKey);
      } finally {
        await s.close();
      }
    });

    it('waits for a lock held by another process and renews its own while mutate runs', async () => {
      const prefix = redisCtx.sub('renew');
      const a = new RedisStore(redisCtx.url, prefix, { lockTtlMs: 150 });
      const b = new RedisStore(redisCtx.url, prefix, { lockTtlMs: 150 });
      try {
        const order: string[] = [];
        const slow = a.updateDoc<string[], void>('local', 'usage', async (cur) => {
          order.push('a-start');
          await sleep(500); // longer than the lock TTL: renewal must keep it
          order.push('a-end');
          return { value: [...(cur ?? []), 'a'], result: undefined };
        });
        await sleep(50);
        const fast = b.updateDoc<string[], void>('local', 'usage', (cur) => {
          order.push('b');
          return { value: [...(cur ?? []), 'b'], result: undefined };
        });
        await Promise.all([slow, fast]);
        expect(order).toEqual(['a-start', 'a-end', 'b']);
        expect(await a.getDoc('local', 'usage')).toEqual(['a', 'b']);
      } finally {
        await a.close();
        await b.close();
      }
    });

    it('closes only the connections it created', async () => {
      const prefix = redisCtx.sub('close');
      const shared = new RedisStore(redisCtx.redis, prefix);
      await shared.putEphemeral('k', 'v', 10_000);
      await shared.close();
      expect(await redisCtx.redis.ping()).toBe('PONG');
      const own = new RedisStore(redisCtx.url, prefix);
      expect(await own.getEphemeral('k')).toBe('v');
      await own.close();
      expect(own.redis.status).toBe('end');
    });

    it('createStore picks Redis when REDIS_URL is set, files otherwise', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-store-'));
      try {
        const r = createStore({ dataDir: dir, redisUrl: redisCtx.url, redisPrefix: redisCtx.sub('factory') });
        expect(r.kind).toBe('redis');
        await r.close();
        const f = createStore({ dataDir: dir, redisUrl: undefined, redisPrefix: 'byok:' });
        expect(f.kind).toBe('file');
        await f.close();
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });
});
