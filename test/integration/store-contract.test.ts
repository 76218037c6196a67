import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { createStore } from '../../src/store/index.ts';
import type { Store } from '../../src/store/types.ts';
import { keysWithPrefix, useTestRedis } from '../support/redis.ts';

/**
 * One backing (a temp dir, a Redis prefix) per test; `open()` gives another Store over the
 * same backing, as a second process would have.
 */
interface Backing {
  open(): Store;
  cleanup(): Promise<void>;
}
type BackingFactory = () => Promise<Backing>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function storeContract(name: string, makeBacking: BackingFactory): void {
  describe(`Store contract: ${name}`, () => {
    let backing: Backing;
    let opened: Store[] = [];
    const open = () => {
      const s = backing.open();
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      backing = await makeBacking();
      opened = [];
    });
    afterEach(async () => {
      await Promise.all(opened.map((s) => s.close()));
      await backing.cleanup();
    });

    it('gets, updates and deletes documents', async () => {
      const s = open();
      expect(await s.getDoc('local', 'custom_models')).toBeUndefined();
      await s.updateDoc('local', 'custom_models', (cur) => {
        expect(cur).toBeUndefined();
        return { value: { models: [{ id: 'qwen-plus-e3f4' }] }, result: undefined };
      });
      expect(await s.getDoc('local', 'custom_models')).toEqual({ models: [{ id: 'qwen-plus-e3f4' }] });
      await s.updateDoc<{ models: { id: string }[] }, void>('local', 'custom_models', (cur) => ({
        value: { models: [...cur!.models, { id: 'gpt-x-a1b2' }] },
        result: undefined,
      }));
      expect(await s.getDoc('local', 'custom_models')).toEqual({ models: [{ id: 'qwen-plus-e3f4' }, { id: 'gpt-x-a1b2' }] });
      // Another instance (process) sees the same document.
      expect(await open().getDoc('local', 'custom_models')).toEqual({ models: [{ id: 'qwen-plus-e3f4' }, { id: 'gpt-x-a1b2' }] });
      // Documents are per scope and per name.
      expect(await s.getDoc('tg:42', 'custom_models')).toBeUndefined();
      expect(await s.getDoc('local', 'vault')).toBeUndefined();
      await s.updateDoc('local', 'custom_models', () => ({ value: undefined, result: undefined }));
      expect(await s.getDoc('local', 'custom_models')).toBeUndefined();
    });

    it('passes the result of mutate through, including from an async mutate', async () => {
      const s = open();
      const r1 = await s.updateDoc<number, string>('tg:7', 'usage', (cur) => ({ value: (cur ?? 0) + 5, result: `was ${cur}` }));
      expect(r1).toBe('was undefined');
      const r2 = await s.updateDoc<number, { before: number }>('tg:7', 'usage', async (cur) => {
        await sleep(5);
        return { value: cur! * 2, result: { before: cur! } };
      });
      expect(r2).toEqual({ before: 5 });
      expect(await s.getDoc('tg:7', 'usage')).toBe(10);
      // A pure read through updateDoc: returning the current value unchanged.
      const r3 = await s.updateDoc<number, number>('tg:7', 'usage', (cur) => ({ value: cur, result: cur! + 1 }));
      expect(r3).toBe(11);
      expect(await s.getDoc('tg:7', 'usage')).toBe(10);
    });

    it('leaves the document unchanged when mutate throws, and releases the lock', async () => {
      const s = open();
      await s.updateDoc('wx:abc', 'vault', () => ({ value: { keys: ['sealed-1'] }, result: null }));
      const boom = new Error('mutate failed');
      await expect(
        s.updateDoc('wx:abc', 'vault', () => {
          throw boom;
        }),
      ).rejects.toBe(boom);
      await expect(
        s.updateDoc('wx:abc', 'vault', async () => {
          await sleep(2);
          throw new Error('async failure');
        }),
      ).rejects.toThrow('async failure');
      expect(await s.getDoc('wx:abc', 'vault')).toEqual({ keys: ['sealed-1'] });
      // The scope is not left locked: another instance can update at once.
      const other = open();
      const t0 = Date.now();
      await other.updateDoc<{ keys: string[] }, void>('wx:abc', 'vault', (cur) => ({ value: { keys: [...cur!.keys, 'sealed-2'] }, result: undefined }));
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect(await s.getDoc('wx:abc', 'vault')).toEqual({ keys: ['sealed-1', 'sealed-2'] });
    });

    it('loses nothing under 50 concurrent updates from two instances', async () => {
      const a = open();
      const b = open();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          (i % 2 ? a : b).updateDoc<{ n: number; seen: number[] }, number>('tg:group:-1001', 'usage', async (cur) => {
            const doc = cur ?? { n: 0, seen: [] };
            // Widen the read-modify-write window so an unserialised store would lose updates.
            await sleep(Math.random() * 3);
            return { value: { n: doc.n + 1, seen: [...doc.seen, i] }, result: doc.n + 1 };
          }),
        ),
      );
      const doc = await a.getDoc<{ n: number; seen: number[] }>('tg:group:-1001', 'usage');
      expect(doc!.n).toBe(50);
      expect([...doc!.seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      // Each update saw a distinct predecessor: results are exactly 1..50.
      expect([...results].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });

    it('lists the scopes holding a document', async () => {
      const s = open();
      expect(await s.listScopes('custom_models')).toEqual([]);
      for (const ws of ['tg:42', 'local', 'wx:abc_d', 'tg:group:-100']) {
        await s.updateDoc(ws, 'custom_models', () => ({ value: { models: [] }, result: null }));
      }
      await s.updateDoc('tg:9', 'vault', () => ({ value: { keys: [] }, result: null }));
      expect(await s.listScopes('custom_models')).toEqual(['local', 'tg:42', 'tg:group:-100', 'wx:abc_d'].sort());
      expect(await open().listScopes('vault')).toEqual(['tg:9']);
      await s.updateDoc('tg:42', 'custom_models', () => ({ value: undefined, result: null }));
      expect(await s.listScopes('custom_models')).toEqual(['local', 'tg:group:-100', 'wx:abc_d'].sort());
      expect(await s.listScopes('nothing_here')).toEqual([]);
    });

    it('refuses invalid workspace ids', async () => {
      const s = open();
      for (const bad of ['../x', 'a/b', '', '..', 'tg:1/../../etc', 'LOCAL', 'wx:a b']) {
        await expect(s.getDoc(bad, 'custom_models'), bad).rejects.toMatchObject({ code: 'invalid_input' });
        await expect(
          s.updateDoc(bad, 'custom_models', () => ({ value: { x: 1 }, result: null })),
          bad,
        ).rejects.toMatchObject({ code: 'invalid_input' });
      }
      expect(await s.listScopes('custom_models')).toEqual([]);
      // The system scope is allowed.
      await s.updateDoc('_system', 'master_keys', () => ({ value: { ids: ['k1'] }, result: null }));
      expect(await s.getDoc('_system', 'master_keys')).toEqual({ ids: ['k1'] });
    });

    it('expires ephemeral values after their TTL', async () => {
      const s = open();
      await s.putEphemeral('token:abc', 'v1', 150);
      await s.putEphemeral('token:long', 'v2', 60_000);
      expect(await s.getEphemeral('token:abc')).toBe('v1');
      expect(await open().getEphemeral('token:abc')).toBe('v1');
      await sleep(300);
      expect(await s.getEphemeral('token:abc')).toBeUndefined();
      expect(await s.takeEphemeral('token:abc')).toBeUndefined();
      expect(await s.getEphemeral('token:long')).toBe('v2');
      await s.deleteEphemeral('token:long');
      expect(await s.getEphemeral('token:long')).toBeUndefined();
      await s.deleteEphemeral('never-existed');
      expect(await s.getEphemeral('never-existed')).toBeUndefined();
    });

    it('gives a concurrently taken ephemeral value to exactly one taker', async () => {
      const a = open();
      const b = open();
      for (let round = 0; round < 5; round++) {
        const key = `redeem:${round}`;
        await a.putEphemeral(key, `payload-${round}`, 60_000);
        const takes = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).takeEphemeral(key)));
        expect(takes.filter((t) => t !== undefined)).toEqual([`payload-${round}`]);
        expect(await a.getEphemeral(key)).toBeUndefined();
        expect(await b.takeEphemeral(key)).toBeUndefined();
      }
    });

    it('stores a value only when absent: one winner among concurrent claimers, again after expiry', async () => {
      const a = open();
      const b = open();
      const wins = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).putEphemeralIfAbsent('tg-update:42', `p${i}`, 200)));
      expect(wins.filter(Boolean)).toHaveLength(1);
      const winner = wins.indexOf(true);
      expect(await b.getEphemeral('tg-update:42')).toBe(`p${winner}`);
      expect(await a.putEphemeralIfAbsent('tg-update:42', 'late', 200)).toBe(false);
      await sleep(300);
      expect(await a.putEphemeralIfAbsent('tg-update:42', 'after-expiry', 60_000)).toBe(true);
      expect(await b.getEphemeral('tg-update:42')).toBe('after-expiry');
    });

    it('shares a token bucket: the burst, then waits; a reserve keeps tokens for others', async () => {
      const a = open();
      const opts = { ratePerSec: 10, burst: 5 };
      const first = await Promise.all(Array.from({ length: 5 }, () => a.takeToken('bot:1', opts)));
      expect(first).toEqual([0, 0, 0, 0, 0]);
      const wait = await a.takeToken('bot:1', opts);
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(100);
      // Another bucket is independent.
      expect(await a.takeToken('bot:2', opts)).toBe(0);
      await sleep(wait + 20);
      expect(await a.takeToken('bot:1', opts)).toBe(0);
      // With a reserve of 3, a take leaves at least 3 tokens behind.
      const r = { ratePerSec: 1, burst: 5, reserve: 3 };
      expect(await a.takeToken('bot:3', r)).toBe(0);
      expect(await a.takeToken('bot:3', r)).toBe(0);
      expect(await a.takeToken('bot:3', r)).toBeGreaterThan(0);
      expect(await a.takeToken('bot:3', { ...r, reserve: 0 })).toBe(0);
      await expect(a.takeToken('bot:4', { ratePerSec: 0, burst: 1 })).rejects.toThrow(/token bucket/);
    });

    it('counts with incr and restarts the count after the TTL', async () => {
      const s = open();
      expect(await s.incr('rl:ip:1', 250)).toBe(1);
      expect(await s.incr('rl:ip:1', 250)).toBe(2);
      expect(await s.incr('rl:ip:1', 250)).toBe(3);
      expect(await s.incr('rl:ip:2', 250)).toBe(1);
      // The window starts at the first increment; later increments do not extend it.
      await sleep(150);
      expect(await s.incr('rl:ip:1', 250)).toBe(4);
      await sleep(200);
      expect(await s.incr('rl:ip:1', 250)).toBe(1);
    });
  });
}

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
