/**
 * Secure-form submission → key validated, stored sealed, user notified: latency and
 * throughput through both job runners, vendor time excluded (the probe answers ok at once),
 * printed against a bare Fastify POST measured the same way.
 *   npx tsx bench/validate.bench.ts        (REDIS_URL defaults to redis://127.0.0.1:6379)
 *   BENCH_MODES=bullmq BENCH_N=1000 BENCH_ROUNDS=3 npx tsx bench/validate.bench.ts
 * Targets (issue 3): p50 ≤ 20 ms through BullMQ; ≥ 1,000 validations/s with 100 concurrent.
 *
 * The load generator (the POSTs and the waiting for the notification) runs in a worker
 * thread, as browsers are other machines: the server process only serves. The bench
 * channel posts each delivered key result to the generator, which stops that submission's
 * clock when it arrives. Latency: submissions one at a time. Throughput: a closed loop of
 * `CONCURRENT` submissions in flight over `N` submissions (each in its own workspace), best
 * and median of `ROUNDS`. The baseline (a bare Fastify POST route in this process) goes
 * through the same generator, with the response as its "notification".
 * BENCH_PROFILE=<dir> writes a CPU profile of this process's main thread covering only the
 * throughput rounds (not the preparation), one file per mode.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { Session } from 'node:inspector/promises';
import Fastify from 'fastify';
import sodium from 'libsodium-wrappers';
import { Redis } from 'ioredis';
import { createApp, type App } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import type { ChannelAdapter, KeyResult } from '../channels/types.ts';

const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const SEQUENTIAL = Number(process.env.BENCH_SEQ ?? 200);
const CONCURRENT = 100;
const N = Number(process.env.BENCH_N ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MODES = (process.env.BENCH_MODES ?? 'inprocess,bullmq').split(',') as Array<'inprocess' | 'bullmq'>;
const PROFILE_DIR = process.env.BENCH_PROFILE;

/** Profiles only the code between resume() and pause() calls (the measured rounds). */
class Profiler {
  private session?: Session;
  async open(): Promise<void> {
    if (!PROFILE_DIR) return;
    this.session = new Session();
    this.session.connect();
    await this.session.post('Profiler.enable');
  }
  async resume(): Promise<void> {
    await this.session?.post('Profiler.start');
  }
  async pause(): Promise<unknown> {
    if (!this.session) return undefined;
    return (await this.session.post('Profiler.stop')).profile;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const median = (xs: number[]) => pct(xs, 50);

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The generator (CommonJS, evaluated in a worker thread). Messages in:
 *   { run: id, url, items: [{ key, path, body }], concurrency, waitNotify }  → { done: id, lat: [...], ms }
 *   { notified: key, outcome }                                              (from the bench channel)
 * With waitNotify a submission ends when its notification arrives (after a 202), else when
 * the response is read (200).
 */
const GENERATOR = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent, request } = require(workerData.undici);
const agent = new Agent({ connections: workerData.connections, pipelining: 1, keepAliveTimeout: 30000 });
const waiters = new Map();
const early = new Map();
parentPort.on('message', (m) => {
  if (m.notified !== undefined) {
    const w = waiters.get(m.notified);
    if (w) { waiters.delete(m.notified); w(m.outcome); } else early.set(m.notified, m.outcome);
    return;
  }
  run(m).then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage({ done: m.run, error: String(e && e.stack || e) }));
});
function notifiedP(key) {
  if (early.has(key)) { const o = early.get(key); early.delete(key); return Promise.resolve(o); }
  return new Promise((r) => waiters.set(key, r));
}
async function one(url, it, waitNotify) {
  const t0 = performance.now();
  const n = waitNotify ? notifiedP(it.key) : undefined;
  const res = await request(url + it.path, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: it.body });
  await res.body.dump();
  if (res.statusCode !== (waitNotify ? 202 : 200)) throw new Error('POST answered ' + res.statusCode);
  if (n) { const outcome = await n; if (outcome !== 'ok') throw new Error('outcome ' + outcome); }
  return performance.now() - t0;
}
async function run({ run: id, url, items, concurrency, waitNotify }) {
  const lat = new Array(items.length);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      lat[i] = await one(url, items[i], waitNotify);
    }
  }));
  return { done: id, lat, ms: performance.now() - t0 };
}
`;

interface Item {
  key: string;
  path: string;
  body: string;
}
interface RunResult {
  lat: number[];
  ms: number;
}

class Generator {
  private readonly w: Worker;
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();
  constructor() {
    this.w = new Worker(GENERATOR, { eval: true, workerData: { connections: CONCURRENT, undici: createRequire(import.meta.url).resolve('undici') } });
    this.w.on('message', (m: { done: number; lat: number[]; ms: number; error?: string }) => {
      const p = this.pending.get(m.done);
      if (!p) return;
      this.pending.delete(m.done);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m);
    });
    this.w.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
    });
  }
  notify(key: string, outcome: string): void {
    this.w.postMessage({ notified: key, outcome });
  }
  run(url: string, items: Item[], concurrency: number, waitNotify: boolean): Promise<RunResult> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.w.postMessage({ run: id, url, items, concurrency, waitNotify });
    });
  }
  async close(): Promise<void> {
    await this.w.terminate();
  }
}

/** Forwards each delivered key result to the generator (the submission's clock stops there). */
class SignallingChannel implements ChannelAdapter {
  readonly name = 'bench';
  readonly capabilities = { deleteInbound: false, editMessages: false, buttons: false, maxMessageLength: 4096 };
  constructor(private readonly gen: Generator) {}
  async start() {}
  async stop() {}
  async send(chat: any) {
    return { chat, messageId: '1' };
  }
  async requestEnvInput(chat: any) {
    return { chat, messageId: '1' };
  }
  async keyResult(_chat: any, r: KeyResult) {
    this.gen.notify(`${r.workspace}/${r.model_id}`, r.outcome);
  }
}

async function setup(mode: 'inprocess' | 'bullmq', gen: Generator): Promise<{ app: App; base: string; done: () => Promise<void> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-bench-'));
  const port = await freePort();
  const prefix = `byokbench:${randomBytes(4).toString('hex')}:`;
  const env: Record<string, string> = { BYOK_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: 'warn' };
  if (mode === 'bullmq') Object.assign(env, { REDIS_URL, BYOK_REDIS_PREFIX: prefix, BYOK_MASTER_KEY: randomBytes(32).toString('base64') });
  const config = loadConfig(env);
  const app = await createApp({
    config,
    logger: createLogger({ level: 'warn' }),
    runWorker: true,
    probe: async () => ({ outcome: 'ok' }),
    rateLimits: { pageGetsPerIp: 1e9, statusGetsPerIp: 1e9, assetGetsPerIp: 1e9, postsPerIp: 1e9 },
  });
  app.addChannel(new SignallingChannel(gen));
  const { url } = await app.start();
  return {
    app,
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
async function prepare(app: App, n: number, tag: string): Promise<Item[]> {
  await sodium.ready;
  const { id: keyId, publicKey } = await app.boxKeys.current();
  const items: Item[] = [];
  for (let i = 0; i < n; i++) {
    const ws = `tg:${tag}${String(i).padStart(5, '0')}`;
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
    items.push({ key: `${ws}/${added.model.id}`, path: new URL(req.url).pathname, body: JSON.stringify({ key_id: keyId, sealed: { OPENAI_API_KEY: sealed } }) });
  }
  return items;
}

interface Numbers {
  p50: number;
  p99: number;
  perSec: number[];
  /** CPU per submission in the throughput rounds: this process (server, worker, generator thread), Redis. */
  cpuMs?: { node: number; redis: number };
}

/** Redis server CPU seconds so far (user + sys), for the CPU-per-validation line. */
async function redisCpu(r: Redis): Promise<number> {
  const info = await r.info('cpu');
  const get = (k: string) => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

async function baseline(gen: Generator): Promise<Numbers> {
  const f = Fastify({ logger: false });
  f.post('/s/:t', async (req) => ({ ok: true, n: (req.body as { sealed?: { K?: string } })?.sealed?.K?.length ?? 0 }));
  const url = await f.listen({ port: 0, host: '127.0.0.1' });
  const body = JSON.stringify({ key_id: 'x', sealed: { K: 'a'.repeat(120) } });
  const items = (n: number): Item[] => Array.from({ length: n }, (_, i) => ({ key: String(i), path: '/s/abc', body }));
  await gen.run(url, items(200), 1, false);
  await gen.run(url, items(N), CONCURRENT, false);
  const seq = await gen.run(url, items(SEQUENTIAL), 1, false);
  const perSec: number[] = [];
  let nodeUs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const c0 = process.cpuUsage();
    const out = await gen.run(url, items(N), CONCURRENT, false);
    const c1 = process.cpuUsage(c0);
    nodeUs += c1.user + c1.system;
    perSec.push(N / (out.ms / 1000));
  }
  await f.close();
  return { p50: pct(seq.lat, 50), p99: pct(seq.lat, 99), perSec, cpuMs: { node: nodeUs / 1000 / (N * ROUNDS), redis: 0 } };
}

async function run(mode: 'inprocess' | 'bullmq', gen: Generator): Promise<Numbers> {
  const { app, base, done } = await setup(mode, gen);
  try {
    await gen.run(base, await prepare(app, 50, '1'), 1, true);
    await gen.run(base, await prepare(app, 200, '2'), CONCURRENT, true);
    const seq = await gen.run(base, await prepare(app, SEQUENTIAL, '3'), 1, true);
    const perSec: number[] = [];
    const redis = new Redis(REDIS_URL);
    let nodeUs = 0;
    let redisS = 0;
    const profiler = new Profiler();
    await profiler.open();
    try {
      for (let r = 0; r < ROUNDS; r++) {
        const batch = await prepare(app, N, `4${r}`);
        const c0 = process.cpuUsage();
        const r0 = await redisCpu(redis);
        await profiler.resume();
        const out = await gen.run(base, batch, CONCURRENT, true);
        const profile = await profiler.pause();
        if (profile) fs.writeFileSync(path.join(PROFILE_DIR!, `validate-${mode}-round${r}.cpuprofile`), JSON.stringify(profile));
        const c1 = process.cpuUsage(c0);
        redisS += (await redisCpu(redis)) - r0;
        nodeUs += c1.user + c1.system;
        perSec.push(N / (out.ms / 1000));
      }
    } finally {
      await redis.quit();
    }
    const n = N * ROUNDS;
    return { p50: pct(seq.lat, 50), p99: pct(seq.lat, 99), perSec, cpuMs: { node: nodeUs / 1000 / n, redis: (redisS * 1000) / n } };
  } finally {
    await done();
  }
}

const gen = new Generator();
const fmtRate = (xs: number[]) => `${Math.max(...xs).toFixed(0)}/s best, ${median(xs).toFixed(0)}/s median of ${xs.length}`;
const base = await baseline(gen);
const baseRate = Math.max(...base.perSec);
console.log(
  `baseline  bare Fastify POST (generator in a worker thread): p50 ${base.p50.toFixed(2)} ms, p99 ${base.p99.toFixed(2)} ms, ` +
    `${fmtRate(base.perSec)} with ${CONCURRENT} concurrent; CPU ${base.cpuMs!.node.toFixed(2)} ms/request (server + generator)`,
);
for (const mode of MODES) {
  const r = await run(mode, gen);
  const best = Math.max(...r.perSec);
  console.log(
    `${mode.padEnd(9)} form POST → ok stored + notified: p50 ${r.p50.toFixed(2)} ms (${(r.p50 / base.p50).toFixed(1)}× baseline), ` +
      `p99 ${r.p99.toFixed(2)} ms (${(r.p99 / base.p99).toFixed(1)}×), validations ${fmtRate(r.perSec)} with ${CONCURRENT} concurrent ` +
      `(${(best / baseRate).toFixed(2)}× baseline req/s)` +
      (mode === 'bullmq' ? ` — targets p50 ≤ 20 ms: ${r.p50 <= 20 ? 'met' : 'NOT met'}; ≥ 1000/s: ${best >= 1000 ? 'met' : 'NOT met'}` : ''),
  );
  console.log(
    `${''.padEnd(9)} CPU per validation (throughput rounds): this process ${r.cpuMs!.node.toFixed(2)} ms (server, worker, generator), ` +
      `Redis ${r.cpuMs!.redis.toFixed(2)} ms; ${os.availableParallelism()} cores → CPU-bound ceiling ≈ ` +
      `${((os.availableParallelism() * 1000) / (r.cpuMs!.node + r.cpuMs!.redis)).toFixed(0)}/s`,
  );
}
await gen.close();
process.exit(0);
