import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { LogCapture, issueFormLink } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const WS = 'tg:42';

// The production retry policy (5 attempts, 1 s → 30 s backoff) with a short time budget:
// without the budget a hanging vendor would hold the job for 5 tries × the probe timeout
// plus the backoffs (here 5 × 1.5 s + 15 s; in production 5 × 30 s + 15 s = the 168 s seen).
describe('validation is bounded in time and says what the vendor said', () => {
  let app: App;
  let dataDir: string;
  let fake: FakeVendor;
  let chan: RecordingChannel;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ retryAfterSeconds: 30 });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-budget-'));
    const config = loadConfig({
      BYOK_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      BYOK_ALLOW_PRIVATE_BASE_URLS: '1',
      BYOK_VALIDATE_PROBE_TIMEOUT_MS: '1500',
      BYOK_VALIDATE_BUDGET_MS: '3000',
    });
    app = await createApp({ config, logger: createLogger({ level: 'warn', destination: new LogCapture() }), retry: { attempts: 5, backoffMs: 1000, maxBackoffMs: 30_000 } });
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await app.stop();
    await fake.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  afterEach(() => fake.setBehaviour('ok'));

  async function submit(): Promise<{ id: string; statusUrl: string; at: number }> {
    const added = await app.registry.add(WS, { upstream_model: 'gpt-b', base_url: fake.baseUrl, api_key_env: 'BUDGET_API_KEY', name: `b ${randomBytes(3).toString('hex')}` });
    if (!added.ok) throw new Error(added.error);
    const req = { url: await issueFormLink(app, WS, added.model, '42') };
    const at = Date.now();
    const res = await submitForm(req.url, { BUDGET_API_KEY: 'sk-' + randomBytes(20).toString('hex') });
    expect(res.status).toBe(202);
    return { id: added.model.id, statusUrl: res.statusUrl, at };
  }

  it('a hanging vendor: pending_retry within the budget, the key kept sealed', async () => {
    fake.setBehaviour('hang', 1000);
    const { id, statusUrl, at } = await submit();
    const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 20_000, 'pending_retry notice');
    const took = Date.now() - at;
    expect(r.outcome).toBe('pending_retry');
    expect(r.text).toMatch(/could not be reached/);
    expect(r.text).toMatch(new RegExp(`/byok test ${id}`));
    // Budget 3 s + one late try; far below 5 × 1.5 s + 15 s of backoff.
    expect(took).toBeLessThan(10_000);
    expect(await app.submissions.forModel(WS, id)).toBeDefined();
    const status = await (await fetch(statusUrl)).json();
    expect(status.code).toBe('pending_retry');
    expect(status.message).toMatch(/did not answer within/);
  });

  it('a 429 is reported as rate limiting, with the Retry-After, not as unreachable', async () => {
    fake.setBehaviour('rate_limited', 1000);
    const { id, statusUrl } = await submit();
    const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'rate-limited notice');
    expect(r.outcome).toBe('pending_retry');
    expect(r.text).toMatch(/429 \(rate limited\)/);
    expect(r.text).toMatch(/wait 30 s/);
    expect(r.text).not.toMatch(/could not be reached/);
    const status = await (await fetch(statusUrl)).json();
    expect(status.message).toMatch(/HTTP 429 \(rate limited\); it asks to retry after 30 s/);
    expect(status.what_to_do).toBe('wait');
  });

  it('a 503 is reported as the vendor answering 503, not as unreachable', async () => {
    fake.setBehaviour('overloaded', 1000);
    const { id, statusUrl } = await submit();
    const r = await waitFor(() => chan.results.find((x) => x.model_id === id), 15_000, 'vendor-unavailable notice');
    expect(r.outcome).toBe('pending_retry');
    expect(r.text).toMatch(/answered HTTP 503/);
    expect(r.text).not.toMatch(/could not be reached/);
    const status = await (await fetch(statusUrl)).json();
    expect(status.message).toMatch(/HTTP 503/);
    const got = await app.registry.get(WS, id);
    expect(got.ok && got.model.status).toBe('validating');
  });

  it("the workers' periodic sweep leaves answered (pending_retry) submissions to /byok test", async () => {
    expect((await app.submissions.list(WS)).length).toBe(3);
    expect(await app.requeuePending({ unansweredOnly: true })).toBe(0);
  });
});
