import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Update } from 'grammy/types';
import { mock, PuppetMock } from 'wechaty-puppet-mock';
import { ShellChannel } from '../../channels/shell/shell.ts';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import { WechatChannel } from '../../channels/wechat/index.ts';
import type { App } from '../../src/app.ts';
import type { InboundMessage } from '../../src/channel.ts';
import { t } from '../../src/i18n/index.ts';
import { detectKeys } from '../../src/secrets/detector.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { channelConformance, type ChannelHarness } from '../support/channel-conformance.ts';
import { testApp } from '../support/app.ts';
import { startFakeBotApi } from '../support/fake-bot-api.ts';
import { waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const logger = createLogger({ level: 'silent' });
const tmp = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** Resolves with the next message the adapter hands the core whose text is `text`. */
function inbox() {
  const got: InboundMessage[] = [];
  return {
    onMessage: async (m: InboundMessage) => void got.push(m),
    async next(text: string): Promise<InboundMessage> {
      let m: InboundMessage | undefined;
      await waitFor(() => (m = got.find((x) => x.text === text || x.callbackData === text)) !== undefined, 5000, `inbound "${text}"`);
      got.splice(got.indexOf(m!), 1);
      return m!;
    },
  };
}

channelConformance('recording', async () => {
  const ch = new RecordingChannel();
  const box = inbox();
  await ch.start(box.onMessage);
  return {
    adapter: ch,
    privateChat: { channel: ch.name, chat_id: '1', user_id: '1' },
    groupChat: { channel: ch.name, chat_id: '-100', user_id: '1' },
    unaddressedInGroup: 'chatter not for the bot',
    seen: async (chat) => ch.sent.filter((s) => s.chat.chat_id === chat.chat_id).map((s) => [s.text, ...(s.choices ?? []).flat().map((c) => `${c.label} ${c.url ?? ''}`)].join('\n')),
    async userSays(text, where) {
      await ch.say(text, '1', where === 'group' ? { group: '-100', addressed: text !== 'chatter not for the bot' } : {});
      return box.next(text);
    },
    close: () => ch.stop(),
  } satisfies ChannelHarness;
});

channelConformance('shell', async () => {
  const input = new PassThrough();
  let out = '';
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  const ch = new ShellChannel({ input, output, lang: 'en', pasteWindowMs: 10 });
  const box = inbox();
  await ch.start(box.onMessage);
  return {
    adapter: ch,
    privateChat: { channel: 'shell', chat_id: 'local', user_id: 'local' },
    seen: async () => out.split('\n').filter((l) => l.trim()),
    async userSays(text) {
      input.write(`${text}\n`);
      return box.next(text);
    },
    close: () => ch.stop(),
  } satisfies ChannelHarness;
});

channelConformance('telegram', async () => {
  const api = await startFakeBotApi({ username: 'ByokConformBot' });
  const dir = tmp('byok-conform-tg-');
  const ch = new TelegramChannel({
    config: loadConfig({ TELEGRAM_BOT_TOKEN: '900:conformance', BYOK_DATA_DIR: dir }),
    logger,
    apiRoot: api.url,
    botInfo: { id: 900, username: 'ByokConformBot' },
    store: new FileStore(dir),
    webhookUrl: 'https://bot.example/tg/hook',
    webhookSecret: 'conformance-secret',
    budget: false,
    editIntervalMs: 0,
  });
  const box = inbox();
  await ch.start(box.onMessage);
  let updateId = 1;
  let messageId = 5000;
  const user = { id: 42, is_bot: false, first_name: 'Ada', language_code: 'en' };
  const render = (m: { text: string; markup?: { inline_keyboard?: Array<Array<{ text: string; url?: string; web_app?: { url: string } }>> } }) =>
    [m.text, ...(m.markup?.inline_keyboard ?? []).flat().map((b) => `${b.text} ${b.url ?? b.web_app?.url ?? ''}`)].join('\n');
  return {
    adapter: ch,
    privateChat: { channel: 'telegram', chat_id: '42', user_id: '42', lang: 'en' },
    groupChat: { channel: 'telegram', chat_id: '-1001', user_id: '42', lang: 'en' },
    unaddressedInGroup: '/ask@SomeOtherBot what is new',
    seen: async (chat) => api.messages(chat.chat_id).map(render),
    async userSays(text, where) {
      const chat = where === 'group' ? { id: -1001, type: 'supergroup' as const, title: 'Team' } : { id: 42, type: 'private' as const, first_name: 'Ada' };
      const update: Update = { update_id: updateId++, message: { message_id: messageId++, date: Math.floor(Date.now() / 1000), chat, from: user, text } };
      await ch.dispatch(update);
      return box.next(text);
    },
    deletedOnPlatform: async (msg) => api.of('deleteMessage').some((c) => String(c.payload.chat_id) === msg.chat.chat_id && String(c.payload.message_id) === msg.messageId),
    async close() {
      await ch.stop();
      await api.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  } satisfies ChannelHarness;
});

channelConformance('wechat', async () => {
  const dir = tmp('byok-conform-wx-');
  const mocker = new mock.Mocker();
  const ch = new WechatChannel({ config: loadConfig({ BYOK_DATA_DIR: dir }), logger, puppet: new PuppetMock({ mocker }), printQr: false, pacing: { perChatIntervalMs: 0, globalPerMinute: 0 } });
  const box = inbox();
  await ch.start(box.onMessage);
  const [bot, alice, owner] = mocker.createContacts(3);
  mocker.login(bot!);
  await waitFor(() => ch.wechaty?.isLoggedIn, 5000, 'login');
  const room = mocker.createRoom({ id: 'conform@chatroom', memberIdList: [bot!.id, alice!.id, owner!.id], ownerId: owner!.id });
  const toAlice: string[] = [];
  (alice as unknown as { on(ev: 'message', fn: (m: { payload: { talkerId: string; text?: string } }) => void): void }).on('message', (m) => {
    if (m.payload.talkerId === bot!.id) toAlice.push(m.payload.text ?? '');
  });
  return {
    adapter: ch,
    privateChat: { channel: 'wechat', chat_id: alice!.id, user_id: alice!.id },
    groupChat: { channel: 'wechat', chat_id: room.id, user_id: alice!.id },
    unaddressedInGroup: 'just chatting in the room',
    seen: async () => [...toAlice],
    async userSays(text, where) {
      alice!.say(text).to(where === 'group' ? room : bot!);
      return box.next(text);
    },
    async close() {
      await ch.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  } satisfies ChannelHarness;
});

describe('core key guard: every message is checked before the unaddressed ones are dropped', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  const chan = new RecordingChannel('conform-guard');
  const GROUP = '-100777';
  // A key of a shape no detector rule knows: only the user's stored-key fingerprint finds it.
  const ownKey = `qz${randomBytes(18).toString('hex')}`;

  beforeAll(async () => {
    ({ app, cleanup } = await testApp());
    app.addChannel(chan);
    await app.start();
    await app.vault.put('tg:31', 'ODDVENDOR_API_KEY', new TextEncoder().encode(ownKey));
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await cleanup?.();
  });

  it('a group message not addressed to the bot carrying the user\'s own unusually shaped key gets the rotate warning (en, zh)', async () => {
    const text = `here you go ${ownKey} thanks`;
    expect(detectKeys(text).refused).toBe(false);
    for (const lang of ['en', 'zh'] as const) {
      const before = chan.sent.length;
      await chan.say(text, '31', { group: GROUP, lang, addressed: false });
      const reply = chan.sent.slice(before).map((s) => s.text).join('\n');
      expect(reply).toContain(t(lang, 'guard.rotate'));
      expect(reply).not.toContain(ownKey);
      expect(chan.sent.at(-1)!.chat.chat_id).toBe(GROUP);
    }
  });

  it('other unaddressed group chatter is dropped after the check; the same text addressed is answered', async () => {
    const before = chan.sent.length;
    await chan.say('/help', '31', { group: GROUP, addressed: false });
    await chan.say('lunch at noon?', '31', { group: GROUP, addressed: false });
    expect(chan.sent.length).toBe(before);
    await chan.say('/help', '31', { group: GROUP });
    expect(chan.sent.length).toBeGreaterThan(before);
  });
});
