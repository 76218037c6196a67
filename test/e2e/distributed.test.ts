import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/registry/index.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { dumpPrefix } from '../support/redis.ts';
import { startFakeBotApi, type FakeBotApi } from '../support/fake-bot-api.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, submitForm, waitFor } from '../support/form.ts';
import { deliverUpdate, deploymentEnv, privateTextUpdate } from '../support/webhook.ts';
import { startPrivateRedis, startProcess, startRoundRobinProxy, waitForOutput, type PrivateRedis, type ProcHandle, type RoundRobinProxy } from '../support/processes.ts';

/**
 * Distributed mode as an operator runs it: two web processes (`npm start`, Telegram in
 * webhook mode) behind a round-robin proxy, two `npm run worker` processes, one Redis (a
 * private redis-server with an append-only file, so the test can restart it), a fake
 * Telegram Bot API and a fake OpenAI-compatible vendor. Users talk to the bot by webhook
 * updates posted to the proxy, as Telegram would (re-sending on any non-2xx answer), and
 * open the secure form through the proxy.
 */

const TOKEN = '700001:distributed-test-token';
const SECRET = 'dist-webhook-secret';
const MASTER = randomBytes(32).toString('base64');
const PREFIX = 'byokdist:';
const REPLY = 'Distributed answers arrive whole, whichever process streams them to the user.';

let redis: PrivateRedis;
let vendor: FakeVendor;
let botApi: FakeBotApi;
let proxy: RoundRobinProxy;
let dataDir: string;
const webPorts: number[] = [];
const webs: ProcHandle[] = [];
const workers: ProcHandle[] = [];
const allProcs: ProcHandle[] = [];
let store: RedisStore;
let updateId = 1000;

function env(extra: Record<string, string> = {}): Record<string, string> {
  const d = { redisUrl: redis.url, prefix: PREFIX, masterKey: MASTER, dataDir, proxyUrl: proxy.url, botToken: TOKEN, botApiUrl: botApi.url, webhookSecret: SECRET };
  return deploymentEnv(d, {
    // Behind the proxy: the client address is the X-Forwarded-For entry (per-IP form limits).
    TRUST_PROXY: '1',
    // SIGTERM: answers may finish for 3 s, then they are cut off with a notice.
    BYOK_DRAIN_SECONDS: '3',
    ...extra,
  });
}

function startWeb(i: number): ProcHandle {
  const p = startProcess(`web${i}`, 'src/main.ts', env({ PORT: String(webPorts[i]) }));
  webs[i] = p;
  allProcs.push(p);
  return p;
}

function startWorker(i: number): ProcHandle {
  const p = startProcess(`worker${i}`, 'worker/main.ts', env({ PORT: '0' }));
  workers[i] = p;
  allProcs.push(p);
  return p;
}

/** Posts one update through the proxy as Telegram does: any non-2xx or network error is re-sent later. */
const deliver = (update: Record<string, unknown>, opts: { maxTries?: number } = {}) => deliverUpdate(`${proxy.url}/telegram/webhook`, SECRET, update, opts);
const textUpdate = (user: number, text: string, id = ++updateId) => privateTextUpdate(user, text, id);

/** Each user's browser has its own address (TEST-NET-3 labels, never contacted). */
const clientOf = (user: number) => ({ 'x-forwarded-for': `203.0.113.${user % 250}` });
const texts = (user: number) => botApi.messages(user).map((m) => m.text);
const formUrlOf = (user: number): string | undefined => {
  for (const m of botApi.messages(user)) {
    const url = m.markup?.inline_keyboard?.[0]?.[0]?.url as string | undefined;
    if (url?.includes('/s/')) return url;
  }
  return undefined;
};
const keyOf = (user: number) => `sk-dist${user}-${createHashHex(user)}`;
function createHashHex(n: number): string {
  return Buffer.from(`k${n}`.padEnd(24, 'x')).toString('hex');
}

async function addModel(user: number): Promise<string> {
  const registry = createRegistry({ store });
  const res = await registry.add(`tg:${user}`, { upstream_model: 'gpt-dist', base_url: vendor.baseUrl, api_key_env: 'DIST_API_KEY', name: `Dist ${user}` });
  if (!res.ok) throw new Error(res.error);
  return res.model.id;
}

/** `/byok key <id>` in chat, the card's one-time link, the sealed form posted through the proxy. */
async function requestAndSubmit(user: number, modelId: string): Promise<{ status: number }> {
  await deliver(textUpdate(user, `/byok key ${modelId}`));
  const url = await waitFor(() => formUrlOf(user), 15_000, `the form link for ${user}`);
  const r = await submitForm(url, { DIST_API_KEY: keyOf(user) }, { headers: clientOf(user) });
  return { status: r.status };
}

const verifiedCount = (user: number) => botApi.of('editMessageText').concat(botApi.of('sendMessage')).filter((c) => String(c.payload.chat_id) === String(user) && /key verified and stored/.test(String(c.payload.text))).length;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-dist-'));
  redis = await startPrivateRedis();
  vendor = await startFakeOpenAI({ reply: REPLY });
  vendor.setKeys(Array.from({ length: 500 }, (_, i) => keyOf(10_000 + i)));
  botApi = await startFakeBotApi();
  webPorts.push(await freePort(), await freePort());
  proxy = await startRoundRobinProxy(webPorts);
  store = new RedisStore(redis.url, PREFIX);
  startWeb(0);
  startWeb(1);
  startWorker(0);
  startWorker(1);
  await Promise.all([...webs.map((p) => waitForOutput(p, 'byok-bot started', 60_000)), ...workers.map((p) => waitForOutput(p, 'byok worker started', 60_000))]);
}, 120_000);

afterAll(async () => {
  for (const p of allProcs) p.kill('SIGKILL');
  await Promise.all(allProcs.map((p) => p.exited));
  await store?.close();
  await proxy?.close();
  await botApi?.close();
  await vendor?.close();
  await redis?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('distributed mode: two web processes, two workers, one Redis', () => {
  it('a user adds a key through the form and chats; every step may land on another process', async () => {
    const users = Array.from({ length: 12 }, (_, i) => 10_000 + i);
    const ids = new Map<number, string>();
    for (const u of users) ids.set(u, await addModel(u));
    const results = await Promise.all(users.map((u) => requestAndSubmit(u, ids.get(u)!)));
    expect(results.every((r) => r.status === 202)).toBe(true);
    await waitFor(() => users.every((u) => verifiedCount(u) >= 1), 30_000, 'every user notified');
    for (const u of users) {
      await deliver(textUpdate(u, `/model custom/${ids.get(u)}`));
      await deliver(textUpdate(u, 'hello there'));
    }
    await waitFor(() => users.every((u) => texts(u).some((t) => t.includes(REPLY))), 30_000, 'every answer').catch((e) => {
      throw new Error(`${(e as Error).message}; user ${users[0]} sees ${JSON.stringify(texts(users[0]))}\n${webs.map((w) => w.output().slice(-1500)).join('\n')}`);
    });
    // Both web processes served (the proxy alternates), each key was probed once, each user told once.
    expect(proxy.counts.every((n) => n > 0)).toBe(true);
    for (const u of users) {
      expect(verifiedCount(u)).toBe(1);
      expect(vendor.requests.filter((r) => r.key === keyOf(u) && r.body?.stream !== true)).toHaveLength(1);
    }
  }, 120_000);

  it('an update delivered twice (to both processes) is answered once and calls the vendor once', async () => {
    const u = 10_050;
    const id = await addModel(u);
    await requestAndSubmit(u, id);
    await waitFor(() => verifiedCount(u) >= 1, 20_000, 'verified');
    await deliver(textUpdate(u, `/model custom/${id}`));
    const upd = textUpdate(u, 'only once please');
    const before = vendor.requests.filter((r) => r.key === keyOf(u) && r.body?.stream === true).length;
    // Concurrent: the proxy sends one copy to each web process. Then a late re-delivery.
    await Promise.all([deliver(upd), deliver(upd)]);
    await deliver(upd);
    await waitFor(() => texts(u).some((t) => t.includes(REPLY)), 20_000, 'the answer');
    await new Promise((r) => setTimeout(r, 1500));
    expect(texts(u).filter((t) => t.includes(REPLY))).toHaveLength(1);
    expect(vendor.requests.filter((r) => r.key === keyOf(u) && r.body?.stream === true).length - before).toBe(1);
  }, 60_000);

  it('sixty users streaming at once share one Bot API budget and all get whole answers', async () => {
    const users = Array.from({ length: 60 }, (_, i) => 10_100 + i);
    const ids = new Map<number, string>();
    for (const u of users) ids.set(u, await addModel(u));
    await Promise.all(users.map((u) => requestAndSubmit(u, ids.get(u)!)));
    await waitFor(() => users.every((u) => verifiedCount(u) >= 1), 60_000, 'every user verified');
    await Promise.all(users.map((u) => deliver(textUpdate(u, `/model custom/${ids.get(u)}`))));
    await new Promise((r) => setTimeout(r, 2500)); // let the budget refill
    vendor.setChunkDelay(15); // ~12 words: a stream of ~0.2 s per user
    const since = Date.now();
    const t0 = Date.now();
    await Promise.all(users.map((u) => deliver(textUpdate(u, 'stream to me'))));
    await waitFor(() => users.every((u) => texts(u).filter((t) => t.includes(REPLY)).length >= 1), 60_000, 'every streamed answer');
    const took = Date.now() - t0;
    vendor.setChunkDelay(0);
    const peak = botApi.maxCallsPerSecond(since);
    // One budget for the bot token across both processes (Telegram allows ~30 messages/s).
    expect(peak).toBeLessThanOrEqual(40);
    // 60 final messages at ~30/s need ~2 s; previews never hold finals back for long.
    expect(took).toBeLessThan(30_000);
  }, 180_000);

  it('kill -9 of a worker during a burst: every key stored once, every user told once', async () => {
    const users = Array.from({ length: 24 }, (_, i) => 10_200 + i);
    const ids = new Map<number, string>();
    for (const u of users) ids.set(u, await addModel(u));
    vendor.setLatency(400); // probes in flight when the worker dies
    const burst = Promise.all(users.map((u) => requestAndSubmit(u, ids.get(u)!)));
    await waitFor(() => vendor.requests.filter((r) => users.some((u) => r.key === keyOf(u))).length >= 4, 30_000, 'probes in flight');
    workers[0].kill('SIGKILL');
    await workers[0].exited;
    // The worker process itself is gone (no wrapper left it running).
    expect(() => process.kill(workers[0].child.pid!, 0)).toThrow();
    const restarted = startWorker(0);
    await waitForOutput(restarted, 'byok worker started', 60_000);
    await burst;
    await waitFor(() => users.every((u) => verifiedCount(u) >= 1), 60_000, 'every user verified after the crash').catch((e) => {
      const missing = users.filter((u) => verifiedCount(u) < 1);
      throw new Error(`${(e as Error).message}: ${missing.length} missing, e.g. ${missing[0]} sees ${JSON.stringify(texts(missing[0]))}\n${[...workers, ...webs].map((w) => `--- ${w.name}\n${w.output().slice(-2500)}`).join('\n')}`);
    });
    vendor.setLatency(0);
    await new Promise((r) => setTimeout(r, 1500));
    const check = new Redis(redis.url);
    try {
      for (const u of users) {
        expect(verifiedCount(u)).toBe(1);
        const vault = await check.get(`${PREFIX}doc:{tg:${u}}:vault`);
        expect(vault, `vault of ${u}`).toBeTruthy();
      }
    } finally {
      check.disconnect();
    }
  }, 180_000);

  it('SIGTERM of a web process mid-stream: it stops within the bound and no user is left without an answer or a notice', async () => {
    const users = Array.from({ length: 8 }, (_, i) => 10_300 + i);
    const ids = new Map<number, string>();
    for (const u of users) ids.set(u, await addModel(u));
    await Promise.all(users.map((u) => requestAndSubmit(u, ids.get(u)!)));
    await waitFor(() => users.every((u) => verifiedCount(u) >= 1), 60_000, 'verified');
    await Promise.all(users.map((u) => deliver(textUpdate(u, `/model custom/${ids.get(u)}`))));
    vendor.setChunkDelay(400); // ~5 s streams
    const sends = Promise.all(users.map((u) => deliver(textUpdate(u, 'a long answer please'))));
    await waitFor(() => vendor.requests.filter((r) => r.body?.stream === true && users.some((u) => r.key === keyOf(u))).length >= users.length, 20_000, 'streams started');
    const t0 = Date.now();
    webs[0].kill('SIGTERM');
    const exit = await webs[0].exited;
    const stopMs = Date.now() - t0;
    await sends;
    vendor.setChunkDelay(0);
    expect(exit.code, webs[0].output().slice(-4000)).toBe(0);
    // 3 s of drain, the cut-off notices, closing: well inside the 30 s shutdown bound.
    expect(stopMs).toBeLessThan(15_000);
    const cutOff = (t: string) => /restarted while answering/i.test(t);
    await waitFor(() => users.every((u) => texts(u).some((t) => t.includes(REPLY) || cutOff(t))), 30_000, 'an answer or a notice for every user');
    // The streams on the stopped process (about half) were cut and said so; the others finished.
    const cut = users.filter((u) => texts(u).some(cutOff));
    expect(cut.length).toBeGreaterThan(0);
    expect(cut.length).toBeLessThan(users.length);
    const restarted = startWeb(0);
    await waitForOutput(restarted, 'byok-bot started', 60_000);
  }, 180_000);

  it('Redis restarted during form submissions and chat: a clear answer at once, nothing acknowledged is lost', async () => {
    const u = 10_400;
    const id = await addModel(u);
    await deliver(textUpdate(u, `/byok key ${id}`));
    const url = await waitFor(() => formUrlOf(u), 15_000, 'form link');
    await redis.stop();
    let during: { status: number };
    let took: number;
    const chatDuring = textUpdate(u, 'are you there during the outage?');
    let webhookDuring: { status: number; ms: number };
    let ready: { status: number; state?: string };
    try {
      const t0 = Date.now();
      during = await submitForm(url, { DIST_API_KEY: keyOf(u) }, { headers: clientOf(u) }).catch((e: Error) => ({ status: /answered (\d+)/.exec(e.message)?.[1] ? Number(/answered (\d+)/.exec(e.message)![1]) : 0 }));
      took = Date.now() - t0;
      // A webhook update is refused within seconds (Telegram re-sends it), not held.
      const t1 = Date.now();
      const wh = await fetch(`${proxy.url}/telegram/webhook`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body: JSON.stringify(chatDuring) });
      await wh.arrayBuffer();
      webhookDuring = { status: wh.status, ms: Date.now() - t1 };
      // The load balancer sees the process is not ready.
      const rz = await fetch(`http://127.0.0.1:${webPorts[1]}/readyz`);
      ready = { status: rz.status, state: ((await rz.json()) as { state?: string }).state };
      await new Promise((r) => setTimeout(r, 2000)); // an outage of a few seconds
    } finally {
      await redis.start();
    }
    expect(webhookDuring.status).toBe(503);
    expect(webhookDuring.ms).toBeLessThan(10_000);
    expect(ready).toEqual({ status: 503, state: 'store_unreachable' });
    // Never a hang for the whole outage: an answer within a few seconds (busy, try again).
    expect(took).toBeLessThan(12_000);
    expect(during.status).toBe(503);
    // The processes reconnect by themselves; the same link still works.
    const after = await waitFor(
      async () => {
        const r = await submitForm(url, { DIST_API_KEY: keyOf(u) }, { headers: clientOf(u) }).catch(() => undefined);
        return r && r.status !== 503 && r.status !== 502 ? r : undefined;
      },
      60_000,
      'the form to be accepted after the restart',
    );
    expect(after.status).toBe(202);
    await waitFor(() => verifiedCount(u) === 1, 30_000, 'verified after the restart');
    await deliver(textUpdate(u, `/model custom/${id}`));
    await deliver(textUpdate(u, 'still there?'));
    await waitFor(() => texts(u).some((t) => t.includes(REPLY)), 30_000, 'an answer after the restart');
    // Telegram re-sends the update refused during the outage: it is answered once.
    await deliver(chatDuring);
    await waitFor(() => texts(u).filter((t) => t.includes(REPLY)).length === 2, 30_000, 'the re-sent update answered');
  }, 180_000);

  it('no process printed a key, and Redis holds none', { timeout: 60_000 }, async () => {
    const keys = [10_000, 10_050, 10_200, 10_400].map(keyOf);
    for (const p of allProcs) for (const k of keys) expect(p.output().includes(k), `${p.name} printed a key`).toBe(false);
    const check = new Redis(redis.url);
    try {
      const dump = await dumpPrefix(check, PREFIX);
      expect(dump.size).toBeGreaterThan(0);
      for (const [k, v] of dump) {
        for (const key of keys) expect(v.includes(key) || v.includes(Buffer.from(key).toString('base64')), `${k} holds a key`).toBe(false);
      }
    } finally {
      check.disconnect();
    }
  });
});
