import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import TelegramTestApi from 'telegram-test-api';
import type { TelegramServer as EmulatorServer } from 'telegram-test-api/lib/telegramServer.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import type { App } from '../../src/app.ts';
import { main } from '../../src/cli.ts';
import type { AddArgs } from '../../src/registry/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeAnthropic, startFakeOpenAI, type FakeVendor, type RecordedRequest } from '../support/fake-vendors.ts';
import { freePort, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { apiRecorder } from '../support/telegram.ts';

/**
 * Issue 12, "missing pieces": scripted conversations for `/byok set` (capabilities, max
 * tokens, price, reasoning parameter), `/think` (thinking on/off/budget per model) and
 * `/model default` (the model new chats use), in English and Chinese, asserting what the
 * fake vendor actually received. Then the same paths through the Telegram Bot API emulator.
 */

const enc = (s: string) => new TextEncoder().encode(s);

describe('conversations: model settings, thinking and the default model', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let openai: FakeVendor;
  let anthropic: FakeVendor;
  let platform: FakeVendor;
  let user = 7100;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string, opts?: { group?: string; lang?: 'en' | 'zh' }) => chan.say(text, uid, opts);

  beforeAll(async () => {
    openai = await startFakeOpenAI({ reply: 'openai answer' });
    anthropic = await startFakeAnthropic({ reply: 'claude answer' });
    platform = await startFakeOpenAI({ reply: 'platform answer' });
    const platformFile = path.join(fs.mkdtempSync('/tmp/byok-platform-'), 'platform.yaml');
    fs.writeFileSync(
      platformFile,
      `default: house-model\nmodels:\n  - id: house-model\n    name: House model\n    base_url: ${platform.baseUrl}\n    upstream_model: house-upstream\n    api_key_env: BYOK_TEST_SETTINGS_OPERATOR_KEY\n`,
    );
    process.env.BYOK_TEST_SETTINGS_OPERATOR_KEY = 'operator-' + randomBytes(8).toString('hex');
    ({ app, cleanup } = await testApp({ BYOK_PLATFORM_MODELS: platformFile }));
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup?.();
    await Promise.all([openai?.close(), anthropic?.close(), platform?.close()]);
    delete process.env.BYOK_TEST_SETTINGS_OPERATOR_KEY;
  });
  beforeEach(() => {
    uid = String(++user);
  });

  /** A custom model on a fake vendor, its key stored (as after the secure form). */
  async function model(args: Partial<AddArgs> & { vendor: FakeVendor; env: string }): Promise<string> {
    const { vendor, env, ...rest } = args;
    await app.vault.put(ws(), env, enc('sk-' + randomBytes(16).toString('hex')));
    const res = await app.registry.add(ws(), { upstream_model: 'm-' + randomBytes(3).toString('hex'), base_url: vendor.baseUrl, api_key_env: env, ...rest });
    if (!res.ok) throw new Error(res.error);
    return res.model.id;
  }

  /** Sends a chat message and returns the body the vendor received for it. */
  async function ask(vendor: FakeVendor, text = 'hello'): Promise<RecordedRequest['body']> {
    const before = vendor.requests.length;
    await say(text);
    const req = vendor.requests.slice(before).find((r) => r.method === 'POST' && /\/(chat\/completions|messages)$/.test(r.path));
    expect(req, `a request to the vendor; bot said: ${chan.last()}`).toBeDefined();
    return req!.body;
  }

  describe('/byok set', () => {
    it('alone shows the current values and every field; each field changes the model', async () => {
      const id = await model({ vendor: openai, env: 'SETTINGS_OAI_KEY', name: 'Set me' });
      await say(`/byok set ${id}`);
      const shown = chan.last();
      expect(shown).toContain(`Settings of custom/${id}`);
      expect(shown).toMatch(/max_tokens: \d+/);
      expect(shown).toMatch(/vision: off/);
      expect(shown).toMatch(/price: not set/);
      expect(shown).toMatch(/reasoning_param: —/);
      expect(shown).toMatch(/vision\|tools\|json\|reasoning on\|off, price <in> <out> \[currency\]/);

      await say(`/byok set ${id} vision on`);
      expect(chan.last()).toContain(`custom/${id}: vision is now on.`);
      await say(`/byok set ${id} tools off`);
      await say(`/byok set ${id} price 0.5 2 eur`);
      expect(chan.last()).toMatch(/price is now 0\.5 \/ 2 EUR per 1M tokens/);
      await say(`/byok set ${id} max_tokens 777`);
      await say(`/byok set ${id} name Renamed model`);
      let got = await app.registry.get(ws(), id);
      expect(got.ok && got.model).toMatchObject({
        name: 'Renamed model',
        max_tokens: 777,
        capabilities: { vision: true, tools: false },
        pricing: { input_per_mtok: 0.5, output_per_mtok: 2, currency: 'EUR' },
      });
      await say(`/byok set ${id} price off`);
      got = await app.registry.get(ws(), id);
      expect(got.ok && got.model.pricing).toBeUndefined();

      // The vendor request follows: the new answer cap is what is sent.
      await say(`/model custom/${id}`);
      expect((await ask(openai)).max_tokens).toBe(777);
    });

    it('reasoning_param gives a custom endpoint a thinking switch that /think then drives', async () => {
      const id = await model({ vendor: openai, env: 'SETTINGS_RP_KEY' });
      await say(`/model custom/${id}`);
      await say('/think on');
      expect(chan.last()).toMatch(/cannot think/);
      expect(chan.last()).toContain(`/byok set ${id} reasoning_param`);

      await say(`/byok set ${id} reasoning_param enable_thinking`);
      expect(chan.last()).toContain('reasoning_param is now enable_thinking');
      const got = await app.registry.get(ws(), id);
      expect(got.ok && got.model.capabilities.reasoning).toBe(true);
      expect(got.ok && got.model.thinking).toEqual({ style: 'enable_thinking' });

      await say('/think on');
      expect(chan.last()).toMatch(/Thinking is on/);
      expect((await ask(openai)).enable_thinking).toBe(true);
      await say('/think off');
      expect((await ask(openai)).enable_thinking).toBe(false);

      // A different field name: the switch moves there.
      await say(`/byok set ${id} reasoning_param enable_reasoning`);
      const body = await ask(openai);
      expect(body.enable_reasoning).toBe(false);
      expect(body).not.toHaveProperty('enable_thinking');

      // off restores "no switch".
      await say(`/byok set ${id} reasoning_param off`);
      expect(await ask(openai)).not.toHaveProperty('enable_reasoning');
    });

    it('refuses bad values with the way to write them, and fixed parameters clearly', async () => {
      const id = await model({ vendor: anthropic, env: 'SETTINGS_ANT_KEY', wire: 'anthropic', thinking: { style: 'anthropic_budget' } });
      await say(`/byok set ${id} vision maybe`);
      expect(chan.last()).toBe(`Say on or off, e.g. /byok set ${id} vision on`);
      await say(`/byok set ${id} price cheap`);
      expect(chan.last()).toMatch(/input and output price per 1M tokens/);
      await say(`/byok set ${id} max_tokens lots`);
      expect(chan.last()).toMatch(/whole number/);
      await say(`/byok set ${id} colour blue`);
      expect(chan.last()).toMatch(/Change one: \/byok set .* Fields: name/);
      await say(`/byok set ${id} reasoning_param effort`);
      expect(chan.last()).toMatch(/thinks through its vendor's own API \(thinking\.budget_tokens\); that parameter cannot be changed/);
      await say('/byok set nosuchmodel vision on');
      expect(chan.last()).toMatch(/Unknown model|no custom models/i);
      const got = await app.registry.get(ws(), id);
      expect(got.ok && got.model.capabilities.vision).toBe(false);
    });

    it('in Chinese', async () => {
      const id = await model({ vendor: openai, env: 'SETTINGS_ZH_KEY', name: 'Qwen 自建' });
      await say('/lang zh');
      await say(`/byok set ${id}`);
      expect(chan.last()).toContain(`custom/${id}（Qwen 自建）的设置：`);
      expect(chan.last()).toContain('price: 未设置');
      await say(`/byok set ${id} tools 关`);
      expect(chan.last()).toContain(`custom/${id}：tools 已改为 关。`);
      await say(`/byok set ${id} price 2 8 cny`);
      expect(chan.last()).toContain('每百万 token 2 / 8 CNY（输入 / 输出）');
      await say(`/byok set ${id} vision 也许`);
      expect(chan.last()).toBe(`请写 on 或 off，例如 /byok set ${id} vision on`);
      const got = await app.registry.get(ws(), id);
      expect(got.ok && got.model).toMatchObject({ capabilities: { tools: false }, pricing: { currency: 'CNY' } });
    });
  });

  describe('/think', () => {
    it('Anthropic budget: on with a budget, off, per model; the request body follows', async () => {
      const claude = await model({ vendor: anthropic, env: 'THINK_ANT_KEY', wire: 'anthropic', thinking: { style: 'anthropic_budget' }, max_tokens: 1500, name: 'Claude' });
      const other = await model({ vendor: openai, env: 'THINK_OAI_KEY', thinking: { style: 'thinking_type' }, name: 'DeepSeek-ish' });
      await say(`/model custom/${claude}`);
      await say('/think');
      expect(chan.last()).toMatch(/Thinking for Claude: default \(as the vendor decides\)/);
      expect(await ask(anthropic)).not.toHaveProperty('thinking');

      await say('/think 100');
      expect(chan.last()).toBe('The thinking budget for Claude is a number of tokens from 1024 to 200000.');
      await say('/think 2048');
      expect(chan.last()).toBe('Thinking is on for Claude, with a budget of 2048 tokens.');
      let body = await ask(anthropic);
      expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
      expect(body.max_tokens).toBeGreaterThan(2048); // raised above the budget, as the API requires

      // The choice belongs to that model: another model keeps its own.
      await say(`/model custom/${other}`);
      await say('/think');
      expect(chan.last()).toMatch(/Thinking for DeepSeek-ish: default/);
      await say('/think 4000');
      expect(chan.last()).toMatch(/takes no thinking budget \(it is switched with thinking\)/);
      await say('/think off');
      expect((await ask(openai)).thinking).toEqual({ type: 'disabled' });
      await say(`/model custom/${claude}`);
      expect((await ask(anthropic)).thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });

      await say('/think off');
      body = await ask(anthropic);
      expect(body).not.toHaveProperty('thinking');
      expect(body.max_tokens).toBe(1500);
      await say('/think default');
      expect(chan.last()).toBe('Claude thinks as its vendor defaults again.');
      const prefs = await app.store.getDoc<{ thinking?: Record<string, unknown> }>(ws(), 'prefs');
      expect(prefs?.thinking?.[`custom/${claude}`]).toBeUndefined();
      expect(prefs?.thinking?.[`custom/${other}`]).toEqual({ on: false });
    });

    it('models that cannot think, or always do, say so', async () => {
      const plain = await model({ vendor: openai, env: 'THINK_NONE_KEY', name: 'Plain' });
      const always = await model({ vendor: openai, env: 'THINK_ALWAYS_KEY', thinking: { style: 'always_on' }, name: 'Reasoner' });
      await say(`/model custom/${plain}`);
      await say('/think');
      expect(chan.last()).toMatch(/^Plain cannot think/);
      await say(`/model custom/${always}`);
      await say('/think off');
      expect(chan.last()).toBe('Reasoner always thinks; it cannot be switched off.');
      await say('/think maybe');
      expect(chan.last()).toMatch(/^Usage: \/think on \| off/);
      // The platform model has no thinking rule: it cannot think either.
      await say('/model house-model');
      await say('/think on');
      expect(chan.last()).toMatch(/^House model cannot think/);
      expect(chan.last()).not.toContain('reasoning_param'); // no settings for an operator model
    });

    it('in a group only admins change it (fails closed for others)', async () => {
      const group = `-${uid}`;
      const admin = chan as unknown as { isGroupAdmin?: () => Promise<boolean> };
      try {
        admin.isGroupAdmin = async () => true;
        await say('/model house-model', { group });
        await say('/think on', { group });
        expect(chan.last()).toMatch(/^House model cannot think/);
        admin.isGroupAdmin = async () => false;
        await say('/think on', { group });
        expect(chan.last()).toBe("Only group admins can change thinking for this group's model.");
        delete admin.isGroupAdmin; // no check on the channel at all: refused too
        await say('/think off', { group });
        expect(chan.last()).toBe("Only group admins can change thinking for this group's model.");
      } finally {
        delete admin.isGroupAdmin;
      }
    });

    it('in Chinese', async () => {
      const id = await model({ vendor: openai, env: 'THINK_ZH_KEY', thinking: { style: 'enable_thinking' }, name: '通义' });
      await say('/lang zh');
      await say(`/model custom/${id}`);
      await say('/think 开');
      expect(chan.last()).toBe('已为 通义 开启思考。');
      expect((await ask(openai)).enable_thinking).toBe(true);
      await say('/think 3000');
      expect(chan.last()).toBe('已为 通义 开启思考，预算 3000 个 token。');
      const body = await ask(openai);
      expect(body).toMatchObject({ enable_thinking: true, thinking_budget: 3000 });
      await say('/think');
      expect(chan.last()).toContain('通义 的思考：开启，预算 3000 个 token。');
      await say('/think 关');
      expect(chan.last()).toBe('已为 通义 关闭思考。');
      expect((await ask(openai)).enable_thinking).toBe(false);
    });
  });

  describe('/model default', () => {
    it('a chat with no model chosen uses the default; /model shows it; a chosen model still wins', async () => {
      const id = await model({ vendor: openai, env: 'DEFAULT_KEY', name: 'My default' });
      await say('/model');
      expect(chan.last()).toMatch(/No default model: new chats use the platform's/);
      // No default yet: the platform's model answers.
      await ask(platform);

      await say(`/model default custom/${id}`);
      expect(chan.last()).toBe(`My default (custom/${id}) is now your default model: chats where you have not picked a model use it.`);
      await say('/model');
      expect(chan.last()).toContain(`Default model for new chats: My default (custom/${id})`);
      expect(chan.last()).toContain(`Current model: My default (custom/${id})`);
      const body = await ask(openai);
      const got = await app.registry.get(ws(), id);
      expect(body.model).toBe(got.ok && got.model.upstream_model);

      // The default lives in the Store: another router (another process) sees the same.
      const prefs = await app.store.getDoc<{ default_model?: string }>(ws(), 'prefs');
      expect(prefs?.default_model).toBe(`custom/${id}`);

      await say('/model house-model');
      await ask(platform);
      await say('/reset');
      await ask(platform); // the chat's own choice stays
    });

    it('a new chat after the chosen model is removed uses the default; removing the default clears it', async () => {
      const a = await model({ vendor: openai, env: 'DEFAULT_A_KEY', name: 'Alpha' });
      const b = await model({ vendor: anthropic, env: 'DEFAULT_B_KEY', wire: 'anthropic', name: 'Beta' });
      await say('/model default 3'); // by number: house-model, Alpha, Beta
      expect(chan.last()).toContain(`Beta (custom/${b})`);
      await say(`/model custom/${a}`);
      await ask(openai);
      await say(`/byok remove ${a}`);
      await ask(anthropic);
      await say(`/byok remove ${b}`);
      const prefs = await app.store.getDoc<{ default_model?: string }>(ws(), 'prefs');
      expect(prefs?.default_model).toBeUndefined();
      await ask(platform);
    });

    it('refuses unknown, removed and group defaults; off clears it', async () => {
      const id = await model({ vendor: openai, env: 'DEFAULT_C_KEY' });
      await say('/model default custom/nope-0000');
      expect(chan.last()).toMatch(/Unknown model "custom\/nope-0000"/);
      await say(`/model default ${id}`, { group: `-${uid}` });
      expect(chan.last()).toMatch(/set in a private chat with me/);
      await say(`/model default ${id}`);
      await say('/model default off');
      expect(chan.last()).toBe("Default model cleared: new chats use the platform's model.");
      await ask(platform);
      await app.registry.remove(ws(), id);
      await say(`/model default custom/${id}`);
      expect(chan.last()).toMatch(/is removed/);
    });

    it('in Chinese', async () => {
      const id = await model({ vendor: openai, env: 'DEFAULT_ZH_KEY', name: '小米' });
      await say('/lang zh');
      await say(`/model 默认 custom/${id}`);
      expect(chan.last()).toBe(`小米 (custom/${id}) 已设为你的默认模型：未选择模型的对话都会使用它。`);
      await say('/model');
      expect(chan.last()).toContain(`新对话的默认模型：小米 (custom/${id})`);
      await ask(openai, '你好');
      await say('/model default off');
      expect(chan.last()).toBe('已取消默认模型：新对话使用平台模型。');
    });
  });
});

// ------------------------------------------------------------------ Telegram emulator

const TelegramServer = ((TelegramTestApi as any).default ?? TelegramTestApi) as typeof EmulatorServer;
const TOKEN = '555131:settings-telegram-token';
const TG_USER = 5131;

describe('telegram: /byok set, /think and /model default through the Bot API emulator', () => {
  let server: EmulatorServer;
  let app: App;
  let cleanup: () => Promise<void>;
  let anthropic: FakeVendor;
  let openai: FakeVendor;
  let client: ReturnType<EmulatorServer['getClient']>;
  let claude = '';
  let plain = '';
  const rec = apiRecorder({
    setMyCommands: { ok: true, result: true },
    sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' },
    getChatMember: (p) => ({ ok: true, result: { status: 'member', user: { id: p.user_id } } }),
  });
  const texts = () => (server.storage.botMessages as unknown as Array<{ message: Record<string, any> }>).filter((m) => String(m.message.chat_id) === String(TG_USER)).map((m) => String(m.message.text ?? ''));
  const command = async (text: string, expect: RegExp) => {
    const n = texts().length;
    await client.sendCommand(client.makeCommand(text));
    return waitFor(() => texts().slice(n).find((t) => expect.test(t)), 10_000, `a reply to ${text} matching ${expect}`);
  };
  const message = async (vendor: FakeVendor, text: string) => {
    const n = vendor.requests.length;
    await client.sendMessage(client.makeMessage(text));
    return (await waitFor(() => vendor.requests.slice(n).find((r) => r.method === 'POST'), 10_000, 'the vendor request')).body;
  };

  beforeAll(async () => {
    // A free port: other suites run their own emulators at the same time.
    server = new TelegramServer({ port: await freePort(), storage: 'RAM', storeTimeout: 600 });
    await server.start();
    anthropic = await startFakeAnthropic({ reply: 'claude says hi' });
    openai = await startFakeOpenAI({ reply: 'plain says hi' });
    ({ app, cleanup } = await testApp({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: server.config.apiURL }));
    app.addChannel(new TelegramChannel({ config: app.config, logger: app.logger, store: app.store, webApp: 'never', transformers: [rec.transformer], editIntervalMs: 150, pollRetryInterval: 100 }));
    await app.start();
    client = server.getClient(TOKEN, { userId: TG_USER, chatId: TG_USER, firstName: 'Mei', type: 'private' });
    const ws = `tg:${TG_USER}`;
    await app.vault.put(ws, 'TG_ANT_KEY', enc('sk-ant-' + randomBytes(16).toString('hex')));
    await app.vault.put(ws, 'TG_OAI_KEY', enc('sk-' + randomBytes(16).toString('hex')));
    const a = await app.registry.add(ws, { upstream_model: 'claude-x', base_url: anthropic.baseUrl, wire: 'anthropic', api_key_env: 'TG_ANT_KEY', thinking: { style: 'anthropic_budget' }, name: 'Claude' });
    const b = await app.registry.add(ws, { upstream_model: 'plain-x', base_url: openai.baseUrl, api_key_env: 'TG_OAI_KEY', name: 'Plain' });
    if (!a.ok || !b.ok) throw new Error('setup failed');
    claude = a.model.id;
    plain = b.model.id;
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
    await Promise.all([anthropic?.close(), openai?.close()]);
    await server?.stop();
  });

  it('a new chat uses the default model; /think changes the request; /byok set changes max_tokens', async () => {
    await command(`/model default custom/${claude}`, /is now your default model/);
    let body = await message(anthropic, 'first message');
    expect(body.model).toBe('claude-x');
    expect(body).not.toHaveProperty('thinking');

    await command('/think 1500', /Thinking is on for Claude, with a budget of 1500 tokens/);
    body = await message(anthropic, 'think about it');
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 1500 });

    await command(`/byok set ${claude} max_tokens 9000`, /max_tokens is now 9000/);
    body = await message(anthropic, 'and again');
    expect(body.max_tokens).toBe(9000);
    expect(body.thinking).toEqual({ type: 'enabled', budget_tokens: 1500 });

    await command(`/model custom/${plain}`, /now uses Plain/);
    await command('/think on', /Plain cannot think/);
    body = await message(openai, 'plain question');
    expect(body.model).toBe('plain-x');
  });

  it('in Chinese', async () => {
    await command('/lang zh', /中文/);
    await command('/model', /新对话的默认模型：Claude/);
    await command(`/byok set ${plain} vision 开`, /vision 已改为 开/);
    await command('/think on', /Plain 不支持思考/);
    await command('/model default off', /已取消默认模型/);
  });
});

// ------------------------------------------------------------------ CLI

describe('byok update: capability flags, pricing and the reasoning parameter', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync('/tmp/byok-cli-update-');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function run(args: string[]): Promise<{ code: number; out: any }> {
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (d) => (text += d));
    const code = await main(args, { stdin: Readable.from(['']), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dir } });
    return { code, out: JSON.parse(text) };
  }

  it('sets and clears each one, and refuses bad values with the usage', async () => {
    const added = await run(['add', '--base-url', 'https://api.example.com/v1', '--model', 'foo-1', '--name', 'Foo']);
    expect(added.code, JSON.stringify(added.out)).toBe(0);
    const id = added.out.model.id;
    const r = await run(['update', id, '--vision', 'on', '--tools', 'off', '--price-in', '0.5', '--price-out', '2', '--currency', 'eur', '--reasoning-param', 'enable_thinking', '--max-tokens', '2048']);
    expect(r.code, JSON.stringify(r.out)).toBe(0);
    expect(r.out.model).toMatchObject({
      max_tokens: 2048,
      capabilities: { vision: true, tools: false, reasoning: true },
      pricing: { input_per_mtok: 0.5, output_per_mtok: 2, currency: 'EUR' },
      thinking: { style: 'enable_thinking' },
    });
    const cleared = await run(['update', id, '--no-price', '--reasoning-param', 'off', '--json', 'off']);
    expect(cleared.out.model.pricing).toBeUndefined();
    expect(cleared.out.model.thinking).toEqual({ style: 'none' });
    expect(cleared.out.model.capabilities.json).toBe(false);

    const bad = await run(['update', id, '--vision', 'maybe']);
    expect(bad.code).toBe(2);
    expect(bad.out.error).toBe('--vision takes on or off');
    const half = await run(['update', id, '--price-in', '1']);
    expect(half.code).toBe(2);
    const both = await run(['update', id, '--no-price', '--price-in', '1', '--price-out', '2']);
    expect(both.code).toBe(2);
    const fixed = await run(['update', id, '--reasoning-param', 'bad name']);
    expect(fixed.code).toBe(1);
    expect(fixed.out).toMatchObject({ code: 'invalid_input', field: 'reasoning_param' });
  });

  it('an Anthropic template model keeps its fixed thinking parameter', async () => {
    const added = await run(['add-template', 'anthropic']);
    expect(added.code, JSON.stringify(added.out)).toBe(0);
    const r = await run(['update', added.out.model.id, '--reasoning-param', 'effort']);
    expect(r.code).toBe(1);
    expect(r.out.error).toMatch(/anthropic_budget API, whose parameter is fixed/);
  });
});
