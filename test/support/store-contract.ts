import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/types.ts';

/**
 * One backing (a temp dir, a Redis prefix) per test; `open()` gives another Store over the
 * same backing, as a second process would have.
 */
export interface Backing {
  open(): Store;
  cleanup(): Promise<void>;
}
export type BackingFactory = () => Promise<Backing>;

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
      // 1 s: long enough that opening a second client (a cluster connection, on a loaded machine) finishes first.
      await s.putEphemeral('token:abc', 'v1', 1_000);
      await s.putEphemeral('token:long', 'v2', 60_000);
      expect(await s.getEphemeral('token:abc')).toBe('v1');
      expect(await open().getEphemeral('token:abc')).toBe('v1');
      await sleep(1_200);
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
