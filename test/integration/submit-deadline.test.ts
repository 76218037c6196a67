import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { testApp, issueFormLink } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { startPrivateRedis, type PrivateRedis } from '../support/processes.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const WS = 'tg:314';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The form POST used to hang for the whole Redis outage (76.6 s for 70 s). It now answers
// within the submit deadline (5 s by default): 503 "busy" with the link still valid when
// nothing was taken, 202 "still processing" when the submission is on its way.
describe('form POST answers within seconds when Redis is away', () => {
  let redis: PrivateRedis;
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: RecordingChannel;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    fake = await startFakeOpenAI();
    ({ app, cleanup } = await testApp({
      REDIS_URL: redis.url,
      BYOK_REDIS_PREFIX: `byoktest:deadline-${randomBytes(4).toString('hex')}:`,
      BYOK_MASTER_KEY: randomBytes(32).toString('base64'),
    }));
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await redis.start().catch(() => undefined);
    await cleanup();
    await fake.close();
    await redis.close();
  });

  async function issue(): Promise<{ id: string; url: string; token: string }> {
    const added = await app.registry.add(WS, { upstream_model: 'gpt-d', base_url: fake.baseUrl, api_key_env: 'DEADLINE_API_KEY', name: `d ${randomBytes(3).toString('hex')}` });
    if (!added.ok) throw new Error(added.error);
    const req = { url: await issueFormLink(app, WS, added.model, '314') };
    return { id: added.model.id, url: req.url, token: new URL(req.url).pathname.split('/').pop()! };
  }

  /** The form page's data (fetched while Redis is up) and a POST of a sealed key with it. */
  async function prepare(url: string): Promise<(key: string) => Promise<{ status: number; body: any; ms: number }>> {
    const sodium = (await import('libsodium-wrappers')).default;
    await sodium.ready;
    const html = await (await fetch(url)).text();
    const pk = sodium.from_base64(/data-public-key="([^"]+)"/.exec(html)![1]!, sodium.base64_variants.ORIGINAL);
    const keyId = /data-key-id="([^"]+)"/.exec(html)![1]!;
    return async (key: string) => {
      const sealed = { DEADLINE_API_KEY: sodium.to_base64(sodium.crypto_box_seal(sodium.from_string(key), pk), sodium.base64_variants.ORIGINAL) };
      const t0 = Date.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key_id: keyId, sealed }) });
      return { status: res.status, body: await res.json(), ms: Date.now() - t0 };
    };
  }

  it('Redis down: 503 busy within ~6 s, the link still valid afterwards, and a retry goes through', async () => {
    const { id, url, token } = await issue();
    const post = await prepare(url);
    await redis.stop();
    const first = await post('sk-' + randomBytes(20).toString('hex'));
    expect(first.status).toBe(503);
    expect(first.body.code).toBe('busy');
    expect(first.body.error).toMatch(/busy/);
    expect(first.ms).toBeLessThan(7_000);
    // Redis comes back while the abandoned POST's commands are still queued: they run, and
    // must stop before the redeem.
    await redis.start();
    await sleep(3_000);
    expect((await app.requests.lookup(token)).ok).toBe(true);
    const again = await post('sk-' + randomBytes(20).toString('hex'));
    expect(again.status).toBe(202);
    const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'the notice after the retry');
    expect(r.outcome).toBe('ok');
  }, 60_000);

  it('saved but the enqueue is slow: 202 "still processing", and the job runs when the enqueue lands', async () => {
    const { id, url } = await issue();
    const enqueue = app.validateRunner.enqueue.bind(app.validateRunner);
    app.validateRunner.enqueue = async (name, data, opts) => {
      await sleep(7_000); // a queue connection stuck in a reconnect
      return enqueue(name, data, opts);
    };
    try {
      const res = await submitForm(url, { DEADLINE_API_KEY: 'sk-' + randomBytes(20).toString('hex') });
      expect(res.status).toBe(202);
      expect((res.body as { code?: string }).code).toBe('processing');
      expect(await app.submissions.forModel(WS, id)).toBeDefined();
      expect((await (await fetch(res.statusUrl)).json()).status).toBe('pending');
      const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 20_000, 'the notice after the slow enqueue');
      expect(r.outcome).toBe('ok');
    } finally {
      app.validateRunner.enqueue = enqueue;
    }
  }, 60_000);

  it('saved but the enqueue failed: the token is not given back, and the sweep queues the submission', async () => {
    const { id, url, token } = await issue();
    const enqueue = app.validateRunner.enqueue.bind(app.validateRunner);
    app.validateRunner.enqueue = async () => {
      throw new Error('Reached the max retries per request limit');
    };
    try {
      const res = await submitForm(url, { DEADLINE_API_KEY: 'sk-' + randomBytes(20).toString('hex') });
      expect(res.status).toBe(202);
    } finally {
      app.validateRunner.enqueue = enqueue;
    }
    expect((await app.requests.lookup(token)).ok).toBe(false);
    expect(await app.submissions.forModel(WS, id)).toBeDefined();
    await sleep(500);
    expect(chan.results.find((x) => x.model_id === id)).toBeUndefined();
    expect(await app.requeuePending({ unansweredOnly: true })).toBe(1);
    const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'the notice after the sweep');
    expect(r.outcome).toBe('ok');
  }, 60_000);
});
