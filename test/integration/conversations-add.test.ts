/**
 * Scripted conversations for issue 12's dead ends 1, 2, 5 and 6 (the add flow), through the
 * whole app and the recording channel, against local fake vendors, in English and Chinese.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { main } from '../../src/cli.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import { offeredTemplates } from '../../src/vendors/templates.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

describe('conversations: /byok add ends in a working model or a clear next step', () => {
  let app: App;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;
  let fake: FakeVendor;
  let user = 5000;
  let uid: string;
  const ws = () => `tg:${uid}`;
  const say = (text: string, lang: 'en' | 'zh' = 'en') => chan.say(text, uid, { lang });
  const key = () => new TextEncoder().encode('sk-' + randomBytes(16).toString('hex'));
  const models = async (): Promise<CustomModel[]> => {
    const r = await app.registry.list_models(ws());
    if (!r.ok) throw new Error(r.error);
    return r.models;
  };
  const since = (n: number) => chan.sent.slice(n).map((s) => s.text).join('\n');

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: 'hello from the fake' });
    ({ app, dataDir, cleanup } = await testApp());
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
    fake.setModels(undefined);
    fake.setBehaviour('ok');
  });

  // ── dead end 1: a base URL change no longer locks the user out ─────────────────────────
  it('edits a Qwen model to the mainland host: it asks for that host\'s own key; a second Qwen model and the other model stay usable', async () => {
    await say('/byok add qwen qwen-plus Plus');
    await say('/byok add qwen qwen-flash Flash');
    await app.vault.put(ws(), 'DASHSCOPE_API_KEY', key());
    const [plus, flash] = await models();
    const forms = chan.forms.length;
    await say(`/byok edit ${plus!.id} base_url https://dashscope.aliyuncs.com/compatible-mode/v1`);
    expect(chan.texts()).toContain('DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM');
    expect(chan.forms.length).toBe(forms + 1);
    expect(chan.forms.at(-1)!.env_vars).toEqual(['DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM']);
    let now = await models();
    expect(now.find((m) => m.id === plus!.id)).toMatchObject({ api_key_env: 'DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM', status: 'pending_key' });
    // The other model keeps the intl key, and can still be edited (it gets the mainland key name too).
    expect(now.find((m) => m.id === flash!.id)!.api_key_env).toBe('DASHSCOPE_API_KEY');
    await say(`/byok edit ${flash!.id} base_url https://dashscope.aliyuncs.com/compatible-mode/v1`);
    expect(chan.last()).not.toMatch(/conflict|remove .* first|another key name/i);
    now = await models();
    expect(now.find((m) => m.id === flash!.id)!.api_key_env).toBe('DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM');
    // A third Qwen model follows the host the others use, with its key.
    await say('/byok add qwen qwen-max Max');
    const max = (await models()).find((m) => m.name === 'Max')!;
    expect(max.base_url).toContain('dashscope.aliyuncs.com');
    expect(max.api_key_env).toBe('DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM');
    // /byok keys names the host of the intl key's group apart (no model uses it now).
    await say('/byok keys');
    expect(chan.last()).toContain('DASHSCOPE_API_KEY');
  });

  it('a removed model without a key binds nothing; with its key stored, the key stays with its host', async () => {
    await say('/byok add azure-openai https://one.openai.azure.com dep-one');
    const one = (await models())[0]!;
    expect(one.api_key_env).toBe('AZURE_OPENAI_API_KEY');
    await say(`/byok remove ${one.id}`);
    await say('/byok add azure-openai https://two.openai.azure.com dep-two');
    const two = (await models()).find((m) => m.upstream_model === 'dep-two')!;
    expect(two.api_key_env).toBe('AZURE_OPENAI_API_KEY');
    await app.vault.put(ws(), 'AZURE_OPENAI_API_KEY', key());
    await say(`/byok remove ${two.id}`);
    await say('/byok add azure-openai https://three.openai.azure.com dep-three');
    const three = (await models()).find((m) => m.upstream_model === 'dep-three')!;
    expect(three.api_key_env).toBe('AZURE_OPENAI_API_KEY__THREE_OPENAI_AZURE_COM');
    expect(chan.forms.at(-1)!.env_vars).toEqual(['AZURE_OPENAI_API_KEY__THREE_OPENAI_AZURE_COM']);
  });

  // ── dead end 2: every template can be added from chat ──────────────────────────────────
  const answerFor = (q: string): string => {
    if (/endpoint URL|接口地址/.test(q)) return fake.baseUrl;
    if (/api-version/.test(q)) return 'ok';
    if (/deployment|部署/.test(q)) return 'my-deploy';
    return 'my-model';
  };

  for (const lang of ['en', 'zh'] as const) {
    it(`every template is addable from chat, answering the questions one at a time (${lang})`, async () => {
      const ids = offeredTemplates().map((t) => t.id);
      expect(ids.length).toBeGreaterThan(15);
      for (const id of ids) {
        uid = String(++user);
        const forms = chan.forms.length;
        let n = chan.sent.length;
        await say(`/byok add ${id}`, lang);
        for (let turn = 0; turn < 5 && !(await models()).length; turn++) {
          const q = since(n);
          expect(q, `${id}: a question, not a dead end`).not.toMatch(/Usage:|用法：/);
          n = chan.sent.length;
          await say(answerFor(q), lang);
        }
        const got = await models();
        expect(got, `${id} registered`).toHaveLength(1);
        expect(got[0]!.vendor).toBe(id);
        // Either the secure form for its key, or (no key needed) a check that says it is ready.
        if (got[0]!.key_optional) expect(chan.last()).toMatch(lang === 'zh' ? /可以使用/ : /ready/);
        else expect(chan.forms.length, id).toBe(forms + 1);
        expect((await app.router.state.get(ws())).pending).toBeUndefined();
      }
    });
  }

  it('Azure in one line, and the old circle (/byok add azure-openai <model> <name>) asks for the URL instead', async () => {
    await say('/byok add azure-openai https://x.openai.azure.com my-deploy Work api-version=2024-10-21');
    const [m] = await models();
    expect(m).toMatchObject({ vendor: 'azure-openai', upstream_model: 'my-deploy', name: 'Work', base_url: 'https://x.openai.azure.com' });
    expect(m!.query['api-version']).toBe('2024-10-21');
    uid = String(++user);
    await say('/byok add azure-openai gpt-5-mini Work');
    expect(chan.last()).toMatch(/needs your endpoint URL/);
    expect(chan.last()).toContain('/byok add azure-openai https://<resource-name>.openai.azure.com <deployment> [name]');
    await say('x.openai.azure.com');
    expect(chan.last()).toMatch(/api-version/);
    await say('ok');
    const [a] = await models();
    expect(a).toMatchObject({ upstream_model: 'gpt-5-mini', name: 'Work', base_url: 'https://x.openai.azure.com' });
    expect(a!.query['api-version']).toBe('2025-04-01-preview');
  });

  it('the endpoint pasted again as the deployment is asked again, not registered as a model named after a URL', async () => {
    await say('/byok add azure-openai');
    await say('https://x.openai.azure.com');
    expect(chan.last()).toMatch(/deployment/);
    await say('https://x.openai.azure.com');
    expect(chan.last()).toContain(t('en', 'add.url_not_name'));
    expect(chan.last()).toMatch(/deployment/);
    await say('my-deploy');
    await say('ok');
    const [m] = await models();
    expect(m).toMatchObject({ upstream_model: 'my-deploy', base_url: 'https://x.openai.azure.com' });
  });

  it('the example draft names the thinking parameter as sent (adaptive stays adaptive), not an internal style code', async () => {
    await say('/byok example');
    await say(
      `curl https://api.anthropic.com/v1/messages -H "x-api-key: $ANTHROPIC_API_KEY" -H "anthropic-version: 2023-06-01" ` +
        `-d '{"model": "claude-sonnet-4-6", "max_tokens": 2048, "thinking": {"type": "adaptive"}, "messages": [{"role": "user", "content": "Hello"}]}'`,
    );
    expect(chan.last()).toMatch(/^thinking: thinking \(adaptive\)$/m);
    expect(chan.last()).not.toContain('anthropic_budget');
    await say('/byok cancel');
  });

  it('an OAuth-file template asks for the CLI\'s credentials file, not an "API key" to "create" at a page (CLI)', async () => {
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d) => (out += d));
    await main(['add-template', 'qwen-code', '--workspace', ws()], { stdin: Readable.from(['']), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dataDir } });
    const reason: string = JSON.parse(out).need_env_input.reason;
    expect(reason).toContain('OAuth credentials file');
    expect(reason).not.toMatch(/API key|Create one at/);
  });

  it('a bad answer is asked again; a chat message leaves the question (zh)', async () => {
    await say('/byok add openai-compatible', 'zh');
    expect(chan.last()).toMatch(/接口地址/);
    await say('不知道', 'zh');
    expect(chan.last()).toMatch(/接口地址/);
    await say('那 算了', 'zh');
    expect(chan.texts()).toMatch(/停止了添加 openai-compatible/);
    expect((await app.router.state.get(ws())).pending).toBeUndefined();
  });

  // ── dead end 5: status is the vendor's answer ──────────────────────────────────────────
  it('a model on a stored key is probed on add: ready, or model_problem with what to do; the relay marks it too (en, zh, CLI)', async () => {
    fake.setModels(['tgi']);
    await say(`/byok add huggingface ${fake.baseUrl} tgi First`);
    await app.vault.put(ws(), 'HF_TOKEN', key());
    await say(`/byok add huggingface ${fake.baseUrl} tgi Second`);
    expect(chan.last()).toMatch(/already stored.*answered a test request.*ready/);
    await say(`/byok add huggingface ${fake.baseUrl} no-such-model Third`);
    expect(chan.last()).toMatch(/does not serve the model "no-such-model"/);
    expect(chan.last()).toMatch(/\/byok edit .* model <name>/);
    const third = (await models()).find((m) => m.name === 'Third')!;
    expect(third.status).toBe('model_problem');
    await say('/byok list');
    expect(chan.last()).toMatch(/Third.*model problem/);
    await say('/byok list', 'zh');
    expect(chan.last()).toMatch(/Third.*模型有问题/);
    // The CLI shows the same status.
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (d) => (out += d));
    await main(['list', '--workspace', ws()], { stdin: Readable.from(['']), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dataDir } });
    expect(JSON.parse(out).models.find((m: CustomModel) => m.name === 'Third').status).toBe('model_problem');
    // Fixing the model name checks it again: ready.
    await say(`/byok edit ${third.id} model tgi`);
    expect(chan.last()).toMatch(/ready/);
    expect((await models()).find((m) => m.name === 'Third')!.status).toBe('active');
    // The relay: the vendor drops the model → model_problem, not "ready".
    const second = (await models()).find((m) => m.name === 'Second')!;
    await say(`/model custom/${second.id}`);
    fake.setModels(['other']);
    await say('hello');
    expect((await models()).find((m) => m.name === 'Second')!.status).toBe('model_problem');
    fake.setModels(undefined);
    await say('hello again');
    expect(chan.last()).toBe('hello from the fake');
    expect((await models()).find((m) => m.name === 'Second')!.status).toBe('active');
  });

  it('model_problem in Chinese on add', async () => {
    fake.setModels(['tgi']);
    await say(`/byok add huggingface ${fake.baseUrl} tgi A`, 'zh');
    await app.vault.put(ws(), 'HF_TOKEN', key());
    await say(`/byok add huggingface ${fake.baseUrl} missing B`, 'zh');
    expect(chan.last()).toMatch(/不提供模型“missing”/);
    expect(chan.last()).toMatch(/模型有问题/);
  });

  // ── dead end 6: advice that points somewhere real ──────────────────────────────────────
  it('a model without a key: no "I sent you the form" followed by "already waiting"; custom endpoints are named by host', async () => {
    await say(`/byok add openai-compatible ${fake.baseUrl} llama3`);
    await say('/byok example');
    await say(`curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $MY_KEY" -d '{"model":"m1","messages":[]}'`);
    await say('/byok confirm Mine');
    const form = chan.forms.at(-1)!;
    expect(form.vendor_name).toBe(new URL(fake.baseUrl).host);
    const mine = (await models()).find((m) => m.name === 'Mine')!;
    await say(`/model custom/${mine.id}`);
    const n = chan.sent.length;
    await say('hi');
    const text = since(n);
    expect(text).not.toMatch(/I sent you the secure form/);
    expect(text).toMatch(/no key yet/);
  });

  it('switching between two hosts of one vendor names the hosts ("stay with DeepSeek and are not sent to DeepSeek" said nothing)', async () => {
    const hostA = new URL(fake.baseUrl).host;
    const other = fake.baseUrl.replace('127.0.0.1', 'localhost');
    const a = await app.registry.add_template(ws(), 'deepseek', { base_url: fake.baseUrl, name: 'On A' });
    const b = await app.registry.add_template(ws(), 'deepseek', { base_url: other, name: 'On B' });
    if (!a.ok || !b.ok) throw new Error('add failed');
    for (const m of [a.model, b.model]) {
      await app.vault.put(ws(), m.api_key_env, key());
      await app.registry.set_key_status(ws(), m.api_key_env, 'active');
    }
    await say(`/model custom/${a.model.id}`);
    await say('hello');
    await say(`/model custom/${b.model.id}`);
    expect(chan.last()).toBe(t('en', 'model.fresh_history', { old: hostA, new: new URL(other).host, selector: `custom/${b.model.id}` }));
  });

  it('the same add again ("/byok add deepseek" twice, "register DeepSeek") points to the model you have, not "give this one another name"', async () => {
    await say('/byok add deepseek');
    const [first] = await models();
    for (const again of ['/byok add deepseek', 'register DeepSeek']) {
      const n = chan.sent.length;
      await say(again);
      const text = since(n);
      expect(text).not.toMatch(/another name/);
      expect(text).toContain(t('en', 'add.already_have', { name: first!.name, id: first!.id, vendor: 'deepseek' }));
      // It still has no key: the form (already waiting) is the next step.
      expect(text).toContain(`/byok key ${first!.id}`);
    }
    expect(await models()).toHaveLength(1);
    // Once it has a key and works: no form, just the way to it.
    await app.vault.put(ws(), first!.api_key_env, key());
    await app.registry.set_key_status(ws(), first!.api_key_env, 'active');
    const forms = chan.forms.length;
    await say('/byok add deepseek', 'zh');
    expect(chan.last()).toBe(t('zh', 'add.already_have', { name: first!.name, id: first!.id, vendor: 'deepseek' }));
    expect(chan.forms.length).toBe(forms);
  });

  it('a removed model takes its pending form along: the next model with that key name gets a fresh form, not "already waiting" for the removed one', async () => {
    await say('/byok add deepseek deepseek-v4-flash Old');
    const old = (await models()).find((m) => m.name === 'Old')!;
    const oldForm = chan.forms.at(-1)!;
    expect(oldForm.model_id).toBe(old.id);
    await say(`/byok remove ${old.id}`);
    // It had no key: no "its key stays sealed for your other models".
    expect(chan.last()).toBe(t('en', 'byok.removed_no_key', { id: old.id }));
    // The removed model's link is dead (a key entered there would be checked for a model that is gone).
    expect((await fetch(oldForm.url)).status).not.toBe(200);
    const forms = chan.forms.length;
    const n = chan.sent.length;
    await say('/byok add deepseek deepseek-v4-pro New');
    const created = (await models()).find((m) => m.name === 'New')!;
    expect(since(n)).not.toMatch(/already waiting/);
    expect(chan.forms.length).toBe(forms + 1);
    expect(chan.forms.at(-1)!.model_id).toBe(created.id);
    expect((await fetch(chan.forms.at(-1)!.url)).status).toBe(200);
  });

  // ── polish found by walkthroughs ──────────────────────────────────────────────────────
  for (const lang of ['en', 'zh'] as const) {
    it(`the Bedrock form asks for AWS credentials, not an "API key" (${lang})`, async () => {
      await say('/byok add bedrock', lang);
      const form = chan.forms.at(-1)!;
      expect(form.env_vars).toContain('AWS_ACCESS_KEY_ID');
      if (lang === 'en') {
        expect(form.reason).toMatch(/^Amazon Bedrock AWS credentials for /);
        expect(form.reason).not.toMatch(/API key/);
      } else {
        expect(form.reason).toContain('AWS 凭证');
        expect(form.reason).not.toContain('API 密钥');
      }
      // The page's "Why" line is that reason.
      const html = await (await fetch(form.url)).text();
      expect(html).toContain(lang === 'en' ? 'AWS credentials for' : 'AWS 凭证');
    });

    it(`a Qwen model that follows the user's other models to the mainland host gets no "international endpoint" note (${lang})`, async () => {
      const intlNote = lang === 'en' ? 'international (Singapore) endpoint' : '本模板使用国际站';
      await say('/byok add qwen https://dashscope-intl.aliyuncs.com/compatible-mode/v1 qwen-plus Plus', lang);
      expect(chan.texts()).toContain(intlNote);
      const plus = (await models()).find((m) => m.name === 'Plus')!;
      await say(`/byok edit ${plus.id} base_url https://dashscope.aliyuncs.com/compatible-mode/v1`, lang);
      const n = chan.sent.length;
      await say('/byok add qwen qwen-flash Flash', lang);
      const flash = (await models()).find((m) => m.name === 'Flash')!;
      expect(flash.base_url).toContain('://dashscope.aliyuncs.com');
      expect(since(n)).not.toContain(intlNote);
      expect(since(n)).not.toContain('dashscope-intl.aliyuncs.com');
      // The vendor's other notes still come.
      expect(since(n)).toContain('enable_thinking');
    });

    it(`/byok models qwen with the key stored for the mainland host says so, not "no key stored" (${lang})`, async () => {
      await say('/byok add qwen https://dashscope.aliyuncs.com/compatible-mode/v1 qwen-plus Plus', lang);
      const plus = (await models()).find((m) => m.name === 'Plus')!;
      await app.vault.put(ws(), plus.api_key_env, key());
      await app.registry.set_status(ws(), plus.id, 'active');
      await say('/byok models qwen', lang);
      const text = chan.last();
      expect(text).toContain(t(lang, 'models.key_other_host', { vendor: lang === 'zh' ? '通义千问（阿里云百炼 / DashScope）' : 'Qwen (Alibaba Cloud Model Studio / DashScope)', host: 'dashscope.aliyuncs.com', env: plus.api_key_env, list_host: 'dashscope-intl.aliyuncs.com' }));
      expect(text).not.toMatch(/no .*key stored/);
      expect(text).not.toContain(t(lang, 'models.curated_note'));
    });
  }

  it('counts read right: "1 page of models", not "1 pages"', async () => {
    await say('/byok models mimo 2');
    expect(chan.last()).toBe('There is no page 2: mimo has 1 page of models.');
    await say('/byok models mimo 2', 'zh');
    expect(chan.last()).toBe('没有第 2 页：mimo 的模型只有 1 页。');
  });
});
