import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExample } from '../../src/registry/parse-example/index.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import type { StreamEvent } from '../../src/vendors/types.ts';
import { createAnthropicWire } from '../../src/vendors/wires/anthropic.ts';
import { startFakeAnthropic, type FakeVendor } from '../support/fake-vendors.ts';

/** parse-example → model → the anthropic wire's request: what the example asked for reaches the vendor. */

const ALLOW: NetOptions = { allowPrivate: true, allowlist: [] };
const KEY = 'sk-ant-api03-adaptive-test-key';
const secrets = { ANTHROPIC_API_KEY: new TextEncoder().encode(KEY) };

function example(base: string, body: object): string {
  return `curl ${base}/v1/messages \\
  -H "x-api-key: $ANTHROPIC_API_KEY" \\
  -H "anthropic-version: 2023-06-01" \\
  -H "content-type: application/json" \\
  -d '${JSON.stringify(body)}'`;
}

/** The draft as add would register it (the registry copies these fields). */
function modelFrom(text: string): CustomModel {
  const r = parseExample(text);
  if (!r.ok) throw new Error(r.error);
  const d = r.draft;
  return {
    id: 'm-abcd', name: 'M', vendor: 'custom', wire: d.wire, upstream_model: d.upstream_model, base_url: d.base_url, api_key_env: 'ANTHROPIC_API_KEY',
    extra_env_vars: [], key_optional: false, headers: d.headers, query: d.query ?? {}, settings: {}, request_fields: d.request_fields,
    thinking: d.thinking ?? { style: 'none' }, max_tokens: d.max_tokens ?? 4096,
    capabilities: { json: true, vision: false, tools: false, reasoning: true }, status: 'active', created_at: '', updated_at: '',
  };
}

async function drain(it: AsyncIterable<StreamEvent>): Promise<string> {
  let text = '';
  for await (const e of it) if (e.type === 'text') text += e.text;
  return text;
}

describe('anthropic thinking from an example, on the wire', () => {
  let fake: FakeVendor;
  const wire = createAnthropicWire(ALLOW);
  beforeAll(async () => {
    fake = await startFakeAnthropic({ keys: [KEY], reply: 'thought it through' });
  });
  afterAll(async () => {
    await fake.close();
  });

  it('adaptive stays adaptive: thinking {type: adaptive} + the effort, no budget_tokens', async () => {
    fake.reset();
    const m = modelFrom(example(fake.url, { model: 'claude-opus-4-7', max_tokens: 8000, thinking: { type: 'adaptive' }, output_config: { effort: 'high' }, messages: [] }));
    expect(await drain(wire.stream(m, secrets, [{ role: 'user', content: 'hi' }]))).toBe('thought it through');
    const body = fake.requests.at(-1)!.body;
    expect(body.thinking).toEqual({ type: 'adaptive' });
    expect(body.output_config).toEqual({ effort: 'high' });
    expect(body.max_tokens).toBe(8000);
  });

  it('an effort beyond the rule scale (max) is sent as the example gave it', async () => {
    fake.reset();
    const m = modelFrom(example(fake.url, { model: 'claude-opus-4-7', max_tokens: 8000, thinking: { type: 'adaptive' }, output_config: { effort: 'max' }, messages: [] }));
    await drain(wire.stream(m, secrets, [{ role: 'user', content: 'hi' }]));
    const body = fake.requests.at(-1)!.body;
    expect(body.thinking).toEqual({ type: 'adaptive' });
    expect(body.output_config).toEqual({ effort: 'max' });
  });

  it('enabled without a budget gets a valid one (≥ 1024, below max_tokens)', async () => {
    fake.reset();
    const m = modelFrom(example(fake.url, { model: 'claude-sonnet-4-5', max_tokens: 4096, thinking: { type: 'enabled' }, messages: [] }));
    await drain(wire.stream(m, secrets, [{ role: 'user', content: 'hi' }]));
    const body = fake.requests.at(-1)!.body;
    expect(body.thinking.type).toBe('enabled');
    expect(body.thinking.budget_tokens).toBeGreaterThanOrEqual(1024);
    expect(body.max_tokens).toBeGreaterThan(body.thinking.budget_tokens);
  });

  it('thinking turned off for an adaptive model: no thinking field at all (adaptive-only models refuse disabled)', async () => {
    fake.reset();
    const m = modelFrom(example(fake.url, { model: 'claude-opus-4-7', max_tokens: 8000, thinking: { type: 'adaptive' }, messages: [] }));
    await drain(wire.stream(m, secrets, [{ role: 'user', content: 'hi' }], { thinking: false }));
    expect(fake.requests.at(-1)!.body.thinking).toBeUndefined();
  });
});
