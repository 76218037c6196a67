import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessRunner, type HookedJobRunner } from '../../src/queue/index.ts';
import { BullMQRunner } from '../../src/queue/bullmq-runner.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI } from '../support/fake-vendors.ts';
import { useTestRedis } from '../support/redis.ts';

/**
 * JobRunner.schedule: repeating jobs that never fire at start (no probe storm after a
 * restart), one run per turn however many processes schedule them (one BullMQ job scheduler
 * shared in Redis), removed with interval 0; and the app running key-health on its own.
 */

const redis = useTestRedis('sched');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NO_RETRY = { attempts: 1, backoffMs: 0, maxBackoffMs: 0 };

describe('JobRunner.schedule', () => {
  const open: HookedJobRunner[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((r) => r.close()));
  });

  it('in process: first run after the interval, then every interval; 0 stops it', async () => {
    const r = new InProcessRunner({ retry: NO_RETRY });
    open.push(r);
    let runs = 0;
    r.register('tick', async () => void runs++);
    await r.start();
    await r.schedule('tick', 250, { jitterMs: 20 });
    await sleep(150);
    expect(runs).toBe(0);
    await sleep(700);
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(4);
    await r.schedule('tick', 0);
    const n = runs;
    await sleep(400);
    expect(runs).toBe(n);
  });

  it('BullMQ: two processes scheduling the same job share one scheduler: not at start, one run per turn; 0 removes it', async () => {
    const prefix = redis.sub('bull');
    let runs = 0;
    const make = () => {
      const r = new BullMQRunner({ connection: redis.url, prefix, queueName: 'maintenance', retry: NO_RETRY, concurrency: 1 });
      r.register('tick', async () => void runs++);
      open.push(r);
      return r;
    };
    const a = make();
    const b = make();
    await Promise.all([a.start(), b.start()]);
    await a.schedule('tick', 1_000);
    await b.schedule('tick', 1_000);
    await sleep(700);
    expect(runs).toBe(0);
    // A third process starting later (a restart) keeps the timing: no extra run.
    await sleep(600);
    const c = make();
    await c.start();
    await c.schedule('tick', 1_000);
    await sleep(2_000);
    // Turns at ~1 s, 2 s, 3 s after the first schedule: 2 or 3 runs, never one per process.
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(3);
    await a.schedule('tick', 0);
    const n = runs;
    await sleep(1_500);
    expect(runs).toBe(n);
  }, 15_000);
});

describe('app: key-health runs on its own timer', () => {
  it('not at start; after one interval (plus jitter) it probes a stored key', async () => {
    const fake = await startFakeOpenAI();
    // 0.0005 h = 1.8 s
    const { app, cleanup } = await testApp({ BYOK_KEY_HEALTH_INTERVAL_HOURS: '0.0005' });
    try {
      const key = 'sk-sched-' + randomBytes(12).toString('hex');
      fake.setKeys([key]);
      const add = await app.registry.add('tg:77', { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: 'Fake', api_key_env: 'FAKE_API_KEY' });
      expect(add.ok).toBe(true);
      await app.vault.put('tg:77', 'FAKE_API_KEY', new TextEncoder().encode(key), { validated_at: new Date(Date.now() - 3_600_000).toISOString() });
      await app.start();
      await sleep(1_000);
      expect(fake.requests.length).toBe(0);
      await sleep(2_200);
      expect(fake.requests.filter((q) => q.key === key).length).toBeGreaterThanOrEqual(1);
      expect((await app.vault.list('tg:77'))[0]!.meta?.health?.status).toBe('ok');
    } finally {
      await cleanup();
      await fake.close();
    }
  }, 15_000);
});
