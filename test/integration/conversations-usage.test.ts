/**
 * Usage per request and a vendor's models in chat (issue 12, missing pieces):
 *  - every answered request is logged (time, model, provider, tokens, cost), bounded, in the
 *    Store; `/byok usage today|7d|30d|all` and `by provider` read it in the user's time zone,
 *    in English and Chinese; `byok usage --since 7d --by provider` reads the same log;
 *  - `/byok models <vendor> [page]` lists live (the vendor's /models on the stored key) or
 *    curated models, 20 a page, with the next page as a command and a button.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OutgoingMessage, SentRef } from '../../channels/types.ts';
import type { App } from '../../src/app.ts';
import { UsageLedger, USAGE_LOG_MAX, type UsageDoc } from '../../src/chat/usage.ts';
import { main } from '../../src/cli.ts';
import type { ChannelRef } from '../../src/queue/types.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const DAY = 86_400_000;

/** Records the buttons too (Telegram shows them; the text names the same command). */
class ButtonChannel extends RecordingChannel {
  readonly choices: Array<OutgoingMessage['choices']> = [];
  override async send(chat: ChannelRef, msg: OutgoingMessage): Promise<SentRef> {
    this.choices.push(msg.choices);
    return super.send(chat, msg);
  }
}

describe('per-request usage log and /byok usage', () => {
  let app: App;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: ButtonChannel;
  let user = 9300;
  let uid = '';
  const ws = () => `tg:${uid}`;
  const say = (text: string, lang: 'en' | 'zh' = 'en') => chan.say(text, uid, { lang });
  let qwen = '';
  let custom = '';
  let host = '';

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: 'An answer.', usage: { input: 100, output: 50 } });
    host = new URL(fake.baseUrl).host;
    ({ app, dataDir, cleanup } = await testApp());
    chan = new ButtonChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });
  beforeEach(async () => {
    uid = String(++user);
    const a = await app.registry.add_template(ws(), 'qwen', { upstream_model: 'qwen-plus', base_url: fake.baseUrl });
    const b = await app.registry.add(ws(), { upstream_model: 'llama-local', base_url: fake.baseUrl, name: 'Local', api_key_env: 'LOCAL_API_KEY' });
    if (!a.ok || !b.ok) throw new Error('add failed');
    qwen = a.model.id;
    custom = b.model.id;
    for (const env of [a.model.api_key_env, 'LOCAL_API_KEY']) {
      await app.vault.put(ws(), env, new TextEncoder().encode('sk-' + randomBytes(16).toString('hex')), { kind: 'api_key' });
      await app.registry.set_key_status(ws(), env, 'active');
    }
    // Two answers from Qwen, one from the custom endpoint.
    await say(`/model custom/${qwen}`);
    await say('one');
    await say('two');
    await say(`/model custom/${custom}`);
    await say('three');
  });

  /** Puts an earlier request into the log (and the totals), as if answered `daysAgo` days ago. */
  async function backdate(daysAgo: number, model: string, provider: string): Promise<void> {
    await app.store.updateDoc<UsageDoc, void>(ws(), 'usage', (cur) => {
      const doc = cur!;
      doc.log = [{ at: new Date(Date.now() - daysAgo * DAY).toISOString(), model, provider, input: 1000, output: 1000, cost: 0.0016, currency: 'USD' }, ...(doc.log ?? [])];
      const u = doc.models[model]!;
      u.requests += 1;
      u.input_tokens += 1000;
      u.output_tokens += 1000;
      u.cost.USD = Math.round(((u.cost.USD ?? 0) + 0.0016) * 1e6) / 1e6;
      return { value: doc, result: undefined };
    });
  }

  it('logs each answered request: time, model, provider, tokens, cost', async () => {
    const log = (await app.router.usage.get(ws())).log!;
    expect(log.map((e) => [e.model, e.provider, e.input, e.output])).toEqual([
      [`custom/${qwen}`, 'qwen', 100, 50],
      [`custom/${qwen}`, 'qwen', 100, 50],
      [`custom/${custom}`, host, 100, 50],
    ]);
    // qwen-plus is priced 0.4 / 1.2 USD per million tokens; the custom endpoint has no price.
    expect(log[0]).toMatchObject({ cost: 0.0001, currency: 'USD' });
    expect(log[2]!.cost).toBeUndefined();
    expect(Date.now() - Date.parse(log[2]!.at)).toBeLessThan(60_000);
  });

  it('/byok usage (all time, per model) keeps its old lines; today / 7d / 30d read the log', async () => {
    await backdate(10, `custom/${qwen}`, 'qwen');
    await say('/byok usage');
    expect(chan.last()).toContain(`custom/${qwen}: 3 requests, 1200 tokens in, 1100 tokens out, ≈ 0.0018 USD`);
    expect(chan.last()).toContain(`custom/${custom}: 1 request, 100 tokens in, 50 tokens out`);
    expect(chan.last()).toContain('Total: 4 requests, 1300 tokens in, 1150 tokens out, ≈ 0.0018 USD');

    await say('/byok usage 7d');
    expect(chan.last()).toMatch(/^Usage in the last 7 days, per model:/);
    expect(chan.last()).toContain(`custom/${qwen}: 2 requests, 200 tokens in, 100 tokens out, ≈ 0.0002 USD`);
    // The latest requests, newest first, with their time in the user's zone (UTC for English).
    expect(chan.last()).toMatch(new RegExp(`Latest requests:\\n\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC · custom/${custom} \\(${host.replace(/[.]/g, '\\.')}\\) · 100 in, 50 out`));

    await say('/byok usage 30d');
    expect(chan.last()).toContain(`custom/${qwen}: 3 requests, 1200 tokens in, 1100 tokens out, ≈ 0.0018 USD`);

    // One day is "the last day", not "the last 1 days".
    await say('/byok usage 1d');
    expect(chan.last()).toMatch(/^Usage in the last day, per model:/);

    await say('/byok usage today');
    expect(chan.last()).toMatch(/^Usage today \(since \d{4}-\d\d-\d\d 00:00 UTC\), per model:/);
    expect(chan.last()).toContain(`custom/${qwen}: 2 requests`);
  });

  it('/byok usage by provider groups vendors and endpoints, in any period', async () => {
    await backdate(40, `custom/${qwen}`, 'qwen');
    await say('/byok usage by provider');
    expect(chan.last()).toMatch(/^Usage in total, per provider:/);
    expect(chan.last()).toContain('qwen: 3 requests, 1200 tokens in, 1100 tokens out, ≈ 0.0018 USD');
    expect(chan.last()).toContain(`${host}: 1 request, 100 tokens in, 50 tokens out`);
    await say('/byok usage 30d by provider');
    expect(chan.last()).toContain('qwen: 2 requests, 200 tokens in, 100 tokens out, ≈ 0.0002 USD');
  });

  it('in Chinese: the same reports, today in Beijing time', async () => {
    await say('/lang zh', 'zh');
    await say('/byok usage 今天 按厂商', 'zh');
    expect(chan.last()).toMatch(/^今天（自 \d{4}-\d\d-\d\d 00:00 北京时间 起）用量，按厂商：/);
    expect(chan.last()).toContain('qwen：2 次请求，输入 200 tokens，输出 100 tokens, ≈ 0.0002 USD');
    expect(chan.last()).toContain('最近的请求：');
    await say('/byok usage 7d', 'zh');
    expect(chan.last()).toMatch(/^最近 7 天用量，按模型：/);
    await say('/byok usage yesterday', 'zh');
    expect(chan.last()).toMatch(/^用法：\/byok usage \[today\|7d\|30d\|all\]/);
  });

  it('a period with nothing in it says so; an unknown word gets the usage line', async () => {
    await say('/byok usage 7d');
    await app.store.updateDoc<UsageDoc, void>(ws(), 'usage', (cur) => ({ value: { ...cur!, log: [] }, result: undefined }));
    await say('/byok usage today');
    expect(chan.last()).toMatch(/^No requests today \(since .*\)\./);
    await say('/byok usage lastweek');
    expect(chan.last()).toMatch(/^Usage: \/byok usage \[today\|7d\|30d\|all\] \[by provider\]/);
  });

  it('byok usage --since 7d --by provider (the CLI, another process on the same data dir)', async () => {
    await backdate(10, `custom/${qwen}`, 'qwen');
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (c: Buffer) => (text += c.toString('utf8')));
    const io = { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dataDir } };
    expect(await main(['usage', '--since', '7d', '--by', 'provider', '--workspace', ws()], io)).toBe(0);
    const r = JSON.parse(text);
    expect(r.rows).toEqual([
      { provider: 'qwen', requests: 2, input_tokens: 200, output_tokens: 100, cost: { USD: 0.0002 } },
      { provider: host, requests: 1, input_tokens: 100, output_tokens: 50, cost: {} },
    ]);
    expect(r.total).toMatchObject({ requests: 3, input_tokens: 300 });
    text = '';
    expect(await main(['usage', '--workspace', ws()], io)).toBe(0);
    expect(JSON.parse(text).total.requests).toBe(4);
    text = '';
    expect(await main(['usage', '--since', 'soon', '--workspace', ws()], io)).toBe(2);
    expect(JSON.parse(text).code).toBe('usage');
  });

  it('the log is bounded: the last 1,000 requests, none older than 90 days', async () => {
    let now = Date.now() - 100 * DAY;
    const ledger = new UsageLedger(app.store, () => new Date(now));
    const w = `tg:${uid}9`;
    await ledger.record(w, 'custom/x-0000', 1, 1, undefined, { provider: 'qwen' });
    now = Date.now();
    for (let i = 0; i < USAGE_LOG_MAX + 5; i++) await ledger.record(w, 'custom/x-0000', i, 1, undefined, { provider: 'qwen' });
    const doc = await ledger.get(w);
    expect(doc.log).toHaveLength(USAGE_LOG_MAX);
    expect(doc.log![0]!.input).toBe(5);
    expect(doc.models['custom/x-0000']!.requests).toBe(USAGE_LOG_MAX + 6);
  }, 60_000);
});

describe('/byok models <vendor> [page]', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: ButtonChannel;
  const UID = '9401';
  const say = (text: string, lang: 'en' | 'zh' = 'en') => chan.say(text, UID, { lang });
  const IDS = Array.from({ length: 45 }, (_, i) => `model-${String(i + 1).padStart(2, '0')}`);

  beforeAll(async () => {
    fake = await startFakeOpenAI({ models: IDS });
    ({ app, cleanup } = await testApp());
    chan = new ButtonChannel();
    app.addChannel(chan);
    await app.start();
    // The user's own OpenAI-compatible server: its /models is listed with the stored key.
    const add = await app.registry.add_template(`tg:${UID}`, 'openai-compatible', { upstream_model: 'model-01', base_url: fake.baseUrl });
    if (!add.ok) throw new Error(JSON.stringify(add));
    await app.vault.put(`tg:${UID}`, add.model.api_key_env, new TextEncoder().encode('sk-' + randomBytes(16).toString('hex')), { kind: 'api_key' });
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });

  it('live list, 20 a page, the next page as a command and a button', async () => {
    await say('/byok models openai-compatible');
    const page1 = chan.last();
    expect(page1).toMatch(/^Any OpenAI-compatible endpoint models, live from its API \(45\), page 1\/3:/);
    expect(page1).toContain('1. model-01\n');
    expect(page1).toContain('20. model-20\n');
    expect(page1).not.toContain('model-21');
    expect(page1).toContain('Add one: /byok add openai-compatible <model id>');
    expect(page1).toContain('More: /byok models openai-compatible 2');
    expect(chan.choices.at(-1)).toEqual([[{ label: 'Next »', data: '/byok models openai-compatible 2' }]]);
    expect(fake.requests.at(-1)!.path).toBe('/v1/models');

    await say('/byok models openai-compatible 3');
    expect(chan.last()).toMatch(/page 3\/3:\n41\. model-41\n[\s\S]*45\. model-45\n/);
    expect(chan.last()).not.toContain('More:');
    expect(chan.choices.at(-1)).toEqual([[{ label: '« Prev', data: '/byok models openai-compatible 2' }]]);

    await say('/byok models openai-compatible 4');
    expect(chan.last()).toBe('There is no page 4: openai-compatible has 3 pages of models.');
  });

  it('curated list (no key for that vendor yet), by alias, in English and Chinese', async () => {
    await say('/byok models claude');
    expect(chan.last()).toMatch(/^Anthropic Claude models, the curated list \(\d+\), page 1\/1:/);
    expect(chan.last()).toMatch(/per 1M tokens \(in\/out\)/);
    expect(chan.last()).toMatch(/ℹ️ no Anthropic Claude key stored in this workspace yet/);
    // Chat text, not an API call: what to type is /byok add, never add_template("anthropic").
    expect(chan.last()).not.toContain('add_template');
    await say('/lang zh', 'zh');
    await say('/byok models 通义千问', 'zh');
    // The vendor by its Chinese name (name_zh).
    expect(chan.last()).toMatch(/^通义千问（阿里云百炼 \/ DashScope） 的模型，精选列表（共 \d+ 个），第 1\/1 页：/);
    expect(chan.last()).toContain('ℹ️ 这是精选列表');
    expect(chan.last()).toContain('添加：/byok add qwen <模型 id>');
    await say('/lang en');
  });

  it('no vendor, or an unknown one: what to type', async () => {
    await say('/byok models');
    expect(chan.last()).toBe('Usage: /byok models <vendor> [page], e.g. /byok models qwen');
    await say('/byok models deepsek');
    expect(chan.last()).toMatch(/deepseek/);
    expect(chan.last()).toMatch(/Usage: \/byok models <vendor>/);
  });
});
