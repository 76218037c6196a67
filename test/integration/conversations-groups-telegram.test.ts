import TelegramTestApi from 'telegram-test-api';
import type { TelegramServer as EmulatorServer } from 'telegram-test-api/lib/telegramServer.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import type { App } from '../../src/app.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { apiRecorder } from '../support/telegram.ts';

/**
 * Issue 12 "group chats" through the Telegram emulator: a real group chat with an admin and a
 * member. getChatMember (which the emulator does not implement) is answered by the recorder
 * the way Telegram does: `administrator` / `member`, or a 400 error for a check that fails.
 * The key form link only ever goes to the admin's private chat; a failing check refuses.
 */

// CommonJS default export: the class itself at runtime.
const TelegramServer = ((TelegramTestApi as any).default ?? TelegramTestApi) as typeof EmulatorServer;

const PORT = 9141;
const TOKEN = '555041:group-telegram-token';
const GROUP = -100555041;
const ADMIN = 5041;
const MEMBER = 5042;
/** An admin of the group whose admin check errors (Telegram down, bot removed...). */
const BROKEN = 5043;
const KEY = 'sk-' + 'a11ce0b0b0c0ffee0123456789abcdef';

interface BotMsg {
  message: { chat_id: number | string; text?: string; reply_markup?: any };
}

describe('group chats on the Telegram emulator: admins manage, members use, a failing check refuses', () => {
  let server: EmulatorServer;
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  const rec = apiRecorder({
    setMyCommands: { ok: true, result: true },
    sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' },
    getChatMember: (p) => {
      if (Number(p.user_id) === BROKEN) return { ok: false, error_code: 400, description: 'Bad Request: chat not found' };
      const status = Number(p.chat_id) === GROUP && Number(p.user_id) === ADMIN ? 'administrator' : 'member';
      return { ok: true, result: { status, user: { id: p.user_id, is_bot: false, first_name: 'U' } } };
    },
    getChatAdministrators: { ok: true, result: [{ status: 'administrator', user: { id: ADMIN, is_bot: false, first_name: 'Ann' } }] },
  });
  let adminInGroup: ReturnType<EmulatorServer['getClient']>;
  let memberInGroup: ReturnType<EmulatorServer['getClient']>;
  let brokenInGroup: ReturnType<EmulatorServer['getClient']>;
  let adminPrivate: ReturnType<EmulatorServer['getClient']>;
  const gws = `tg:group:${GROUP}`;

  const botMessages = (chatId: number): BotMsg[] =>
    (server.storage.botMessages as unknown as BotMsg[]).filter((m) => String(m.message.chat_id) === String(chatId));
  const textsIn = (chatId: number) => botMessages(chatId).map((m) => m.message.text ?? '');
  /** The first bot message in `chatId` after the first `since` that matches. */
  const next = (chatId: number, since: number, pred: (text: string) => boolean, what: string) =>
    waitFor(() => textsIn(chatId).slice(since).find(pred), 15_000, what);
  const groupModels = async () => {
    const r = await app.registry.list_models(gws);
    return r.ok ? r.models.filter((m) => m.status !== 'removed') : [];
  };

  beforeAll(async () => {
    server = new TelegramServer({ port: PORT, storage: 'RAM', storeTimeout: 600 });
    await server.start();
    fake = await startFakeOpenAI({ keys: [KEY], reply: 'answer for the group' });
    ({ app, cleanup } = await testApp({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: server.config.apiURL }));
    const ch = new TelegramChannel({ config: app.config, logger: app.logger, store: app.store, webApp: 'never', transformers: [rec.transformer], editIntervalMs: 150, pollRetryInterval: 100 });
    app.addChannel(ch);
    await app.start();
    const group = { chatId: GROUP, type: 'group', chatTitle: 'Team' } as const;
    adminInGroup = server.getClient(TOKEN, { userId: ADMIN, firstName: 'Ann', ...group });
    memberInGroup = server.getClient(TOKEN, { userId: MEMBER, firstName: 'Bo', ...group });
    brokenInGroup = server.getClient(TOKEN, { userId: BROKEN, firstName: 'Cy', ...group });
    adminPrivate = server.getClient(TOKEN, { userId: ADMIN, chatId: ADMIN, firstName: 'Ann', type: 'private' });
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
    await fake?.close();
    await server?.stop();
  });

  it('an admin adds a group model; the key form goes to the admin\'s private chat, never the group', async () => {
    let g = textsIn(GROUP).length;
    await adminInGroup.sendCommand(adminInGroup.makeCommand('/group add qwen'));
    const [model] = await waitFor(async () => ((await groupModels()).length ? groupModels() : undefined), 15_000, 'the group model');
    const added = await next(GROUP, g, (x) => x.includes(`custom/${model!.id}`), 'group.added');
    expect(added).toContain(t('en', 'group.added', { name: model!.name, id: model!.id }));
    // The deep link to the private chat, bound to this admin; no form link in the group.
    const link = /https:\/\/t\.me\/\w+\?start=(grp_[A-Za-z0-9_-]+)/.exec(added)?.[1];
    expect(link, added).toBeTruthy();
    expect(rec.of('getChatMember').some((c) => Number(c.payload.user_id) === ADMIN && Number(c.payload.chat_id) === GROUP)).toBe(true);
    // The model reaches the fake vendor in this test (the template's host is the real one).
    expect((await app.registry.update(gws, model!.id, { base_url: fake.baseUrl })).ok).toBe(true);

    // /group key <id> in the group: another admin-bound request, again only a link.
    g = textsIn(GROUP).length;
    await adminInGroup.sendCommand(adminInGroup.makeCommand(`/group key ${model!.id}`));
    const again = await next(GROUP, g, (x) => /t\.me\//.test(x), 'group key link');
    const nonce = /start=(grp_[A-Za-z0-9_-]+)/.exec(again)![1]!;

    // The admin taps the link: /start grp_… in the private chat opens the secure form there.
    const p = textsIn(ADMIN).length;
    await adminPrivate.sendCommand(adminPrivate.makeCommand(`/start ${nonce}`));
    const card = await waitFor(
      () => botMessages(ADMIN).slice(p).find((m) => JSON.stringify(m.message.reply_markup ?? {}).includes('/s/')),
      15_000,
      'the secure-form card in the private chat',
    );
    const url: string = card.message.reply_markup.inline_keyboard[0][0].url;
    expect(url).toMatch(/\/s\/[A-Za-z0-9_-]{43}/);
    // Nothing in the group ever carried a form link.
    expect(botMessages(GROUP).some((m) => /\/s\/[A-Za-z0-9_-]{20,}/.test(JSON.stringify(m.message)))).toBe(false);
    // The link of /group add is single use and the admin's: the member cannot take it.
    const memberPrivate = server.getClient(TOKEN, { userId: MEMBER, chatId: MEMBER, firstName: 'Bo', type: 'private' });
    await memberPrivate.sendCommand(memberPrivate.makeCommand(`/start ${link}`));
    await next(MEMBER, 0, (x) => x === t('en', 'group.key_grant_invalid'), 'grant refused to the member');

    expect((await submitForm(url, { DASHSCOPE_API_KEY: KEY })).status).toBe(202);
    // The private card itself turns into the result (edited in place).
    await next(ADMIN, 0, (x) => /✅/.test(x) && x.includes('****cdef'), 'key stored notice (private)');
    expect(textsIn(GROUP).some((x) => x.includes('****'))).toBe(false);
  }, 60_000);

  it('a member picks the group model with /model and chats with it; /group add is refused', async () => {
    const [model] = await groupModels();
    let g = textsIn(GROUP).length;
    await memberInGroup.sendCommand(memberInGroup.makeCommand('/group add qwen'));
    await next(GROUP, g, (x) => x === t('en', 'group.admin_only'), 'admin_only for the member');
    expect(await groupModels()).toHaveLength(1);

    g = textsIn(GROUP).length;
    await memberInGroup.sendCommand(memberInGroup.makeCommand(`/model custom/${model!.id}`));
    await next(GROUP, g, (x) => x === t('en', 'model.group_switched', { model: model!.name }), 'group model chosen');
    g = textsIn(GROUP).length;
    await memberInGroup.sendMessage(memberInGroup.makeMessage('hello team'));
    await next(GROUP, g, (x) => x.includes('answer for the group'), 'the answer from the group model');
    // The group's key answered (the member has none).
    expect(fake.requests.at(-1)?.key).toBe(KEY);
  }, 60_000);

  it('fails closed: when the admin check errors, /group add and /group key are refused (English and Chinese)', async () => {
    const [model] = await groupModels();
    let g = textsIn(GROUP).length;
    await brokenInGroup.sendCommand(brokenInGroup.makeCommand('/group add deepseek'));
    await next(GROUP, g, (x) => x === t('en', 'group.admin_only'), 'refused on a failing check');
    expect(rec.of('getChatMember').some((c) => Number(c.payload.user_id) === BROKEN)).toBe(true);
    g = textsIn(GROUP).length;
    await brokenInGroup.sendCommand(brokenInGroup.makeCommand(`/group key ${model!.id}`, { from: { language_code: 'zh-hans' } }));
    await next(GROUP, g, (x) => x === t('zh', 'group.admin_only'), 'refused in Chinese');
    g = textsIn(GROUP).length;
    await brokenInGroup.sendCommand(brokenInGroup.makeCommand(`/group remove ${model!.id}`));
    await next(GROUP, g, (x) => x === t('en', 'group.admin_only'), 'remove refused');
    const left = await groupModels();
    expect(left.map((m) => m.id)).toEqual([model!.id]);
    expect(textsIn(GROUP).some((x) => /t\.me\/\w+\?start=grp_/.test(x) && textsIn(GROUP).indexOf(x) >= g)).toBe(false);
  }, 60_000);
});
