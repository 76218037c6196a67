import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { MAX_INBOUND_CHARS } from '../../src/chat/router.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const EXAMPLES = path.join(import.meta.dirname, '..', 'fixtures', 'examples');

describe('chat commands (channel-agnostic router)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let fake: FakeVendor;
  let platformFile: string;
  let user = 100;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string, opts?: { group?: string; lang?: 'en' | 'zh' }) => chan.say(text, uid, opts);

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: 'platform answer' });
    platformFile = path.join(fs.mkdtempSync('/tmp/byok-platform-'), 'platform.yaml');
    fs.writeFileSync(
      platformFile,
      `default: house-model\nmodels:\n  - id: house-model\n    name: House model\n    base_url: ${fake.baseUrl}\n    upstream_model: house-upstream\n    api_key_env: BYOK_TEST_OPERATOR_KEY\n`,
    );
    process.env.BYOK_TEST_OPERATOR_KEY = 'operator-' + randomBytes(8).toString('hex');
    ({ app, cleanup } = await testApp({ BYOK_PLATFORM_MODELS: platformFile }));
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
    delete process.env.BYOK_TEST_OPERATOR_KEY;
  });
  beforeEach(() => {
    uid = String(++user); // a fresh user (workspace) per test
  });

  async function lastModelId(): Promise<string> {
    const res = await app.registry.list_models(ws());
    if (!res.ok || !res.models.length) throw new Error('no model registered');
    return res.models.at(-1)!.id;
  }

  it('/help and /start list the commands', async () => {
    await say('/help');
    expect(chan.last()).toMatch(/\/byok add/);
    expect(chan.last()).toMatch(/Never paste an API key/);
    await say('/start');
    expect(chan.last()).toMatch(/\/model/);
  });

  it('/byok templates lists every curated vendor', async () => {
    await say('/byok templates');
    for (const id of ['anthropic', 'qwen', 'near-ai', 'bedrock', 'openai-compatible']) expect(chan.last()).toContain(id);
  });

  it('/byok add with a Chinese alias registers the vendor and sends the secure form', async () => {
    const forms = chan.forms.length;
    await say('/byok add 通义千问');
    const id = await lastModelId();
    expect(id).toMatch(/^[a-z0-9-]+-[0-9a-f]{4}$/);
    expect(chan.texts()).toContain(`custom/${id}`);
    expect(chan.forms.length).toBe(forms + 1);
    expect(chan.forms.at(-1)!.env_vars).toEqual(['DASHSCOPE_API_KEY']);
    expect(chan.forms.at(-1)!.url).toMatch(/\/s\/[A-Za-z0-9_-]{43}$/);
  });

  it('understands "add my Claude key"', async () => {
    await say('add my Claude key');
    const res = await app.registry.list_models(ws());
    expect(res.ok && res.models[0].vendor).toBe('anthropic');
    expect(chan.forms.at(-1)!.env_vars).toEqual(['ANTHROPIC_API_KEY']);
  });

  it('an unknown vendor gets the closest matches', async () => {
    await say('/byok add anthropc');
    expect(chan.last()).toMatch(/do not know the vendor "anthropc"/);
    expect(chan.last()).toMatch(/anthropic/);
  });

  it('a second model of the same vendor reuses the stored key: no new form', async () => {
    await say('/byok add deepseek');
    const forms = chan.forms.length;
    await app.vault.put(ws(), 'DEEPSEEK_API_KEY', new TextEncoder().encode('sk-' + randomBytes(16).toString('hex')));
    await say('/byok add deepseek deepseek-v4-pro Pro');
    expect(chan.forms.length).toBe(forms);
    expect(chan.last()).toMatch(/already stored/);
  });

  it('/model lists platform and custom models, switches by number and by selector', async () => {
    await say('/byok add kimi');
    const id = await lastModelId();
    await say('/model');
    const list = chan.last();
    expect(list).toMatch(/1\. House model/);
    expect(list).toMatch(new RegExp(`2\\. .*custom/${id}`));
    await say('/model 1');
    expect(chan.last()).toMatch(/now uses House model/);
    await say(`/model custom/${id}`);
    expect(chan.texts()).toMatch(/now uses/);
    await say('/model 99');
    expect(chan.last()).toMatch(/no model number 99/);
  });

  it('an unknown model gets suggestions', async () => {
    await say('/byok add kimi');
    const id = await lastModelId();
    await say(`/model custom/${id.slice(0, -1)}x`);
    expect(chan.last()).toMatch(/Unknown model/);
    expect(chan.last()).toContain(`custom/${id}`);
  });

  it('platform model: the relay uses the operator key, never the user', async () => {
    const before = fake.requests.length;
    await say('/model house-model');
    await say('hi there');
    expect(chan.last()).toBe('platform answer');
    const req = fake.requests.slice(before).find((r) => r.path.endsWith('/chat/completions'))!;
    expect(req.key).toBe(process.env.BYOK_TEST_OPERATOR_KEY);
    expect(req.body.model).toBe('house-upstream');
  });

  it('/byok example → draft → /byok confirm registers the endpoint and asks for its key', async () => {
    await say('/byok example');
    expect(chan.last()).toMatch(/API example/);
    await say(fs.readFileSync(path.join(EXAMPLES, 'deepseek-curl.txt'), 'utf8'));
    expect(chan.last()).toMatch(/base_url: https:\/\/api\.deepseek\.com/);
    expect(chan.last()).toMatch(/model: deepseek-v4-pro/);
    const forms = chan.forms.length;
    await say('/byok confirm DS Pro');
    const res = await app.registry.list_models(ws());
    expect(res.ok && res.models[0].upstream_model).toBe('deepseek-v4-pro');
    expect(res.ok && res.models[0].name).toBe('DS Pro');
    expect(chan.forms.length).toBe(forms + 1);
    await say('/byok confirm');
    expect(chan.last()).toMatch(/no example draft/);
  });

  it('an example carrying a real key is refused like any pasted key and nothing is registered', async () => {
    await say('/byok example');
    const key = 'sk-' + randomBytes(24).toString('hex');
    await say(`curl https://api.example-llm.com/v1/chat/completions -H "Authorization: Bearer ${key}" -d '{"model":"x-1","messages":[]}'`);
    expect(chan.last()).toMatch(/rotate/);
    expect(chan.texts()).not.toContain(key);
    await say('/byok confirm');
    expect(chan.last()).toMatch(/no example draft/);
    const res = await app.registry.list_models(ws());
    expect(res.ok && res.models.length).toBe(0);
  });

  it('/byok edit validates fields; /byok remove deactivates', async () => {
    await say('/byok add qwen');
    const id = await lastModelId();
    await say(`/byok edit ${id} max_tokens 0`);
    expect(chan.last()).toMatch(/max_tokens/);
    await say(`/byok edit ${id} name My Qwen`);
    expect(chan.last()).toMatch(/updated/);
    await say(`/byok edit ${id} vendor openai`);
    expect(chan.last()).not.toMatch(/updated/);
    await say(`/byok remove ${id}`);
    expect(chan.last()).toMatch(/deactivated/);
    await say(`/model custom/${id}`);
    expect(chan.last()).toMatch(/removed/);
  });

  it('BYOK management in a group points to the private chat and never issues a form', async () => {
    const forms = chan.forms.length;
    await say('/byok add qwen', { group: '-100777' });
    expect(chan.last()).toMatch(/private chat/);
    expect(chan.forms.length).toBe(forms);
    const res = await app.registry.list_models(ws());
    expect(res.ok && res.models.length).toBe(0);
  });

  it('a huge message is refused with its size', async () => {
    await say('x'.repeat(MAX_INBOUND_CHARS + 1));
    expect(chan.last()).toMatch(/too long/);
  });

  it('/lang zh switches replies to Chinese; /reset forgets history', async () => {
    await say('/lang zh');
    expect(chan.last()).toMatch(/中文/);
    await say('/help');
    expect(chan.last()).toMatch(/命令/);
    await say('/model house-model');
    await say('hello');
    expect((await app.router.state.get(ws())).history.length).toBe(2);
    await say('/reset');
    expect((await app.router.state.get(ws())).history.length).toBe(0);
  });

  it('a model whose key is missing gets the secure form, not an error', async () => {
    await say('/byok add mimo');
    const id = await lastModelId();
    await say('/byok cancel');
    await say(`/byok key ${id}`); // explicit: a fresh form, the old link is voided
    const forms = chan.forms.length;
    expect(chan.forms.at(-1)!.model_id).toBe(id);
    await say(`/model custom/${id}`);
    await say('hello?');
    expect(chan.texts()).toMatch(/has no key yet|already waiting/);
    expect(chan.forms.length).toBe(forms); // pending one is not re-issued automatically
  });

  it('a deep link may continue harmless actions only, never remove or edit', async () => {
    await say('/byok add qwen');
    const id = await lastModelId();
    await say(`/start byok_remove_${id}`);
    const got = await app.registry.get(ws(), id);
    expect(got.ok && got.model.status).not.toBe('removed');
    expect(chan.last()).toMatch(/BYOK commands/);
    await say(`/start byok_key_${id}`);
    expect(chan.forms.at(-1)!.model_id).toBe(id);
  });
});
