import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BullMQRunner } from '../../src/queue/bullmq-runner.ts';
import { createRunner } from '../../src/queue/index.ts';
import { JOB_VALIDATE_KEY, type ValidateKeyPayload } from '../../src/queue/types.ts';
import { closeRedis, createRedis, isRedisClient } from '../../src/redis.ts';
import { createStore } from '../../src/store/index.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { keysWithPrefix, newTestPrefix } from '../support/redis.ts';
import { useRedisCluster } from '../support/redis-cluster.ts';
import { FAST, runnerContract } from '../support/runner-contract.ts';
import { storeContract } from '../support/store-contract.ts';

/**
 * The distributed backends on a real three-master Redis Cluster started for this file
 * (`redis+cluster://` URL): the Store and JobRunner contracts, plus the slot rules a
 * cluster imposes (one slot per workspace for doc + lock, one slot for all of a queue).
 */
const cluster = useRedisCluster();

/** One plain client per master, to see where keys really live. */
let nodes: Redis[] = [];
beforeAll(() => {
  nodes = cluster.ports.map((port) => new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 }));
});
afterAll(() => {
  for (const n of nodes) n.disconnect();
});

/** Keys under a prefix on every node: [node index, key]. */
async function keysEverywhere(prefix: string): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (const [i, n] of nodes.entries()) for (const k of await keysWithPrefix(n, prefix)) out.push([i, k]);
  return out;
}

async function slotOf(key: string): Promise<number> {
  return Number(await cluster.node.cluster('KEYSLOT', key));
}

storeContract('RedisStore on a Redis Cluster', async () => {
  const prefix = newTestPrefix('cstore');
  return {
    open: () => new RedisStore(cluster.url, prefix),
    cleanup: async () => {
      // Locks are released on every node.
      const left = await keysEverywhere(prefix);
      expect(left.filter(([, k]) => k.startsWith(`${prefix}lock:`))).toEqual([]);
      for (const [i, k] of left) await nodes[i]!.del(k);
    },
  };
});

runnerContract('BullMQRunner on a Redis Cluster', ({ retry, concurrency }) =>
  new BullMQRunner({ connection: cluster.url, prefix: newTestPrefix('cq'), retry, concurrency }),
);

describe('Redis Cluster specifics', () => {
  it('createStore and createRunner build cluster clients from a redis+cluster:// URL', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-store-'));
    const prefix = newTestPrefix('factory');
    const store = createStore({ dataDir: dir, redisUrl: cluster.url, redisPrefix: prefix });
    const runner = await createRunner({ redisUrl: cluster.url, redisPrefix: prefix }, { retry: FAST, queueName: 'validate' });
    try {
      expect(store.kind).toBe('redis');
      expect((store as RedisStore).redis).toBeInstanceOf(Cluster);
      expect(runner.kind).toBe('bullmq');
      expect((runner as BullMQRunner).bullPrefix).toBe(`{${prefix.replace(/:$/, '')}}`);
      await store.updateDoc('tg:1', 'usage', () => ({ value: { n: 1 }, result: null }));
      expect(await store.getDoc('tg:1', 'usage')).toEqual({ n: 1 });
    } finally {
      await store.close();
      await runner.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
    expect((store as RedisStore).redis.status).toBe('end');
  });

  it("keeps a workspace's document and lock in one slot, and spreads workspaces over the nodes", async () => {
    const prefix = newTestPrefix('slots');
    const s = new RedisStore(cluster.url, prefix);
    try {
      const workspaces = Array.from({ length: 24 }, (_, i) => `tg:${1000 + i}`);
      for (const ws of workspaces) {
        expect(await slotOf(`${prefix}doc:{${ws}}:vault`)).toBe(await slotOf(`${prefix}lock:{${ws}}`));
        expect(await slotOf(`${prefix}doc:{${ws}}:custom_models`)).toBe(await slotOf(`${prefix}lock:{${ws}}`));
      }
      await Promise.all(workspaces.map((ws) => s.updateDoc(ws, 'vault', () => ({ value: { keys: [ws] }, result: null }))));
      const docs = (await keysEverywhere(prefix)).filter(([, k]) => k.startsWith(`${prefix}doc:`));
      expect(docs).toHaveLength(workspaces.length);
      // Real sharding: the documents do not all sit on one master.
      expect(new Set(docs.map(([i]) => i)).size).toBeGreaterThan(1);
      expect(await s.listScopes('vault')).toEqual([...workspaces].sort());
      for (const ws of workspaces) expect(await s.getDoc(ws, 'vault')).toEqual({ keys: [ws] });
    } finally {
      await s.close();
    }
  });

  it('a validate-key job enqueued by one runner is processed by another, with every BullMQ key in one slot', async () => {
    const prefix = newTestPrefix('cval');
    const producer = new BullMQRunner({ connection: cluster.url, prefix, queueName: 'validate', retry: FAST });
    const consumer = new BullMQRunner({ connection: cluster.url, prefix, queueName: 'validate', retry: FAST, concurrency: 4 });
    const store = new RedisStore(cluster.url, prefix);
    try {
      const seen: Array<{ payload: ValidateKeyPayload; jobId: string; attempt: number }> = [];
      consumer.register<ValidateKeyPayload>(JOB_VALIDATE_KEY, async (payload, ctx) => {
        // A transient failure first: the retry also runs over the cluster.
        if (payload.submission_id === 'sub-b' && ctx.attempt === 1) throw new Error('vendor 503');
        seen.push({ payload, jobId: ctx.jobId, attempt: ctx.attempt });
        await store.updateDoc<string[], void>(payload.workspace, 'usage', (cur) => ({ value: [...(cur ?? []), payload.submission_id], result: undefined }));
      });
      await consumer.start();
      const workerConn = (consumer as unknown as { owned: Cluster[] }).owned.at(-1)!;
      expect(workerConn.options.redisOptions!.maxRetriesPerRequest).toBeNull();
      expect(workerConn.options.enableAutoPipelining).toBe(true);
      const payloads: ValidateKeyPayload[] = ['sub-a', 'sub-b', 'sub-c'].map((id, i) => ({
        workspace: `tg:${500 + i}`,
        model_id: `qwen-plus-${i}`,
        submission_id: id,
        token_hash: `hash-${id}`,
        queued_at: Date.now(),
      }));
      for (const p of payloads) await producer.enqueue(JOB_VALIDATE_KEY, p, { jobId: `validate-${p.submission_id}` });
      await producer.enqueue(JOB_VALIDATE_KEY, { ...payloads[0]!, submission_id: 'sub-late' }, { jobId: 'validate-sub-late', delayMs: 100 });
      await producer.drain();
      await consumer.drain();
      expect(seen.map((s) => s.jobId).sort()).toEqual(['validate-sub-a', 'validate-sub-b', 'validate-sub-c', 'validate-sub-late']);
      expect(seen.find((s) => s.jobId === 'validate-sub-b')!.attempt).toBe(2);
      expect(await store.getDoc('tg:500', 'usage')).toEqual(expect.arrayContaining(['sub-a', 'sub-late']));
      expect(await store.getDoc('tg:501', 'usage')).toEqual(['sub-b']);

      // Every key BullMQ wrote (id counter, meta, events, markers…) hashes to one slot, on one node.
      expect(producer.bullPrefix).toBe(`{${prefix.replace(/:$/, '')}}`);
      const keys = await keysEverywhere(producer.bullPrefix);
      expect(keys.length).toBeGreaterThan(2);
      const slots = new Set(await Promise.all(keys.map(([, k]) => slotOf(k))));
      expect(slots.size).toBe(1);
      expect(new Set(keys.map(([i]) => i)).size).toBe(1);
      // A key named for a job id would share it too (the tag, not the name, picks the slot).
      expect(await slotOf(`${producer.bullPrefix}:validate:validate-sub-a:lock`)).toBe([...slots][0]);
    } finally {
      await producer.close();
      await consumer.close();
      await store.close();
    }
  });

  it('a store and a runner given an existing Cluster client use it and leave it open', async () => {
    const client = createRedis(cluster.url, { enableAutoPipelining: true });
    expect(isRedisClient(client)).toBe(true);
    const prefix = newTestPrefix('shared');
    const store = new RedisStore(client, prefix);
    const runner = new BullMQRunner({ connection: client, prefix, retry: FAST });
    try {
      expect(runner.bullPrefix).toBe(`{${prefix.replace(/:$/, '')}}`);
      let ran = 0;
      runner.register('ping', async () => void ran++);
      await runner.start();
      // The worker's own cluster client retries forever on every node (BullMQ cannot check it on a Cluster).
      const workerConn = (runner as unknown as { owned: Cluster[] }).owned.at(-1)!;
      expect(workerConn).toBeInstanceOf(Cluster);
      expect(workerConn).not.toBe(client);
      expect(workerConn.options.redisOptions!.maxRetriesPerRequest).toBeNull();
      await runner.enqueue('ping', {});
      await runner.drain();
      expect(ran).toBe(1);
      await store.updateDoc('wx:abc', 'vault', () => ({ value: { k: 1 }, result: null }));
      await store.updateDoc('wx:abc', 'vault', () => ({ value: undefined, result: null }));
      expect(await store.listScopes('vault')).toEqual([]);
      await store.close();
      await runner.close();
      expect(await client.ping()).toBe('PONG');
    } finally {
      await closeRedis(client);
    }
    expect(client.status).toBe('end');
  });
});
