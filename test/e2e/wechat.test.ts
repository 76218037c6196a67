/**
 * The WeChat channel end to end, offline: a real app (testApp), the WeChat adapter on
 * wechaty-puppet-mock, a fake OpenAI-compatible vendor, the secure form submitted over HTTP.
 *
 * How the mock is driven: `mocker.createContacts()` makes the bot's own account and the
 * users; `mocker.login(bot)` logs the puppet in; `alice.say(text).to(bot)` delivers a
 * message to the bot; whatever the bot sends comes back as a mock message emitted on the
 * conversation (`alice.on('message')` / `room.on('message')`) with `talkerId === bot.id`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mock, PuppetMock } from 'wechaty-puppet-mock';
import { WechatChannel } from '../../channels/wechat/index.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';

type MockMsg = { payload: { talkerId: string; text?: string } };
type Conversation = { on(ev: 'message', fn: (m: MockMsg) => void): unknown };

const KEY = 'sk-' + 'd3e5a7c9b1f2e4d6a8c0b2d4f6e8a0c2';
const PASTED = 'sk-proj-' + 'Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7Qa9Ws1Ed3Rf5Tg7';

async function harness() {
  const fake: FakeVendor = await startFakeOpenAI({ keys: [KEY], reply: '你好，我是假的 DeepSeek。' });
  const env = await testApp();
  const { app } = env;
  const mocker = new mock.Mocker();
  const puppet = new PuppetMock({ mocker });
  const ch = new WechatChannel({
    config: app.config,
    logger: app.logger,
    puppet,
    printQr: false,
    pacing: { perChatIntervalMs: 5, globalPerMinute: 0 },
    langOf: async (ws) => (await app.router.state.getPrefs(ws)).lang,
  });
  app.addChannel(ch);
  const { url } = await app.start();
  const [bot, alice, bob] = mocker.createContacts(3);

  /** What the bot sent into a conversation, in order. */
  const outbox = (conv: object) => {
    const texts: string[] = [];
    // The mock's event typings do not resolve (typed-emitter), hence the cast.
    (conv as Conversation).on('message', (m) => {
      if (m.payload.talkerId === bot.id) texts.push(m.payload.text ?? '');
    });
    return texts;
  };
  /** Says `text` and waits for `n` replies from the bot; returns them. */
  const ask = async (from: typeof alice, to: typeof bot | ReturnType<typeof mocker.createRoom>, box: string[], text: string, n = 1) => {
    const before = box.length;
    from.say(text).to(to);
    await waitFor(() => box.length >= before + n, 10_000, `${n} repl${n === 1 ? 'y' : 'ies'} to "${text.slice(0, 20)}"`);
    await ch.idle();
    return box.slice(before);
  };
  return {
    app,
    env,
    fake,
    ch,
    mocker,
    url,
    bot,
    alice,
    bob,
    outbox,
    ask,
    login: async () => {
      mocker.login(bot);
      await waitFor(() => ch.wechaty?.isLoggedIn, 5000, 'login');
    },
    close: async () => {
      await env.cleanup();
      await fake.close();
    },
  };
}

describe('WeChat channel (wechaty-puppet-mock)', () => {
  let h: Awaited<ReturnType<typeof harness>> | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('full flow in Chinese: /byok add → text prompt with link → form → notified → /model 1 → answer', async () => {
    h = await harness();
    const { app, fake, alice, bot, ask, outbox } = h;
    await h.login();
    const box = outbox(alice);
    const ws = `wx:${alice.id}`;

    const [added, prompt] = await ask(alice, bot, box, '/byok add deepseek', 2);
    expect(added).toMatch(/custom\/deepseek-v4-flash-[a-z0-9]+/);
    expect(added).toContain('已将');
    const id = /custom\/(deepseek-v4-flash-[a-z0-9]+)/.exec(added)![1];
    // One text: vendor, model, link, expiry, and the warning (Chinese by default).
    expect(prompt).toContain('DeepSeek');
    expect(prompt).toContain('deepseek-v4-flash');
    expect(prompt).toContain('切勿在此对话中发送密钥');
    // The expiry in Beijing time (UTC+8), the zone named.
    const shown = /(\d{4}-\d{2}-\d{2} \d{2}:\d{2}) 北京时间/.exec(prompt)![1];
    const expiresUtc = Date.parse(`${shown.replace(' ', 'T')}:00Z`) - 8 * 3600_000;
    expect(Math.abs(expiresUtc - (Date.now() + app.config.tokenTtlMs))).toBeLessThan(120_000);
    const link = /https?:\/\/\S+\/s\/\S+/.exec(prompt)![0];
    expect(link.startsWith(app.config.publicUrl)).toBe(true);

    // Point the model at the fake vendor before submitting, so the probe hits it.
    const upd = await app.registry.update(ws, id, { base_url: fake.baseUrl });
    expect(upd.ok).toBe(true);
    const before = box.length;
    const res = await submitForm(link, { DEEPSEEK_API_KEY: KEY });
    expect(res.status).toBeLessThan(300);
    await waitFor(() => box.length > before, 15_000, 'key notification');
    const note = box[before];
    expect(note).toContain('✅');
    expect(note).toContain('已验证');
    expect(note).toContain('****' + KEY.slice(-4));
    expect(note).not.toContain(KEY);
    expect(fake.requests.some((r) => r.key === KEY)).toBe(true);

    const [list] = await ask(alice, bot, box, '/model');
    expect(list).toContain(t('zh', 'model.list_header'));
    expect(list).toMatch(new RegExp(`^1\\. .*custom/${id}`, 'm'));
    const [switched] = await ask(alice, bot, box, '/model 1');
    expect(switched).toContain('本对话现在使用');

    const probes = fake.requests.length;
    const [answer] = await ask(alice, bot, box, '你好，请介绍一下你自己');
    expect(answer).toContain('你好，我是假的 DeepSeek。');
    const chat = fake.requests.slice(probes).find((r) => r.path.includes('/chat/completions'));
    expect(chat?.key).toBe(KEY);
    expect(JSON.stringify(chat?.body)).toContain('请介绍一下你自己');

    // Nothing of the key in any chat message or log line.
    expect(box.join('\n')).not.toContain(KEY);
    expect(h.env.logs.text()).not.toContain(KEY);
  });

  it('/lang en switches the replies (and the form prompt) to English', async () => {
    h = await harness();
    const { alice, bot, ask, outbox } = h;
    await h.login();
    const box = outbox(alice);
    const [help] = await ask(alice, bot, box, '/help');
    expect(help).toContain(t('zh', 'help.title'));
    expect(await ask(alice, bot, box, '/lang en')).toEqual([t('en', 'lang.set')]);
    const [, prompt] = await ask(alice, bot, box, '/byok add deepseek', 2);
    expect(prompt).toContain('Never send the key in this chat');
    expect(await ask(alice, bot, box, '/lang zh')).toEqual([t('zh', 'lang.set')]);
  });

  it('a pasted key gets the rotate warning and never reaches the vendor, the log or the model', async () => {
    h = await harness();
    const { fake, alice, bot, ask, outbox } = h;
    await h.login();
    const box = outbox(alice);
    const [reply] = await ask(alice, bot, box, `这是我的 key：${PASTED}`);
    const exposed = t('zh', 'wechat.key_exposed', { kinds: 'X' }).split('（')[0];
    expect(reply).toContain(exposed);
    expect(reply).toContain('轮换');
    expect(reply).toContain('/byok add');
    expect(reply).not.toContain(PASTED);
    expect(reply).not.toContain(PASTED.slice(-8));
    expect(fake.requests.some((r) => r.raw.includes(PASTED) || r.key === PASTED)).toBe(false);
    expect(h.env.logs.text()).not.toContain(PASTED);
    // In English after /lang en.
    await ask(alice, bot, box, '/lang en');
    const [en] = await ask(alice, bot, box, PASTED);
    expect(en).toContain('rotate');
    expect(en).toContain('WeChat cannot delete');
  });

  it('in a room: /byok add gets the private-chat notice; /model switching follows the room owner', async () => {
    h = await harness();
    const { mocker, bot, alice, bob, ask, outbox } = h;
    await h.login();
    const room = mocker.createRoom({ id: 'r1@chatroom', topic: 'byok', memberIdList: [bot.id, alice.id, bob.id], ownerId: bob.id });
    const box = outbox(room);

    // Room answers @mention the asker.
    const at = (c: typeof alice) => `@${c.payload.name}\u2005`;
    expect(await ask(alice, room, box, '/byok add deepseek')).toEqual([at(alice) + t('zh', 'byok.private_only')]);
    // Nothing was registered for anyone.
    const listed = await h.app.registry.list_models(`wx:${alice.id}`);
    expect(listed.ok && listed.models.length).toBe(0);

    // Ordinary room chatter is not answered; a pasted key is.
    const quiet = box.length;
    alice.say('大家好').to(room);
    await new Promise((r) => setTimeout(r, 200));
    await h.ch.idle();
    expect(box.length).toBe(quiet);
    const [guard] = await ask(alice, room, box, `key ${PASTED}`);
    expect(guard).toContain('轮换');

    // /model <n> in the room: only the owner (bob) may switch the room's model.
    await ask(alice, bot, outbox(alice), '/byok add deepseek', 2);
    await ask(bob, bot, outbox(bob), '/byok add deepseek', 2);
    expect(await ask(alice, room, box, '/model 1')).toEqual([at(alice) + t('zh', 'model.group_admin_only')]);
    const [bobSwitch] = await ask(bob, room, box, '/model 1');
    expect(bobSwitch).toBe(at(bob) + t('zh', 'model.group_switched', { model: 'DeepSeek V4 Flash' }));
    // The room's choice is kept under the room workspace, not the members' own chats.
    const roomState = await h.app.router.state.get('wx:room-r1@chatroom');
    expect(roomState.model).toMatch(/^custom\/deepseek-v4-flash-/);
    expect((await h.app.router.state.get(`wx:${bob.id}`)).model).toBeUndefined();
    // Anyone may look at the list in the room.
    const [list] = await ask(alice, room, box, '/model');
    expect(list).toContain(t('zh', 'model.list_header'));
  });

  it('/readyz: 503 naming the WeChat state until logged in (waiting for a scan), 200 once logged in; /healthz stays liveness', async () => {
    h = await harness();
    const { mocker, url } = h;
    const readyz = async () => {
      const r = await fetch(`${url}/readyz`);
      return { status: r.status, body: (await r.json()) as { ok: boolean; not_ready?: string[]; channels: Record<string, { ready: boolean; state: string }> } };
    };
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const before = await readyz();
    expect(before.status).toBe(503);
    expect(before.body.channels.wechat).toMatchObject({ ready: false, state: 'connected' });
    mocker.scan('https://login.weixin.qq.com/l/Qmock456==');
    await waitFor(async () => (await readyz()).body.channels.wechat.state === 'waiting_for_scan', 5000, 'waiting_for_scan');
    expect((await readyz()).body.not_ready).toEqual(['wechat']);
    await h.login();
    await waitFor(async () => (await readyz()).status === 200, 5000, 'ready');
    expect((await readyz()).body).toMatchObject({ ok: true, channels: { wechat: { ready: true, state: 'logged_in' } } });
  });

  it('serves the login QR code as a PNG while waiting for a scan, 404 once logged in; the session card lives in the data dir', async () => {
    h = await harness();
    const { mocker, url } = h;
    expect((await fetch(`${url}/wechat/qr`)).status).toBe(404);
    mocker.scan('https://login.weixin.qq.com/l/Qmock123==');
    await waitFor(() => h!.ch.waitingForScan, 5000, 'scan');
    const res = await fetch(`${url}/wechat/qr`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const png = Buffer.from(await res.arrayBuffer());
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    await h.login();
    expect((await fetch(`${url}/wechat/qr`)).status).toBe(404);
    await h.ch.stop();
    const fs = await import('node:fs');
    expect(fs.existsSync(`${h.env.dataDir}/wechaty.memory-card.json`)).toBe(true);
  });
});
