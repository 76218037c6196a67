import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShellChannel } from '../../channels/shell/shell.ts';
import type { App } from '../../src/app.ts';
import { testApp, type LogCapture } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';

// A canary key: a realistic DeepSeek-shaped key that must appear nowhere but at the fake vendor.
const CANARY = 'sk-' + 'c4a9f1e07b3d4c2a9e8f7061d5b4a3c2';
const PASTED = 'sk-' + '7e21c9b04fa83d5e6b19c07a2d4f8e35';
// Credential kinds beyond API keys (fake, split so no scanner takes them for real ones).
const NEW_KINDS = {
  bedrock: 'ABSK' + 'QmVkcm9ja0FQSUtleS1mYWtlMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5',
  googleAccess: 'ya29.' + 'a0AfH6SMBx3kQz7Lr9VtYpWnE2cD4fG6hJ8kL0mN2pQ4rS6tU8vW0xY2zA4bC6dE8fG0hJ2kL4mN6',
  googleRefresh: '1//0' + 'gFakeRefreshTokenQ9xZ2kLm4Np6Rt8Vw0Yb2Dc4Fe6Hg8Jk0Lm2Np4Qr6St8Uv',
  claudeCode: 'sk-ant-oat01-' + 'Zk3x9Qm2Lr7Vt4Yp1Wn8Ec5Dd6Fg0Hh2Jj4Kk6Ll8Mm0Nn2Pp4Qq6Rr8Ss0Tt2Uu4Vv6Ww8Xx0Yy2Zz4AaBbCc',
};

describe('shell channel: the whole flow on one machine', () => {
  let app: App;
  let dataDir: string;
  let logs: LogCapture;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  const input = new PassThrough();
  const output = new PassThrough();
  let out = '';
  output.on('data', (c: Buffer) => (out += c.toString('utf8')));
  let shell: ShellChannel;

  const say = async (line: string) => {
    input.write(line + '\n');
    await new Promise((r) => setImmediate(r));
    await shell.idle();
  };

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [CANARY], reply: 'Hello from the fake vendor, streamed word by word.', usage: { input: 21, output: 9 } });
    ({ app, dataDir, logs, cleanup } = await testApp());
    shell = new ShellChannel({ input, output });
    app.addChannel(shell);
    await app.start();
  });

  afterAll(async () => {
    await cleanup();
    await fake.close();
  });

  let modelId = '';

  it('registers a vendor and prints the one-time link, not a request for the key', async () => {
    await say('/byok add deepseek');
    const m = /custom\/([a-z0-9-]+-[0-9a-f]{4})/.exec(out);
    expect(m, out).toBeTruthy();
    modelId = m![1];
    expect(out).toMatch(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9_-]{43}/);
    // The operator allows private base URLs in tests: point the model at the fake vendor.
    const upd = await app.registry.update('local', modelId, { base_url: fake.baseUrl });
    expect(upd.ok).toBe(true);
  });

  it('does not re-issue the form automatically while one is pending', async () => {
    const before = out.match(/\/s\/[A-Za-z0-9_-]{43}/g)!.length;
    await say(`/model custom/${modelId}`);
    expect(out.match(/\/s\/[A-Za-z0-9_-]{43}/g)!.length).toBe(before);
    expect(out).toMatch(/already waiting/);
  });

  it('validates the key submitted through the form and notifies the chat', async () => {
    const link = out.match(/http:\/\/127\.0\.0\.1:\d+\/s\/[A-Za-z0-9_-]{43}/g)!.at(-1)!;
    const res = await submitForm(link, { DEEPSEEK_API_KEY: CANARY });
    expect(res.status).toBe(202);
    await waitFor(() => out.includes('✅'), 10_000, 'the key result in the shell');
    expect(out).toContain('****' + CANARY.slice(-4));
    // The probe reached the vendor with the key.
    expect(fake.requests.some((r) => r.key === CANARY)).toBe(true);
    const status = await (await fetch(res.statusUrl)).json();
    expect(status.status).toBe('ok');
  });

  it('switches to the model and streams an answer from the vendor on the user key', async () => {
    await say(`/model custom/${modelId}`);
    expect(out).toMatch(/This chat now uses/);
    const before = fake.requests.length;
    await say('What is the capital of France?');
    expect(out).toContain('Hello from the fake vendor, streamed word by word.');
    const req = fake.requests.slice(before).find((r) => r.path.endsWith('/chat/completions'));
    expect(req?.key).toBe(CANARY);
    expect(req?.body.stream).toBe(true);
    expect(JSON.stringify(req?.body.messages)).toContain('capital of France');
  });

  it('shows usage with the tokens of the answer', async () => {
    await say('/byok usage');
    expect(out).toMatch(new RegExp(`custom/${modelId}: 1 request, 21 tokens in, 9 tokens out`));
  });

  it('lists the model with its masked key', async () => {
    await say('/byok list');
    expect(out).toMatch(new RegExp(`custom/${modelId}: .*ready, key \\*\\*\\*\\*${CANARY.slice(-4)}`));
  });

  it('refuses a pasted key: not relayed, not in history, not logged', async () => {
    const before = fake.requests.length;
    await say(`here is my other key ${PASTED}`);
    expect(out).toMatch(/looks like it contains an API key/);
    expect(out).toMatch(/rotate/);
    expect(fake.requests.length).toBe(before);
    // Its own stored key pasted back is recognised by fingerprint too.
    await say(`${CANARY}`);
    expect(fake.requests.length).toBe(before);
    const state = await app.router.state.get('local');
    expect(JSON.stringify(state)).not.toContain(PASTED.slice(3));
  });

  it('refuses every credential kind the product knows, bare and in a whole oauth_creds.json, in two languages', async () => {
    const before = fake.requests.length;
    const creds = JSON.stringify({ access_token: NEW_KINDS.googleAccess, refresh_token: NEW_KINDS.googleRefresh, token_type: 'Bearer', expiry_date: 1796000000000 });
    const messages = [
      `AWS_BEARER_TOKEN_BEDROCK=${NEW_KINDS.bedrock}`,
      `我的令牌是：「${NEW_KINDS.googleAccess}」`,
      NEW_KINDS.claudeCode,
      creds,
    ];
    for (const m of messages) {
      const n = (out.match(/looks like it contains an API key|看起来包含/g) ?? []).length;
      await say(m);
      expect((out.match(/looks like it contains an API key|看起来包含/g) ?? []).length, m.slice(0, 20)).toBe(n + 1);
    }
    expect(fake.requests.length).toBe(before);
  });

  it('"which one?" lists what to type: the shell has no buttons (it asked with nothing to pick)', async () => {
    await say('/byok add qwen qwen-plus Plus');
    await say('/byok add qwen qwen-flash Flash');
    const res = await app.registry.list_models('local');
    const qwen = res.ok ? res.models.filter((m) => m.vendor === 'qwen') : [];
    expect(qwen).toHaveLength(2);
    const from = out.length;
    await say('use qwen');
    const reply = out.slice(from);
    expect(reply).toMatch(/several .* models: which one\?/);
    for (const m of qwen) expect(reply).toContain(`/model custom/${m.id}`);
  });

  it('leaves no plaintext key in the data dir or the logs', async () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(dataDir);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const text = fs.readFileSync(f, 'latin1');
      for (const k of [CANARY, PASTED, ...Object.values(NEW_KINDS)]) {
        expect(text, f).not.toContain(k.slice(3));
        expect(text, f).not.toContain(Buffer.from(k).toString('base64').slice(0, 24));
      }
    }
    const logText = logs.text();
    expect(logText.length).toBeGreaterThan(0);
    for (const k of [CANARY, PASTED, ...Object.values(NEW_KINDS)]) expect(logText).not.toContain(k.slice(6));
    for (const k of Object.values(NEW_KINDS)) expect(out).not.toContain(k.slice(6));
    // Shell output shows only the masked form.
    expect(out).not.toContain(CANARY.slice(3, -4));
  });
});
