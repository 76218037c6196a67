import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { TelegramChannel, type TelegramChannelOptions } from '../../channels/telegram/index.ts';
import type { InboundMessage } from '../../channels/types.ts';
import { loadConfig } from '../../src/config.ts';
import { en } from '../../src/i18n/en.ts';
import { createLogger } from '../../src/log.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { startFakeBotApi, type FakeBotApi } from '../support/fake-bot-api.ts';
import { useTestRedis } from '../support/redis.ts';
import { apiRecorder, sleep, type StubResult } from '../support/telegram.ts';

/**
 * The Telegram channel as several processes of one bot: two TelegramChannel instances (two
 * "processes") on one Redis prefix share menu state, claim each update once, spend one
 * outbound budget, and stop gracefully. Real Redis, real HTTP (webhook routes on their own
 * Fastify servers, a fake Bot API server recording every call with its time).
 */

const redis = useTestRedis('tg');
const TOKEN = '424242:distributed-telegram-token';
const BOT_ID = '424242';
const SECRET = 'dist-secret';
const logger = createLogger({ level: 'silent' });
const config = loadConfig({ TELEGRAM_BOT_TOKEN: TOKEN, BYOK_DATA_DIR: '/tmp/byok-unused' });
const priv = (id: number) => ({ channel: 'telegram', chat_id: String(id), user_id: String(id), lang: 'en' as const });

const closers: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

function store(prefix: string): RedisStore {
  const s = new RedisStore(redis.url, prefix);
  closers.push(() => s.close());
  return s;
}

function channel(s: RedisStore, extra: Partial<TelegramChannelOptions> = {}): TelegramChannel {
  return new TelegramChannel({
    config,
    logger,
    store: s,
    botInfo: { id: Number(BOT_ID), username: 'DistBot' },
    webhookUrl: 'https://bot.example/tg/hook',
    webhookSecret: SECRET,
    ...extra,
  });
}

async function serve(ch: TelegramChannel): Promise<{ server: FastifyInstance; post: (update: object) => Promise<Response> }> {
  const server = Fastify();
  ch.mount(server);
  await server.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => server.close());
  const url = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}/tg/hook`;
  const post = (update: object) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body: JSON.stringify(update) });
  return { server, post };
}

const textUpdate = (updateId: number, chatId: number, text: string) => ({
  update_id: updateId,
  message: { message_id: updateId, date: Math.floor(Date.now() / 1000), chat: { id: chatId, type: 'private' }, from: { id: chatId, first_name: 'U' }, text },
});

async function waitUntil(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A fake vendor stream: `n` chunks, `gapMs` apart. */
async function* vendor(n: number, gapMs: number, word = 'tok'): AsyncGenerator<string> {
  for (let i = 0; i < n; i++) {
    if (gapMs) await sleep(gapMs);
    yield `${word}${i} `;
  }
}
const full = (n: number, word = 'tok') => Array.from({ length: n }, (_, i) => `${word}${i}`).join(' ');

describe('menus: state in the store, a tap works on any process', () => {
  it('a menu sent by A is paged by B; long callback data and the card are found by B', async () => {
    const prefix = redis.sub('menu');
    const a = apiRecorder({}, { passThrough: false });
    const b = apiRecorder({}, { passThrough: false });
    const A = channel(store(prefix), { transformers: [a.transformer], budget: false });
    const B = channel(store(prefix), { transformers: [b.transformer], budget: false });
    const got: InboundMessage[] = [];
    await A.start(async () => undefined);
    await B.start(async (m) => {
      got.push(m);
    });

    const choices = Array.from({ length: 12 }, (_, i) => [{ label: `M${i}`, data: `/model custom/m${i}` }]);
    const sent = await A.send(priv(42), { text: 'pick', choices });
    const kb = a.of('sendMessage')[0].payload.reply_markup.inline_keyboard;
    const next = kb[8].find((x: any) => /Next/.test(x.text));
    const message = { message_id: Number(sent.messageId), date: Math.floor(Date.now() / 1000), chat: { id: 42, type: 'private' as const, first_name: 'Ada' } };
    await B.dispatch({ update_id: 1, callback_query: { id: 'q1', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada' }, message, data: next.callback_data } });
    expect(b.of('answerCallbackQuery')[0].payload.text).toBeUndefined(); // not "stale"
    const page2 = b.of('editMessageReplyMarkup')[0].payload;
    expect(page2).toMatchObject({ chat_id: 42, message_id: Number(sent.messageId) });
    expect(page2.reply_markup.inline_keyboard[0][0].text).toBe('M8');

    // A command too long for 64 bytes waits in the store: B resolves it.
    const long = '/model openrouter/anthropic/claude-3.7-sonnet:thinking-extended-preview';
    await A.send(priv(42), { text: 'one', choices: [[{ label: 'L', data: long }]] });
    const data = a.of('sendMessage')[1].payload.reply_markup.inline_keyboard[0][0].callback_data as string;
    expect(data.startsWith('k|')).toBe(true);
    await B.dispatch({ update_id: 2, callback_query: { id: 'q2', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada', language_code: 'en' }, message: { ...message, message_id: 77 }, data } });
    expect(got.map((m) => m.callbackData)).toEqual([long]);

    // The card A sent is edited by B when the key result arrives there.
    const card = await A.requestEnvInput(priv(42), {
      workspace: 'tg:42',
      model_id: 'qwen-plus-ab12',
      vendor: 'qwen',
      vendor_name: 'Qwen',
      model_name: 'Qwen Plus',
      env_vars: ['DASHSCOPE_API_KEY'],
      reason: 'key',
      url: 'https://forms.example/s/tok',
      expires_at: new Date(Date.now() + 900_000).toISOString(),
      lang: 'en',
    });
    await B.keyResult(priv(42), { workspace: 'tg:42', model_id: 'qwen-plus-ab12', outcome: 'ok', text: 'ok', masked: '****abcd', lang: 'en' });
    expect(b.of('editMessageText')[0].payload).toMatchObject({ chat_id: 42, message_id: Number(card.messageId) });
    expect(b.of('sendMessage')).toHaveLength(0);

    // Control: a process on another prefix (another deployment) has no such menu.
    const c = apiRecorder({}, { passThrough: false });
    const C = channel(store(redis.sub('other')), { transformers: [c.transformer], budget: false });
    await C.start(async () => undefined);
    await C.dispatch({ update_id: 3, callback_query: { id: 'q3', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada' }, message, data: next.callback_data } });
    expect(c.of('answerCallbackQuery')[0].payload.text).toBe(en['telegram.picker_stale']);
    expect(c.of('editMessageReplyMarkup')).toHaveLength(0);
    for (const ch of [A, B, C]) await ch.stop();
  });
});

describe('webhook: each update is handled once across processes', () => {
  it('re-sent updates (sequential, concurrent, during processing, after a failure) get one answer and one vendor call', async () => {
    const prefix = redis.sub('dedupe');
    const api = apiRecorder({}, { passThrough: false });
    const vendorCalls = new Map<string, number>();
    let gate: Promise<void> = Promise.resolve();
    const core = (ch: TelegramChannel) => async (m: InboundMessage) => {
      vendorCalls.set(m.text, (vendorCalls.get(m.text) ?? 0) + 1);
      if (m.text === 'boom') throw new Error('handler failed');
      await gate;
      await ch.streamReply(m.chat, vendor(5, 5, m.text), 'en');
    };
    const A = channel(store(prefix), { transformers: [api.transformer], drafts: 'never' });
    const B = channel(store(prefix), { transformers: [api.transformer], drafts: 'never' });
    await A.start(core(A));
    await B.start(core(B));
    const a = await serve(A);
    const b = await serve(B);
    const answers = (text: string) => api.of('sendMessage').filter((c) => String(c.payload.text).startsWith(`${text}0`)).length;

    // Sequential re-sends, to either process.
    expect((await a.post(textUpdate(101, 9001, 'seq'))).status).toBe(200);
    expect((await b.post(textUpdate(101, 9001, 'seq'))).status).toBe(200);
    expect((await a.post(textUpdate(101, 9001, 'seq'))).status).toBe(200);
    expect(vendorCalls.get('seq')).toBe(1);
    expect(answers('seq')).toBe(1);

    // A re-send while the first process still works on it: 503 + Retry-After, then 200.
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    const first = a.post(textUpdate(102, 9002, 'slow'));
    await waitUntil(() => vendorCalls.get('slow') === 1, 5000, 'the handler to start');
    const dup = await b.post(textUpdate(102, 9002, 'slow'));
    expect(dup.status).toBe(503);
    expect(Number(dup.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await a.post(textUpdate(102, 9002, 'slow'))).status).toBe(503);
    open();
    expect((await first).status).toBe(200);
    expect((await b.post(textUpdate(102, 9002, 'slow'))).status).toBe(200);
    expect(vendorCalls.get('slow')).toBe(1);
    expect(answers('slow')).toBe(1);

    // Concurrent deliveries to both processes: one handles it, the other says "later";
    // Telegram's re-send then finds it done.
    gate = sleep(150).then(() => undefined);
    const both = await Promise.all([a.post(textUpdate(103, 9003, 'race')), b.post(textUpdate(103, 9003, 'race'))]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 503]);
    expect((await (both[0].status === 503 ? a : b).post(textUpdate(103, 9003, 'race'))).status).toBe(200);
    expect(vendorCalls.get('race')).toBe(1);
    expect(answers('race')).toBe(1);

    // A failing handler still marks the update done: no second attempt.
    expect((await a.post(textUpdate(104, 9004, 'boom'))).status).toBe(200);
    expect((await b.post(textUpdate(104, 9004, 'boom'))).status).toBe(200);
    expect(vendorCalls.get('boom')).toBe(1);

    // A process that died mid-update leaves a lease; once it expires the re-send is handled.
    const s = store(prefix);
    await s.putEphemeral(`tg:update:${BOT_ID}:105`, 'p', 400);
    expect((await b.post(textUpdate(105, 9005, 'orphan'))).status).toBe(503);
    await sleep(500);
    expect((await b.post(textUpdate(105, 9005, 'orphan'))).status).toBe(200);
    expect(vendorCalls.get('orphan')).toBe(1);
    expect(await s.getEphemeral(`tg:update:${BOT_ID}:105`)).toBe('d');
    await A.stop();
    await B.stop();
  });

  it('polling: an update delivered again after it was handled is skipped', async () => {
    const prefix = redis.sub('poll');
    const api = apiRecorder({}, { passThrough: false });
    const ch = channel(store(prefix), { transformers: [api.transformer], webhookUrl: undefined, budget: false });
    const got: string[] = [];
    // Drive the bot's middleware as the runner does (the claim middleware runs first).
    (ch as unknown as { onMessage: (m: InboundMessage) => Promise<void> }).onMessage = async (m) => {
      got.push(m.text);
    };
    await ch.bot.handleUpdate(textUpdate(201, 9101, 'once') as never);
    await ch.bot.handleUpdate(textUpdate(201, 9101, 'once') as never);
    const other = channel(store(prefix), { transformers: [api.transformer], webhookUrl: undefined, budget: false });
    (other as unknown as { onMessage: (m: InboundMessage) => Promise<void> }).onMessage = async (m) => {
      got.push(`other:${m.text}`);
    };
    await other.bot.handleUpdate(textUpdate(201, 9101, 'once') as never);
    expect(got).toEqual(['once']);
  });
});

describe('streaming: the vendor is read at its own pace; previews are coalesced', () => {
  it('200 fast chunks through a slow Bot API: a bounded number of previews, never one per chunk, the final text complete', async () => {
    const slow = (result: unknown) => async (): Promise<StubResult> => {
      await sleep(800);
      return { ok: true, result } as StubResult;
    };
    let id = 500;
    const api = apiRecorder(
      {
        sendMessage: async (p: any): Promise<StubResult> => {
          await sleep(400);
          return { ok: true, result: { message_id: id++, date: 0, chat: { id: Number(p.chat_id), type: 'private' }, text: p.text } };
        },
        editMessageText: slow(true),
      },
      { passThrough: false },
    );
    const ch = channel(store(redis.sub('coalesce')), { transformers: [api.transformer], drafts: 'never', editIntervalMs: 200 });
    const pulls: number[] = [];
    async function* timed(): AsyncGenerator<string> {
      for (let i = 0; i < 200; i++) {
        await sleep(5);
        pulls.push(Date.now());
        yield `tok${i} `;
      }
    }
    const t0 = Date.now();
    const text = await ch.streamReply(priv(77), timed(), 'en');
    const total = Date.now() - t0;
    const vendorMs = pulls.at(-1)! - t0;
    expect(text.trim()).toBe(full(200));
    const calls = [...api.of('sendMessage'), ...api.of('editMessageText')];
    // Every preview waited 800 ms on the API, yet the vendor was never held up by it (a
    // reader awaiting the API would show gaps of 800 ms; a loaded machine adds far less).
    let gap = 0;
    for (let i = 1; i < pulls.length; i++) gap = Math.max(gap, pulls[i] - pulls[i - 1]);
    expect(gap).toBeLessThan(600);
    expect(calls.length).toBeLessThanOrEqual(Math.ceil(vendorMs / 200) + 3);
    expect(calls.length).toBeLessThan(40);
    expect(String(calls.at(-1)!.payload.text).trim()).toBe(full(200));
    // Done about when the vendor was: at most the preview in flight plus the final.
    expect(total).toBeLessThan(vendorMs + 4000);
  });

  it('groups get a slower preview interval', async () => {
    const api = apiRecorder({}, { passThrough: false });
    const ch = channel(store(redis.sub('group')), { transformers: [api.transformer], editIntervalMs: 100, groupEditIntervalMs: 1000 });
    const group = { channel: 'telegram', chat_id: '-100777', user_id: '5', lang: 'en' as const };
    await ch.streamReply(group, vendor(60, 20), 'en');
    const calls = [...api.of('sendMessage'), ...api.of('editMessageText')];
    expect(api.of('sendMessageDraft')).toHaveLength(0);
    // ~1.2 s of tokens at one preview a second: 2-3 previews and the final, not 12.
    expect(calls.length).toBeLessThanOrEqual(5);
    expect(String(calls.at(-1)!.payload.text).trim()).toBe(full(60));
  });
});

describe('one outbound budget per bot across processes', () => {
  let botApi: FakeBotApi;
  afterAll(async () => botApi?.close());

  it('60 concurrent streams on two processes: no second above rate + burst, every chat gets its whole answer', async () => {
    botApi = await startFakeBotApi({ username: 'DistBot' });
    const prefix = redis.sub('budget');
    const budget = { ratePerSec: 25, burst: 5, previewReserve: 2 }; // the defaults: at most 30 calls in any second
    const A = channel(store(prefix), { apiRoot: botApi.url, budget });
    const B = channel(store(prefix), { apiRoot: botApi.url, budget });
    const t0 = Date.now();
    const chats = Array.from({ length: 60 }, (_, i) => 8000 + i);
    // Two processes stream with drafts; a third (drafts off) streams with edits.
    const B2 = channel(store(prefix), { apiRoot: botApi.url, budget, drafts: 'never' });
    const results = await Promise.all(chats.map((chat, i) => (i % 3 === 0 ? A : i % 3 === 1 ? B : B2).streamReply(priv(chat), vendor(40, 50, `c${chat}w`), 'en')));
    const elapsed = Date.now() - t0;
    for (const [i, chat] of chats.entries()) {
      expect(results[i].trim()).toBe(full(40, `c${chat}w`));
      const msgs = botApi.messages(chat);
      expect(msgs.at(-1)?.text.trim(), `chat ${chat}`).toBe(full(40, `c${chat}w`));
    }
    const peak = botApi.maxCallsPerSecond(t0);
    // Tokens are taken on Redis's clock and counted here on arrival: allow a little HTTP
    // jitter. Without the budget the same run peaks at about 120 calls in a second.
    expect(peak).toBeLessThanOrEqual(budget.ratePerSec + budget.burst + 3);
    expect(peak).toBeGreaterThan(20);
    // Vendor ~2 s; 60 finals at 30/s ~2 s more; generous bound for a loaded machine.
    expect(elapsed).toBeLessThan(20_000);
  }, 40_000);
});

describe('graceful stop', () => {
  let botApi: FakeBotApi;
  afterAll(async () => botApi?.close());

  it('answers 503 while stopping, waits for in-flight answers, cuts the ones past drainMs with a notice', async () => {
    botApi = await startFakeBotApi({ username: 'DistBot' });
    const prefix = redis.sub('stop');
    const s = store(prefix);
    let endless = true;
    const ch = channel(s, { apiRoot: botApi.url, drainMs: 800, editIntervalMs: 200 });
    await ch.start(async (m) => {
      if (m.text === 'short') return void (await ch.streamReply(m.chat, vendor(10, 30, 'short'), 'en'));
      await ch.streamReply(
        m.chat,
        (async function* () {
          for (let i = 0; endless && i < 2000; i++) {
            await sleep(50);
            yield `part${i} `;
          }
        })(),
        'en',
      );
    });
    const { post } = await serve(ch);
    // However this test ends, the endless streams end with it.
    closers.push(async () => void (endless = false));
    const long = [9301, 9302, 9303];
    const posts = long.map((chat, i) => post(textUpdate(300 + i, chat, 'tell me everything')));
    const shortPost = post(textUpdate(310, 9310, 'short'));
    await waitUntil(() => ch.streaming === 4, 5000, 'four streams');
    // The short answer (~0.3 s) may finish before or during the drain; the long ones run on.
    expect(ch.inFlight).toBeGreaterThanOrEqual(3);

    const t0 = Date.now();
    const stopping = ch.stop();
    const refused = await post(textUpdate(320, 9320, 'too late'));
    expect(refused.status).toBe(503);
    await stopping;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(700);
    expect(took).toBeLessThan(800 + 5000);

    // The short answer finished within the drain: complete, no notice.
    expect((await shortPost).status).toBe(200);
    expect(botApi.messages(9310).map((m) => m.text.trim())).toEqual([full(10, 'short')]);
    // The long ones were cut: what arrived, then the notice; their updates are done.
    for (const [i, chat] of long.entries()) {
      const msgs = botApi.messages(chat);
      expect(msgs.at(-1)!.text).toBe(en['telegram.cut_off']);
      expect(msgs.at(-2)!.text).toMatch(/^part0 part1 /);
      expect(await s.getEphemeral(`tg:update:${BOT_ID}:${300 + i}`)).toBe('d');
    }
    for (const p of posts) expect((await p).status).toBe(200);
    expect(await s.getEphemeral(`tg:update:${BOT_ID}:320`)).toBeUndefined();
    await waitUntil(() => ch.inFlight === 0, 5000, 'no update in flight');
    endless = false;
  }, 30_000);
});
