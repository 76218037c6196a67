import TelegramTestApi from 'telegram-test-api';
import type { TelegramServer as EmulatorServer } from 'telegram-test-api/lib/telegramServer.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import { signInitData } from '../../channels/telegram/initdata.ts';
import type { App } from '../../src/app.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { apiRecorder } from '../support/telegram.ts';

/**
 * The Telegram channel against telegram-test-api (a Bot API emulator) and a fake
 * OpenAI-compatible vendor. The emulator has no long polling (getUpdates is delayed by the
 * recorder transformer) and answers 500 for methods it lacks: those are stubbed below
 * (setMyCommands, sendMessageDraft → "method not found" so streaming uses edits,
 * getChatMember) and every call is recorded for assertions.
 */

// CommonJS default export: the class itself at runtime.
const TelegramServer = ((TelegramTestApi as any).default ?? TelegramTestApi) as typeof EmulatorServer;

const PORT = 9101;
const TOKEN = '555001:e2e-telegram-token';
const USER = 5001;
const OTHER = 5002;
const GROUP = -5003;
const KEY = 'sk-' + 'b7e3d91c04a85f2e6c19d07a3e4f8b21';
const PASTED = 'sk-proj-' + 'Q2x9ZkR4bTNuV1pHc0tMYUJ2Y0RlRmdIaUpr' + 'TG1OcFFyU3RVdld4WXo';
const REPLY = 'Hello from the fake vendor. This answer is streamed token by token so that the Telegram channel can show it progressively.';

interface BotMsg {
  messageId: number;
  message: Record<string, any>;
}

describe('telegram channel: the whole flow against the Bot API emulator', () => {
  let server: EmulatorServer;
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  const rec = apiRecorder({
    setMyCommands: { ok: true, result: true },
    sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' },
    getChatMember: (p) => ({ ok: true, result: { status: 'member', user: { id: p.user_id } } }),
  });
  let client: ReturnType<EmulatorServer['getClient']>;
  let group: ReturnType<EmulatorServer['getClient']>;
  let modelId = '';
  let cardUrl = '';
  let cardMessageId = 0;

  const botMessages = (chatId: number): BotMsg[] =>
    (server.storage.botMessages as unknown as BotMsg[]).filter((m) => String(m.message.chat_id) === String(chatId));
  const waitBot = (chatId: number, pred: (m: BotMsg) => boolean, what: string, ms = 10_000) =>
    waitFor(() => botMessages(chatId).find(pred), ms, what);

  beforeAll(async () => {
    server = new TelegramServer({ port: PORT, storage: 'RAM', storeTimeout: 600 });
    await server.start();
    fake = await startFakeOpenAI({ reply: REPLY, chunkDelayMs: 15 });
    ({ app, cleanup } = await testApp({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: server.config.apiURL }));
    const ch = new TelegramChannel({
      config: app.config,
      logger: app.logger,
      store: app.store,
      webApp: 'never',
      transformers: [rec.transformer],
      editIntervalMs: 150,
      pollRetryInterval: 100,
    });
    app.addChannel(ch);
    await app.start();
    client = server.getClient(TOKEN, { userId: USER, chatId: USER, firstName: 'Ann', type: 'private' });
    group = server.getClient(TOKEN, { userId: USER, chatId: GROUP, firstName: 'Ann', type: 'group', chatTitle: 'Team' });
  }, 60_000);

  afterAll(async () => {
    await cleanup?.();
    await fake?.close();
    await server?.stop();
  });

  it('registers the command list in English and Chinese at start', () => {
    const cmds = rec.of('setMyCommands');
    expect(cmds.map((c) => c.payload.language_code ?? 'default')).toEqual(['default', 'zh']);
    expect(cmds[0].payload.commands.map((c: any) => c.command)).toContain('byok');
  });

  it('/byok add qwen answers with a protected secure-input card, previews off', async () => {
    await client.sendCommand(client.makeCommand('/byok add qwen'));
    const card = await waitBot(USER, (m) => !!m.message.reply_markup?.inline_keyboard?.[0]?.[0]?.url?.includes('/s/'), 'the secure-input card');
    const button = card.message.reply_markup.inline_keyboard[0][0];
    expect(button.url ?? button.web_app?.url).toMatch(/\/s\/[A-Za-z0-9_-]{43}$/);
    expect(card.message.protect_content).toBe(true);
    expect(card.message.link_preview_options).toEqual({ is_disabled: true });
    expect(card.message.text).toMatch(/Qwen/);
    cardUrl = button.url;
    cardMessageId = card.messageId;
    const list = await app.registry.list_models(`tg:${USER}`);
    expect(list.ok).toBe(true);
    modelId = (list as any).models[0].id;
    const upd = await app.registry.update(`tg:${USER}`, modelId, { base_url: fake.baseUrl });
    expect(upd.ok).toBe(true);
  });

  it('the form refuses Mini App initData of another Telegram user (403) and accepts the right one', async () => {
    const initFor = (id: number) => signInitData({ auth_date: String(Math.floor(Date.now() / 1000)), user: JSON.stringify({ id, first_name: 'X' }) }, TOKEN);
    const wrong = await submitForm(cardUrl, { DASHSCOPE_API_KEY: KEY }, { headers: { 'X-Telegram-Init-Data': initFor(OTHER) } });
    expect(wrong.status).toBe(403);
    const forged = await submitForm(cardUrl, { DASHSCOPE_API_KEY: KEY }, { headers: { 'X-Telegram-Init-Data': signInitData({ auth_date: String(Math.floor(Date.now() / 1000)), user: JSON.stringify({ id: USER }) }, '1:other-bot') } });
    expect(forged.status).toBe(403);
    const ok = await submitForm(cardUrl, { DASHSCOPE_API_KEY: KEY }, { headers: { 'X-Telegram-Init-Data': initFor(USER) } });
    expect(ok.status).toBe(202);
  });

  it('the card is edited to ✅ with the masked key once the worker validated it', async () => {
    const edited = await waitBot(USER, (m) => m.messageId === cardMessageId && /✅/.test(m.message.text), 'the card edited to ✅', 15_000);
    expect(edited.message.text).toContain('****' + KEY.slice(-4));
    expect(edited.message.text).not.toContain(KEY);
    expect(fake.requests.some((r) => r.key === KEY)).toBe(true);
  });

  it('/model shows a picker; tapping the custom model switches and edits the picker', async () => {
    await client.sendCommand(client.makeCommand('/model'));
    const picker = await waitBot(USER, (m) => (m.message.reply_markup?.inline_keyboard ?? []).some((r: any[]) => r.some((b) => b.callback_data?.includes(`custom/${modelId}`))), 'the model picker');
    const button = picker.message.reply_markup.inline_keyboard.flat().find((b: any) => b.callback_data.includes(`custom/${modelId}`));
    expect(Buffer.byteLength(button.callback_data)).toBeLessThanOrEqual(64);
    const message = { message_id: picker.messageId, date: Math.floor(Date.now() / 1000), chat: { id: USER, type: 'private' } };
    // Someone else's tap is refused.
    const foreign = server.getClient(TOKEN, { userId: OTHER, chatId: USER });
    const before = rec.of('answerCallbackQuery').length;
    await foreign.sendCallback(foreign.makeCallbackQuery(button.callback_data, { message }) as any);
    await waitFor(() => rec.of('answerCallbackQuery').length > before, 5000, 'the foreign tap answered');
    expect(rec.of('answerCallbackQuery').at(-1)!.payload.show_alert).toBe(true);
    // The owner's tap switches.
    await client.sendCallback(client.makeCallbackQuery(button.callback_data, { message }) as any);
    await waitBot(USER, (m) => m.messageId === picker.messageId && /now uses|switched/i.test(m.message.text), 'the picker edited');
    expect(rec.of('answerCallbackQuery').length).toBe(before + 2);
  });

  it('a question is answered from the vendor on the user key, streamed with edits', async () => {
    const n = fake.requests.length;
    const sentBefore = botMessages(USER).length;
    await client.sendMessage(client.makeMessage('Tell me something nice'));
    const answer = await waitBot(USER, (m) => m.message.text === REPLY, 'the full streamed answer', 15_000);
    expect(botMessages(USER).length).toBe(sentBefore + 1); // one message, edited as tokens arrive
    const edits = rec.of('editMessageText').filter((c) => c.payload.message_id === answer.messageId);
    expect(edits.length).toBeGreaterThanOrEqual(1);
    const chat = fake.requests.slice(n).find((r) => r.path.includes('/chat/completions'));
    expect(chat?.key).toBe(KEY);
    expect(JSON.stringify(chat?.body)).toContain('Tell me something nice');
  });

  it('a pasted key is deleted and never reaches the vendor', async () => {
    const n = fake.requests.length;
    await client.sendMessage(client.makeMessage(`here is my key ${PASTED}`));
    await waitFor(() => rec.of('deleteMessage').length > 0, 10_000, 'deleteMessage');
    expect(rec.of('deleteMessage')[0].payload.chat_id).toBe(USER);
    const warn = await waitBot(USER, (m) => /rotate/i.test(m.message.text ?? ''), 'the refusal');
    expect(warn.message.text).not.toContain(PASTED);
    await new Promise((r) => setTimeout(r, 300));
    expect(fake.requests.slice(n).some((r) => r.raw.includes(PASTED) || r.key === PASTED)).toBe(false);
  });

  it('/byok add in a group answers with a deep link to the private chat, not a card', async () => {
    await group.sendCommand(group.makeCommand('/byok add qwen'));
    const reply = await waitBot(GROUP, (m) => /t\.me\//.test(m.message.text ?? ''), 'the deep link');
    expect(reply.message.text).toContain('https://t.me/TestNameBot?start=byok_add_qwen');
    expect(botMessages(GROUP).some((m) => JSON.stringify(m.message.reply_markup ?? {}).includes('/s/'))).toBe(false);
    expect(reply.message.link_preview_options).toEqual({ is_disabled: true });
  });
});

describe('telegram channel: webhook mode', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let server: EmulatorServer;
  const TOKEN2 = '555002:e2e-webhook-token';
  const rec = apiRecorder({ setMyCommands: { ok: true, result: true }, setWebhook: { ok: true, result: true } });

  beforeAll(async () => {
    server = new TelegramServer({ port: PORT + 1, storage: 'RAM' });
    await server.start();
    ({ app, cleanup } = await testApp({
      TELEGRAM_BOT_TOKEN: TOKEN2,
      TELEGRAM_API_ROOT: server.config.apiURL,
      TELEGRAM_WEBHOOK_URL: 'https://bot.example.com/telegram/hook',
      TELEGRAM_WEBHOOK_SECRET: 'right-secret',
    }));
    app.addChannel(new TelegramChannel({ config: app.config, logger: app.logger, store: app.store, transformers: [rec.transformer], budget: false }));
    await app.start();
  }, 60_000);

  afterAll(async () => {
    await cleanup?.();
    await server?.stop();
  });

  it('sets the webhook with the secret token and refuses updates without it', async () => {
    expect(rec.of('setWebhook')[0].payload).toMatchObject({ url: 'https://bot.example.com/telegram/hook', secret_token: 'right-secret' });
    const update = { update_id: 1, message: { message_id: 1, date: Math.floor(Date.now() / 1000), chat: { id: 6001, type: 'private' }, from: { id: 6001, first_name: 'W' }, text: '/help' } };
    const url = `${app.config.publicUrl}/telegram/hook`;
    const post = (secret?: string) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(secret ? { 'x-telegram-bot-api-secret-token': secret } : {}) }, body: JSON.stringify(update) });
    expect((await post('wrong-secret')).status).toBe(401);
    expect((await post()).status).toBe(401);
    await new Promise((r) => setTimeout(r, 200));
    expect(rec.of('sendMessage')).toHaveLength(0);
    expect((await post('right-secret')).status).toBe(200);
    await waitFor(() => rec.of('sendMessage').length > 0, 10_000, 'the /help answer');
    expect(rec.of('sendMessage')[0].payload.chat_id).toBe(6001);
  });
});
