import TelegramTestApi from 'telegram-test-api';
import type { TelegramServer as EmulatorServer } from 'telegram-test-api/lib/telegramServer.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import type { App } from '../../src/app.ts';
import { formatTime } from '../../src/chat/time.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { apiRecorder } from '../support/telegram.ts';

/**
 * Issue 12 "Chinese": after /lang zh (or a Chinese Telegram language_code) every message is
 * Chinese — registry and parse errors, the add flow, /byok keys, key result notices with
 * their what-to-do, and times in the user's own zone (Beijing time by default, /tz to change).
 * A reply "is Chinese" when it has CJK text and none of the registry's English sentences.
 */

const GOOD = 'sk-' + 'c0ffee11d2e3f4a5b6c7d8e9f0a1b2c3';
const BAD = 'sk-' + 'badbadbadbadbadbadbadbadbadbad00';
const CJK = /[\u4e00-\u9fff]/;
/** Words of the registry's / parser's / worker's English that must not reach a Chinese chat. */
const ENGLISH = /\b(the|must|not|was|found|already|exists|example|vendor|rejected|check)\b/i;
const BARE_TODO = /\b(resubmit_key|check_billing|check_model|check_base_url|check_request|try_later|open_new_form)\b/;

function expectChinese(text: string): void {
  expect(text, text).toMatch(CJK);
  // Commands, ids, URLs and env names stay as they are; sentences do not.
  const prose = text.replace(/\/\S+|custom\/\S+|https?:\/\/\S+|\b[A-Z][A-Z0-9_]{2,}\b|\*{4}\w+|"[^"]*"|“[^”]*”/g, '');
  expect(prose, text).not.toMatch(ENGLISH);
  expect(text).not.toMatch(BARE_TODO);
}

describe('Chinese conversations (recording channel)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let fake: FakeVendor;
  let user = 7100;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string) => chan.say(text, uid, { lang: 'zh' });
  const curl = () =>
    `curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $MYAPI_API_KEY" -H "Content-Type: application/json" -d '{"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}'`;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [GOOD], reply: '你好' });
    ({ app, cleanup } = await testApp());
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });
  beforeEach(() => {
    uid = String(++user);
  });

  /** /byok example → draft → /byok confirm: the add flow for any endpoint, in Chinese. */
  async function addByExample(name = '我的模型'): Promise<string> {
    await say('/byok example');
    expectChinese(chan.last());
    await say(curl());
    expect(chan.last()).toContain('fake-chat');
    await say(`/byok confirm ${name}`);
    const res = await app.registry.list_models(ws());
    if (!res.ok || !res.models.length) throw new Error('not registered');
    return res.models.at(-1)!.id;
  }

  it('a registry error (name taken, bad max_tokens, unknown model) is Chinese', async () => {
    await say('/lang zh');
    const id = await addByExample('同名模型');
    const before = chan.sent.length;
    await say('/byok example');
    await say(curl());
    await say('/byok confirm 同名模型');
    const taken = chan.last();
    expect(chan.sent.length).toBeGreaterThan(before);
    expectChinese(taken);
    expect(taken).toContain('同名模型');
    expect(taken).toContain(`custom/${id}`);

    await say(`/byok edit ${id} max_tokens lots`);
    expectChinese(chan.last());
    expect(chan.last()).toContain('max_tokens');
    await say('/byok remove no-such-model');
    expectChinese(chan.last());
  });

  it('a parse error names what is missing, in Chinese, with the way out', async () => {
    await say('/byok example');
    await say(`curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $K" -d '{"messages": [{"role": "user", "content": "hi"}]}'`);
    const text = chan.last();
    expectChinese(text);
    expect(text).toContain('"model"');
    expect(text).toContain('/byok cancel');
    await say('/byok example');
    await say('curl https://$HOST/v1/chat/completions -d \'{"model": "m"}\'');
    expectChinese(chan.last());
  });

  it('the add flow, the link expiry in Asia/Shanghai, the key result and /byok keys are Chinese', async () => {
    const id = await addByExample();
    const form = chan.forms.at(-1)!;
    expect(form.lang).toBe('zh');
    // The form's expiry: Beijing time by default for a Chinese user.
    expect(form.tz).toBe('Asia/Shanghai');
    expect(formatTime(form.expires_at, 'zh', form.tz)).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} 北京时间$/);
    const utc = new Date(form.expires_at);
    const beijing = new Date(utc.getTime() + 8 * 3600_000).toISOString().slice(0, 16).replace('T', ' ');
    expect(formatTime(form.expires_at, 'zh', form.tz)).toBe(`${beijing} 北京时间`);

    // A wrong key: the notice says what to do in Chinese (never a bare code).
    const notices = chan.sent.length;
    expect((await submitForm(form.url, { MYAPI_API_KEY: BAD })).status).toBe(202);
    const refused = await waitFor(() => chan.sent.slice(notices).find((m) => /❌/.test(m.text)), 15_000, 'invalid-key notice');
    expectChinese(refused.text);
    expect(refused.text).toContain(`/byok key ${id}`);
    // The page's status for that link: Chinese text and hint when asked in Chinese.
    const u = new URL(form.url);
    const st = (await (await fetch(`${u.origin}${u.pathname}/status?lang=zh`)).json()) as Record<string, string>;
    expect(st.what_to_do).toBe('resubmit_key');
    expectChinese(st.text!);
    expectChinese(st.todo_text!);
    const stEn = (await (await fetch(`${u.origin}${u.pathname}/status`)).json()) as Record<string, string>;
    expect(stEn.todo_text).toMatch(/Check the key/);

    // The right key through a fresh form: stored, then listed with Beijing times.
    await say(`/byok key ${id}`);
    const again = chan.forms.at(-1)!;
    expect(again.url).not.toBe(form.url);
    const ok = chan.sent.length;
    expect((await submitForm(again.url, { MYAPI_API_KEY: GOOD })).status).toBe(202);
    const stored = await waitFor(() => chan.sent.slice(ok).find((m) => /✅/.test(m.text)), 15_000, 'ok notice');
    expectChinese(stored.text);
    await say('/byok keys');
    const keys = chan.last();
    expectChinese(keys);
    expect(keys).toContain(`****${GOOD.slice(-4)}`);
    expect(keys).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2} 北京时间/);
    expect(keys).not.toMatch(/UTC/);
  });

  it('/tz shows, changes and validates the zone; times follow it', async () => {
    await say('/tz');
    expect(chan.last()).toContain('Asia/Shanghai');
    expectChinese(chan.last());
    await say('/tz Mars/Olympus');
    expectChinese(chan.last());
    expect(chan.last()).toContain('Mars/Olympus');
    await say('/tz europe/berlin');
    expect(chan.last()).toContain('Europe/Berlin');
    const id = await addByExample();
    const form = chan.forms.at(-1)!;
    expect(form.tz).toBe('Europe/Berlin');
    // The pending-form answer shows the expiry in Berlin time, the zone named.
    await say(`/model custom/${id}`);
    await say('你好');
    const berlin = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(form.expires_at));
    const pending = chan.sent.map((m) => m.text).find((t) => t.includes(`${berlin} Europe/Berlin`));
    expect(pending, chan.sent.map((m) => m.text).join('\n---\n')).toBeTruthy();
    expectChinese(pending!);
    await say('/tz reset');
    await say('/tz');
    expect(chan.last()).toContain('Asia/Shanghai');
  });

  it('an optional-key endpoint sends the key the user stored (no "key rejected" after ✅)', async () => {
    await say(`/byok add openai-compatible ${fake.baseUrl} fake-chat 本地`);
    const res = await app.registry.list_models(ws());
    const id = res.ok ? res.models[0]!.id : '';
    await say(`/byok key ${id}`);
    const form = chan.forms.at(-1)!;
    const before = chan.sent.length;
    expect((await submitForm(form.url, { OPENAI_COMPATIBLE_API_KEY: GOOD })).status).toBe(202);
    await waitFor(() => chan.sent.slice(before).find((m) => /✅/.test(m.text)), 15_000, 'ok notice');
    await say(`/model custom/${id}`);
    await say('你好');
    expect(chan.last()).toBe('你好');
    await say(`/byok test ${id}`);
    expectChinese(chan.last());
    expect(chan.last()).not.toMatch(/❌/);
  });

  it('a refused OAuth file: the page says what was wrong and which /byok key to send, in its own language', async () => {
    await say('/byok add qwen-code');
    const form = chan.forms.at(-1)!;
    const id = form.model_id;
    const before = chan.sent.length;
    expect((await submitForm(form.url, { [form.env_vars[0]!]: '{"access_token": "abc"}' })).status).toBe(202);
    await waitFor(() => chan.sent.slice(before).find((m) => /⚠️/.test(m.text)), 15_000, 'form-error notice');
    const u = new URL(form.url);
    const zh = (await (await fetch(`${u.origin}${u.pathname}/status?lang=zh`)).json()) as Record<string, string>;
    expectChinese(zh.text!);
    expect(zh.text).toContain('refresh_token');
    expect(zh.todo_text).toContain(`/byok key ${id}`);
    expect(zh.todo_text).not.toContain('<id>');
    // The same result on an English page: English, not the requester's Chinese.
    const en = (await (await fetch(`${u.origin}${u.pathname}/status?lang=en`)).json()) as Record<string, string>;
    expect(en.text).toMatch(/refresh_token/);
    expect(en.text).not.toMatch(CJK);
    expect(en.todo_text).toContain(`/byok key ${id}`);
  });

  it('templates are named in Chinese in chat, on the form, in /byok keys, in /byok models and on intent buttons', async () => {
    const QWEN_ZH = '通义千问（阿里云百炼 / DashScope）';
    await say('/byok add qwen');
    const form = chan.forms.at(-1)!;
    // The form request carries the requester's name for the vendor: the card and the page show it.
    expect(form.vendor_name).toBe(QWEN_ZH);
    expect(form.reason).toContain(QWEN_ZH);
    const html = await (await fetch(form.url)).text();
    expect(html).toContain(`<dd>${QWEN_ZH}</dd>`);
    expect(html).not.toContain('Alibaba Cloud Model Studio');
    // /byok keys: the stored key under the Chinese name.
    await app.vault.put(ws(), form.env_vars[0]!, new TextEncoder().encode('sk-' + 'ab12'.repeat(8)));
    await say('/byok keys');
    expect(chan.last()).toContain(QWEN_ZH);
    await say('/byok models deepseek');
    expect(chan.last()).toContain('深度求索 DeepSeek');
    // "I want Xiaomi's model" with no MiMo model: the text and the button name 小米 MiMo.
    await say('我想用小米的模型');
    const offer = chan.sent.at(-1)!;
    expect(offer.text).toContain('小米 MiMo');
    expect(offer.choices?.[0]?.[0]?.label).toContain('小米 MiMo');
    // An English user keeps the English names.
    const other = String(++user);
    await chan.say('/byok add qwen', other, { lang: 'en' });
    expect(chan.forms.at(-1)!.vendor_name).toBe('Qwen (Alibaba Cloud Model Studio / DashScope)');
  });

  for (const lang of ['en', 'zh'] as const) {
    it(`an OAuth credentials file is a file and a login, not a key: the form and the result notice (${lang})`, async () => {
      const added = await app.registry.add_template(ws(), 'qwen-code', { base_url: fake.baseUrl });
      if (!added.ok) throw new Error(added.error);
      const id = added.model.id;
      await chan.say(`/byok key ${id}`, uid, { lang });
      const form = chan.forms.at(-1)!;
      expect(form.model_id).toBe(id);
      const html = await (await fetch(form.url)).text();
      if (lang === 'en') {
        expect(html).toContain('Keep this login');
        expect(html).not.toContain('Keep this key');
        expect(html).toContain('Credentials file verified and stored');
      } else {
        expect(html).toContain('登录凭证保留时间');
        expect(html).not.toContain('密钥保留时间');
        expect(html).toContain('凭证文件已验证并保存');
      }
      const before = chan.sent.length;
      const file = JSON.stringify({ access_token: GOOD, refresh_token: `r-${uid}`, token_type: 'Bearer', resource_url: fake.baseUrl, expiry_date: Date.now() + 3_600_000 });
      expect((await submitForm(form.url, { [form.env_vars[0]!]: file })).status).toBe(202);
      const ok = await waitFor(() => chan.sent.slice(before).find((m) => /✅/.test(m.text)), 15_000, 'stored notice');
      if (lang === 'en') {
        expect(ok.text).toMatch(/^✅ Credentials file for .+ verified and stored/);
        expect(ok.text).not.toMatch(/Key for/);
      } else {
        expect(ok.text).toContain('的凭证文件已验证并加密保存');
        expect(ok.text).not.toContain('的密钥已验证');
      }
    });
  }

  it('English stays English (same meaning), in UTC', async () => {
    const sayEn = (text: string) => chan.say(text, uid, { lang: 'en' });
    await sayEn('/byok example');
    await sayEn(`curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $K" -d '{"messages": []}'`);
    expect(chan.last()).toMatch(/No model name was found in the example/);
    await sayEn('/byok remove no-such-model');
    expect(chan.last()).toMatch(/custom models|Unknown model/);
    await sayEn('/tz');
    expect(chan.last()).toMatch(/Your time zone: UTC/);
  });
});

describe('Chinese: custom endpoints are named by their host (privacy notice, waiting, timeout)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let a: FakeVendor;
  let slow: FakeVendor;
  const uid = '7190';
  const say = (text: string) => chan.say(text, uid, { lang: 'zh' });

  beforeAll(async () => {
    a = await startFakeOpenAI({ reply: '甲的回答' });
    slow = await startFakeOpenAI({ reply: 'x' });
    ({ app, cleanup } = await testApp({ BYOK_VENDOR_IDLE_TIMEOUT_SECONDS: '2' }));
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await a.close();
    await slow.close();
  });

  it('never "Any OpenAI-compatible endpoint": the switch notice and the waiting messages name the hosts', async () => {
    await say(`/byok add openai-compatible ${a.baseUrl} m1 甲`);
    await say(`/byok add openai-compatible ${slow.baseUrl} m2 慢`);
    const res = await app.registry.list_models(`tg:${uid}`);
    const [first, second] = res.ok ? res.models : [];
    await say(`/model custom/${first!.id}`);
    await say('你好');
    expect(chan.last()).toBe('甲的回答');
    const hostA = new URL(a.baseUrl).host;
    const hostSlow = new URL(slow.baseUrl).host;
    await say(`/model custom/${second!.id}`);
    const notice = chan.last();
    expectChinese(notice);
    expect(notice).toContain(hostA);
    expect(notice).toContain(hostSlow);
    expect(notice).not.toMatch(/OpenAI-compatible/);
    slow.setBehaviour('hang');
    const before = chan.sent.length;
    await say('你好');
    const waiting = chan.sent.slice(before).map((m) => m.text);
    expect(waiting.length, waiting.join('\n')).toBe(2);
    for (const w of waiting) {
      expectChinese(w);
      expect(w).toContain(hostSlow);
      expect(w).not.toMatch(/OpenAI-compatible/);
    }
    expect(waiting[1]).toContain('/model');
  }, 30_000);
});

// CommonJS default export: the class itself at runtime.
const TelegramServer = ((TelegramTestApi as any).default ?? TelegramTestApi) as typeof EmulatorServer;

describe('Chinese conversation on the Telegram emulator (language_code zh-hans)', () => {
  const PORT = 9131;
  const TOKEN = '555031:zh-telegram-token';
  const USER = 5031;
  let server: EmulatorServer;
  let app: App;
  let cleanup: () => Promise<void>;
  const rec = apiRecorder({
    setMyCommands: { ok: true, result: true },
    sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' },
  });
  let client: ReturnType<EmulatorServer['getClient']>;
  let logs: { text(): string };
  const zh = { from: { language_code: 'zh-hans' } };
  const texts = () => rec.calls.filter((c) => c.method === 'sendMessage' || c.method === 'editMessageText').map((c) => String(c.payload.text ?? ''));

  beforeAll(async () => {
    server = new TelegramServer({ port: PORT, storage: 'RAM', storeTimeout: 600 });
    await server.start();
    ({ app, cleanup, logs } = await testApp({ TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: server.config.apiURL }));
    const ch = new TelegramChannel({ config: app.config, logger: app.logger, store: app.store, webApp: 'never', transformers: [rec.transformer], editIntervalMs: 150, pollRetryInterval: 100 });
    app.addChannel(ch);
    await app.start();
    client = server.getClient(TOKEN, { userId: USER, chatId: USER, firstName: 'Li', type: 'private' });
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
    await server?.stop();
  });

  it('the add card (Beijing time), a registry error and /byok keys are Chinese', async () => {
    await client.sendCommand(client.makeCommand('/byok add qwen', zh));
    const card = await waitFor(() => texts().find((t) => /北京时间/.test(t)), 15_000, 'form card').catch((e) => {
      throw new Error(`${(e as Error).message}: ${logs.text().split('\n').filter((l) => /error/i.test(l)).join('\n').slice(0, 3000)}`);
    });
    expectChinese(card.replace(/<[^>]+>/g, ''));
    expect(card).not.toMatch(/UTC/);
    const res = await app.registry.list_models(`tg:${USER}`);
    const id = res.ok ? res.models[0]!.id : '';
    await client.sendCommand(client.makeCommand(`/byok edit ${id} base_url ftp://example.com`, zh));
    const err = await waitFor(() => texts().find((t) => /base_url/.test(t) && /不可用/.test(t)), 15_000, 'registry error');
    expectChinese(err);
    await client.sendCommand(client.makeCommand('/byok keys', zh));
    const keys = await waitFor(() => texts().find((t) => /\/byok add/.test(t) && /密钥/.test(t) && !/北京时间/.test(t)), 15_000, 'keys');
    expectChinese(keys);
  }, 60_000);
});
