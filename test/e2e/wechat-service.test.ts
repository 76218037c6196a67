/**
 * WeChat over the production transport, end to end: the product's own start-up (`npm start`
 * = src/main.ts in a child process, WECHATY_PUPPET=wechaty-puppet-service) against a local
 * puppet-service gRPC provider wrapping wechaty-puppet-mock (no TLS, `insecure_<uuid>` token),
 * a fake OpenAI-compatible vendor and the secure form over HTTP.
 *
 * In order: the provider is down when the product starts (it keeps retrying, /readyz says
 * so, and it connects once the provider comes up 5+ s later); a Chinese user's flow
 * (message → answer, /byok add → link → form → ✅ notice, /model, a Markdown answer read as
 * plain text); a 5-second provider outage with one answer in flight and messages sent
 * meanwhile; a normal shutdown that leaves the account logged in, and a restart that needs
 * no scan.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { t } from '../../src/i18n/index.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, submitForm, waitFor } from '../support/form.ts';
import { startProcess, waitForOutput, type ProcHandle } from '../support/processes.ts';
import { startMockProvider, type MockProvider } from '../support/puppet-service.ts';

type MockMsg = { payload: { talkerId: string; text?: string } };
type Conversation = { on(ev: 'message', fn: (m: MockMsg) => void): unknown };

const KEY = 'sk-' + 'f1e2d3c4b5a6978877665544332211aa';
const MARKDOWN = [
  '## 安装步骤',
  '',
  '这是 **重要** 的说明，也可以看 [官方文档](https://example.com/docs)。',
  '',
  '1. 第一步：安装',
  '2. 第二步：运行',
  '',
  '- 注意 *版本*',
  '',
  '```python',
  'def hello():',
  '    print("hi")',
  '```',
].join('\n');

describe('WeChat through wechaty-puppet-service (npm start, local gRPC provider)', () => {
  let provider: MockProvider;
  let fake: FakeVendor;
  let product: ProcHandle | undefined;
  let dataDir: string;
  let home: string;
  let url: string;
  let env: Record<string, string>;
  type Contact = ReturnType<MockProvider['mocker']['createContacts']>[number];
  let botId: string;
  let me: Contact;
  let alice: Contact;
  let bob: Contact;
  const aliceBox: string[] = [];
  const bobBox: string[] = [];
  let modelId = '';

  const readyz = async () => {
    const r = await fetch(`${url}/readyz`);
    return { status: r.status, body: (await r.json()) as { ok: boolean; channels?: Record<string, { ready: boolean; state: string; detail?: string }> } };
  };
  const outbox = (conv: object, box: string[]) => {
    (conv as Conversation).on('message', (m) => {
      if (m.payload.talkerId === botId) box.push(m.payload.text ?? '');
    });
  };
  const ask = async (from: typeof alice, box: string[], text: string, n = 1, timeoutMs = 20_000) => {
    const before = box.length;
    from.say(text).to(me);
    await waitFor(() => box.length >= before + n, timeoutMs, `${n} repl${n === 1 ? 'y' : 'ies'} to "${text.slice(0, 24)}"`);
    return box.slice(before, before + n);
  };

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [KEY], reply: '你好，我是假的 DeepSeek。' });
    // The provider's port is known, but nothing listens yet: the product starts while it is down.
    provider = await startMockProvider({ listen: false });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-wxsvc-'));
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-wxsvc-home-'));
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = {
      ...provider.env,
      HOME: home,
      BYOK_DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      BYOK_ALLOW_PRIVATE_BASE_URLS: '1',
      LOG_LEVEL: 'info',
      WECHATY_LOG: 'warn',
    };
    const [m, a, b] = provider.mocker.createContacts(3);
    me = m;
    botId = me.id;
    alice = a;
    bob = b;
    outbox(alice, aliceBox);
    outbox(bob, bobBox);
  }, 30_000);

  afterAll(async () => {
    product?.kill('SIGKILL');
    await product?.exited;
    await provider?.close();
    await fake?.close();
    for (const d of [dataDir, home]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('started while the provider is down: keeps retrying, /readyz says so, connects once it is up', async () => {
    const t0 = Date.now();
    product = startProcess('bot', 'src/main.ts', env);
    await waitForOutput(product, 'byok-bot started', 60_000);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.channels?.wechat?.ready).toBe(false);
    expect(down.body.channels?.wechat?.state).toBe('connecting');
    // It keeps trying (with backoff), logging each attempt.
    await waitFor(() => (product!.output().match(/provider unreachable; retrying/g) ?? []).length >= 2, 30_000, 'two retries');
    await new Promise((r) => setTimeout(r, Math.max(0, 5500 - (Date.now() - t0))));

    await provider.start();
    const up = Date.now();
    await waitForOutput(product, 'wechat: connected', 30_000);
    const connectMs = Date.now() - up;
    // Connected but not logged in: still not ready.
    const connected = await readyz();
    expect(connected.status).toBe(503);
    expect(connected.body.channels?.wechat?.state).toBe('connected');

    provider.mocker.login(me);
    await waitFor(async () => (await readyz()).status === 200, 15_000, '/readyz 200 after login');
    const ready = await readyz();
    expect(ready.body.channels?.wechat).toMatchObject({ ready: true, state: 'logged_in' });
    const out = product.output();
    for (const state of ['wechat: connecting', 'wechat: connected', 'wechat: logged in']) expect(out).toContain(state);
    console.info(`[wechat-service] connected ${connectMs} ms after the provider came up`);
    // Bounded by the backoff cap (15 s) plus start-up; generous for a loaded machine.
    expect(connectMs).toBeLessThan(25_000);
  }, 120_000);

  it('a Chinese user: message → answer, /byok add → link (Beijing time) → form → ✅ notice, /model, a Markdown answer as plain text', async () => {
    const [noModel] = await ask(alice, aliceBox, '你好');
    expect(noModel).toBe(t('zh', 'relay.no_model'));

    const [added, prompt] = await ask(alice, aliceBox, '/byok add deepseek', 2);
    expect(added).toContain('已将');
    modelId = /custom\/(deepseek-v4-flash-[a-z0-9]+)/.exec(added)![1];
    expect(prompt).toMatch(/有效期至 \d{4}-\d{2}-\d{2} \d{2}:\d{2} 北京时间/);
    expect(prompt).toContain('切勿在此对话中发送密钥');
    const link = /https?:\/\/\S+\/s\/\S+/.exec(prompt)![0];

    const [edited] = await ask(alice, aliceBox, `/byok edit ${modelId} base_url ${fake.baseUrl}`);
    expect(edited).toBe(t('zh', 'byok.edited', { id: modelId, field: 'base_url' }));

    const before = aliceBox.length;
    const res = await submitForm(link, { DEEPSEEK_API_KEY: KEY });
    expect(res.status).toBeLessThan(300);
    await waitFor(() => aliceBox.length > before, 20_000, 'the key notice');
    const note = aliceBox[before];
    expect(note).toContain('✅');
    expect(note).toContain('已验证并加密保存');
    expect(note).toContain('****' + KEY.slice(-4));

    const [switched] = await ask(alice, aliceBox, '/model 1');
    expect(switched).toContain('本对话现在使用');
    const [answer] = await ask(alice, aliceBox, '你好，请介绍一下你自己');
    expect(answer).toBe('你好，我是假的 DeepSeek。');

    fake.setReply(MARKDOWN);
    const [md] = await ask(alice, aliceBox, '怎么安装？');
    for (const raw of ['##', '**', '```', '](']) expect(md).not.toContain(raw);
    expect(md).toContain('【安装步骤】');
    expect(md).toContain('这是 重要 的说明，也可以看 官方文档 (https://example.com/docs)。');
    expect(md).toContain('1. 第一步：安装');
    expect(md).toContain('• 注意 版本');
    expect(md).toContain('    def hello():\n        print("hi")');
    fake.setReply('好的，已收到。');

    expect(aliceBox.join('\n')).not.toContain(KEY);
    expect(product!.output()).not.toContain(KEY);
  }, 120_000);

  it('a 5-second provider outage: noticed at once, reconnected, messages sent meanwhile answered, the in-flight one apologised for', async () => {
    const answered = () => aliceBox.filter((x) => x === '好的，已收到。').length + bobBox.filter((x) => x === '好的，已收到。').length;
    // Bob has a model too (the same vendor), so his messages get answers.
    const [bobAdded] = await ask(bob, bobBox, '/byok add deepseek', 2);
    const bobModel = /custom\/(deepseek-v4-flash-[a-z0-9]+)/.exec(bobAdded)![1];
    const bobLink = /https?:\/\/\S+\/s\/\S+/.exec(bobBox.at(-1)!)![0];
    await ask(bob, bobBox, `/byok edit ${bobModel} base_url ${fake.baseUrl}`);
    const nb = bobBox.length;
    await submitForm(bobLink, { DEEPSEEK_API_KEY: KEY });
    await waitFor(() => bobBox.length > nb, 20_000, "bob's key notice");
    await ask(bob, bobBox, '/model 1');

    // One answer in flight when the provider goes away: the vendor is slow.
    fake.setLatency(2500);
    const asked = fake.requests.length;
    const aliceBefore = aliceBox.length;
    const bobBefore = bobBox.length;
    const answeredBefore = answered();
    alice.say('这条消息的回答会赶上断线').to(me);
    await waitFor(() => fake.requests.length > asked, 10_000, 'the in-flight vendor call');

    const stopAt = Date.now();
    await provider.stop();
    await waitForOutput(product!, /wechat: disconnected/, 10_000);
    const detectMs = Date.now() - stopAt;
    await waitFor(async () => (await readyz()).body.channels?.wechat?.ready === false, 5000, '/readyz to report the outage');
    const during = await readyz();
    expect(during.status).toBe(503);
    expect(['disconnected', 'reconnecting']).toContain(during.body.channels?.wechat?.state);

    // Messages sent while the provider is down.
    fake.setLatency(0);
    await new Promise((r) => setTimeout(r, 1000));
    alice.say('断线期间的第一条').to(me);
    bob.say('断线期间的第二条').to(me);
    await new Promise((r) => setTimeout(r, Math.max(0, 5000 - (Date.now() - stopAt))));

    await provider.start();
    const upAt = Date.now();
    await waitFor(async () => (await readyz()).status === 200, 30_000, '/readyz 200 after the outage');
    const reconnectMs = Date.now() - upAt;

    // The in-flight answer could not be sent: the user is asked to send again.
    await waitFor(() => aliceBox.slice(aliceBefore).includes(t('zh', 'wechat.sorry_reconnected')), 20_000, 'the apology');
    // What the provider delivered after the reconnect is answered, once each.
    await waitFor(() => answered() >= answeredBefore + 2, 20_000, 'answers to the messages sent during the outage');
    expect(provider.replayed).toBeGreaterThanOrEqual(2);
    await new Promise((r) => setTimeout(r, 1500));
    expect(answered()).toBe(answeredBefore + 2);
    expect(bobBox.slice(bobBefore)).toEqual(['好的，已收到。']);
    const outageMs = upAt - stopAt;
    console.info(`[wechat-service] outage ${outageMs} ms; disconnect noticed after ${detectMs} ms; ready again ${reconnectMs} ms after the provider came back`);
    expect(detectMs).toBeLessThan(5000);
    expect(reconnectMs).toBeLessThan(20_000);
    expect(product!.output()).toMatch(/wechat: reconnecting/);
  }, 120_000);

  it('a normal shutdown keeps the account logged in at the provider; the restart needs no scan; the cache is under the data dir without the token', async () => {
    product!.kill('SIGTERM');
    const exit = await product!.exited;
    expect(exit.code).toBe(0);
    const out = product!.output();
    expect(out).not.toMatch(/logged out/);
    expect(provider.puppet.isLoggedIn).toBe(true);

    // The client cache lives under BYOK_DATA_DIR; no path anywhere carries the token.
    const paths: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        paths.push(p);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(dataDir);
    walk(home);
    expect(paths.some((p) => p.startsWith(path.join(dataDir, 'wechat-cache')))).toBe(true);
    expect(paths.filter((p) => p.includes(provider.token) || p.includes(provider.token.replace(/^insecure_/, '')))).toEqual([]);
    expect(fs.existsSync(path.join(home, '.wechaty'))).toBe(false);

    product = startProcess('bot-2', 'src/main.ts', env);
    await waitForOutput(product, 'wechat: logged in', 60_000);
    expect((await readyz()).status).toBe(200);
    const [answer] = await ask(alice, aliceBox, '重启之后还在吗？');
    expect(answer).toBe('好的，已收到。');
    expect(product.output()).not.toMatch(/waiting for scan/);
  }, 120_000);
});
