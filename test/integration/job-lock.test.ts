import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRunner, DEFAULT_JOB_LOCK_MS, type HookedJobRunner } from '../../src/queue/index.ts';
import { ROOT, spawnModuleChild } from '../support/processes.ts';
import { useTestRedis } from '../support/redis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const redisCtx = useTestRedis('joblock');

// With BullMQ's 30 s lock a crashed worker's jobs waited ~35 s for another worker; the
// runners made by createRunner use a 5 s lock renewed every 2.5 s, and check for stalled
// jobs every 5 s.
describe('a crashed worker’s job is picked up within seconds (default lock)', () => {
  const open: HookedJobRunner[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });

  it('the default lock is short', () => {
    expect(DEFAULT_JOB_LOCK_MS).toBeLessThanOrEqual(5_000);
  });

  it('a job survives a long run under the short lock (renewal), and a SIGKILLed worker’s job is finished by another within 20 s', async () => {
    const prefix = redisCtx.sub('crash');
    const config = { redisUrl: redisCtx.url, redisPrefix: prefix };
    // Renewal: a job running three lock periods is not taken from its live worker.
    const live = await createRunner(config, { queueName: 'validate' });
    open.push(live);
    let liveRuns = 0;
    live.register('slow', async () => {
      liveRuns++;
      await sleep(3 * DEFAULT_JOB_LOCK_MS);
    });
    const watcher = await createRunner(config, { queueName: 'validate' });
    open.push(watcher);
    watcher.register('slow', async () => void liveRuns++);
    await live.start();
    await live.enqueue('slow', {}, { jobId: 'slow-1' });
    await sleep(500);
    await watcher.start(); // a second worker whose stalled checker would steal an expired lock
    await live.drain();
    expect(liveRuns).toBe(1);
    await watcher.close();
    await live.close();

    const jobId = `validate-${randomBytes(4).toString('hex')}`;
    const childCode = `
      const { createRunner } = await import(${JSON.stringify(path.join(ROOT, 'src/queue/index.ts'))});
      const r = await createRunner({ redisUrl: process.env.T_URL, redisPrefix: process.env.T_PREFIX }, { queueName: 'validate' });
      r.register('validate-key', async (_d, ctx) => {
        process.stdout.write('STARTED ' + ctx.jobId + '\\n');
        await new Promise(() => {});
      });
      await r.start();
      process.stdout.write('READY\\n');
    `;
    const { waitOut, killHard } = spawnModuleChild(childCode, { T_URL: redisCtx.url, T_PREFIX: prefix });
    try {
      await waitOut(/READY/, 20_000);
      const producer = await createRunner(config, { queueName: 'validate' });
      open.push(producer);
      await producer.enqueue('validate-key', { submission_id: 's1' }, { jobId });
      await waitOut(new RegExp(`STARTED ${jobId}`), 10_000);
    } finally {
      await killHard();
    }
    const killedAt = Date.now();

    // The restarted worker: same defaults, nothing shortened for the test.
    const next = await createRunner(config, { queueName: 'validate' });
    open.push(next);
    const done: Array<{ id: string; at: number }> = [];
    next.register('validate-key', async (_d, ctx) => void done.push({ id: ctx.jobId, at: Date.now() }));
    await next.start();
    const end = Date.now() + 40_000;
    while (!done.some((d) => d.id === jobId) && Date.now() < end) await sleep(50);
    const finished = done.find((d) => d.id === jobId);
    expect(finished, 'the crashed job was never recovered').toBeDefined();
    if (process.env.T_MEASURE) process.stderr.write(`recovered ${finished!.at - killedAt} ms after SIGKILL\n`);
    // BullMQ's default 30 s lock would make this ≥ 30 s.
    expect(finished!.at - killedAt).toBeLessThan(20_000);
    await next.drain();
    expect(done.filter((d) => d.id === jobId)).toHaveLength(1);
  }, 90_000);
});
