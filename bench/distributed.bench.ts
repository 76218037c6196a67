/**
 * Chat relay under load in distributed mode: N users (default 200) send one message at once
 * through a round-robin proxy to two web processes (`npm start`, Telegram webhook mode, one
 * Redis); each answer streams ~200 tokens from a fake OpenAI-compatible vendor and reaches
 * the user through a fake Bot API. Measured per user: from the webhook POST to the moment the
 * complete answer is on the user's screen (the last sendMessage/editMessageText carrying it).
 * Baseline, same process, same vendor: the same N streams read directly from the vendor.
 * Prints p50/p99 of both, the overhead, and the Bot API's busiest second (one budget per bot
 * token across both processes).
 *
 *   npx tsx bench/distributed.bench.ts [users=200] [tokens=200] [chunkDelayMs=5]
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startFakeBotApi } from '../test/support/fake-bot-api.ts';
import { startFakeOpenAI } from '../test/support/fake-vendors.ts';
import { freePort } from '../test/support/form.ts';
import { startPrivateRedis, startProcess, startRoundRobinProxy, waitForOutput, type ProcHandle } from '../test/support/processes.ts';

const USERS = Number(process.argv[2] ?? 200);
const TOKENS = Number(process.argv[3] ?? 200);
const DELAY = Number(process.argv[4] ?? 5);
const TOKEN = '700002:distributed-bench-token';
const SECRET = 'bench-secret';
const REPLY = Array.from({ length: TOKENS }, (_, i) => `w${i}`).join(' ');

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-bench-dist-'));
  const redis = await startPrivateRedis();
  const vendor = await startFakeOpenAI({ reply: REPLY, chunkDelayMs: DELAY });
  const botApi = await startFakeBotApi();
  const ports = [await freePort(), await freePort()];
  const proxy = await startRoundRobinProxy(ports);
  const platformFile = path.join(dataDir, 'platform.yaml');
  fs.writeFileSync(
    platformFile,
    `default: bench\nmodels:\n  - id: bench\n    name: Bench\n    base_url: ${vendor.baseUrl}\n    upstream_model: gpt-bench\n    api_key_env: BENCH_PLATFORM_KEY\n`,
  );
  const master = randomBytes(32).toString('base64'); // one master key for every process
  const procs: ProcHandle[] = ports.map((port, i) =>
    startProcess(`web${i}`, 'src/main.ts', {
      REDIS_URL: redis.url,
      BYOK_REDIS_PREFIX: 'byokbench:',
      BYOK_MASTER_KEY: master,
      BYOK_DATA_DIR: dataDir,
      BYOK_ALLOW_PRIVATE_BASE_URLS: '1',
      BYOK_PLATFORM_MODELS: platformFile,
      BENCH_PLATFORM_KEY: 'sk-operator-bench',
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: proxy.url,
      TELEGRAM_BOT_TOKEN: TOKEN,
      TELEGRAM_API_ROOT: botApi.url,
      TELEGRAM_WEBHOOK_URL: `${proxy.url}/telegram/webhook`,
      TELEGRAM_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: 'info',
    }),
  );
  try {
    await Promise.all(procs.map((p) => waitForOutput(p, 'byok-bot started', 60_000)));

    // Baseline: the same streams straight from the vendor.
    const direct = await Promise.all(
      Array.from({ length: USERS }, async () => {
        const t0 = performance.now();
        const res = await fetch(`${vendor.baseUrl}/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sk-operator-bench' },
          body: JSON.stringify({ model: 'gpt-bench', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        });
        await res.text();
        return performance.now() - t0;
      }),
    );

    // Through the bot: one message per user at once.
    const since = Date.now();
    const started = new Map<number, number>();
    const done = new Map<number, number>();
    let scanned = 0;
    const users = Array.from({ length: USERS }, (_, i) => 900_000 + i);
    const watcher = setInterval(() => {
      for (; scanned < botApi.calls.length; scanned++) {
        const c = botApi.calls[scanned];
        if ((c.method === 'sendMessage' || c.method === 'editMessageText') && String(c.payload.text ?? '').includes(`w${TOKENS - 1}`)) {
          const u = Number(c.payload.chat_id);
          if (!done.has(u)) done.set(u, c.at);
        }
      }
    }, 5);
    await Promise.all(
      users.map(async (u, i) => {
        started.set(u, Date.now());
        for (let tries = 0; tries < 100; tries++) {
          const res = await fetch(`${proxy.url}/telegram/webhook`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET },
            body: JSON.stringify({ update_id: 5_000_000 + i, message: { message_id: 1, date: Math.floor(Date.now() / 1000), chat: { id: u, type: 'private' }, from: { id: u, is_bot: false, first_name: 'b', language_code: 'en' }, text: 'hi' } }),
          }).catch(() => undefined);
          await res?.arrayBuffer();
          if (res?.ok) return;
          await new Promise((r) => setTimeout(r, 200));
        }
      }),
    );
    const deadline = Date.now() + 180_000;
    while (done.size < USERS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(watcher);
    const viaBot = users.filter((u) => done.has(u)).map((u) => done.get(u)! - started.get(u)!);
    const d50 = pct(direct, 50);
    const d99 = pct(direct, 99);
    const b50 = pct(viaBot, 50);
    const b99 = pct(viaBot, 99);
    const calls = botApi.calls.filter((c) => c.at >= since && c.method !== 'getMe');
    console.log(`distributed relay: ${USERS} users x ${TOKENS} tokens, chunk delay ${DELAY} ms, 2 web processes behind a round-robin proxy, one Redis`);
    console.log(`  vendor direct (baseline)   p50 ${d50.toFixed(0)} ms   p99 ${d99.toFixed(0)} ms`);
    console.log(`  through the bot            p50 ${b50.toFixed(0)} ms   p99 ${b99.toFixed(0)} ms   answers complete: ${viaBot.length}/${USERS}`);
    console.log(`  overhead                   p50 +${(b50 - d50).toFixed(0)} ms   p99 +${(b99 - d99).toFixed(0)} ms   ratio p50 ${(b50 / d50).toFixed(2)}x`);
    console.log(`  Bot API: ${calls.length} calls, busiest second ${botApi.maxCallsPerSecond(since)} calls ${JSON.stringify(botApi.busiestSecond(since))} (one budget per bot token)`);
    console.log(`  a budget of 30/s needs ${(USERS / 30).toFixed(1)} s for one final message per user`);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await proxy.close();
    await botApi.close();
    await vendor.close();
    await redis.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
