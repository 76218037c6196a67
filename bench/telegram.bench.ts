/**
 * Telegram channel benchmark (not part of `npm test`):  npx tsx --expose-gc bench/telegram.bench.ts
 * Needs Redis on 127.0.0.1:6379 (REDIS_URL to change): the channel's shared state (update
 * claims, outbound budget) lives there as in distributed mode; keys under a bench prefix are
 * deleted at the end.
 *
 * 1. Updates per second through the adapter in webhook mode: real HTTP POSTs of Bot API
 *    updates (the emulator's shape) from 1,000 simulated users to the mounted webhook route,
 *    secret checked, claimed in Redis (dedupe), mapped to InboundMessage and delivered to the
 *    core; every 10th update triggers a reply through the shared budget (30/s per bot) to a
 *    local stub Bot API that answers instantly. Baseline: a bare Fastify route that only
 *    parses the JSON, same server, same client, same process.
 * 2. Streaming under load: 200 users at once, each answer 200 tokens from a fake vendor,
 *    one bot in webhook mode: time until every final answer reached the (stub) Bot API,
 *    against the vendor's own time plus what the budget needs for one final per chat.
 * 3. Memory per 10,000 known users: heapUsed delta after 10,000 distinct users sent one
 *    update each and got one reply.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import Fastify from 'fastify';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { TelegramChannel } from '../channels/telegram/index.ts';
import { isBudgeted } from '../channels/telegram/budget.ts';
import { RedisStore } from '../src/store/redis-store.ts';
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

async function stubBotApi(): Promise<{ url: string; calls: Map<string, number>; log: Array<{ token: string; method: string; at: number }>; close: () => Promise<void> }> {
  const calls = new Map<string, number>();
  const log: Array<{ token: string; method: string; at: number }> = [];
  let id = 1;
  const srv = http.createServer((req, res) => {
    const method = (req.url ?? '').split('/').pop() ?? '';
    calls.set(method, (calls.get(method) ?? 0) + 1);
    if (isBudgeted(method)) log.push({ token: decodeURIComponent((req.url ?? '').split('/')[1]?.slice(3) ?? ''), method, at: performance.now() });
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
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, calls, log, close: () => new Promise((r) => srv.close(() => r())) };
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
  const { url, headers, bodies, n, concurrency, idBase } = workerData;
  const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 10000 });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      // Every request a new update id: the channel claims each id once (a repeat is a duplicate).
      const body = '{"update_id":' + (idBase + i) + ',' + bodies[i % bodies.length].slice(1);
      const res = await request(url, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json', ...headers }, body });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error('status ' + res.statusCode);
    }
  }));
  const ms = performance.now() - t0;
  await agent.close();
  parentPort.postMessage(ms);
})().catch((e) => { throw e; });
`;

async function load(url: string, headers: Record<string, string>, n: number, users: number, idBase = 1): Promise<number> {
  const bodies = Array.from({ length: Math.min(n, 5000) }, (_, i) => {
    const { update_id: _id, ...rest } = update(i, users);
    return JSON.stringify(rest);
  });
  const w = new Worker(GENERATOR, { eval: true, workerData: { url, headers, bodies, n, concurrency: CONCURRENCY, idBase, undici: createRequire(import.meta.url).resolve('undici') } });
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
  const prefix = `byokbench:tg-${randomBytes(4).toString('hex')}:`;
  const store = new RedisStore(process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix);
  const ch = new TelegramChannel({
    config,
    logger,
    store,
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

  // Warm-up both paths (update ids of the warm-up and the run differ: claims are per id).
  await load(`${base}/baseline`, {}, 2000, USERS);
  await load(`${base}/tg/hook`, { 'x-telegram-bot-api-secret-token': SECRET }, 2000, USERS, 10_000_000);
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
  console.log(`telegram webhook → claimed, InboundMessage delivered, answered: ${hookRate.toFixed(0)} updates/s (HTTP answered at ${((UPDATES / hookHttpMs) * 1000).toFixed(0)}/s)`);
  console.log(`ratio adapter / baseline: ${(hookRate / baseRate).toFixed(2)}  (target ≥ 2,000 updates/s)`);
  console.log(`replies queued: ${replies}; sendMessage reaching the Bot API during the run: ${sendsInWindow} in ${(hookMs / 1000).toFixed(1)} s (${(sendsInWindow / (hookMs / 1000)).toFixed(1)}/s; budget 30/s)`);
  await ch.stop();

  await streamingUnderLoad(api, config, logger, store);

  // ---- memory per 10,000 known users
  const MEM_USERS = 10_000;
  const variants: Array<[string, ConstructorParameters<typeof TelegramChannel>[0]['budget']]> = [
    // The shared budget as in production (one Redis take per send), rate lifted so the 10,000 replies drain quickly.
    ['with the shared budget', { ratePerSec: 1_000_000, burst: 1_000_000 }],
    ['adapter alone (budget off)', false],
  ];
  for (const [label, budget] of variants) {
    const ch2 = new TelegramChannel({ config, logger, store, token: '997:bench-mem', apiRoot: api.url, webhookUrl: 'https://bot.example/tg/mem', webhookSecret: SECRET, botInfo: { id: 997, username: 'MemBot' }, drafts: 'never', budget });
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
  await cleanupPrefix(prefix);
  await store.close();
  process.exit(0);
}

/**
 * 200 users ask at once (webhook POSTs held open until answered, as Telegram does); each
 * answer is 200 tokens from a fake vendor at a steady pace. Measures when each final
 * message reached the Bot API, and the preview traffic the budget let through.
 */
async function streamingUnderLoad(api: Awaited<ReturnType<typeof stubBotApi>>, config: ReturnType<typeof loadConfig>, logger: ReturnType<typeof createLogger>, store: RedisStore): Promise<void> {
  const STREAMS = Number(process.env.BENCH_STREAMS ?? 200);
  const TOKENS = 200;
  const TOKEN_MS = 20;
  // A bot of its own: part 1's reply backlog must not share this budget.
  const ch = new TelegramChannel({ config, logger, store, token: '998:bench-stream', apiRoot: api.url, webhookUrl: 'https://bot.example/tg/stream', webhookSecret: SECRET, botInfo: { id: 998, username: 'StreamBot' } });
  const server = Fastify({ logger: false });
  ch.mount(server);
  const url = `${await server.listen({ port: 0, host: '127.0.0.1' })}/tg/stream`;
  async function* fakeVendor(): AsyncGenerator<string> {
    for (let i = 0; i < TOKENS; i++) {
      await new Promise((r) => setTimeout(r, TOKEN_MS));
      yield `token${i} `;
    }
  }
  const finals: number[] = [];
  await ch.start(async (msg) => {
    await ch.streamReply(msg.chat, fakeVendor(), 'en');
    finals.push(performance.now());
  });
  api.log.length = 0;
  const t0 = performance.now();
  const statuses = await Promise.all(
    Array.from({ length: STREAMS }, async (_, i) => {
      const uid = 500_000 + i;
      const body = JSON.stringify({ update_id: 50_000_000 + i, message: { message_id: 1, date: Math.floor(Date.now() / 1000), chat: { id: uid, type: 'private' }, from: { id: uid, first_name: 'U' }, text: 'tell me a long story' } });
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body });
      return res.status;
    }),
  );
  const total = performance.now() - t0;
  const mine = api.log.filter((c) => c.token === '998:bench-stream');
  const delta = (m: string) => mine.filter((c) => c.method === m).length;
  const vendorMs = TOKENS * TOKEN_MS;
  finals.sort((a, b) => a - b);
  const at = (q: number) => ((finals[Math.min(finals.length - 1, Math.floor(q * finals.length))] - t0) / 1000).toFixed(1);
  let peak = 0;
  const times = mine.map((c) => c.at).sort((a, b) => a - b);
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i] - times[j] >= 1000) j++;
    peak = Math.max(peak, i - j + 1);
  }
  console.log(
    `streaming: ${STREAMS} users × ${TOKENS} tokens (vendor ${(vendorMs / 1000).toFixed(1)} s at ${TOKEN_MS} ms/token; ideal ≈ vendor + ${STREAMS} finals at 30/s = ${((vendorMs + (STREAMS / 30) * 1000) / 1000).toFixed(1)} s): ` +
      `all ${finals.length} answers delivered in ${(total / 1000).toFixed(1)} s (p50 ${at(0.5)} s, p90 ${at(0.9)} s); webhook answers ${[...new Set(statuses)].join('/')}`,
  );
  console.log(`  Bot API calls: ${delta('sendMessageDraft')} drafts, ${delta('editMessageText')} edits, ${delta('sendMessage')} messages; busiest second ${peak} calls (budget 30/s, burst 30); ${(mine.length / (total / 1000)).toFixed(1)}/s overall`);
  await ch.stop();
  await server.close();
}

async function cleanupPrefix(prefix: string): Promise<void> {
  const r = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await r.del(...keys);
  } while (cursor !== '0');
  r.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
