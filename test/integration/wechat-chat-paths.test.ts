/**
 * The chat router on WeChat's paths for a Chinese user (a channel named `wechat`, lang zh):
 * a failed /byok example does not trap the user, registry errors read in Chinese without
 * workspace ids, rooms point to the private chat, Qwen gets the mainland host, a custom
 * endpoint is named by its host, expiry in Beijing time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { formatTime } from '../../src/chat/router.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const ENGLISH_SENTENCE = /[A-Za-z]{3,}\s+[A-Za-z]{3,}\s+[A-Za-z]{3,}/;

describe('WeChat chat paths in Chinese', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let fake: FakeVendor;
  let user = 500;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string, opts: { group?: string; lang?: 'en' | 'zh' } = {}) => chan.say(text, uid, { lang: 'zh', ...opts });

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: '模型的回答' });
    const platformFile = path.join(fs.mkdtempSync('/tmp/byok-platform-'), 'platform.yaml');
    fs.writeFileSync(
      platformFile,
      `default: house-model\nmodels:\n  - id: house-model\n    name: House model\n    base_url: ${fake.baseUrl}\n    upstream_model: house-upstream\n    api_key_env: BYOK_TEST_WX_OPERATOR_KEY\n`,
    );
    process.env.BYOK_TEST_WX_OPERATOR_KEY = 'operator-' + randomBytes(8).toString('hex');
    ({ app, cleanup } = await testApp({ BYOK_PLATFORM_MODELS: platformFile }));
    chan = new RecordingChannel('wechat');
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
    delete process.env.BYOK_TEST_WX_OPERATOR_KEY;
  });
  beforeEach(() => {
    uid = String(++user);
  });

  it('a message that is plainly not an example ends the /byok example step and is answered by the model', async () => {
    await say('/byok example');
    expect(chan.last()).toBe(t('zh', 'byok.example_prompt'));
    await say('那算了，你好');
    expect(chan.last()).toBe('模型的回答');
    expect((await app.router.state.get(ws())).pending).toBeUndefined();
    // And the next message too (no trap for ten minutes).
    await say('再问一个问题');
    expect(chan.last()).toBe('模型的回答');
  });

  it('an example that cannot be parsed gets a Chinese error naming /byok cancel, and the step stays until cancelled', async () => {
    await say('/byok example');
    await say('curl https://api.example.com/v1/chat/completions -H "Authorization: Bearer $API_KEY" -d \'{"model": "x", "messages": [');
    const err = chan.last();
    expect(err).toContain('/byok cancel');
    expect(err).toMatch(/[\u4e00-\u9fff]/);
    expect(err.replace(/\/byok \w+/g, '')).not.toMatch(ENGLISH_SENTENCE);
    expect((await app.router.state.get(ws())).pending?.kind).toBe('await_example');
    await say('/byok cancel');
    expect(chan.last()).toBe(t('zh', 'byok.cancelled'));
    // English users get the parser's own explanation, also with the way out.
    await say('/byok example', { lang: 'en' });
    await say('import openai\nclient = openai.OpenAI(', { lang: 'en' });
    expect(chan.last()).toContain('/byok cancel');
  });

  it('registry errors read in Chinese and never show a workspace id', async () => {
    await say('/byok remove nope-1234');
    const none = chan.last();
    expect(none).toBe(t('zh', 'registry.none'));
    await say('/byok add deepseek');
    const res = await app.registry.list_models(ws());
    const id = res.ok ? res.models[0].id : '';
    await say('/byok remove deepseek-v9-zzzz');
    const unknown = chan.last();
    expect(unknown).toContain('deepseek-v9-zzzz');
    expect(unknown).toContain(`custom/${id}`);
    await say(`/byok edit ${id} max_tokens 很多`);
    expect(chan.last()).toBe(t('zh', 'registry.invalid_max_tokens'));
    await say(`/byok edit ${id} base_url ftp://x`);
    expect(chan.last()).toBe(t('zh', 'registry.invalid_base_url'));
    await say(`/byok edit ${id} colour blue`);
    expect(chan.last()).toBe(t('zh', 'byok.edit_usage'));
    await say('/byok remove nope-1234', { lang: 'en' });
    for (const text of chan.sent.map((s) => s.text)) {
      expect(text).not.toContain(ws());
      expect(text).not.toMatch(/workspace/i);
    }
  });

  it('"添加通义千问的密钥" from a Chinese user picks the mainland host and says so; an English user gets the international one', async () => {
    await say('添加通义千问的密钥');
    const res = await app.registry.list_models(ws());
    const model = res.ok ? res.models[0] : undefined;
    expect(model?.base_url).toBe('https://dashscope.aliyuncs.com/compatible-mode/v1');
    const added = chan.sent.find((s) => s.chat.user_id === uid && s.text.includes('已将'))!.text;
    expect(added).toContain(t('zh', 'byok.mainland_endpoint', { host: 'dashscope.aliyuncs.com', id: model!.id, intl: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1' }));
    expect(added).not.toContain('本模板使用国际站');
    uid = String(++user);
    await say('/byok add qwen', { lang: 'en' });
    const en = await app.registry.list_models(ws());
    expect(en.ok && en.models[0].base_url).toBe('https://dashscope-intl.aliyuncs.com/compatible-mode/v1');
  });

  it('a custom endpoint is named by its host, not "custom … custom API 密钥"; the expiry is in Beijing time', async () => {
    await say('/byok example');
    await say(`curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $MYHOST_API_KEY" -H "Content-Type: application/json" -d '{"model": "my-model", "messages": [{"role": "user", "content": "hi"}]}'`);
    expect(chan.last()).toContain('my-model');
    await say('/byok confirm 我的模型');
    const form = chan.forms.at(-1)!;
    const host = new URL(fake.baseUrl).host;
    expect(form.vendor_name).toBe(host);
    expect(form.reason).toContain(host);
    expect(form.reason).not.toMatch(/custom API/i);
    expect(formatTime(form.expires_at, 'zh')).toMatch(/ 北京时间$/);
    expect(formatTime('2026-05-01T20:30:00.000Z', 'zh')).toBe('2026-05-02 04:30 北京时间');
    expect(formatTime('2026-05-01T20:30:00.000Z', 'en')).toBe('2026-05-01 20:30 UTC');
  });

  it('in a room: the pasted-key and /model hints point to the private chat', async () => {
    const pasted = 'sk-proj-' + 'Zx9Cv8Bn7Mq6Wr5Ty4Ui3Op2As1Df0Gh9Jk8Lq7Ze6Xr5Ct4Vb3';
    await say(`key ${pasted}`, { group: '-100501' });
    expect(chan.last()).toContain(t('zh', 'guard.offer_add_room'));
    await say('/model', { group: '-100501' });
    expect(chan.last()).toContain(t('zh', 'model.no_custom_room'));
    expect(chan.last()).not.toContain(t('zh', 'model.no_custom'));
  });
});

describe('a room without any model', () => {
  it('points to the group owner and the private chat, not to /byok add in the room', async () => {
    const { app, cleanup } = await testApp();
    const chan = new RecordingChannel('wechat');
    app.addChannel(chan);
    await app.start();
    try {
      await chan.say('大家好', '900', { group: '-100502', lang: 'zh' });
      expect(chan.last()).toBe(t('zh', 'relay.no_model_room'));
      await chan.say('你好', '900', { lang: 'zh' });
      expect(chan.last()).toBe(t('zh', 'relay.no_model'));
    } finally {
      await cleanup();
    }
  });
});
