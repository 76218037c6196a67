import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { types as wxTypes } from 'wechaty';
import { mock, PuppetMock } from 'wechaty-puppet-mock';
import { WechatChannel, groupWorkspaceOf, renderChoices, sanitizeId, workspaceOf, type MessageLike } from '../../channels/wechat/index.ts';
import { loadConfig } from '../../src/config.ts';
import { t } from '../../src/i18n/index.ts';
import { createLogger } from '../../src/log.ts';
import { isValidWorkspace } from '../../src/store/types.ts';
import { waitFor } from '../support/form.ts';

const logger = createLogger({ level: 'silent' });

function channel(extra: Partial<ConstructorParameters<typeof WechatChannel>[0]> = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-wx-unit-'));
  const config = loadConfig({ BYOK_DATA_DIR: dataDir });
  return { ch: new WechatChannel({ config, logger, printQr: false, pacing: { perChatIntervalMs: 0, globalPerMinute: 0 }, ...extra }), dataDir };
}

function fakeMessage(over: Partial<{ self: boolean; talkerType: number; room: string; type: number; text: string; age: number; mention: boolean; mentionText: string }> = {}): MessageLike {
  const o = { self: false, talkerType: wxTypes.Contact.Individual, type: wxTypes.Message.Text, text: 'hello', age: 1, mention: false, ...over };
  return {
    id: 'm1',
    self: () => o.self,
    talker: () => ({ id: 'wxid_alice', name: () => 'Alice', type: () => o.talkerType }),
    room: () => (o.room ? { id: o.room } : undefined),
    type: () => o.type,
    text: () => o.text,
    age: () => o.age,
    mentionSelf: async () => o.mention,
    mentionText: async () => o.mentionText ?? o.text,
  };
}

describe('wechat ids', () => {
  it('keeps safe contact ids and builds valid workspaces', () => {
    expect(workspaceOf('wxid_abc123')).toBe('wx:wxid_abc123');
    expect(workspaceOf('@f0e1d2c3')).toBe('wx:@f0e1d2c3');
    expect(groupWorkspaceOf('123456@chatroom')).toBe('wx:room-123456@chatroom');
    for (const ws of [workspaceOf('wxid_abc123'), groupWorkspaceOf('123456@chatroom')]) expect(isValidWorkspace(ws)).toBe(true);
  });

  it('sanitises unsafe ids without collisions', () => {
    const ids = ['a/b', 'a:b', 'a b', 'a..b', '../etc', '微信用户', 'x'.repeat(300), 'x'.repeat(301), ''];
    const out = ids.map((id) => workspaceOf(id));
    for (const ws of out) {
      expect(isValidWorkspace(ws), ws).toBe(true);
      expect(ws).toMatch(/^wx:[A-Za-z0-9@._-]{1,128}$/);
    }
    expect(new Set(out).size).toBe(ids.length);
    expect(sanitizeId('a/b')).not.toBe(sanitizeId('a:b'));
    for (const id of ids) expect(isValidWorkspace(groupWorkspaceOf(id))).toBe(true);
  });
});

describe('wechat choices', () => {
  it('renders buttons as a numbered list', () => {
    const out = renderChoices('Pick one:', [[{ label: 'Open form', url: 'https://x.test/s/1' }], [{ label: 'Retest', data: '/byok test m1' }]]);
    expect(out).toBe('Pick one:\n\n1. Open form https://x.test/s/1\n2. Retest /byok test m1');
  });

  it('does not repeat a numbered list the text already has (/model)', () => {
    const text = 'Current: A\n\nModels:\n1. A\n2. B (custom/b-1234)';
    expect(renderChoices(text, [[{ label: 'A', data: '/model a' }], [{ label: 'B', data: '/model custom/b-1234' }]])).toBe(text);
    expect(renderChoices('plain', undefined)).toBe('plain');
  });
});

describe('wechat inbound mapping', () => {
  const { ch } = channel();

  it('maps a private text to the user workspace, Chinese by default', async () => {
    const m = await ch.toInbound(fakeMessage({ text: ' /model ' }));
    expect(m).toMatchObject({
      channel: 'wechat',
      chat: { channel: 'wechat', chat_id: 'wxid_alice', user_id: 'wxid_alice' },
      senderId: 'wxid_alice',
      workspace: 'wx:wxid_alice',
      isPrivate: true,
      lang: 'zh',
      text: '/model',
      kind: 'text',
    });
    expect((m as { groupWorkspace?: string }).groupWorkspace).toBeUndefined();
  });

  it('ignores its own messages, official accounts and replayed history', async () => {
    expect(await ch.toInbound(fakeMessage({ self: true }))).toBeUndefined();
    expect(await ch.toInbound(fakeMessage({ talkerType: wxTypes.Contact.Official }))).toBeUndefined();
    expect(await ch.toInbound(fakeMessage({ age: 3600 }))).toBeUndefined();
  });

  it('flags media in private chats for the note, ignores system messages and room media', async () => {
    expect(await ch.toInbound(fakeMessage({ type: wxTypes.Message.Image }))).toBe('nontext');
    expect(await ch.toInbound(fakeMessage({ type: wxTypes.Message.Attachment }))).toBe('nontext');
    expect(await ch.toInbound(fakeMessage({ type: wxTypes.Message.Recalled }))).toBeUndefined();
    expect(await ch.toInbound(fakeMessage({ type: wxTypes.Message.Image, room: 'r1@chatroom' }))).toBeUndefined();
  });

  it('in rooms: commands and mentions are addressed to the bot; the rest is passed unaddressed (for the core guard)', async () => {
    const room = 'r1@chatroom';
    expect(await ch.toInbound(fakeMessage({ room, text: 'just chatting' }))).toMatchObject({ addressed_to_bot: false, text: 'just chatting' });
    const cmd = await ch.toInbound(fakeMessage({ room, text: '/byok add qwen' }));
    expect(cmd).toMatchObject({ isPrivate: false, addressed_to_bot: true, workspace: 'wx:wxid_alice', groupWorkspace: 'wx:room-r1@chatroom', chat: { chat_id: room, user_id: 'wxid_alice' } });
    const mention = await ch.toInbound(fakeMessage({ room, text: '@bot 你好', mention: true, mentionText: '你好' }));
    expect(mention).toMatchObject({ text: '你好', isPrivate: false, addressed_to_bot: true });
    const key = await ch.toInbound(fakeMessage({ room, text: 'my key sk-proj-' + 'Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3' }));
    expect(key).toMatchObject({ isPrivate: false, addressed_to_bot: false });
    expect(await ch.toInbound(fakeMessage({ text: 'hello' }))).toMatchObject({ isPrivate: true, addressed_to_bot: true });
  });
});

describe('wechat adapter with the mock puppet', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function started(extra: Partial<ConstructorParameters<typeof WechatChannel>[0]> = {}) {
    const mocker = new mock.Mocker();
    const puppet = new PuppetMock({ mocker });
    const { ch, dataDir } = channel({ puppet, ...extra });
    const received: string[] = [];
    await ch.start(async (m) => {
      received.push(m.text);
    });
    const [bot, alice] = mocker.createContacts(2);
    mocker.login(bot);
    await waitFor(() => ch.wechaty?.isLoggedIn, 5000, 'login');
    const sent: string[] = [];
    (alice as unknown as { on(ev: 'message', fn: (m: { payload: { talkerId: string; text?: string } }) => void): void }).on('message', (m) => {
      if (m.payload.talkerId === bot.id) sent.push(m.payload.text ?? '');
    });
    cleanups.push(async () => {
      await ch.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    return { ch, mocker, bot, alice, sent, received, dataDir };
  }

  it('splits long replies at the practical limit', async () => {
    const { ch, alice, sent } = await started({ maxMessageLength: 200 });
    const para = (c: string) => `${c.repeat(150)}\n\n`;
    await ch.send({ channel: 'wechat', chat_id: alice.id }, { text: para('a') + para('b') + para('c') });
    await waitFor(() => sent.length === 3, 5000, 'three parts');
    expect(sent.map((s) => s[0])).toEqual(['a', 'b', 'c']);
    for (const s of sent) expect(s.length).toBeLessThanOrEqual(200);
    expect(ch.capabilities).toMatchObject({ buttons: false, deleteInbound: false, editMessages: false });
    expect(new WechatChannel({ config: loadConfig({}), logger }).capabilities.maxMessageLength).toBe(2000);
  });

  it('requestEnvInput is one text with vendor, model, reason, link, expiry and the warning', async () => {
    const { ch, alice, sent } = await started();
    const req = {
      workspace: 'wx:' + alice.id,
      model_id: 'qwen-plus-e3f4',
      vendor: 'qwen',
      vendor_name: 'Qwen',
      model_name: 'Qwen Plus (qwen-plus)',
      env_vars: ['DASHSCOPE_API_KEY'],
      reason: 'REASON-TEXT',
      url: 'http://127.0.0.1:1/s/tok123?lang=zh',
      expires_at: '2026-05-01T10:15:00.000Z',
    };
    await ch.requestEnvInput({ channel: 'wechat', chat_id: alice.id }, { ...req, lang: 'zh' });
    await ch.requestEnvInput({ channel: 'wechat', chat_id: alice.id }, { ...req, lang: 'en' });
    await waitFor(() => sent.length === 2, 5000, 'prompts');
    for (const s of sent) {
      for (const part of ['Qwen', 'Qwen Plus (qwen-plus)', 'REASON-TEXT', req.url]) expect(s).toContain(part);
    }
    // The expiry in the user's time, zone named: Beijing time (UTC+8) for Chinese, UTC for English.
    expect(sent[0]).toContain('2026-05-01 18:15 北京时间');
    expect(sent[1]).toContain('2026-05-01 10:15 UTC');
    expect(sent[0]).toContain('切勿在此对话中发送密钥');
    expect(sent[1]).toContain('Never send the key in this chat');
  });

  it('answers media with the note, in the language the user chose', async () => {
    const { FileBox } = await import('file-box');
    const langs = new Map<string, 'en' | 'zh'>();
    const { alice, bot, sent, received } = await started({ langOf: async (ws) => langs.get(ws) });
    alice.say(FileBox.fromUrl('https://example.invalid/cat.png', { name: 'cat.png' })).to(bot);
    await waitFor(() => sent.length === 1, 5000, 'note');
    expect(sent[0]).toBe(t('zh', 'nontext.note'));
    langs.set('wx:' + alice.id, 'en');
    alice.say(FileBox.fromUrl('https://example.invalid/clip.mp4', { name: 'clip.mp4' })).to(bot);
    await waitFor(() => sent.length === 2, 5000, 'note en');
    expect(sent[1]).toBe(t('en', 'nontext.note'));
    expect(received).toEqual([]);
  });

  it('hands texts to the router in order and never its own messages', async () => {
    const { ch, alice, bot, received } = await started();
    alice.say('one').to(bot);
    alice.say('two').to(bot);
    await ch.send({ channel: 'wechat', chat_id: alice.id }, { text: 'from the bot' });
    await waitFor(() => received.length === 2, 5000, 'two messages');
    await ch.idle();
    expect(received).toEqual(['one', 'two']);
  });

  it('room owner is the group admin; with the owner unknown nobody may switch the room model', async () => {
    const { ch, mocker, bot, alice } = await started();
    const [carol] = mocker.createContacts(1);
    const owned = mocker.createRoom({ id: 'owned@chatroom', memberIdList: [bot.id, alice.id, carol.id], ownerId: carol.id });
    const open = mocker.createRoom({ id: 'open@chatroom', memberIdList: [bot.id, alice.id, carol.id] });
    const msg = (room: string, sender: string) =>
      ({ channel: 'wechat', chat: { channel: 'wechat', chat_id: room }, senderId: sender, workspace: workspaceOf(sender), isPrivate: false, addressed_to_bot: true, text: '/model 1', kind: 'text' }) as const;
    expect(await ch.isGroupAdmin(msg(owned.id, carol.id))).toBe(true);
    expect(await ch.isGroupAdmin(msg(owned.id, alice.id))).toBe(false);
    expect(await ch.isGroupAdmin(msg(open.id, alice.id))).toBe(false);
    expect(await ch.isGroupAdmin({ ...msg(owned.id, alice.id), isPrivate: true })).toBe(true);
  });

  it('keeps the session memory card under the data dir', async () => {
    const { ch, dataDir } = await started();
    await ch.stop();
    const card = path.join(dataDir, 'wechaty.memory-card.json');
    expect(ch.memoryFile).toBe(card);
    expect(fs.existsSync(card)).toBe(true);
    expect(fs.statSync(card).mode & 0o077).toBe(0);
  });
});

describe('wechat puppet from the environment', () => {
  it('starts the puppet named in WECHATY_PUPPET, with the memory card under BYOK_DATA_DIR', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-wx-env-'));
    const config = loadConfig({ BYOK_DATA_DIR: dataDir, WECHATY_PUPPET: 'wechaty-puppet-mock', WECHATY_PUPPET_SERVICE_TOKEN: 'puppet_token_x' });
    expect(config.wechat).toEqual({ puppet: 'wechaty-puppet-mock', token: 'puppet_token_x' });
    const ch = new WechatChannel({ config, logger, printQr: false });
    try {
      await ch.start(async () => undefined);
      expect(ch.wechaty?.puppet.constructor.name).toBe('PuppetMock');
    } finally {
      await ch.stop();
    }
    expect(fs.existsSync(path.join(dataDir, 'wechaty.memory-card.json'))).toBe(true);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('refuses to start without a puppet', async () => {
    const { ch } = channel();
    await expect(ch.start(async () => undefined)).rejects.toThrow(/WECHATY_PUPPET/);
  });
});
