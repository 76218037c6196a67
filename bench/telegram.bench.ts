/**
 * Telegram channel benchmark (not part of `npm test`):  npx tsx --expose-gc bench/telegram.bench.ts
 *
 * 1. Updates per second through the adapter in webhook mode: real HTTP POSTs of Bot API
 *    updates (the emulator's shape) from 1,000 simulated users to the mounted webhook route,
 *    secret checked, mapped to InboundMessage and delivered to the core; every 10th update
 *    triggers a reply through the throttler (Telegram's limits: 30/s global, 1/s per chat)
 *    to a local stub Bot API that answers instantly. Baseline: a bare Fastify route that
 *    only parses the JSON, same server, same client, same process.
 * 2. Memory per 10,000 known users: heapUsed delta after 10,000 distinct users sent one
 *    update each and got one reply (per-chat throttler state included).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import Fastify from 'fastify';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { TelegramChannel } from '../channels/telegram/index.ts';
import type { InboundMessage } from '../channels/types.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';

const USERS = 1000;
const UPDATES = Number(process.env.BENCH_UPDATES ?? 20_000);
const CONCURRENCY = 64;
const SECRET = 'bench-secret';

const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  })();

async function stubBotApi(): Promise<{ url: string; calls: Map<string, number>; close: () => Promise<void> }> {
  const calls = new Map<string, number>();
  let id = 1;
  const srv = http.createServer((req, res) => {
    const method = (req.url ?? '').split('/').pop() ?? '';
    calls.set(method, (calls.get(method) ?? 0) + 1);
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let result: unknown = true;
      if (method === 'sendMessage') {
        const p = JSON.parse(body || '{}');
        result = { message_id: id++, date: Math.floor(Date.now() / 1000), chat: { id: p.chat_id, type: 'private' }, text: p.text };
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, result }));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, calls, close: () => new Promise((r) => srv.close(() => r())) };
}

function update(i: number, users: number) {
  const uid = 100_000 + (i % users);
  return {
    update_id: i + 1,
    message: {
      message_id: i + 1,
      date: Math.floor(Date.now() / 1000),
      chat: { id: uid, type: 'private', first_name: 'User', username: `u${uid}` },
      from: { id: uid, is_bot: false, first_name: 'User', username: `u${uid}`, language_code: i % 3 ? 'en' : 'zh-hans' },
      text: i % 10 === 0 ? '/model' : `message number ${i} from a simulated user, asking something ordinary`,
    },
  };
}

/**
 * The load generator runs in a worker thread (its own core), as Telegram's servers would be
 * another machine: the same generator drives the baseline and the adapter.
 */
const GENERATOR = `
const { parentPort, workerData } = require('node:worker_threads');
const { Agent, request } = require(workerData.undici);
(async () => {
  const { url, headers, bodies, n, concurrency } = workerData;
  const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 10000 });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const res = await request(url, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', ...headers }, body: bodies[i % bodies.length] });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error('status ' + res.statusCode);
    }
  }));
  const ms = performance.now() - t0;
  await agent.close();
  parentPort.postMessage(ms);
})().catch((e) => { throw e; });
`;

async function load(url: string, headers: Record<string, string>, n: number, users: number): Promise<number> {
  const bodies = Array.from({ length: Math.min(n, 5000) }, (_, i) => JSON.stringify(update(i, users)));
  const w = new Worker(GENERATOR, { eval: true, workerData: { url, headers, bodies, n, concurrency: CONCURRENCY, undici: createRequire(import.meta.url).resolve('undici') } });
  return new Promise((resolve, reject) => {
    w.once('message', (ms: number) => {
      void w.terminate();
      resolve(ms);
    });
    w.once('error', reject);
  });
}

async function main(): Promise<void> {
  const api = await stubBotApi();
  const logger = createLogger({ level: 'silent' });
  const config = loadConfig({ TELEGRAM_BOT_TOKEN: '999:bench', BYOK_DATA_DIR: '/tmp/byok-bench-unused' });
  const ch = new TelegramChannel({
    config,
    logger,
    apiRoot: api.url,
    webhookUrl: 'https://bot.example/tg/hook',
    webhookSecret: SECRET,
    botInfo: { id: 999, username: 'BenchBot' },
    drafts: 'never',
  });
  const server = Fastify({ logger: false });
  ch.mount(server);
  server.post('/baseline', async (req) => ({ ok: typeof (req.body as { update_id?: number }).update_id === 'number' }));
  const base = await server.listen({ port: 0, host: '127.0.0.1' });

  let delivered = 0;
  let replies = 0;
  const core = async (msg: InboundMessage) => {
    delivered++;
    if (msg.text.startsWith('/')) {
      replies++;
      void ch.send(msg.chat, { text: 'Current model: none' }).catch(() => undefined);
    }
  };
  await ch.start(core);

  // Warm-up both paths.
  await load(`${base}/baseline`, {}, 2000, USERS);
  await load(`${base}/tg/hook`, { 'x-telegram-bot-api-secret-token': SECRET }, 2000, USERS);
  const waitDelivered = async (target: number) => {
    while (delivered < target) await new Promise((r) => setImmediate(r));
  };
  await waitDelivered(2000);

  const baseMs = await load(`${base}/baseline`, {}, UPDATES, USERS);
  const d0 = delivered;
  const sends0 = api.calls.get('sendMessage') ?? 0;
  const t0 = performance.now();
  const hookHttpMs = await load(`${base}/tg/hook`, { 'x-telegram-bot-api-secret-token': SECRET }, UPDATES, USERS);
  await waitDelivered(d0 + UPDATES);
  const hookMs = performance.now() - t0;
  const sendsInWindow = (api.calls.get('sendMessage') ?? 0) - sends0;

  const baseRate = (UPDATES / baseMs) * 1000;
  const hookRate = (UPDATES / hookMs) * 1000;
  console.log(`users: ${USERS}, updates: ${UPDATES}, client concurrency: ${CONCURRENCY}`);
  console.log(`baseline (bare fastify JSON route): ${baseRate.toFixed(0)} req/s`);
  console.log(`telegram webhook → InboundMessage delivered: ${hookRate.toFixed(0)} updates/s (HTTP acked at ${((UPDATES / hookHttpMs) * 1000).toFixed(0)}/s)`);
  console.log(`ratio adapter / baseline: ${(hookRate / baseRate).toFixed(2)}  (target ≥ 2,000 updates/s)`);
  console.log(`replies queued: ${replies}; sendMessage reaching the Bot API during the run: ${sendsInWindow} in ${(hookMs / 1000).toFixed(1)} s (${(sendsInWindow / (hookMs / 1000)).toFixed(1)}/s; Telegram's limit 30/s)`);
  await ch.stop();

  // ---- memory per 10,000 known users
  const MEM_USERS = 10_000;
  const variants: Array<[string, ConstructorParameters<typeof TelegramChannel>[0]['throttle']]> = [
    // Per-chat limiters as in production, global reservoir lifted so the 10,000 replies drain quickly.
    ['with per-chat throttler state', { global: {}, out: { maxConcurrent: 1, minTime: 1000 }, group: { maxConcurrent: 1, minTime: 1000 } }],
    ['adapter alone (throttler off)', false],
  ];
  for (const [label, throttle] of variants) {
    const ch2 = new TelegramChannel({ config, logger, apiRoot: api.url, webhookUrl: 'https://bot.example/tg/mem', webhookSecret: SECRET, botInfo: { id: 999, username: 'BenchBot' }, drafts: 'never', throttle });
    let sent = 0;
    await ch2.start(async (msg) => {
      await ch2.send(msg.chat, { text: 'ok' });
      sent++;
    });
    gc();
    gc();
    const h0 = process.memoryUsage().heapUsed;
    for (let i = 0; i < MEM_USERS; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => ch2.dispatch(update(i + j, MEM_USERS) as never)));
    }
    while (sent < MEM_USERS) await new Promise((r) => setTimeout(r, 10));
    gc();
    gc();
    const h1 = process.memoryUsage().heapUsed;
    console.log(`memory per ${MEM_USERS} known users, ${label}: ${((h1 - h0) / 1024 / 1024).toFixed(2)} MiB heapUsed delta (${((h1 - h0) / MEM_USERS).toFixed(0)} B/user)`);
    await ch2.stop();
  }
  await server.close();
  await api.close();
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
