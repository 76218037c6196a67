import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import { signInitData } from '../../channels/telegram/initdata.ts';
import type { InboundMessage } from '../../src/channel.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { apiRecorder, sleep, type StubResult } from '../support/telegram.ts';

const TOKEN = '777:unit-test-token';
const logger = createLogger({ level: 'silent' });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A store of its own per channel (the state of one "process" group). */
function tempStore(): FileStore {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-tgunit-'));
  dirs.push(dir);
  return new FileStore(dir);
}

function channel(stubs: Record<string, any> = {}, extra: Partial<ConstructorParameters<typeof TelegramChannel>[0]> = {}) {
  const rec = apiRecorder(stubs, { passThrough: false });
  const ch = new TelegramChannel({
    config: loadConfig({ TELEGRAM_BOT_TOKEN: TOKEN, BYOK_DATA_DIR: '/tmp/unused' }),
    logger,
    botInfo: { id: 777, username: 'ByokTestBot' },
    store: tempStore(),
    transformers: [rec.transformer],
    budget: false,
    editIntervalMs: 0,
    ...extra,
  });
  return { ch, rec };
}

async function started(stubs: Record<string, any> = {}, extra = {}) {
  const { ch, rec } = channel(stubs, { webhookUrl: 'https://bot.example/tg/hook', webhookSecret: 'good-secret', ...extra });
  const got: InboundMessage[] = [];
  await ch.start(async (m) => {
    got.push(m);
  });
  return { ch, rec, got };
}

const priv = { channel: 'telegram', chat_id: '42', user_id: '42', lang: 'en' as const };
const group = { channel: 'telegram', chat_id: '-1001', user_id: '42', lang: 'en' as const };
const req = {
  workspace: 'tg:42',
  model_id: 'qwen-plus-ab12',
  vendor: 'qwen',
  vendor_name: 'Qwen <DashScope>',
  model_name: 'Qwen Plus (qwen-plus)',
  env_vars: ['DASHSCOPE_API_KEY'],
  reason: 'DashScope API key for Qwen Plus',
  url: 'https://forms.example/s/tok',
  expires_at: new Date(Date.now() + 900_000).toISOString(),
  lang: 'en' as const,
};

describe('TelegramChannel', () => {
  it('registers commands in English and Chinese and sets the webhook with its secret', async () => {
    const { rec } = await started();
    const cmds = rec.of('setMyCommands');
    expect(cmds).toHaveLength(2);
    expect(cmds[1].payload.language_code).toBe('zh');
    expect(rec.of('setWebhook')[0].payload).toMatchObject({ url: 'https://bot.example/tg/hook', secret_token: 'good-secret' });
  });

  it('secure-input card: web_app in private chats (https), URL button elsewhere, protected, no preview', async () => {
    const { ch, rec } = channel();
    await ch.requestEnvInput(priv, req);
    await ch.requestEnvInput(group, req);
    await ch.requestEnvInput(priv, { ...req, url: 'http://127.0.0.1:1/s/tok' });
    const [a, b, c] = rec.of('sendMessage').map((x) => x.payload);
    expect(a.reply_markup.inline_keyboard[0][0].web_app.url).toBe(req.url);
    expect(a).toMatchObject({ protect_content: true, link_preview_options: { is_disabled: true }, parse_mode: 'HTML' });
    expect(a.text).toContain('<b>Qwen &lt;DashScope&gt;</b>');
    expect(b.reply_markup.inline_keyboard[0][0]).toEqual({ text: expect.any(String), url: req.url });
    expect(c.reply_markup.inline_keyboard[0][0].url).toBe('http://127.0.0.1:1/s/tok');
  });

  it('falls back to a URL button when Telegram refuses the web_app button', async () => {
    let n = 0;
    const { ch, rec } = channel({
      sendMessage: (p: any): StubResult =>
        p.reply_markup?.inline_keyboard?.[0]?.[0]?.web_app
          ? { ok: false, error_code: 400, description: 'Bad Request: BUTTON_TYPE_INVALID' }
          : { ok: true, result: { message_id: 50 + n++, date: 0, chat: { id: 42, type: 'private' } } },
    });
    const sent = await ch.requestEnvInput(priv, req);
    expect(sent.messageId).toBe('50');
    expect(rec.of('sendMessage').at(-1)!.payload.reply_markup.inline_keyboard[0][0].url).toBe(req.url);
  });

  it('keyResult edits the card: ✅ with the masked key, or the error and a fresh-form button', async () => {
    const { ch, rec } = channel();
    await ch.keyResult({ ...priv, message_id: '99' }, { workspace: 'tg:42', model_id: 'm1', outcome: 'ok', text: 'ok', masked: '****abcd', vendor_name: 'Qwen', model_name: 'Qwen Plus', lang: 'en' });
    const ok = rec.of('editMessageText')[0].payload;
    expect(ok).toMatchObject({ chat_id: 42, message_id: 99 });
    expect(ok.text).toMatch(/✅.*\*\*\*\*abcd/);
    expect(ok.reply_markup.inline_keyboard).toEqual([]);
    // No message id on the ref: the card this process sent for the model is edited.
    const card = await ch.requestEnvInput(priv, { ...req, model_id: 'm2' });
    await ch.keyResult(priv, { workspace: 'tg:42', model_id: 'm2', outcome: 'invalid_key', text: 'The key was rejected <401>', lang: 'en' });
    const err = rec.of('editMessageText')[1].payload;
    expect(err.message_id).toBe(Number(card.messageId));
    expect(err.text).toContain('&lt;401&gt;');
    expect(err.reply_markup.inline_keyboard[0][0].callback_data).toBe('/byok key m2');
  });

  it('deleteInbound: true when deleted, false when Telegram refuses', async () => {
    const { ch } = channel({ deleteMessage: (p: any): StubResult => (p.message_id === 1 ? { ok: true, result: true } : { ok: false, error_code: 400, description: "Bad Request: message can't be deleted" }) });
    const msg = { channel: 'telegram', chat: priv, senderId: '42', workspace: 'tg:42', isPrivate: true, text: 'x', kind: 'text' } as InboundMessage;
    expect(await ch.deleteInbound({ ...msg, messageId: '1' })).toBe(true);
    expect(await ch.deleteInbound({ ...msg, messageId: '2' })).toBe(false);
  });

  it('model picker: user-bound callbacks, paging, foreign and stale taps refused, a tap edits the menu', async () => {
    const { ch, rec, got } = await started();
    const choices = Array.from({ length: 12 }, (_, i) => [{ label: `M${i}`, data: `/model custom/m${i}` }]);
    const sent = await ch.send(priv, { text: 'pick', choices });
    const kb = rec.of('sendMessage')[0].payload.reply_markup.inline_keyboard;
    expect(kb).toHaveLength(9); // 8 + navigation
    expect(kb[0][0].callback_data).toBe(`c|${(42).toString(36)}|/model custom/m0`);
    const nav = kb[8];
    const next = nav.find((b: any) => /Next/.test(b.text));
    const message = { message_id: Number(sent.messageId), date: Math.floor(Date.now() / 1000), chat: { id: 42, type: 'private' as const, first_name: 'Ada' } };
    // Page 2
    await ch.dispatch({ update_id: 1, callback_query: { id: 'q1', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada' }, message, data: next.callback_data } });
    const page2 = rec.of('editMessageReplyMarkup')[0].payload.reply_markup.inline_keyboard;
    expect(page2[0][0].text).toBe('M8');
    // Foreign tap
    await ch.dispatch({ update_id: 2, callback_query: { id: 'q2', chat_instance: 'ci', from: { id: 43, is_bot: false, first_name: 'Bo' }, message, data: kb[0][0].callback_data } });
    expect(rec.of('answerCallbackQuery').at(-1)!.payload).toMatchObject({ callback_query_id: 'q2', show_alert: true });
    // Stale menu
    await ch.dispatch({ update_id: 3, callback_query: { id: 'q3', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada' }, message: { ...message, date: 1000 }, data: kb[0][0].callback_data } });
    expect(rec.of('answerCallbackQuery').at(-1)!.payload.text).toMatch(/out of date/);
    expect(got).toHaveLength(0);
    // Good tap: the core gets the command; its first reply edits the menu.
    await ch.dispatch({ update_id: 4, callback_query: { id: 'q4', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada', language_code: 'en' }, message, data: kb[1][0].callback_data } });
    expect(got[0]).toMatchObject({ kind: 'callback', callbackData: '/model custom/m1', workspace: 'tg:42' });
    expect(rec.of('answerCallbackQuery').map((c) => c.payload.callback_query_id)).toEqual(['q1', 'q2', 'q3', 'q4']);
    await ch.send(got[0].chat, { text: 'Switched to M1' });
    expect(rec.of('editMessageText').at(-1)!.payload).toMatchObject({ message_id: Number(sent.messageId), text: 'Switched to M1' });
    // Garbage data is answered too.
    await ch.dispatch({ update_id: 5, callback_query: { id: 'q5', chat_instance: 'ci', from: { id: 42, is_bot: false, first_name: 'Ada' }, message, data: 'nope' } });
    expect(rec.of('answerCallbackQuery').at(-1)!.payload.callback_query_id).toBe('q5');
  });

  it('streams with throttled edits, splits long answers, falls back to plain text on parse errors', async () => {
    const { ch, rec } = channel(
      {
        editMessageText: (p: any): StubResult => (p.parse_mode === 'HTML' && p.text.includes('BAD') ? { ok: false, error_code: 400, description: "Bad Request: can't parse entities" } : { ok: true, result: true }),
      },
      { drafts: 'never', editIntervalMs: 0 },
    );
    // Chunks far apart: each is shown before the next arrives.
    async function* chunks() {
      yield 'Hello ';
      await sleep(30);
      yield '**world**';
      await sleep(30);
      yield ' BAD';
    }
    const full = await ch.streamReply(priv, chunks(), 'en');
    expect(full).toBe('Hello **world** BAD');
    expect(rec.of('sendMessage')[0].payload).toMatchObject({ text: 'Hello', parse_mode: 'HTML' });
    const edits = rec.of('editMessageText');
    expect(edits.at(-1)!.payload.parse_mode).toBeUndefined(); // plain fallback
    expect(edits.at(-1)!.payload.text).toBe('Hello **world** BAD');

    const para = 'x'.repeat(3000);
    async function* long() {
      yield `${para}\n\n`;
      yield `${para}\n\n`;
      yield 'end';
    }
    rec.calls.length = 0;
    await ch.streamReply(priv, long(), 'en');
    const texts = [...rec.of('sendMessage'), ...rec.of('editMessageText')].map((c) => c.payload.text as string);
    expect(Math.max(...texts.map((s) => s.length))).toBeLessThanOrEqual(4096);
    expect(rec.of('sendMessage').length).toBeGreaterThanOrEqual(2);
  });

  it('edits at most once per interval per chat', async () => {
    const { ch, rec } = channel({}, { drafts: 'never', editIntervalMs: 200 });
    async function* slow() {
      for (let i = 0; i < 20; i++) {
        await sleep(20);
        yield `w${i} `;
      }
    }
    await ch.streamReply(priv, slow(), 'en');
    const times = [...rec.of('sendMessage'), ...rec.of('editMessageText')].map((c) => c.at);
    // ~400 ms of tokens at 200 ms per update: a handful of calls, not 20.
    expect(times.length).toBeLessThanOrEqual(5);
    for (let i = 1; i < times.length - 1; i++) expect(times[i] - times[i - 1]).toBeGreaterThanOrEqual(150);
  });

  it('uses sendMessageDraft in private chats, then sends the final message; falls back when unavailable', async () => {
    const { ch, rec } = channel({}, { editIntervalMs: 0 });
    async function* c() {
      yield 'a';
      await sleep(30);
      yield 'b';
    }
    await ch.streamReply(priv, c(), 'en');
    expect(rec.of('sendMessageDraft').length).toBeGreaterThan(0);
    expect(rec.of('sendMessage').at(-1)!.payload.text).toBe('ab');
    expect(rec.of('editMessageText')).toHaveLength(0);

    const { ch: ch2, rec: rec2 } = channel({ sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' } }, { editIntervalMs: 0, retry: { maxRetryAttempts: 0 } });
    await ch2.streamReply(priv, c(), 'en');
    expect(rec2.of('sendMessage')).toHaveLength(1);
    expect(rec2.of('editMessageText').length).toBeGreaterThan(0);
    // Groups never use drafts.
    const { ch: ch3, rec: rec3 } = channel({}, { editIntervalMs: 0 });
    await ch3.streamReply(group, c(), 'en');
    expect(rec3.of('sendMessageDraft')).toHaveLength(0);
  });

  it('webhook route: wrong or missing secret → 401; right secret → 200 and the update is handled', async () => {
    const { ch, got } = await started();
    const server = Fastify();
    ch.mount(server);
    const update = { update_id: 9, message: { message_id: 3, date: 0, chat: { id: 42, type: 'private' }, from: { id: 42, is_bot: false, first_name: 'Ada' }, text: 'hello' } };
    const bad = await server.inject({ method: 'POST', url: '/tg/hook', headers: { 'x-telegram-bot-api-secret-token': 'nope' }, payload: update });
    expect(bad.statusCode).toBe(401);
    const none = await server.inject({ method: 'POST', url: '/tg/hook', payload: update });
    expect(none.statusCode).toBe(401);
    const good = await server.inject({ method: 'POST', url: '/tg/hook', headers: { 'x-telegram-bot-api-secret-token': 'good-secret' }, payload: update });
    expect(good.statusCode).toBe(200);
    await sleep(20);
    expect(got.map((m) => m.text)).toEqual(['hello']);
    await server.close();
  });

  it('verifyFormLaunch: the asking user passes, another user and bad signatures are refused', async () => {
    const { ch } = channel({}, { requireInitData: false });
    const record = { workspace: 'tg:42', channel: priv };
    const mk = (id: number, token = TOKEN) => signInitData({ auth_date: String(Math.floor(Date.now() / 1000)), user: JSON.stringify({ id }) }, token);
    const reqWith = (h?: string) => ({ headers: h ? { 'x-telegram-init-data': h } : {}, telegramInitData: h }) as any;
    expect(await ch.verifyFormLaunch(record, reqWith(mk(42)))).toBe(true);
    expect(await ch.verifyFormLaunch(record, reqWith(mk(43)))).toBe(false);
    expect(await ch.verifyFormLaunch(record, reqWith(mk(42, 'other:token')))).toBe(false);
    expect(await ch.verifyFormLaunch(record, reqWith())).toBe(true);
    const { ch: strict } = channel({}, { requireInitData: true });
    expect(await strict.verifyFormLaunch(record, reqWith())).toBe(false);
    expect(await ch.verifyFormLaunch({ workspace: 'local', channel: { channel: 'shell', chat_id: 'x' } }, reqWith(mk(43)))).toBe(true);
    // A form presented as a Mini App demands launch data even when plain links are allowed.
    const miniApp = { ...record, launch: 'web_app' as const };
    expect(await ch.verifyFormLaunch(miniApp, reqWith())).toBe(false);
    expect(await ch.verifyFormLaunch(miniApp, reqWith(mk(42)))).toBe(true);
    expect(await ch.verifyFormLaunch({ ...record, launch: 'link' as const }, reqWith())).toBe(true);
    // A group's key form (/group key) goes to the asking admin's private chat: that admin passes, nobody else.
    const groupForm = { workspace: 'tg:group:-100777', channel: priv, launch: 'web_app' as const };
    expect(await ch.verifyFormLaunch(groupForm, reqWith(mk(42)))).toBe(true);
    expect(await ch.verifyFormLaunch(groupForm, reqWith(mk(43)))).toBe(false);
  });

  it('group admin check via getChatMember; deep links to the private chat', async () => {
    const { ch, rec } = channel({ getChatMember: (p: any): StubResult => ({ ok: true, result: { status: p.user_id === 1 ? 'administrator' : 'member', user: { id: p.user_id } } }) });
    const g = (id: number) => ({ channel: 'telegram', chat: group, senderId: String(id), workspace: `tg:${id}`, isPrivate: false, text: '', kind: 'text' }) as InboundMessage;
    expect(await ch.isGroupAdmin(g(1))).toBe(true);
    expect(await ch.isGroupAdmin(g(2))).toBe(false);
    expect(await ch.isGroupAdmin(g(1))).toBe(true);
    expect(rec.of('getChatMember')).toHaveLength(2); // cached
    expect(ch.privateChatLink('byok_add_qwen')).toBe('https://t.me/ByokTestBot?start=byok_add_qwen');
  });
});

describe('webhook registration', () => {
  it('retries a failed setWebhook until it succeeds, and /readyz follows', async () => {
    let calls = 0;
    const { ch } = await started({
      setWebhook: () => (++calls === 1 ? { ok: false, error_code: 502, description: 'Bad Gateway' } : { ok: true, result: true }),
    });
    try {
      expect(ch.readiness()).toMatchObject({ ready: false, state: 'webhook_not_set' });
      for (let i = 0; i < 60 && !ch.readiness().ready; i++) await sleep(100);
      expect(calls).toBe(2);
      expect(ch.readiness()).toEqual({ ready: true, state: 'webhook' });
    } finally {
      await ch.stop();
    }
  });
});
