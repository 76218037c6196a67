/**
 * The three OAuth templates (qwen-code, gemini-cli, claude-code) and the wires they use, called
 * with an access token the way src/credentials hands it over ({[api_key_env]: token bytes} and
 * the model adjusted for the token set), against local fakes speaking the real formats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelForTokenSet } from '../../src/credentials/with-credentials.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import { Template as TemplateSchema } from '../../src/vendors/template-schema.ts';
import { getTemplate, loadTemplates, templateModel, type Template } from '../../src/vendors/templates.ts';
import { classifyGoogle, codeAssistUrl } from '../../src/vendors/wires/gemini-code-assist.ts';
import { createWire, getWire } from '../../src/vendors/wires/index.ts';
import { startFakeCodeAssist, type FakeCodeAssist } from '../support/fake-code-assist.ts';
import { startFakeAnthropic, startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { collect } from '../support/stream.ts';

const ALLOW: NetOptions = { allowPrivate: true, allowlist: [] };
const STRICT: NetOptions = { allowPrivate: false, allowlist: [] };
const enc = new TextEncoder();

/** A registered model as the registry builds it from a template (add_template). */
function fromTemplate(t: Template, p: Partial<CustomModel> = {}): CustomModel {
  const tm = templateModel(t)!;
  return {
    id: `${t.id}-abcd`, name: tm.name, vendor: t.id, wire: t.wire, upstream_model: tm.id, base_url: t.base_url!, api_key_env: t.env_var,
    extra_env_vars: [...t.extra_env_vars], key_optional: false, credential_kind: t.credential.kind, ...(t.credential.oauth ? { oauth: { ...t.credential.oauth } } : {}),
    headers: { ...t.default_headers }, query: { ...t.default_query }, settings: { ...t.settings }, request_fields: {}, thinking: tm.thinking ?? t.thinking,
    max_tokens: t.default_max_tokens, capabilities: { ...tm.capabilities }, status: 'active', created_at: '', updated_at: '', ...p,
  };
}

const tokenOf = (m: CustomModel, token: string) => ({ [m.api_key_env]: enc.encode(token) });


describe('OAuth templates', () => {
  const ids = ['qwen-code', 'gemini-cli', 'claude-code'];

  it.each(ids)('%s loads, declares an oauth_json credential and states where the file is', (id) => {
    const t = getTemplate(id)!;
    expect(t, id).toBeDefined();
    expect(TemplateSchema.safeParse(t).success).toBe(true);
    expect(t.credential.kind).toBe('oauth_json');
    expect(t.credential.oauth!.provider).toBe(id);
    // Discovery would send the stored credential (the whole file) as a key: off.
    expect(t.model_discovery).toBe(false);
    expect(t.notes.length).toBe(t.notes_zh.length);
    const en = t.notes.join(' ');
    expect(en).toMatch(/terms/);
    expect(en).toMatch(/switch this template off/);
    for (const zh of t.notes_zh) expect(zh).toMatch(/[\u4e00-\u9fff]/);
    expect(t.aliases.some((a) => /[\u4e00-\u9fff]/.test(a))).toBe(true);
  });

  it('names the endpoints, clients, files and log-in steps of each CLI', () => {
    const q = getTemplate('qwen-code')!;
    expect(q).toMatchObject({ wire: 'openai', base_url: 'https://portal.qwen.ai/v1' });
    expect(q.credential.oauth).toMatchObject({ token_url: 'https://chat.qwen.ai/api/v1/oauth2/token', client_id: 'f0304373b74a44d2b584a3fb70ca9e56', project_id: 'none' });
    expect(q.notes.join(' ')).toContain('~/.qwen/oauth_creds.json');
    expect(q.notes.join(' ')).toContain('%USERPROFILE%\\.qwen\\oauth_creds.json');
    expect(q.notes.join(' ')).toMatch(/`qwen`.*\/auth/);

    const g = getTemplate('gemini-cli')!;
    expect(g).toMatchObject({ wire: 'gemini-code-assist', base_url: 'https://cloudcode-pa.googleapis.com' });
    expect(g.credential.oauth).toMatchObject({ token_url: 'https://oauth2.googleapis.com/token', project_id: 'optional' });
    expect(g.credential.oauth!.client_id).toMatch(/\.apps\.googleusercontent\.com$/);
    expect(g.credential.oauth!.client_secret).toMatch(/^GOCSPX-/);
    expect(g.notes.join(' ')).toContain('~/.gemini/oauth_creds.json');
    expect(g.notes.join(' ')).toMatch(/Login with Google/);

    const c = getTemplate('claude-code')!;
    expect(c).toMatchObject({ wire: 'anthropic', base_url: 'https://api.anthropic.com/v1' });
    expect(c.credential.oauth).toMatchObject({ token_url: 'https://console.anthropic.com/v1/oauth/token', client_id: '9d1c250a-e61b-44d9-88ed-5944d1962f5e' });
    const cn = c.notes.join(' ');
    expect(cn).toContain('~/.claude/.credentials.json');
    expect(cn).toContain('security find-generic-password -s "Claude Code-credentials" -w');
    expect(cn).toMatch(/\/login/);
  });

  it('every env var is its own (a stored file never answers for another vendor)', () => {
    const all = loadTemplates();
    for (const id of ids) {
      const t = getTemplate(id)!;
      expect(all.filter((o) => o.env_var === t.env_var).map((o) => o.id)).toEqual([id]);
    }
  });
});

describe('qwen-code: openai wire with the token and the resource_url host', () => {
  let fake: FakeVendor;
  const TOKEN = 'qwen-access-0123456789abcdefghijKLMN';
  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [TOKEN], models: ['qwen3-coder-plus'] });
  });
  afterAll(() => fake.close());

  const model = () =>
    modelForTokenSet(fromTemplate(getTemplate('qwen-code')!), { provider: 'qwen-code', access_token: TOKEN, refresh_token: 'r', expiry_ms: Date.now() + 3600_000, resource_url: fake.url, doc: {} });

  it('probes and streams against https://<resource_url>/v1 with Bearer and the DashScope headers', async () => {
    const m = model();
    expect(m.base_url).toBe(`${fake.url}/v1`);
    const w = createWire('openai', ALLOW);
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('ok');
    const out = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }]));
    expect(out.text).toBe('Hello from the fake vendor.');
    const r = fake.requests.at(-1)!;
    expect(r.path).toBe('/v1/chat/completions');
    expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(r.headers['x-dashscope-authtype']).toBe('qwen-oauth');
    expect(r.body.model).toBe('qwen3-coder-plus');
  });

  it('a refused token is invalid_key, a 429 is classified', async () => {
    const m = model();
    const w = createWire('openai', ALLOW);
    const bad = await w.probe(m, tokenOf(m, 'qwen-access-expired-000000000000'));
    expect(bad.outcome).toBe('invalid_key');
    expect(bad.message).not.toContain('qwen-access-expired');
    fake.setBehaviour('rate_limited', 1);
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('rate_limited');
    fake.setBehaviour('quota_exceeded', 1);
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('quota_exceeded');
  });

  it('without a resource_url the template base_url stays', () => {
    const m = modelForTokenSet(fromTemplate(getTemplate('qwen-code')!), { provider: 'qwen-code', access_token: TOKEN, refresh_token: 'r', expiry_ms: 0, doc: {} });
    expect(m.base_url).toBe('https://portal.qwen.ai/v1');
  });
});

describe('claude-code: anthropic wire in bearer mode', () => {
  let fake: FakeVendor;
  const TOKEN = 'sk-ant-oat01-fakeAccessToken0123456789abcdefABCDEF';
  beforeAll(async () => {
    fake = await startFakeAnthropic({ oauthTokens: [TOKEN], models: ['claude-sonnet-4-6'] });
  });
  afterAll(() => fake.close());
  const model = (p: Partial<CustomModel> = {}) => fromTemplate(getTemplate('claude-code')!, { base_url: `${fake.url}/v1`, ...p });

  it('sends Authorization: Bearer + the oauth beta, never x-api-key; probes and streams', async () => {
    const w = createWire('anthropic', ALLOW);
    const m = model({ headers: { 'anthropic-version': '2023-06-01', 'Anthropic-Beta': 'interleaved-thinking-2025-05-14' } });
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('ok');
    const p = fake.requests.at(-1)!;
    expect(p.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(p.headers['x-api-key']).toBeUndefined();
    expect(p.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14,oauth-2025-04-20');
    expect(p.raw).not.toContain(TOKEN);
    fake.setReply('Bonjour de Claude.');
    const out = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }]));
    expect(out).toMatchObject({ text: 'Bonjour de Claude.', usage: { type: 'usage', input_tokens: 12, output_tokens: 3 }, done: { finish_reason: 'end_turn' } });
    const s = fake.requests.at(-1)!;
    expect(s.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(s.headers['anthropic-beta']).toContain('oauth-2025-04-20');
    fake.setReply('Hello from the fake vendor.');
  });

  it('the same token sent the api-key way is refused by the fake (the wire mode matters)', async () => {
    const w = createWire('anthropic', ALLOW);
    const asKey = model({ credential_kind: 'api_key' });
    expect((await w.probe(asKey, tokenOf(asKey, TOKEN))).outcome).toBe('invalid_key');
    expect(fake.requests.at(-1)!.headers['x-api-key']).toBe(TOKEN);
  });

  it('401 → invalid_key; 429 → rate_limited with Retry-After', async () => {
    const w = createWire('anthropic', ALLOW);
    const m = model();
    const bad = await w.probe(m, tokenOf(m, 'sk-ant-oat01-revokedrevokedrevokedrevoked0000'));
    expect(bad.outcome).toBe('invalid_key');
    expect(bad.message).not.toMatch(/revoked/);
    fake.setBehaviour('rate_limited', 1);
    const rl = await w.probe(m, tokenOf(m, TOKEN));
    expect(rl).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 2000 });
    fake.setBehaviour('rate_limited', 1);
    const err = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VendorError);
    expect((err as VendorError).outcome).toBe('rate_limited');
  });
});

describe('gemini-cli: gemini-code-assist wire', () => {
  let fake: FakeCodeAssist;
  const TOKEN = 'ya29.a0FakeAccessToken0123456789abcdefABCDEF';
  beforeAll(async () => {
    fake = await startFakeCodeAssist({ keys: [TOKEN], models: ['gemini-2.5-pro', 'gemini-2.5-flash'], projects: ['my-gcp-project', 'managed-proj-123', 'free-proj-9'], account: { project: 'managed-proj-123' } });
  });
  afterAll(() => fake.close());
  const model = (p: Partial<CustomModel> = {}) => fromTemplate(getTemplate('gemini-cli')!, { base_url: fake.url, ...p });

  it('getWire / createWire know it; URLs follow v1internal', () => {
    expect(getWire('gemini-code-assist').id).toBe('gemini-code-assist');
    expect(codeAssistUrl({ base_url: 'https://cloudcode-pa.googleapis.com', query: {} }, 'streamGenerateContent', { alt: 'sse' })).toBe(
      'https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse',
    );
    expect(codeAssistUrl({ base_url: 'https://cloudcode-pa.googleapis.com/v1internal/', query: {} }, 'loadCodeAssist')).toBe('https://cloudcode-pa.googleapis.com/v1internal:loadCodeAssist');
    expect(codeAssistUrl({ base_url: 'https://cloudcode-pa.googleapis.com', query: {} }, 'operations/abc')).toBe('https://cloudcode-pa.googleapis.com/v1internal/operations/abc');
  });

  it('a given project goes in the body; probe and stream with Bearer; thoughts are reasoning', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = modelForTokenSet(model(), { provider: 'gemini-cli', access_token: TOKEN, refresh_token: 'r', expiry_ms: 0, project_id: 'my-gcp-project', doc: {} });
    fake.reset();
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('ok');
    expect(fake.requests.map((r) => r.path)).toEqual(['/v1internal:generateContent']);
    const p = fake.requests[0]!;
    expect(p.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(p.body).toMatchObject({ model: 'gemini-2.5-pro', project: 'my-gcp-project', request: { contents: [{ role: 'user', parts: [{ text: 'ping' }] }], generationConfig: { maxOutputTokens: 16 } } });
    // 2.5 Pro always thinks: no thinkingBudget 0 (Google refuses it for this model)
    expect(p.body.request.generationConfig).not.toHaveProperty('thinkingConfig');
    expect(p.raw).not.toContain(TOKEN);

    fake.setReply('Hallo aus Gemini.', 'Let me consider.');
    const out = await collect(
      w.stream(m, tokenOf(m, TOKEN), [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'again' }], { thinking: true }),
    );
    expect(out).toMatchObject({ text: 'Hallo aus Gemini.', reasoning: 'Let me consider.', usage: { type: 'usage', input_tokens: 12, output_tokens: 3 }, done: { type: 'done', finish_reason: 'STOP' } });
    const s = fake.requests.at(-1)!;
    expect(s.path).toBe('/v1internal:streamGenerateContent?alt=sse');
    expect(s.body.project).toBe('my-gcp-project');
    expect(s.body.request.systemInstruction).toEqual({ role: 'user', parts: [{ text: 'be brief' }] });
    expect(s.body.request.contents.map((c: { role: string }) => c.role)).toEqual(['user', 'model', 'user']);
    expect(s.body.request.generationConfig.thinkingConfig).toEqual({ includeThoughts: true });
    fake.setReply('Hello from the fake vendor.');
  });

  it('JSON mode and thinking off on a model that can stop thinking', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model({ upstream_model: 'gemini-2.5-flash', thinking: { style: 'reasoning_effort' }, settings: { project_id: 'my-gcp-project' } });
    const out = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'json' }], { json: true, thinking: false }));
    expect(out.text).toBe('{"status":"ok"}');
    expect(fake.requests.at(-1)!.body.request.generationConfig).toMatchObject({ responseMimeType: 'application/json', thinkingConfig: { thinkingBudget: 0 } });
  });

  it('without a project, loadCodeAssist finds the account project (once per token)', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model();
    expect(m.settings.project_id ?? '').toBe('');
    fake.reset();
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('ok');
    expect(fake.requests.map((r) => r.path)).toEqual(['/v1internal:loadCodeAssist', '/v1internal:generateContent']);
    expect(fake.requests[0]!.body).toEqual({ metadata: { ideType: 'IDE_UNSPECIFIED', platform: 'PLATFORM_UNSPECIFIED', pluginType: 'GEMINI' } });
    expect(fake.requests[1]!.body.project).toBe('managed-proj-123');
    await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }]));
    expect(fake.requests.map((r) => r.path.split('?')[0])).toEqual(['/v1internal:loadCodeAssist', '/v1internal:generateContent', '/v1internal:streamGenerateContent']);
    expect(fake.requests[2]!.body.project).toBe('managed-proj-123');
  });

  it('an account not set up on the free tier is onboarded (operation polled) and its project used', async () => {
    fake.setAccount({ onboardProject: 'free-proj-9' });
    fake.setOnboardPolls(1);
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model();
    fake.reset();
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('ok');
    expect(fake.requests.map((r) => `${r.method} ${r.path.replace(/operations\/\w+/, 'operations/ID')}`)).toEqual([
      'POST /v1internal:loadCodeAssist',
      'POST /v1internal:onboardUser',
      'GET /v1internal/operations/ID',
      'POST /v1internal:generateContent',
    ]);
    expect(fake.requests[1]!.body).toMatchObject({ tierId: 'free-tier' });
    // The free tier uses a Google-managed project: none is sent (Google refuses one there).
    expect(fake.requests[1]!.body).not.toHaveProperty('cloudaicompanionProject');
    expect(fake.requests[3]!.body.project).toBe('free-proj-9');
    fake.setAccount({ project: 'managed-proj-123' });
    fake.setOnboardPolls(0);
  });

  it('no project anywhere: a definite answer asking for the project id on the form, with Google’s reason', async () => {
    const reason = 'This client is no longer supported for Gemini Code Assist for individuals.';
    fake.setAccount({ ineligible: reason });
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model();
    const r = await w.probe(m, tokenOf(m, TOKEN));
    expect(r.outcome).toBe('rejected');
    expect(r.message).toMatch(/Google Cloud project id on the form/);
    expect(r.message).toContain(reason);
    const err = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VendorError);
    expect(err).toMatchObject({ outcome: 'rejected', whatToDo: 'resubmit_key', vendorCode: 'project_required' });
    fake.setAccount({ project: 'managed-proj-123' });
  });

  it('401 UNAUTHENTICATED → invalid_key (also from loadCodeAssist), without the token in the message', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const bad = 'ya29.a0ExpiredToken0123456789abcdefABCDEF';
    const given = model({ settings: { project_id: 'my-gcp-project' } });
    const r1 = await w.probe(given, tokenOf(given, bad));
    expect(r1).toMatchObject({ outcome: 'invalid_key', status: 401 });
    expect(r1.message).toMatch(/invalid authentication credentials/);
    expect(r1.message).not.toContain(bad);
    expect((await w.probe(model(), tokenOf(given, bad))).outcome).toBe('invalid_key');
    const err = await collect(w.stream(given, tokenOf(given, bad), [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
    expect(err).toMatchObject({ outcome: 'invalid_key', vendorCode: 'UNAUTHENTICATED' });
  });

  it('429 RESOURCE_EXHAUSTED: RATE_LIMIT_EXCEEDED → rate_limited with RetryInfo, QUOTA_EXHAUSTED → quota_exceeded', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model({ settings: { project_id: 'my-gcp-project' } });
    fake.setBehaviour('rate_limited', 1);
    expect(await w.probe(m, tokenOf(m, TOKEN))).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 2000, status: 429 });
    fake.setBehaviour('quota_exceeded', 1);
    expect(await w.probe(m, tokenOf(m, TOKEN))).toMatchObject({ outcome: 'quota_exceeded', status: 429 });
    fake.setBehaviour('rate_limited', 1);
    const err = await collect(w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VendorError);
    expect(err).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 2000, vendorCode: 'RATE_LIMIT_EXCEEDED' });
    expect((err as VendorError).retryable).toBe(true);
  });

  it('other Google errors: unknown model, foreign project, outages, an error mid-stream', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model({ settings: { project_id: 'my-gcp-project' } });
    expect((await w.probe({ ...m, upstream_model: 'gemini-0-nope' }, tokenOf(m, TOKEN))).outcome).toBe('invalid_model');
    expect((await w.probe({ ...m, settings: { project_id: 'someone-elses' } }, tokenOf(m, TOKEN))).outcome).toBe('invalid_key');
    fake.setBehaviour('server_error', 1);
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('vendor_unavailable');
    fake.setBehaviour('overloaded', 1);
    expect((await w.probe(m, tokenOf(m, TOKEN))).outcome).toBe('vendor_unavailable');
    fake.setBehaviour('error_mid_stream', 1);
    const got: string[] = [];
    const err = await (async () => {
      for await (const e of w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }])) if (e.type === 'text') got.push(e.text);
    })().catch((e: unknown) => e);
    expect(got.length).toBe(2);
    expect(err).toMatchObject({ outcome: 'vendor_unavailable' });
  });

  it('abort mid-stream; hang → unreachable after the signal', async () => {
    const w = createWire('gemini-code-assist', ALLOW);
    const m = model({ settings: { project_id: 'my-gcp-project' } });
    fake.setReply('one two three four five six seven eight nine ten');
    fake.setChunkDelay(30);
    const ctl = new AbortController();
    const got: string[] = [];
    const err = await (async () => {
      for await (const e of w.stream(m, tokenOf(m, TOKEN), [{ role: 'user', content: 'hi' }], { signal: ctl.signal })) {
        if (e.type === 'text') {
          got.push(e.text);
          if (got.length === 2) ctl.abort();
        }
      }
    })().catch((e: unknown) => e);
    fake.setChunkDelay(0);
    fake.setReply('Hello from the fake vendor.');
    expect(got.length).toBeLessThan(10);
    expect((err as Error).name).toBe('AbortError');
    fake.setBehaviour('hang', 1);
    const ctl2 = new AbortController();
    setTimeout(() => ctl2.abort(), 200);
    expect((await w.probe(m, tokenOf(m, TOKEN), { signal: ctl2.signal })).outcome).toBe('unreachable');
  });

  it('refuses 127.0.0.1 unless the network policy allows it, for discovery too', async () => {
    const strict = createWire('gemini-code-assist', STRICT);
    const before = fake.requests.length;
    const r = await strict.probe(model(), tokenOf(model(), TOKEN));
    expect(r.outcome).toBe('rejected');
    expect(r.message).toMatch(/loopback|public/);
    expect(fake.requests.length).toBe(before);
    const listed = createWire('gemini-code-assist', { allowPrivate: false, allowlist: [`127.0.0.1:${fake.port}`] });
    expect((await listed.probe(model(), tokenOf(model(), TOKEN))).outcome).toBe('ok');
  });

  it('classifyGoogle reads Google RPC bodies (array-wrapped too)', () => {
    const body = (code: number, status: string, message: string, details: unknown[] = []) => JSON.stringify([{ error: { code, message, status, details } }]);
    expect(classifyGoogle(429, {}, body(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric', [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'GenerateRequestsPerDayPerProjectPerModel' }] }]), []).outcome).toBe('quota_exceeded');
    expect(classifyGoogle(429, {}, body(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).'), [])).toMatchObject({ outcome: 'rate_limited' });
    expect(classifyGoogle(429, {}, body(429, 'RESOURCE_EXHAUSTED', 'slow down', [{ '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaId: 'RequestsPerMinute' }] }]), [])).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 60_000 });
    expect(classifyGoogle(403, {}, body(403, 'PERMISSION_DENIED', 'The caller does not have permission'), []).outcome).toBe('invalid_key');
    expect(classifyGoogle(400, {}, body(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.'), []).outcome).toBe('rejected');
  });
});
