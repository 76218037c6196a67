import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { testApp, type LogCapture, issueFormLink } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { connectTestRedis, deleteWithPrefix, dumpPrefix, newTestPrefix, TEST_REDIS_URL } from '../support/redis.ts';

const WS = 'tg:1';

function canary(): string {
  return 'sk-proj-' + randomBytes(30).toString('base64url');
}

/** Every file under a folder, as latin1 text. */
function readTree(dir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push([p, fs.readFileSync(p, 'latin1')]);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

for (const mode of ['embedded', 'redis'] as const) {
  describe(`validate-key worker (${mode})`, () => {
    let app: App;
    let dataDir: string;
    let logs: LogCapture;
    let cleanup: () => Promise<void>;
    let fake: FakeVendor;
    let chan: RecordingChannel;
    let redis: Redis | undefined;
    const prefix = newTestPrefix('worker');
    const payloads: unknown[] = [];
    const keysUsed: string[] = [];

    beforeAll(async () => {
      fake = await startFakeOpenAI({ reply: 'pong' });
      const env: Record<string, string> = mode === 'redis' ? { REDIS_URL: TEST_REDIS_URL, BYOK_REDIS_PREFIX: prefix, BYOK_MASTER_KEY: randomBytes(32).toString('base64') } : {};
      ({ app, dataDir, logs, cleanup } = await testApp(env));
      if (mode === 'redis') redis = await connectTestRedis(); // fails loudly when Redis is down
      // Record every job payload at enqueue time.
      for (const runner of [app.validateRunner, app.notifyRunner]) {
        const enqueue = runner.enqueue.bind(runner);
        runner.enqueue = async (name, data, opts) => {
          payloads.push(structuredClone(data));
          return enqueue(name, data, opts);
        };
      }
      chan = new RecordingChannel();
      app.addChannel(chan);
      await app.start();
    });

    afterAll(async () => {
      await cleanup();
      await fake.close();
      if (redis) {
        await deleteWithPrefix(redis, prefix);
        await redis.quit();
      }
    });

    afterEach(() => fake.setBehaviour('ok'));

    /** Registers a model pointed at the fake vendor and issues a form link for it. */
    async function registerAndRequest(): Promise<{ id: string; url: string; env: string }> {
      const added = await app.registry.add(WS, { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: `m ${randomBytes(3).toString('hex')}`, api_key_env: 'FAKE_API_KEY' });
      if (!added.ok) throw new Error(added.error);
      const model = added.model;
      const req = { url: await issueFormLink(app, WS, model, '1') };
      return { id: model.id, url: req.url, env: model.api_key_env };
    }

    it('stores a good key sealed, marks the model active and notifies the chat once', async () => {
      const key = canary();
      keysUsed.push(key);
      fake.setKeys([key]);
      const { id, url, env } = await registerAndRequest();
      const res = await submitForm(url, { [env]: key });
      expect(res.status).toBe(202);
      await waitFor(() => chan.results.find((r) => r.model_id === id), 10_000, 'ok notification');
      const result = chan.results.find((r) => r.model_id === id)!;
      expect(result.outcome).toBe('ok');
      expect(result.masked).toBe('****' + key.slice(-4));
      expect(await app.vault.has(WS, env)).toBe(true);
      const got = await app.registry.get(WS, id);
      expect(got.ok && got.model.status).toBe('active');
      expect(await app.submissions.forModel(WS, id)).toBeUndefined();
      // The form page reports the result too.
      expect((await (await fetch(res.statusUrl)).json()).status).toBe('ok');
      await app.notifyRunner.drain();
      expect(chan.results.filter((r) => r.model_id === id)).toHaveLength(1);
      fake.setKeys(undefined);
    });

    it('a definite vendor answer fails at once: one probe, key not stored, user told what to do', async () => {
      const key = canary();
      keysUsed.push(key);
      fake.setKeyBehaviour(key, 'invalid_key');
      const before = fake.requests.length;
      const { id, url, env } = await registerAndRequest();
      await app.vault.delete(WS, env);
      await submitForm(url, { [env]: key });
      const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 10_000, 'invalid_key notification');
      expect(r.outcome).toBe('invalid_key');
      expect(r.text).toMatch(/\/byok key/);
      expect(fake.requests.slice(before).filter((q) => q.key === key).length).toBeLessThanOrEqual(2); // list-models + completion at most, no retries
      expect(await app.vault.has(WS, env)).toBe(false);
      const got = await app.registry.get(WS, id);
      expect(got.ok && got.model.status).toBe('key_error');
      fake.setKeyBehaviour(key, undefined);
    });

    it('a model the vendor does not serve: model_problem (not key_error), key not stored, told to fix the model', async () => {
      const key = canary();
      keysUsed.push(key);
      fake.setKeys([key]);
      fake.setModels(['some-other-model']);
      try {
        const { id, url, env } = await registerAndRequest();
        await app.vault.delete(WS, env);
        await submitForm(url, { [env]: key });
        const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 10_000, 'invalid_model notification');
        expect(r.outcome).toBe('invalid_model');
        expect(await app.vault.has(WS, env)).toBe(false);
        const got = await app.registry.get(WS, id);
        expect(got.ok && got.model.status).toBe('model_problem');
      } finally {
        fake.setModels(undefined);
        fake.setKeys(undefined);
      }
    });

    it('retries a vendor outage with backoff and succeeds when the vendor recovers', async () => {
      const key = canary();
      keysUsed.push(key);
      const { id, url, env } = await registerAndRequest();
      fake.setBehaviour('server_error', 2);
      await submitForm(url, { [env]: key });
      const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'notification after retries');
      expect(r.outcome).toBe('ok');
      expect(await app.vault.has(WS, env)).toBe(true);
    });

    it('after the last retry the sealed submission stays pending, and /byok test finishes it', async () => {
      const key = canary();
      keysUsed.push(key);
      const { id, url, env } = await registerAndRequest();
      await app.vault.delete(WS, env);
      fake.setBehaviour('overloaded', 1000);
      await submitForm(url, { [env]: key });
      const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'pending_retry notification');
      expect(r.outcome).toBe('pending_retry');
      expect(r.text).toMatch(new RegExp(`/byok test ${id}`));
      expect(await app.vault.has(WS, env)).toBe(false);
      expect(await app.submissions.forModel(WS, id)).toBeDefined();
      // The vendor is back: the user retries from the chat.
      fake.setBehaviour('ok');
      await chan.say(`/byok test ${id}`);
      await waitFor(() => chan.results.filter((x) => x.model_id === id).length === 2, 15_000, 'ok after /byok test');
      expect(chan.results.filter((x) => x.model_id === id)[1].outcome).toBe('ok');
      expect(await app.vault.has(WS, env)).toBe(true);
      expect(await app.submissions.forModel(WS, id)).toBeUndefined();
    });

    it('no plaintext key in job payloads, the data dir, Redis or the logs', async () => {
      await app.validateRunner.drain();
      await app.notifyRunner.drain();
      expect(keysUsed.length).toBeGreaterThanOrEqual(4);
      expect(payloads.length).toBeGreaterThanOrEqual(4);
      const haystacks: Array<[string, string]> = [['payloads', JSON.stringify(payloads)], ['logs', logs.text()], ...readTree(dataDir)];
      if (redis) {
        const dump = await dumpPrefix(redis, prefix);
        expect(dump.size).toBeGreaterThan(0);
        for (const [k, v] of dump) haystacks.push([`redis ${k}`, v]);
      }
      for (const key of keysUsed) {
        const body = key.slice('sk-proj-'.length);
        const forms = [body, Buffer.from(key).toString('base64').slice(4, 30), Buffer.from(key).toString('hex').slice(8, 48)];
        for (const [where, text] of haystacks) for (const f of forms) expect(text.includes(f), `${where} contains the key`).toBe(false);
      }
    });
  });
}
