import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InboundMessage } from '../../channels/types.ts';
import type { App } from '../../src/app.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

/** A channel whose admin check answers from a list (like getChatMember), or throws. */
class AdminChannel extends RecordingChannel {
  admins = new Set<string>();
  failing = false;
  async isGroupAdmin(msg: InboundMessage): Promise<boolean> {
    if (msg.isPrivate) return true;
    if (this.failing) throw new Error('Bad Request: chat not found');
    return this.admins.has(msg.senderId);
  }
}

describe('conversations: group chats (group admins, members, operator admins)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: AdminChannel;
  let plain: RecordingChannel;
  let fake: FakeVendor;
  const GROUP = '-100900';
  const ADMIN = '701';
  const MEMBER = '702';
  const OPERATOR = '703';
  const gws = `tg:group:${GROUP}`;
  const inGroup = (text: string, user: string, lang: 'en' | 'zh' = 'en') => chan.say(text, user, { group: GROUP, lang });

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: 'group answer' });
    const file = path.join(fs.mkdtempSync('/tmp/byok-groups-'), 'platform.yaml');
    fs.writeFileSync(
      file,
      `default: house\nmodels:\n  - {id: house, name: House, base_url: "${fake.baseUrl}", upstream_model: h1, api_key_env: BYOK_TEST_GROUP_OP_KEY}\n  - {id: spare, name: Spare, base_url: "${fake.baseUrl}", upstream_model: h2, api_key_env: BYOK_TEST_GROUP_MISSING}\n`,
    );
    process.env.BYOK_TEST_GROUP_OP_KEY = 'op-' + randomBytes(8).toString('hex');
    process.env.BYOK_ADMINS = `tg:${OPERATOR}, wx:someone`;
    ({ app, cleanup } = await testApp({ BYOK_PLATFORM_MODELS: file, BYOK_ADMINS: process.env.BYOK_ADMINS }));
    chan = new AdminChannel();
    chan.admins.add(ADMIN);
    plain = new RecordingChannel('plain');
    app.addChannel(chan);
    app.addChannel(plain);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
    delete process.env.BYOK_TEST_GROUP_OP_KEY;
    delete process.env.BYOK_ADMINS;
  });

  it('BYOK_ADMINS is read into the config', async () => {
    expect(app.config.admins).toEqual([`tg:${OPERATOR}`, 'wx:someone']);
  });

  it('a group admin adds a group model; its key is entered only in the admin\'s private chat', async () => {
    await inGroup('/group add deepseek', ADMIN);
    const listed = await app.registry.list_models(gws);
    const model = listed.ok ? listed.models[0]! : undefined;
    expect(model?.vendor).toBe('deepseek');
    expect(chan.last()).toContain(t('en', 'group.added', { name: model!.name, id: model!.id }));
    const nonce = /\/group key #([A-Za-z0-9_-]+)/.exec(chan.last())![1]!;
    expect(chan.forms.length).toBe(0); // never a form in the group
    // Another member cannot take the admin's request (nor use it up).
    await chan.say(`/group key #${nonce}`, MEMBER);
    expect(chan.last()).toBe(t('en', 'group.key_grant_invalid'));
    await chan.say(`/group key #${nonce}`, ADMIN);
    const form = chan.forms.at(-1)!;
    expect(form.workspace).toBe(gws);
    expect(form.model_id).toBe(model!.id);
    expect(chan.sent.at(-1)!.chat.chat_id).toBe(ADMIN); // the private chat
    // Single use.
    await chan.say(`/group key #${nonce}`, ADMIN);
    expect(chan.last()).toBe(t('en', 'group.key_grant_invalid'));
  });

  it('members use the group\'s models but cannot manage them; a keyless group model says who fixes it', async () => {
    await inGroup('/group add qwen', MEMBER);
    expect(chan.last()).toBe(t('en', 'group.admin_only'));
    await inGroup('/group', MEMBER);
    expect(chan.last()).toContain(t('en', 'group.list_header'));
    const listed = await app.registry.list_models(gws);
    const model = listed.ok ? listed.models[0]! : undefined;
    // /model lists platform models then the group's; a member picks the group's one.
    await inGroup('/model', MEMBER);
    expect(chan.last()).toMatch(new RegExp(`3\\. .*custom/${model!.id}`));
    await inGroup('/model 3', MEMBER);
    expect(chan.last()).toBe(t('en', 'model.group_switched', { model: model!.name }));
    const st = await app.router.state.get(gws);
    expect(st.model).toBe(`custom/${model!.id}`);
    expect(st.model_owner).toBe(gws);
    await inGroup('hello', MEMBER);
    expect(chan.last()).toBe(t('en', 'group.key_missing_room', { model: model!.name, id: model!.id }));
    // A member's own model is not theirs to put on the group.
    await chan.say('/byok add kimi', MEMBER);
    await chan.say('/byok cancel', MEMBER);
    const own = await app.registry.list_models(`tg:${MEMBER}`);
    await inGroup(`/model custom/${own.ok ? own.models[0]!.id : ''}`, MEMBER);
    expect(chan.last()).toBe(t('en', 'model.group_admin_only'));
    await inGroup('/group remove ' + model!.id, MEMBER);
    expect(chan.last()).toBe(t('en', 'group.admin_only'));
  });

  it('group admins remove group models; the group falls back to the platform default', async () => {
    const listed = await app.registry.list_models(gws);
    const model = listed.ok ? listed.models[0]! : undefined;
    await inGroup(`/group remove ${model!.id}`, ADMIN, 'zh');
    expect(chan.last()).toBe(t('zh', 'group.removed', { id: model!.id }));
    expect((await app.router.state.get(gws)).model).toBeUndefined();
    await inGroup('hi', MEMBER);
    expect(chan.last()).toBe('group answer');
  });

  it('fails closed: a failing admin check, or a channel without one, refuses (English and Chinese)', async () => {
    chan.failing = true;
    await inGroup('/group add qwen', ADMIN);
    expect(chan.last()).toBe(t('en', 'group.admin_only'));
    chan.failing = false;
    await plain.say('/group add qwen', '801', { group: '-100901', lang: 'zh' });
    expect(plain.last()).toBe(t('zh', 'group.admin_only'));
    await plain.say('/byok add kimi', '801', { lang: 'zh' });
    await plain.say('/model 3', '801', { group: '-100901', lang: 'zh' });
    expect(plain.last()).toBe(t('zh', 'model.group_admin_only'));
    const l = await app.registry.list_models('tg:group:-100901');
    expect(l.ok && l.models.length).toBe(0);
  });

  it('operator admins (BYOK_ADMINS) manage platform models; nobody else can', async () => {
    await chan.say('/platform', MEMBER);
    expect(chan.last()).toBe(t('en', 'platform.admin_only'));
    await chan.say('/platform', OPERATOR);
    expect(chan.last()).toContain(t('en', 'platform.header', { default: 'house' }));
    expect(chan.last()).toContain(t('en', 'platform.key_missing', { env: 'BYOK_TEST_GROUP_MISSING' }));
    expect(chan.last()).not.toContain(process.env.BYOK_TEST_GROUP_OP_KEY!);
    await chan.say('/platform hide spare', OPERATOR);
    expect(chan.last()).toBe(t('en', 'platform.hidden_done', { id: 'spare' }));
    await chan.say('/model', MEMBER);
    expect(chan.last()).not.toContain('Spare');
    await chan.say('/platform default spare', OPERATOR, { lang: 'zh' });
    expect(chan.last()).toBe(t('zh', 'platform.default_done', { id: 'spare' }));
    await chan.say('/model', '799');
    expect(chan.last()).toContain(t('en', 'model.current', { model: 'Spare' }));
    await chan.say('/platform default house', OPERATOR);
  });
});
