import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BullMQRunner } from '../../src/queue/bullmq-runner.ts';
import { createRunner } from '../../src/queue/index.ts';
import { InProcessRunner } from '../../src/queue/inprocess-runner.ts';
import { UnrecoverableJobError } from '../../src/queue/types.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { ROOT, spawnModuleChild } from '../support/processes.ts';
import { dumpPrefix, keysWithPrefix, useTestRedis } from '../support/redis.ts';
import { FAST, runnerContract } from '../support/runner-contract.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------

runnerContract('InProcessRunner', ({ retry, concurrency }) => new InProcessRunner({ retry, concurrency }));

describe('Redis backend', () => {
  const redisCtx = useTestRedis('runner');

  runnerContract('BullMQRunner', ({ retry, concurrency }) => new BullMQRunner({ connection: redisCtx.url, prefix: redisCtx.sub('q'), retry, concurrency }));

  describe('BullMQRunner specifics', () => {
    const open: BullMQRunner[] = [];
    afterEach(async () => {
      await Promise.all(open.splice(0).map((r) => r.close()));
    });

    it('leaves no job data in Redis after completion and failure', async () => {
      const prefix = redisCtx.sub('clean');
      const canary = `CANARY-${randomBytes(8).toString('hex')}`;
      const r = new BullMQRunner({ connection: redisCtx.url, prefix, retry: { attempts: 2, backoffMs: 20, maxBackoffMs: 100 } });
      open.push(r);
      r.register<{ mode: string }>('job', async (d) => {
        if (d.mode === 'unrecoverable') throw new UnrecoverableJobError('definite');
        if (d.mode === 'fail') throw new Error('transient');
        return { echoed: canary }; // return values must not be stored either
      });
      const finals: string[] = [];
      r.onFinalFailure((f) => void finals.push(f.jobId));
      await r.start();
      const ids = [
        await r.enqueue('job', { mode: 'ok', sealed: canary }),
        await r.enqueue('job', { mode: 'ok', sealed: canary }, { jobId: 'custom-id-1' }),
        await r.enqueue('job', { mode: 'fail', sealed: canary }),
        await r.enqueue('job', { mode: 'unrecoverable', sealed: canary }),
        await r.enqueue('job', { mode: 'ok', sealed: canary }, { delayMs: 50 }),
      ];
      await r.drain();
      expect(finals.sort()).toEqual([ids[2], ids[3]].sort());

      const base = `${r.bullPrefix}:${r.queueName}:`;
      const keys = await keysWithPrefix(redisCtx.redis, prefix);
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.every((k) => k.startsWith(base))).toBe(true);
      const suffixes = keys.map((k) => k.slice(base.length));
      // What BullMQ legitimately keeps for a queue: its id counter, meta hash, events stream,
      // the worker's stalled-check throttle and the wake-up marker. No per-job key
      // (`<jobId>`, `<jobId>:lock`, `<jobId>:logs`...) and no completed/failed set remains.
      const LEGIT = new Set(['id', 'meta', 'events', 'stalled-check', 'marker']);
      expect(suffixes.filter((s) => !LEGIT.has(s))).toEqual([]);
      for (const id of ids) expect(suffixes.some((s) => s === id || s.startsWith(`${id}:`))).toBe(false);
      const dump = [...(await dumpPrefix(redisCtx.redis, prefix)).values()].join('\n');
      expect(dump).not.toContain(canary);
    });

    it('honours maxRetriesPerRequest: null on the worker and the BullMQ prefix', async () => {
      const prefix = redisCtx.sub('pfx');
      const r = new BullMQRunner({ connection: redisCtx.url, prefix, queueName: 'validate' });
      open.push(r);
      expect(r.bullPrefix).toBe(prefix.replace(/:$/, ''));
      await r.enqueue('x', {}, { delayMs: 60_000 });
      const keys = await keysWithPrefix(redisCtx.redis, prefix);
      expect(keys.some((k) => k.startsWith(`${prefix}validate:`))).toBe(true);
    });

    it('createRunner picks BullMQ when REDIS_URL is set, in-process otherwise', async () => {
      const b = await createRunner({ redisUrl: redisCtx.url, redisPrefix: redisCtx.sub('factory') }, { retry: FAST });
      const i = await createRunner({ redisUrl: undefined, redisPrefix: 'byok:' }, { retry: FAST });
      expect(b.kind).toBe('bullmq');
      expect(i.kind).toBe('inprocess');
      await b.close();
      await i.close();
    });

    it('finishes, exactly once, a job whose worker was killed mid-job', async () => {
      const prefix = redisCtx.sub('stall');
      const jobId = `validate-${randomBytes(4).toString('hex')}`;
      // The child: a worker whose handler announces the job and then blocks forever.
      const childCode = `
        const { BullMQRunner } = await import(${JSON.stringify(path.join(ROOT, 'src/queue/bullmq-runner.ts'))});
        const r = new BullMQRunner({ connection: process.env.T_URL, prefix: process.env.T_PREFIX, lockDuration: 1000, stalledInterval: 500 });
        r.register('validate-key', async (_d, ctx) => {
          process.stdout.write('STARTED ' + ctx.jobId + '\\n');
          await new Promise(() => {});
        });
        await r.start();
        process.stdout.write('READY\\n');
      `;
      const { child, waitOut: waitFor, killHard } = spawnModuleChild(childCode, { T_URL: redisCtx.url, T_PREFIX: prefix });
      try {
        await waitFor(/READY/, 20_000);
        const producer = new BullMQRunner({ connection: redisCtx.url, prefix });
        open.push(producer);
        await producer.enqueue('validate-key', { submission_id: 's1' }, { jobId });
        await waitFor(new RegExp(`STARTED ${jobId}`), 10_000);
      } finally {
        await killHard();
      }
      expect(child.signalCode).toBe('SIGKILL');

      // A new worker (a restarted process) recovers the stalled job and finishes it.
      const store = new RedisStore(redisCtx.url, prefix);
      const r = new BullMQRunner({ connection: redisCtx.url, prefix, stalledInterval: 300, lockDuration: 1000 });
      open.push(r);
      let runs = 0;
      r.register<{ submission_id: string }>('validate-key', async (_d, ctx) => {
        runs++;
        // Idempotent by job id: storing twice would not add a second entry.
        await store.updateDoc<string[], void>('_system', 'completed_jobs', (cur) => ({
          value: cur?.includes(ctx.jobId) ? cur : [...(cur ?? []), ctx.jobId],
          result: undefined,
        }));
      });
      await r.start();
      const end = Date.now() + 15_000;
      while (!(await store.getDoc<string[]>('_system', 'completed_jobs'))?.includes(jobId)) {
        if (Date.now() > end) throw new Error('stalled job was not recovered');
        await sleep(50);
      }
      await r.drain();
      await sleep(700); // two more stalled checks: nothing runs it again
      expect(runs).toBe(1);
      expect(await store.getDoc('_system', 'completed_jobs')).toEqual([jobId]);
      await store.close();
    }, 45_000);
  });
});
