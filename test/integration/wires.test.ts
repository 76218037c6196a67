import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CustomModel } from '../../src/registry/types.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import type { VendorOutcome, Wire } from '../../src/vendors/types.ts';
import { createWire, getWire } from '../../src/vendors/wires/index.ts';
import { startFakeAnthropic, startFakeBedrock, startFakeOpenAI, type FakeBehaviour, type FakeVendor } from '../support/fake-vendors.ts';
import { collect } from '../support/stream.ts';

const ALLOW: NetOptions = { allowPrivate: true, allowlist: [] };
const STRICT: NetOptions = { allowPrivate: false, allowlist: [] };
const enc = new TextEncoder();
const secrets = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, enc.encode(v)]));

function model(p: Partial<CustomModel>): CustomModel {
  return {
    id: 'm-abcd', name: 'M', vendor: 'custom', wire: 'openai', upstream_model: 'gpt-4o-mini', base_url: 'http://x', api_key_env: 'OPENAI_API_KEY',
    extra_env_vars: [], key_optional: false, headers: {}, query: {}, settings: {}, request_fields: {}, thinking: { style: 'none' }, max_tokens: 256,
    capabilities: { json: true, vision: false, tools: false, reasoning: false }, status: 'active', created_at: '', updated_at: '', ...p,
  };
}


interface Case {
  wire: 'openai' | 'anthropic' | 'bedrock' | 'azure-openai';
  start: () => Promise<FakeVendor>;
  model: (f: FakeVendor) => CustomModel;
  secrets: Secrets;
  badSecrets: Secrets;
  key: string;
}
type Secrets = Record<string, Uint8Array>;

const GOOD = 'sk-good-0123456789abcdefWXYZ';
const cases: Case[] = [
  {
    wire: 'openai',
    start: () => startFakeOpenAI({ keys: [GOOD], models: ['gpt-4o-mini'] }),
    model: (f) => model({ wire: 'openai', base_url: f.baseUrl }),
    secrets: secrets({ OPENAI_API_KEY: GOOD }),
    badSecrets: secrets({ OPENAI_API_KEY: 'sk-bad-000000000000000000000000' }),
    key: GOOD,
  },
  {
    wire: 'azure-openai',
    start: () => startFakeOpenAI({ keys: ['0123456789abcdef0123456789abcdef'], models: ['my-gpt4o'] }),
    model: (f) => model({ wire: 'azure-openai', base_url: f.url, upstream_model: 'my-gpt4o', api_key_env: 'AZURE_OPENAI_API_KEY', query: { 'api-version': '2024-10-21' } }),
    secrets: secrets({ AZURE_OPENAI_API_KEY: '0123456789abcdef0123456789abcdef' }),
    badSecrets: secrets({ AZURE_OPENAI_API_KEY: 'ffffffffffffffffffffffffffffffff' }),
    key: '0123456789abcdef0123456789abcdef',
  },
  {
    wire: 'anthropic',
    start: () => startFakeAnthropic({ keys: ['sk-ant-api03-good'], models: ['claude-sonnet-4-5'] }),
    model: (f) => model({ wire: 'anthropic', base_url: f.baseUrl, upstream_model: 'claude-sonnet-4-5', api_key_env: 'ANTHROPIC_API_KEY' }),
    secrets: secrets({ ANTHROPIC_API_KEY: 'sk-ant-api03-good' }),
    badSecrets: secrets({ ANTHROPIC_API_KEY: 'sk-ant-api03-bad' }),
    key: 'sk-ant-api03-good',
  },
  {
    wire: 'bedrock',
    start: () => startFakeBedrock({ credentials: [{ accessKeyId: 'AKIAFAKEFAKEFAKE1234', secretAccessKey: 'fakeSecret/abc+123' }], models: ['anthropic.claude-3-5-haiku-20241022-v1:0'] }),
    model: (f) => model({ wire: 'bedrock', base_url: f.baseUrl, upstream_model: 'anthropic.claude-3-5-haiku-20241022-v1:0', api_key_env: 'AWS_ACCESS_KEY_ID', extra_env_vars: ['AWS_SECRET_ACCESS_KEY'], settings: { region: 'us-west-2' } }),
    secrets: secrets({ AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKE1234', AWS_SECRET_ACCESS_KEY: 'fakeSecret/abc+123' }),
    badSecrets: secrets({ AWS_ACCESS_KEY_ID: 'AKIAFAKEFAKEFAKE1234', AWS_SECRET_ACCESS_KEY: 'wrong-secret' }),
    key: 'AKIAFAKEFAKEFAKE1234',
  },
];

const behaviours: [FakeBehaviour, VendorOutcome][] = [
  ['invalid_key', 'invalid_key'],
  ['invalid_model', 'invalid_model'],
  ['quota_exceeded', 'quota_exceeded'],
  ['rate_limited', 'rate_limited'],
  ['server_error', 'vendor_unavailable'],
  ['overloaded', 'vendor_unavailable'],
  ['permission', 'invalid_key'],
];

for (const c of cases) {
  describe(`${c.wire} wire`, () => {
    let fake: FakeVendor;
    let wire: Wire;
    let m: CustomModel;
    beforeAll(async () => {
      fake = await c.start();
      wire = createWire(c.wire, ALLOW);
      m = c.model(fake);
    });
    afterAll(() => fake.close());

    it('probe ok', async () => {
      const r = await wire.probe(m, c.secrets);
      expect(r).toMatchObject({ outcome: 'ok' });
      const req = fake.requests.at(-1)!;
      expect(req.method).toBe('POST');
      expect(req.raw).not.toContain(c.key);
    });

    it('probe: a wrong key', async () => {
      const r = await wire.probe(m, c.badSecrets);
      expect(r.outcome).toBe('invalid_key');
      expect(r.message).toBeTruthy();
      expect(r.message).not.toMatch(/sk-bad|\*\*\*|ffffffff/);
    });

    it('probe: an unknown model', async () => {
      const r = await wire.probe({ ...m, upstream_model: 'no-such-model' }, c.secrets);
      expect(r.outcome).toBe('invalid_model');
    });

    for (const [b, outcome] of behaviours) {
      it(`probe: ${b} → ${outcome}`, async () => {
        fake.setBehaviour(b, 1);
        const r = await wire.probe(m, c.secrets);
        // Bedrock's AccessDeniedException names the model: the key works, model access is off.
        expect(r.outcome).toBe(c.wire === 'bedrock' && b === 'permission' ? 'invalid_model' : outcome);
        if (b === 'rate_limited') expect(r.retryAfterMs).toBe(2000);
        expect(r.status).toBeGreaterThanOrEqual(400);
      });
    }

    it('rate_limit_then_ok', async () => {
      fake.setBehaviour('rate_limit_then_ok', 2);
      expect((await wire.probe(m, c.secrets)).outcome).toBe('rate_limited');
      expect((await wire.probe(m, c.secrets)).outcome).toBe('rate_limited');
      expect((await wire.probe(m, c.secrets)).outcome).toBe('ok');
    });

    it('probe: hang → unreachable after the abort signal', async () => {
      fake.setBehaviour('hang', 1);
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 200);
      const r = await wire.probe(m, c.secrets, { signal: ctl.signal });
      expect(r.outcome).toBe('unreachable');
    });

    it('streams text and usage', async () => {
      fake.setReply('The quick brown fox jumps.');
      const out = await collect(wire.stream(m, c.secrets, [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }]));
      expect(out.text).toBe('The quick brown fox jumps.');
      expect(out.usage).toEqual({ type: 'usage', input_tokens: 12, output_tokens: 5 });
      expect(out.done?.type).toBe('done');
    });

    it('stream errors are VendorErrors with the same classes', async () => {
      fake.setBehaviour('rate_limited', 1);
      const err = await collect(wire.stream(m, c.secrets, [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VendorError);
      expect((err as VendorError).outcome).toBe('rate_limited');
      expect((err as VendorError).retryAfterMs).toBe(2000);
      fake.setBehaviour('error_mid_stream', 1);
      const got: string[] = [];
      const err2 = await (async () => {
        for await (const e of wire.stream(m, c.secrets, [{ role: 'user', content: 'hi' }])) if (e.type === 'text') got.push(e.text);
      })().catch((e: unknown) => e);
      expect(got.length).toBe(2);
      expect(err2).toBeInstanceOf(VendorError);
      expect(['vendor_unavailable', 'rate_limited']).toContain((err2 as VendorError).outcome);
    });

    it('abort mid-stream', async () => {
      fake.setReply('one two three four five six seven eight nine ten');
      fake.setChunkDelay(30);
      const ctl = new AbortController();
      const got: string[] = [];
      const err = await (async () => {
        for await (const e of wire.stream(m, c.secrets, [{ role: 'user', content: 'hi' }], { signal: ctl.signal })) {
          if (e.type === 'text') {
            got.push(e.text);
            if (got.length === 2) ctl.abort();
          }
        }
      })().catch((e: unknown) => e);
      fake.setChunkDelay(0);
      expect(got.length).toBeGreaterThanOrEqual(2);
      expect(got.length).toBeLessThan(10);
      expect((err as Error).name).toBe('AbortError');
    });

    it('extra request fields and headers reach the vendor; owned fields are not overridden', async () => {
      const mm = { ...m, headers: { 'x-title': 'byok', authorization: 'Bearer evil' }, request_fields: { temperature: 0.3, top_k: 20, model: 'evil' } };
      await collect(wire.stream(mm, c.secrets, [{ role: 'user', content: 'hi' }]));
      const r = fake.requests.at(-1)!;
      expect(r.headers['x-title']).toBe('byok');
      expect(r.headers.authorization ?? '').not.toContain('evil');
      if (c.wire === 'bedrock') {
        expect(r.body.inferenceConfig.temperature).toBe(0.3);
        expect(r.body.additionalModelRequestFields.top_k).toBe(20);
      } else {
        expect(r.body.temperature).toBe(0.3);
        expect(r.body.top_k).toBe(20);
        if (c.wire !== 'azure-openai') expect(r.body.model).toBe(m.upstream_model);
      }
    });

    it('refuses 127.0.0.1 when private addresses are not allowed', async () => {
      const strictWire = createWire(c.wire, STRICT);
      const before = fake.requests.length;
      const r = await strictWire.probe(m, c.secrets);
      expect(r.outcome).toBe('rejected');
      expect(r.message).toMatch(/loopback|public/);
      const err = await collect(strictWire.stream(m, c.secrets, [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VendorError);
      expect((err as VendorError).whatToDo).toBe('check_base_url');
      expect(fake.requests.length).toBe(before);
      // allowlisted host:port passes
      const listed = createWire(c.wire, { allowPrivate: false, allowlist: [`127.0.0.1:${fake.port}`] });
      expect((await listed.probe(m, c.secrets)).outcome).toBe('ok');
    });
  });
}

describe('wire specifics', () => {
  let oa: FakeVendor;
  let an: FakeVendor;
  let br: FakeVendor;
  beforeAll(async () => {
    oa = await startFakeOpenAI({});
    an = await startFakeAnthropic({});
    br = await startFakeBedrock({ keys: ['ABSKQmVkcm9ja0FQSUtleS1mYWtlZmFrZWZha2U='] });
  });
  afterAll(async () => {
    await oa.close();
    await an.close();
    await br.close();
  });

  it('getWire returns the shared wires', () => {
    expect(getWire('openai').id).toBe('openai');
    expect(getWire('bedrock').id).toBe('bedrock');
    expect(() => getWire('nope')).toThrow(/unknown wire/);
  });

  it('openai: stream options, JSON mode, qwen enable_thinking, NEAR chat_template_kwargs, reasoning_content', async () => {
    const w = createWire('openai', ALLOW);
    oa.setReply('ok', 'let me think');
    const m = model({ base_url: oa.baseUrl, thinking: { style: 'enable_thinking' } });
    const out = await collect(w.stream(m, secrets({ OPENAI_API_KEY: 'k' }), [{ role: 'user', content: 'json please' }], { json: true, thinking: true }));
    const r = oa.requests.at(-1)!;
    expect(r.body).toMatchObject({ stream: true, stream_options: { include_usage: true }, response_format: { type: 'json_object' }, enable_thinking: true, max_tokens: 256 });
    expect(r.headers.authorization).toBe('Bearer k');
    expect(out.text).toBe('{"status":"ok"}');
    expect(out.reasoning).toBe('let me think');
    const near = model({ base_url: oa.baseUrl, thinking: { style: 'nearai_chat_template', param: 'enable_thinking' }, request_fields: { extra_body: { chat_template_kwargs: { foo: 1 } } } });
    await collect(w.stream(near, secrets({ OPENAI_API_KEY: 'k' }), [{ role: 'user', content: 'hi' }], { thinking: false }));
    expect(oa.requests.at(-1)!.body.chat_template_kwargs).toEqual({ foo: 1, enable_thinking: false });
    expect(oa.requests.at(-1)!.body).not.toHaveProperty('extra_body');
    // JSON mode is not sent when the model does not declare it
    const noJson = { ...m, capabilities: { ...m.capabilities, json: false } };
    await collect(w.stream(noJson, secrets({ OPENAI_API_KEY: 'k' }), [{ role: 'user', content: 'hi' }], { json: true }));
    expect(oa.requests.at(-1)!.body).not.toHaveProperty('response_format');
    // probe turns enable_thinking off (DashScope refuses it on non-streaming calls)
    await w.probe({ ...m, thinking: { style: 'enable_thinking', default_on: true } }, secrets({ OPENAI_API_KEY: 'k' }));
    expect(oa.requests.at(-1)!.body).toMatchObject({ enable_thinking: false, max_tokens: 16, stream: false });
    oa.setReply('Hello from the fake vendor.');
  });

  it('openai: key_optional sends no Authorization; missing key is invalid_key', async () => {
    const w = createWire('openai', ALLOW);
    expect((await w.probe(model({ base_url: oa.baseUrl, key_optional: true }), {})).outcome).toBe('ok');
    expect(oa.requests.at(-1)!.headers.authorization).toBeUndefined();
    expect((await w.probe(model({ base_url: oa.baseUrl }), {})).outcome).toBe('invalid_key');
  });

  it('openai: max_completion_tokens only for api.openai.com', async () => {
    const { buildChatBody, openaiShape } = await import('../../src/vendors/wires/openai.ts');
    expect(buildChatBody(openaiShape, model({ base_url: 'https://api.openai.com/v1' }), [], { stream: true, maxTokens: 10 })).toHaveProperty('max_completion_tokens', 10);
    expect(buildChatBody(openaiShape, model({ base_url: 'https://api.deepseek.com' }), [], { stream: true, maxTokens: 10 })).toHaveProperty('max_tokens', 10);
  });

  it('azure: deployment URL with api-version and api-key header; v1 shape', async () => {
    const w = createWire('azure-openai', ALLOW);
    const m = model({ wire: 'azure-openai', base_url: oa.url, upstream_model: 'dep1', api_key_env: 'AZURE_OPENAI_API_KEY', query: { 'api-version': '2024-10-21' } });
    await collect(w.stream(m, secrets({ AZURE_OPENAI_API_KEY: 'azkey' }), [{ role: 'user', content: 'hi' }]));
    const r = oa.requests.at(-1)!;
    expect(r.path).toBe('/openai/deployments/dep1/chat/completions?api-version=2024-10-21');
    expect(r.headers['api-key']).toBe('azkey');
    expect(r.headers.authorization).toBeUndefined();
    const v1 = { ...m, base_url: `${oa.url}/openai/v1` };
    await collect(w.stream(v1, secrets({ AZURE_OPENAI_API_KEY: 'azkey' }), [{ role: 'user', content: 'hi' }]));
    const r2 = oa.requests.at(-1)!;
    expect(r2.path).toBe('/openai/v1/chat/completions');
    expect(r2.body.model).toBe('dep1');
  });

  it('anthropic: headers, system, thinking budget and thinking_delta, /v1 base', async () => {
    const w = createWire('anthropic', ALLOW);
    an.setReply('Answer.', 'Hmm, thinking');
    const m = model({ wire: 'anthropic', base_url: `${an.url}/v1`, upstream_model: 'claude-sonnet-4-5', api_key_env: 'ANTHROPIC_API_KEY', max_tokens: 2048, thinking: { style: 'anthropic_budget', budget_tokens: 4096 }, headers: { 'anthropic-beta': 'x' } });
    const out = await collect(w.stream(m, secrets({ ANTHROPIC_API_KEY: 'sk-ant-x' }), [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }], { thinking: true, json: true }));
    const r = an.requests.at(-1)!;
    expect(r.path).toBe('/v1/messages');
    expect(r.headers['x-api-key']).toBe('sk-ant-x');
    expect(r.headers['anthropic-version']).toBe('2023-06-01');
    expect(r.headers['anthropic-beta']).toBe('x');
    expect(r.body.thinking).toEqual({ type: 'enabled', budget_tokens: 4096 });
    expect(r.body.max_tokens).toBeGreaterThan(4096);
    expect(r.body.system).toContain('sys');
    expect(r.body.system).toContain('JSON');
    expect(r.body.messages).toEqual([{ role: 'user', content: 'hi' }]);
    expect(out.reasoning).toBe('Hmm, thinking');
    expect(out.text).toBe('Answer.');
    expect(out.done).toEqual({ type: 'done', finish_reason: 'end_turn' });
    // probe is a 1-token message without thinking
    await w.probe(m, secrets({ ANTHROPIC_API_KEY: 'sk-ant-x' }));
    expect(an.requests.at(-1)!.body).toMatchObject({ max_tokens: 1 });
    expect(an.requests.at(-1)!.body).not.toHaveProperty('thinking');
    an.setReply('Hello from the fake vendor.');
  });

  it('bedrock: bearer API key, event-stream reasoning, converse body', async () => {
    const w = createWire('bedrock', ALLOW);
    br.setReply('Bonjour.', 'thinking...');
    const m = model({ wire: 'bedrock', base_url: br.url, upstream_model: 'anthropic.claude-sonnet-4-20250514-v1:0', api_key_env: 'AWS_BEARER_TOKEN_BEDROCK', settings: { region: 'eu-west-1' }, thinking: { style: 'anthropic_budget', budget_tokens: 2048 }, max_tokens: 1024 });
    const s = secrets({ AWS_BEARER_TOKEN_BEDROCK: 'ABSKQmVkcm9ja0FQSUtleS1mYWtlZmFrZWZha2U=' });
    const out = await collect(w.stream(m, s, [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }], { thinking: true }));
    const r = br.requests.at(-1)!;
    expect(r.path).toBe('/model/anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream');
    expect(r.headers.authorization).toBe('Bearer ABSKQmVkcm9ja0FQSUtleS1mYWtlZmFrZWZha2U=');
    expect(r.body.system).toEqual([{ text: 'sys' }]);
    expect(r.body.messages).toEqual([{ role: 'user', content: [{ text: 'hi' }] }]);
    expect(r.body.additionalModelRequestFields.thinking).toEqual({ type: 'enabled', budget_tokens: 2048 });
    expect(r.body.inferenceConfig.maxTokens).toBeGreaterThan(2048);
    expect(out).toMatchObject({ text: 'Bonjour.', reasoning: 'thinking...', usage: { type: 'usage', input_tokens: 12, output_tokens: 1 }, done: { type: 'done', finish_reason: 'end_turn' } });
    expect((await w.probe(m, secrets({ AWS_BEARER_TOKEN_BEDROCK: 'ABSKbadbadbadbadbadbadbad' }))).outcome).toBe('invalid_key');
    br.setReply('Hello from the fake vendor.');
  });

  it('bedrock: SigV4 with session token is verified by the smithy signer; an unknown key id is invalid_key', async () => {
    const fake = await startFakeBedrock({ credentials: [{ accessKeyId: 'ASIAFAKE000000000001', secretAccessKey: 's3cr3t' }] });
    const w = createWire('bedrock', ALLOW);
    const m = model({ wire: 'bedrock', base_url: fake.url, upstream_model: 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0', api_key_env: 'AWS_ACCESS_KEY_ID', settings: { region: 'us-east-1' } });
    const ok = await w.probe(m, secrets({ AWS_ACCESS_KEY_ID: 'ASIAFAKE000000000001', AWS_SECRET_ACCESS_KEY: 's3cr3t', AWS_SESSION_TOKEN: 'tok' }));
    expect(ok.outcome).toBe('ok');
    expect(fake.requests.at(-1)!.headers['x-amz-security-token']).toBe('tok');
    const bad = await w.probe(m, secrets({ AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN000000000', AWS_SECRET_ACCESS_KEY: 's3cr3t' }));
    expect(bad.outcome).toBe('invalid_key');
    expect(bad.message).not.toContain('AKIAUNKNOWN');
    const missing = await w.probe(m, secrets({ AWS_ACCESS_KEY_ID: 'ASIAFAKE000000000001' }));
    expect(missing.outcome).toBe('invalid_key');
    await fake.close();
  });
});
