import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OutgoingMessage, SentRef } from '../../channels/types.ts';
import type { App } from '../../src/app.ts';
import { parseIntent } from '../../src/chat/intents.ts';
import { t } from '../../src/i18n/index.ts';
import type { ChannelRef } from '../../src/queue/types.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

/** The recording channel, also keeping the buttons / numbered choices of each reply. */
class ChoiceChannel extends RecordingChannel {
  readonly choices: Array<OutgoingMessage['choices']> = [];
  override async send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    this.choices.push(msg.choices);
    return super.send(chat, msg);
  }
}

describe('conversations: plain-language intents and history privacy', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: ChoiceChannel;
  let a: FakeVendor;
  let b: FakeVendor;
  let user = 5000;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string, lang: 'en' | 'zh' = 'en') => chan.say(text, uid, { lang });
  const models = async () => {
    const r = await app.registry.list_models(ws());
    return r.ok ? r.models : [];
  };

  beforeAll(async () => {
    a = await startFakeOpenAI({ reply: 'answer from A' });
    b = await startFakeOpenAI({ reply: 'answer from B' });
    const file = path.join(fs.mkdtempSync('/tmp/byok-intents-'), 'platform.yaml');
    // Two platform models on host A (same vendor), one on host B (another vendor).
    fs.writeFileSync(
      file,
      [
        'models:',
        `  - {id: tee-a, name: Private A, base_url: "${a.baseUrl}", upstream_model: a1, api_key_env: BYOK_TEST_OP_KEY}`,
        `  - {id: tee-a2, name: Private A2, base_url: "${a.baseUrl}", upstream_model: a2, api_key_env: BYOK_TEST_OP_KEY}`,
        `  - {id: other-b, name: Other B, base_url: "${b.baseUrl}", upstream_model: b1, api_key_env: BYOK_TEST_OP_KEY}`,
      ].join('\n'),
    );
    process.env.BYOK_TEST_OP_KEY = 'op-' + randomBytes(8).toString('hex');
    ({ app, cleanup } = await testApp({ BYOK_PLATFORM_MODELS: file }));
    chan = new ChoiceChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await a.close();
    await b.close();
    delete process.env.BYOK_TEST_OP_KEY;
  });
  beforeEach(() => {
    uid = String(++user);
  });

  describe('A. intents', () => {
    it('the rule: verb first, short, unmistakable only when nothing but verb + vendor + filler', () => {
      expect(parseIntent('register DeepSeek')).toMatchObject({ verb: 'register', unmistakable: true });
      expect(parseIntent('我想用小米的模型')).toMatchObject({ verb: 'switch', unmistakable: true });
      expect(parseIntent('换成通义千问')?.templates.map((x) => x.id)).toEqual(['qwen']);
      expect(parseIntent('add my Claude key')).toMatchObject({ verb: 'key', unmistakable: true });
      expect(parseIntent('use kimi')).toMatchObject({ verb: 'switch', unmistakable: true });
      expect(parseIntent('use kimi to translate this sentence')).toMatchObject({ unmistakable: false });
      expect(parseIntent('use kimi?')).toMatchObject({ unmistakable: false });
      // Not an intent at all: the verb does not lead, or the message is long / several lines.
      expect(parseIntent('How do I add an API key in the OpenAI python SDK?')).toBeUndefined();
      expect(parseIntent('Tell me about DeepSeek')).toBeUndefined();
      expect(parseIntent('use kimi\nand then')).toBeUndefined();
      expect(parseIntent(`use kimi ${'x'.repeat(80)}`)).toBeUndefined();
      expect(parseIntent('use gpt or claude')?.templates.map((x) => x.id).sort()).toEqual(['anthropic', 'openai']);
    });

    it('"register DeepSeek" registers it and sends the secure form', async () => {
      await say('register DeepSeek');
      expect((await models()).map((m) => m.vendor)).toEqual(['deepseek']);
      expect(chan.forms.at(-1)!.env_vars).toEqual(['DEEPSEEK_API_KEY']);
    });

    it('"我想用小米的模型" without a Xiaomi model offers to add one, in Chinese, with a button', async () => {
      await say('我想用小米的模型', 'zh');
      expect(chan.last()).toBe(t('zh', 'intent.no_model_of_vendor', { vendor: 'Xiaomi MiMo', id: 'mimo' }).replace('Xiaomi MiMo', chan.last().match(/你还没有 (.+) 模型/)![1]!));
      expect(chan.last()).toContain('/byok add mimo');
      expect(chan.choices.at(-1)![0]![0]!.data).toBe('/byok add mimo');
      expect(await models()).toEqual([]);
    });

    it('"换成通义千问" switches to the user\'s Qwen model', async () => {
      await say('/byok add qwen', 'zh');
      await say('/byok cancel', 'zh');
      const [qwen] = await models();
      await say('换成通义千问', 'zh');
      expect((await app.router.state.get(ws())).model).toBe(`custom/${qwen!.id}`);
      expect(chan.texts()).toContain(t('zh', 'model.switched', { model: qwen!.name }));
    });

    it('"add my Claude key" with a Claude model sends that model\'s form, without adding another', async () => {
      await say('/byok add anthropic');
      await say('/byok cancel');
      const [claude] = await models();
      const forms = chan.forms.length;
      await say('add my Claude key');
      expect(chan.forms.length).toBe(forms + 1);
      expect(chan.forms.at(-1)!.model_id).toBe(claude!.id);
      expect(await models()).toHaveLength(1);
    });

    it('"use kimi" with no Kimi model offers /byok add kimi; several models of a vendor: asks which', async () => {
      await say('use kimi');
      expect(chan.last()).toBe(t('en', 'intent.no_model_of_vendor', { vendor: 'Kimi (Moonshot AI)', id: 'kimi' }).replace('Kimi (Moonshot AI)', chan.last().match(/no (.+) model yet/)![1]!));
      await say('/byok add deepseek');
      await say('/byok add deepseek deepseek-reasoner');
      await say('/byok cancel');
      await say('use deepseek');
      expect(chan.last()).toBe(t('en', 'intent.which_model', { vendor: 'DeepSeek' }));
      const ids = (await models()).map((m) => `/model custom/${m.id}`);
      expect(chan.choices.at(-1)!.map((row) => row[0]!.data).sort()).toEqual(ids.sort());
    });

    it('an ambiguous phrase asks which vendor; the choice it offers is itself an intent', async () => {
      await say('use gpt or claude');
      expect(chan.last()).toMatch(/^Which one do you mean: /);
      const options = chan.choices.at(-1)!.map((row) => row[0]!.data!);
      expect(options.sort()).toEqual(['use anthropic', 'use openai']);
      await say('use anthropic');
      expect(chan.last()).toContain('/byok add anthropic');
    });

    it('never fires on a message carrying a key: the guard answers and nothing is registered', async () => {
      await say(`register deepseek sk-${'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6'}`);
      expect(chan.last()).toMatch(/looks like it contains an API key/);
      expect(await models()).toEqual([]);
      expect(chan.forms.filter((f) => f.workspace === ws())).toEqual([]);
    });

    it('does not hijack chat to a model: only unmistakable phrases fire once a model is chosen', async () => {
      await say('/model tee-a');
      const before = a.requests.length;
      await say('use kimi to translate this sentence');
      expect(chan.last()).toBe('answer from A');
      await say('How do I add an API key in the OpenAI python SDK?');
      expect(chan.last()).toBe('answer from A');
      expect(a.requests.length).toBe(before + 2);
      await say('use kimi');
      expect(chan.last()).toContain('/byok add kimi');
      expect((await app.router.state.get(ws())).model).toBe('tee-a');
    });
  });

  describe('B. history does not silently follow a switch to another vendor', () => {
    const lastBody = (f: FakeVendor) => f.requests.filter((r) => r.method === 'POST').at(-1)!.body;

    it('another host: fresh conversation, said so; the new vendor gets none of the old messages', async () => {
      await say('/model tee-a');
      await say('my secret plan');
      await say('/model other-b');
      const fresh = t('en', 'model.fresh_history', { old: new URL(a.baseUrl).host, new: new URL(b.baseUrl).host, selector: 'other-b' });
      expect(chan.last()).toBe(fresh);
      expect(chan.last()).toContain('/model other-b keep');
      await say('hello B');
      const sent = JSON.stringify(lastBody(b).messages);
      expect(sent).toContain('hello B');
      expect(sent).not.toContain('my secret plan');
    });

    it('same vendor (same host): history kept as before, nothing said about it', async () => {
      await say('/model tee-a');
      await say('first question');
      await say('/model tee-a2');
      expect(chan.last()).toBe(t('en', 'model.switched', { model: 'Private A2' }));
      await say('second');
      expect(JSON.stringify(lastBody(a).messages)).toContain('first question');
    });

    it('/model <id> keep carries it over explicitly, also right after a fresh switch (Chinese)', async () => {
      await say('/model tee-a', 'zh');
      await say('旧的对话', 'zh');
      await say('/model other-b', 'zh');
      expect(chan.last()).toBe(t('zh', 'model.fresh_history', { old: new URL(a.baseUrl).host, new: new URL(b.baseUrl).host, selector: 'other-b' }));
      expect((await app.router.state.get(ws())).history).toEqual([]);
      await say('/model other-b keep', 'zh');
      expect(chan.last()).toBe(t('zh', 'model.kept_history', { new: new URL(b.baseUrl).host }));
      await say('继续', 'zh');
      expect(JSON.stringify(lastBody(b).messages)).toContain('旧的对话');
      // Straight to another vendor with keep: carried, and said so.
      await say('/model tee-a keep', 'zh');
      expect(chan.last()).toBe(t('zh', 'model.kept_history', { new: new URL(a.baseUrl).host }));
      expect((await app.router.state.get(ws())).history.length).toBeGreaterThan(0);
      // /reset drops what was set aside too.
      await say('/model other-b', 'zh');
      await say('/reset', 'zh');
      expect((await app.router.state.get(ws())).parked).toBeUndefined();
    });
  });
});
