/**
 * Secure-form submission → key validated, stored sealed, user notified: latency and
 * throughput through both job runners, vendor time excluded (the probe answers ok at once),
 * printed against a bare Fastify POST measured in the same process.
 *   npx tsx bench/validate.bench.ts        (REDIS_URL defaults to redis://127.0.0.1:6379)
 * Targets (issue 3): p50 ≤ 20 ms through BullMQ; ≥ 1,000 validations/s with 100 concurrent.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import sodium from 'libsodium-wrappers';
import { Redis } from 'ioredis';
import { createApp, type App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import type { ChannelAdapter, KeyResult } from '../channels/types.ts';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const SEQUENTIAL = 200;
const CONCURRENT = 100;
const ROUNDS = 5;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves the waiter of a model when its key result is delivered. */
class WaitingChannel implements ChannelAdapter {
  readonly name = 'bench';
  readonly capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: 4096 };
  readonly waiters = new Map<string, (r: KeyResult) => void>();
  async start() {}
  async stop() {}
  async send(chat: any) {
    return { chat, messageId: '1' };
  }
  async requestEnvInput(chat: any) {
    return { chat, messageId: '1' };
  }
  async keyResult(_chat: any, r: KeyResult) {
    this.waiters.get(`${r.workspace}/${r.model_id}`)?.(r);
  }
}

async function setup(mode: 'inprocess' | 'bullmq'): Promise<{ app: App; chan: WaitingChannel; base: string; done: () => Promise<void> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-bench-'));
  const port = await freePort();
  const prefix = `byokbench:${randomBytes(4).toString('hex')}:`;
  const env: Record<string, string> = { BYOK_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' };
  if (mode === 'bullmq') Object.assign(env, { REDIS_URL, BYOK_REDIS_PREFIX: prefix });
  const config = loadConfig(env);
  const app = await createApp({
    config,
    logger: createLogger({ level: 'warn' }),
    runWorker: true,
    probe: async () => ({ outcome: 'ok' }),
    rateLimits: { pageGetsPerIp: 1e9, statusGetsPerIp: 1e9, assetGetsPerIp: 1e9, postsPerIp: 1e9 },
  });
  const chan = new WaitingChannel();
  app.addChannel(chan);
  const { url } = await app.start();
  return {
    app,
    chan,
    base: url,
    done: async () => {
      await app.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (mode === 'bullmq') {
        const r = new Redis(REDIS_URL);
        const keys = await r.keys(`${prefix}*`);
        if (keys.length) await r.del(...keys);
        await r.quit();
      }
    },
  };
}

/** Prepares n workspaces each with a model and a live form token, and the sealed bodies. */
async function prepare(app: App, n: number, tag: string) {
  await sodium.ready;
  const { id: keyId, publicKey } = await app.boxKeys.current();
  const items = [];
  for (let i = 0; i < n; i++) {
    const ws = `tg:${tag}${String(i).padStart(4, '0')}`;
    const added = await app.registry.add_template(ws, 'openai');
    if (!added.ok) throw new Error(added.error);
    const req = await app.requests.request({
      workspace: ws,
      channel: { channel: 'bench', chat_id: String(i) },
      env_vars: ['OPENAI_API_KEY'],
      reason: 'bench',
      model_id: added.model.id,
      vendor: 'openai',
      vendor_name: 'OpenAI',
      model_name: added.model.name,
      homepage: 'https://platform.openai.com/api-keys',
      force: true,
    });
    if (req.status !== 'issued') throw new Error('not issued');
    const key = 'sk-proj-' + randomBytes(30).toString('base64url');
    const sealed = sodium.to_base64(sodium.crypto_box_seal(sodium.from_string(key), publicKey), sodium.base64_variants.ORIGINAL);
    items.push({ ws, modelId: added.model.id, path: new URL(req.url).pathname, body: JSON.stringify({ key_id: keyId, sealed: { OPENAI_API_KEY: sealed } }) });
  }
  return items;
}

async function submitAndWait(base: string, chan: WaitingChannel, it: { ws: string; modelId: string; path: string; body: string }): Promise<number> {
  const t0 = performance.now();
  const notified = new Promise<KeyResult>((r) => chan.waiters.set(`${it.ws}/${it.modelId}`, r));
  const res = await fetch(base + it.path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: it.body });
  if (res.status !== 202) throw new Error(`POST answered ${res.status}`);
  await res.arrayBuffer();
  const r = await notified;
  if (r.outcome !== 'ok') throw new Error(r.outcome);
  return performance.now() - t0;
}

async function baseline(): Promise<{ p50: number; p99: number; perSec: number }> {
  const f = Fastify();
  f.post('/s/:t', async (req) => ({ ok: true, n: (req.body as { body?: string })?.body?.length ?? 0 }));
  const url = await f.listen({ port: 0, host: '127.0.0.1' });
  const body = JSON.stringify({ key_id: 'x', sealed: { K: 'a'.repeat(120) } });
  const one = async () => {
    const t0 = performance.now();
    const r = await fetch(url + '/s/abc', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await r.arrayBuffer();
    return performance.now() - t0;
  };
  for (let i = 0; i < 50; i++) await one();
  const lat: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) lat.push(await one());
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENT * ROUNDS }, one));
  const perSec = (CONCURRENT * ROUNDS) / ((performance.now() - t0) / 1000);
  await f.close();
  return { p50: pct(lat, 50), p99: pct(lat, 99), perSec };
}

async function run(mode: 'inprocess' | 'bullmq') {
  const { app, chan, base, done } = await setup(mode);
  try {
    const warm = await prepare(app, 20, '1');
    for (const it of warm) await submitAndWait(base, chan, it);
    const seq = await prepare(app, SEQUENTIAL, '2');
    const lat: number[] = [];
    for (const it of seq) lat.push(await submitAndWait(base, chan, it));
    let best = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const batch = await prepare(app, CONCURRENT, `3${r}`);
      const t0 = performance.now();
      await Promise.all(batch.map((it) => submitAndWait(base, chan, it)));
      best = Math.max(best, CONCURRENT / ((performance.now() - t0) / 1000));
    }
    return { p50: pct(lat, 50), p99: pct(lat, 99), perSec: best };
  } finally {
    await done();
  }
}

const base = await baseline();
console.log(`baseline (bare Fastify POST): p50 ${base.p50.toFixed(2)} ms, p99 ${base.p99.toFixed(2)} ms, ${base.perSec.toFixed(0)} req/s`);
for (const mode of ['inprocess', 'bullmq'] as const) {
  const r = await run(mode);
  console.log(
    `${mode.padEnd(9)} form POST → ok stored + notified: p50 ${r.p50.toFixed(2)} ms (${(r.p50 / base.p50).toFixed(1)}× baseline), ` +
      `p99 ${r.p99.toFixed(2)} ms (${(r.p99 / base.p99).toFixed(1)}×), ${r.perSec.toFixed(0)} validations/s with ${CONCURRENT} concurrent ` +
      `(${(r.perSec / base.perSec).toFixed(2)}× baseline req/s)` +
      (mode === 'bullmq' ? ` — targets p50 ≤ 20 ms: ${r.p50 <= 20 ? 'met' : 'NOT met'}; ≥ 1000/s: ${r.perSec >= 1000 ? 'met' : 'NOT met'}` : ''),
  );
}
process.exit(0);
