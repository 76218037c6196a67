import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { configureVendorNet, getDefaultNetOptions } from '../../src/vendors/net.ts';
import { createRegistry, envKeySource, type KeySource, type Registry } from '../../src/registry/index.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { loadTemplates } from '../../src/vendors/templates.ts';
import type { Template } from '../../src/vendors/template-schema.ts';

/** In-memory stand-in for the vault. */
class FakeKeys implements KeySource {
  readonly keys = new Map<string, string>();
  set(ws: string, envVar: string, key: string): void {
    this.keys.set(`${ws}|${envVar}`, key);
  }
  async has(ws: string, envVar: string): Promise<boolean> {
    return this.keys.has(`${ws}|${envVar}`);
  }
  async withKey<T>(ws: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined> {
    const k = this.keys.get(`${ws}|${envVar}`);
    if (k === undefined) return undefined;
    const bytes = Buffer.from(k);
    try {
      return await fn(bytes);
    } finally {
      bytes.fill(0);
    }
  }
}

// A realistic-looking (random) key; it must never show up in any answer.
const SECRET = 'sk-proj-7Qm2XvR9tLp4Kz8Wn3Yb6Hc1Jd5Fg0Ae';

let dir: string;
let store: FileStore;
let keys: FakeKeys;
let reg: Registry;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-reg-'));
  store = new FileStore(dir);
  keys = new FakeKeys();
  reg = createRegistry({ store, keys, env: {} });
});

afterEach(async () => {
  await store.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function must<T extends { ok: boolean }>(r: T): Extract<T, { ok: true }> {
  if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r)}`);
  return r as Extract<T, { ok: true }>;
}

async function yamlDoc(ws = 'local'): Promise<{ version: number; models: Array<Record<string, unknown>> }> {
  return YAML.parse(await fs.readFile(path.join(dir, 'workspaces', ws.replace(/:/g, '_'), 'custom_models.yaml'), 'utf8'));
}

describe('templates()', () => {
  it('lists every curated vendor with the summary fields', () => {
    const r = must(reg.templates());
    const ids = r.templates.map((t) => t.id);
    for (const id of ['anthropic', 'openai', 'qwen', 'near-ai', 'openai-compatible', 'bedrock', 'azure-openai']) expect(ids).toContain(id);
    const qwen = r.templates.find((t) => t.id === 'qwen')!;
    expect(qwen.base_url_required).toBe(false);
    expect(qwen.aliases).toContain('通义千问');
    expect(qwen.models.length).toBeGreaterThan(0);
    expect(qwen.models[0]).toHaveProperty('capabilities');
    expect(r.templates.find((t) => t.id === 'openai-compatible')!.base_url_required).toBe(true);
    expect(r.templates.find((t) => t.id === 'openai-compatible')!.key_optional).toBe(true);
  });
});

describe('add_template', () => {
  it('registers the default model, asks for the key, writes YAML without any key', async () => {
    const r = must(await reg.add_template('local', 'qwen'));
    expect(r.model.id).toMatch(/^[a-z0-9-]+-[0-9a-f]{4}$/);
    expect(r.selector).toBe(`custom/${r.model.id}`);
    expect(r.model.status).toBe('pending_key');
    expect(r.model.vendor).toBe('qwen');
    expect(r.model.api_key_env).toBe('DASHSCOPE_API_KEY');
    expect(r.model.max_tokens).toBeGreaterThanOrEqual(1);
    expect(r.need_env_input?.env_vars).toEqual(['DASHSCOPE_API_KEY']);
    expect(r.need_env_input?.reason).toMatch(/Qwen/);
    expect(r.need_env_input?.reason).toContain(r.model.upstream_model);
    const doc = await yamlDoc();
    expect(doc.models).toHaveLength(1);
    expect(doc.models[0]!.id).toBe(r.model.id);
  });

  it('slugs the upstream model into the id (qwen-plus-xxxx) and accepts Chinese aliases', async () => {
    const r = must(await reg.add_template('local', '通义千问', { upstream_model: 'qwen-plus' }));
    expect(r.model.id).toMatch(/^qwen-plus-[0-9a-f]{4}$/);
    expect(r.model.vendor).toBe('qwen');
    expect(r.model.name).toBe('Qwen Plus');
  });

  it('first model of a vendor asks for the key; once stored, the second model reuses it', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus' }));
    expect(a.need_env_input).toBeDefined();
    keys.set('local', 'DASHSCOPE_API_KEY', SECRET);
    const b = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-flash' }));
    expect(b.need_env_input).toBeUndefined();
    expect(b.model.status).toBe('active');
    expect(b.model.api_key_env).toBe(a.model.api_key_env);
    // the stored key serves the first model too
    expect(must(await reg.get('local', a.model.id)).model.status).toBe('active');
    // another workspace has no key yet
    expect(must(await reg.add_template('tg:42', 'qwen')).need_env_input).toBeDefined();
  });

  it('needs all credentials of multi-secret vendors (bedrock)', async () => {
    const r = must(await reg.add_template('local', 'bedrock'));
    expect(r.need_env_input?.env_vars).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    const eu = must(
      await reg.add_template('local', 'bedrock', { name: 'Claude EU', base_url: 'https://bedrock-runtime.eu-west-1.amazonaws.com' }),
    ).model;
    expect(eu.settings.region).toBe('eu-west-1');
  });

  it('unknown vendor → unknown_vendor with suggestions', async () => {
    const r = await reg.add_template('local', 'anthropc');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe('unknown_vendor');
    expect(r.suggestions).toContain('anthropic');
    expect(r.error).toMatch(/anthropic/);
  });

  it('templates without a base_url need one', async () => {
    const r = await reg.add_template('local', 'azure-openai');
    expect(r).toMatchObject({ ok: false, code: 'invalid_input' });
    expect((r as { error: string }).error).toMatch(/base_url/);
    const ok = must(await reg.add_template('local', 'azure-openai', { base_url: 'https://myres.openai.azure.com' }));
    expect(ok.model.base_url).toBe('https://myres.openai.azure.com');
    expect(ok.model.query['api-version']).toBeTruthy();
  });

  it('openai-compatible: key optional → active, no need_env_input; upstream model required', async () => {
    const missing = await reg.add_template('local', 'openai-compatible', { base_url: 'http://localhost:11434/v1' });
    expect(missing).toMatchObject({ ok: false, code: 'invalid_input' });
    const r = must(await reg.add_template('local', 'openai-compatible', { base_url: 'http://localhost:11434/v1', upstream_model: 'llama3.1:8b' }));
    expect(r.model.status).toBe('active');
    expect(r.need_env_input).toBeUndefined();
    expect(r.model.key_optional).toBe(true);
  });

  it('NEAR non-TEE model → ok with a warning; TEE model → no warning', async () => {
    const bad = must(await reg.add_template('local', 'near-ai', { upstream_model: 'openai/gpt-5' }));
    expect(bad.warnings?.join(' ')).toMatch(/TEE/);
    const good = must(await reg.add_template('local', 'near', { upstream_model: 'zai-org/GLM-5.1-FP8' }));
    expect((good.warnings ?? []).join(' ')).not.toMatch(/TEE-protected/);
  });

  it('explicit name that collides → conflict', async () => {
    must(await reg.add_template('local', 'qwen', { name: 'My Model' }));
    const r = await reg.add_template('local', 'deepseek', { name: 'my-model' });
    expect(r).toMatchObject({ ok: false, code: 'conflict' });
  });

  it('a default name taken by another vendor gets the vendor id appended', async () => {
    must(await reg.add('local', { upstream_model: 'qwen-plus', base_url: 'https://proxy.example.com/v1' }));
    const b = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus' }));
    expect(b.model.name).toBe('Qwen Plus (qwen)');
  });

  it('refuses bad max_tokens and a bad workspace', async () => {
    for (const mt of [0, -1, 1.5, Number.NaN]) {
      expect(await reg.add_template('local', 'qwen', { max_tokens: mt })).toMatchObject({ ok: false, code: 'invalid_input' });
    }
    const r = await reg.add_template('../x', 'qwen');
    expect(r).toMatchObject({ ok: false, code: 'invalid_input' });
    await expect(fs.access(path.join(dir, 'x'))).rejects.toThrow();
  });
});

describe('add', () => {
  it('registers a custom endpoint with a host-derived env var and asks for it', async () => {
    const r = must(
      await reg.add('local', {
        upstream_model: 'accounts/fireworks/models/llama-v3p1-8b-instruct',
        base_url: 'https://api.example-llm.com/v1/chat/completions',
        headers: { 'X-Title': 'byok' },
        request_fields: { top_k: 20 },
      }),
    );
    expect(r.model.vendor).toBe('custom');
    expect(r.model.id).toMatch(/^llama-v3p1-8b-instruct-[0-9a-f]{4}$/);
    expect(r.model.base_url).toBe('https://api.example-llm.com/v1');
    expect(r.model.api_key_env).toBe('EXAMPLE_LLM_API_KEY');
    expect(r.model.max_tokens).toBe(4096);
    expect(r.need_env_input?.env_vars).toEqual(['EXAMPLE_LLM_API_KEY']);
    expect(r.warnings?.join(' ')).toMatch(/chat\/completions/);
  });

  it('takes parse_example output straight into add', async () => {
    const pe = reg.parse_example(
      `curl https://api.deepseek.com/chat/completions -H "Content-Type: application/json" -H "Authorization: Bearer ${SECRET}" -d '{"model": "deepseek-chat", "messages": [{"role":"user","content":"hi"}]}'`,
    );
    const { draft, warnings } = must(pe);
    expect(JSON.stringify(pe)).not.toContain(SECRET);
    expect(warnings.join(' ')).toMatch(/key/i);
    const r = must(await reg.add('local', { ...draft, name: 'DS chat' }));
    expect(r.model.base_url).toBe('https://api.deepseek.com');
    expect(r.model.api_key_env).toBe('DEEPSEEK_API_KEY');
    expect(r.warnings?.join(' ')).toMatch(/add_template\("deepseek"\)/);
  });

  it('parse_example refuses garbage', () => {
    expect(reg.parse_example('').ok).toBe(false);
    expect(reg.parse_example('hello there').ok).toBe(false);
  });

  it('validates base_url, names, upstream model, env var, headers — never echoing key-like input', async () => {
    const cases: Array<[Parameters<Registry['add']>[1], RegExp]> = [
      [{ upstream_model: 'm', base_url: 'ftp://x.example.com' }, /http/],
      [{ upstream_model: 'm', base_url: 'not a url' }, /valid URL/],
      [{ upstream_model: 'm', base_url: `https://user:${SECRET}@x.example.com/v1` }, /credentials/],
      [{ upstream_model: 'm', base_url: `https://x.example.com/v1?api_key=${SECRET}` }, /query/],
      [{ upstream_model: '', base_url: 'https://x.example.com' }, /1–200/],
      [{ upstream_model: 'x'.repeat(201), base_url: 'https://x.example.com' }, /1–200/],
      [{ upstream_model: SECRET, base_url: 'https://x.example.com' }, /API key/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', name: 'x'.repeat(65) }, /1–64/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', name: 'bad\u0007name' }, /control/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', name: '' }, /1–64/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', api_key_env: SECRET }, /api_key_env/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', headers: { Authorization: `Bearer ${SECRET}` } }, /secure form/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', wire: 'grpc' as never }, /wire/],
      [{ upstream_model: 'm', base_url: 'https://x.example.com', max_tokens: 0 }, /max_tokens/],
    ];
    for (const [args, re] of cases) {
      const r = await reg.add('local', args);
      expect(r.ok, JSON.stringify(args).slice(0, 80)).toBe(false);
      if (r.ok) continue;
      expect(r.code).toBe('invalid_input');
      expect(r.error).toMatch(re);
      expect(JSON.stringify(r)).not.toContain(SECRET);
    }
    expect((await reg.list_models('local')).ok && must(await reg.list_models('local')).models).toEqual([]);
  });

  it("never reuses a curated vendor's or another endpoint's key name for a new host", async () => {
    keys.set('local', 'OPENAI_API_KEY', SECRET);
    const r = must(await reg.add('local', { upstream_model: 'gpt-5', base_url: 'https://evil.example.com/v1', api_key_env: 'OPENAI_API_KEY' }));
    expect(r.model.api_key_env).not.toBe('OPENAI_API_KEY');
    expect(r.need_env_input?.env_vars).toEqual([r.model.api_key_env]);
    expect(r.warnings?.join(' ')).toMatch(/OPENAI_API_KEY is the OpenAI/);
    const one = must(await reg.add('local', { upstream_model: 'a', base_url: 'https://one.example.com/v1', api_key_env: 'MY_KEY' }));
    expect(one.model.api_key_env).toBe('MY_KEY');
    const two = must(await reg.add('local', { upstream_model: 'b', base_url: 'https://two.example.com/v1', api_key_env: 'MY_KEY' }));
    expect(two.model.api_key_env).not.toBe('MY_KEY');
    // a second model on the same host shares the key name
    const same = must(await reg.add('local', { upstream_model: 'c', base_url: 'https://one.example.com/v1', api_key_env: 'MY_KEY' }));
    expect(same.model.api_key_env).toBe('MY_KEY');
    // templates: a second host of the same vendor gets a key name of its own (issue 12)
    must(await reg.add_template('local', 'qwen'));
    const cn = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-flash', base_url: 'https://dashscope.aliyuncs.com/compatible-mode/v1' }));
    expect(cn.model.api_key_env).toBe('DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM');
    expect(cn.need_env_input?.env_vars).toEqual(['DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM']);
  });

  it('key_optional endpoints are active at once; max_tokens, capabilities, pricing are kept', async () => {
    const r = must(
      await reg.add('local', {
        upstream_model: 'llama3',
        base_url: 'http://127.0.0.1:11434/v1',
        key_optional: true,
        max_tokens: 1000,
        capabilities: { vision: true },
        pricing: { input_per_mtok: 1, output_per_mtok: 2, currency: 'USD' },
      }),
    );
    expect(r.model.status).toBe('active');
    expect(r.need_env_input).toBeUndefined();
    expect(r.model.max_tokens).toBe(1000);
    expect(r.model.capabilities).toEqual({ json: true, vision: true, tools: true, reasoning: false });
    expect(r.model.pricing?.input_per_mtok).toBe(1);
  });
});

describe('list_models / get / remove / reactivate', () => {
  it('get accepts custom/<id>; unknown id → not_found with suggestions', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus' }));
    expect(must(await reg.get('local', a.selector)).model.id).toBe(a.model.id);
    expect(must(await reg.get('local', a.model.id)).model.id).toBe(a.model.id);
    const nf = await reg.get('local', 'qwen-pluss');
    expect(nf).toMatchObject({ ok: false, code: 'not_found' });
    expect((nf as unknown as { suggestions: string[] }).suggestions).toContain(a.selector);
    expect(await reg.get('../etc', a.model.id)).toMatchObject({ ok: false, code: 'invalid_input' });
  });

  it('remove deactivates; list hides it unless include_removed; re-adding the name with the same vendor reactivates', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus', name: 'Work Qwen' }));
    const removed = must(await reg.remove('local', a.selector));
    expect(removed.model.status).toBe('removed');
    expect(must(await reg.list_models('local')).models).toEqual([]);
    expect(must(await reg.list_models('local', { include_removed: true })).models).toHaveLength(1);
    expect(await reg.resolve('local', a.selector)).toMatchObject({ ok: false, code: 'not_found' });
    expect(must(await reg.remove('local', a.model.id)).already_removed).toBe(true);

    const again = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-flash', name: 'work qwen' }));
    expect(again.reactivated).toBe(true);
    expect(again.model.id).toBe(a.model.id);
    expect(again.model.upstream_model).toBe('qwen-flash');
    expect(again.model.created_at).toBe(a.model.created_at);
    expect(must(await reg.list_models('local', { include_removed: true })).models).toHaveLength(1);
  });

  it('reactivate by explicit id; another vendor → conflict', async () => {
    const a = must(await reg.add_template('local', 'deepseek', { id: 'my-ds' }));
    expect(a.model.id).toBe('my-ds');
    expect(await reg.add_template('local', 'deepseek', { id: 'my-ds', name: 'other' })).toMatchObject({ ok: false, code: 'conflict' });
    must(await reg.remove('local', 'my-ds'));
    expect(await reg.add_template('local', 'qwen', { id: 'my-ds' })).toMatchObject({ ok: false, code: 'conflict' });
    expect(await reg.add_template('local', 'qwen', { name: a.model.name })).toMatchObject({ ok: false, code: 'conflict' });
    const back = must(await reg.add_template('local', 'deepseek', { id: 'custom/my-ds' }));
    expect(back.reactivated).toBe(true);
    expect(back.model.status).toBe('pending_key');
  });

  it('remove of an unknown id → not_found', async () => {
    expect(await reg.remove('local', 'nope')).toMatchObject({ ok: false, code: 'not_found' });
  });
});

describe('update', () => {
  it('changes name, upstream model, base_url, max_tokens, capabilities, pricing', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus' }));
    const u = must(
      await reg.update('local', a.selector, {
        name: 'Renamed',
        upstream_model: 'qwen-flash',
        base_url: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1/',
        max_tokens: 2048,
        capabilities: { vision: true },
        pricing: null,
      }),
    );
    expect(u.model).toMatchObject({ id: a.model.id, name: 'Renamed', upstream_model: 'qwen-flash', max_tokens: 2048 });
    expect(u.model.capabilities.vision).toBe(true);
    expect(u.model.pricing).toBeUndefined();
    expect(u.model.base_url).toBe('https://dashscope-intl.aliyuncs.com/compatible-mode/v1');
    expect((await yamlDoc()).models[0]!.name).toBe('Renamed');
  });

  it('vendor/wire/id/api_key_env → immutable; bad max_tokens, unknown field → invalid_input; name clash → conflict', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus' }));
    const b = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-flash' }));
    for (const ch of [{ vendor: 'openai' }, { wire: 'anthropic' }, { id: 'x-1234' }, { api_key_env: 'OTHER_KEY' }]) {
      expect(await reg.update('local', a.model.id, ch as never)).toMatchObject({ ok: false, code: 'immutable' });
    }
    for (const mt of [0, 2.5, '10' as unknown as number]) {
      expect(await reg.update('local', a.model.id, { max_tokens: mt })).toMatchObject({ ok: false, code: 'invalid_input' });
    }
    expect(await reg.update('local', a.model.id, { thinking: {} } as never)).toMatchObject({ ok: false, code: 'invalid_input' });
    expect(await reg.update('local', a.model.id, { name: b.model.name })).toMatchObject({ ok: false, code: 'conflict' });
    expect(await reg.update('local', a.model.id, { base_url: '' })).toMatchObject({ ok: false, code: 'invalid_input' });
    expect(await reg.update('local', 'missing-0000', { name: 'x' })).toMatchObject({ ok: false, code: 'not_found' });
    // same value for an immutable field is a no-op, not an error
    expect((await reg.update('local', a.model.id, { vendor: 'qwen', max_tokens: 10 } as never)).ok).toBe(true);
  });
});

describe('a stored key stays bound to the host it was validated against', () => {
  it('moving an endpoint with a stored key switches it to a key of its own for the new host', async () => {
    const m = must(await reg.add('local', { upstream_model: 'm-1', base_url: 'https://api.one.example/v1', api_key_env: 'ONE_API_KEY' })).model;
    must(await reg.update('local', m.id, { base_url: 'https://api.two.example/v1' }));
    keys.set('local', 'ONE_API_KEY', SECRET);
    must(await reg.set_status('local', m.id, 'active'));
    const moved = must(await reg.update('local', m.id, { base_url: 'https://evil.example.com/v1' }));
    expect(moved.model.api_key_env).toBe('ONE_API_KEY__EVIL_EXAMPLE_COM');
    expect(moved.model.status).toBe('pending_key');
    expect(moved.need_env_input?.env_vars).toEqual(['ONE_API_KEY__EVIL_EXAMPLE_COM']);
    // Back to the host the stored key was validated for: the plain name again, ready.
    const back = must(await reg.update('local', m.id, { base_url: 'https://api.two.example/v2' }));
    expect(back.model.api_key_env).toBe('ONE_API_KEY');
    expect(back.model.status).toBe('active');
  });

  it('a removed model keeps its key bound: a new endpoint gets a key name of its own', async () => {
    const m = must(await reg.add('local', { upstream_model: 'm-1', base_url: 'https://h1.example/v1', api_key_env: 'MYP_API_KEY' })).model;
    keys.set('local', 'MYP_API_KEY', SECRET);
    must(await reg.remove('local', m.id));
    const other = must(await reg.add('local', { upstream_model: 'm-2', base_url: 'https://h2.example/v1', api_key_env: 'MYP_API_KEY' }));
    expect(other.model.api_key_env).not.toBe('MYP_API_KEY');
    expect(other.need_env_input?.env_vars).toEqual([other.model.api_key_env]);
  });
});

describe('set_status / set_key_status', () => {
  it('records status and a scrubbed last_error; refuses for removed models', async () => {
    const a = must(await reg.add_template('local', 'openai'));
    const s = must(await reg.set_status('local', a.model.id, 'key_error', { code: 'invalid_key', message: `Incorrect API key provided: ${SECRET}` }));
    expect(s.model.status).toBe('key_error');
    expect(s.model.last_error?.code).toBe('invalid_key');
    expect(JSON.stringify(s)).not.toContain(SECRET);
    expect(await fs.readFile(path.join(dir, 'workspaces/local/custom_models.yaml'), 'utf8')).not.toContain(SECRET);
    const act = must(await reg.set_status('local', a.model.id, 'active'));
    expect(act.model.last_error).toBeUndefined();
    expect(await reg.set_status('local', a.model.id, 'bogus' as never)).toMatchObject({ ok: false, code: 'invalid_input' });
    must(await reg.remove('local', a.model.id));
    expect(await reg.set_status('local', a.model.id, 'active')).toMatchObject({ ok: false, code: 'conflict' });
  });

  it('set_key_status updates every live model sharing the key', async () => {
    must(await reg.add_template('local', 'gemini'));
    must(await reg.add_template('local', 'gemma'));
    const r = must(await reg.set_key_status('local', 'GEMINI_API_KEY', 'active'));
    expect(r.models).toHaveLength(2);
    expect(must(await reg.list_models('local')).models.every((m) => m.status === 'active')).toBe(true);
  });
});

describe('resolve', () => {
  it('by custom/<id>, id or display name; unknown → suggestions', async () => {
    const a = must(await reg.add_template('local', 'qwen', { upstream_model: 'qwen-plus', name: 'Work Qwen' }));
    must(await reg.add_template('local', 'deepseek', { name: 'Reasoner' }));
    expect(must(await reg.resolve('local', a.selector)).model.id).toBe(a.model.id);
    expect(must(await reg.resolve('local', a.model.id)).model.id).toBe(a.model.id);
    expect(must(await reg.resolve('local', 'work qwen')).model.id).toBe(a.model.id);
    expect(must(await reg.resolve('local', 'custom/Work Qwen')).model.id).toBe(a.model.id);
    const nf = await reg.resolve('local', 'custom/work-qwn');
    expect(nf).toMatchObject({ ok: false, code: 'not_found' });
    expect((nf as unknown as { suggestions: string[] }).suggestions[0]).toBe(a.selector);
    const empty = await reg.resolve('tg:7', 'anything');
    expect(empty).toMatchObject({ ok: false, code: 'not_found', suggestions: [] });
  });
});

describe('list_vendor_models', () => {
  let server: http.Server;
  let base: string;
  const seen: Array<http.IncomingHttpHeaders> = [];
  let answer: { status: number; body: unknown } = { status: 200, body: {} };

  beforeEach(async () => {
    seen.length = 0;
    answer = {
      status: 200,
      body: { object: 'list', data: [{ id: 'live-model-a', object: 'model' }, { id: 'models/live-model-b' }, { id: 'qwen-plus' }] },
    };
    server = http.createServer((req, res) => {
      seen.push(req.headers);
      if (req.url !== '/v1/models') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterEach(async () => {
    await new Promise((r) => server.close(r));
  });

  function localQwen(): Template[] {
    return loadTemplates().map((t) => (t.id === 'qwen' ? { ...t, base_url: base } : t));
  }

  // The fake vendor listens on 127.0.0.1: the operator switch allows it, as for every fake vendor.
  const netBefore = getDefaultNetOptions();
  beforeAll(() => configureVendorNet({ allowPrivate: true, allowlist: [] }));
  afterAll(() => configureVendorNet(netBefore));

  it('discovery goes through the SSRF guard: a private address is refused without the operator switch', async () => {
    configureVendorNet({ allowPrivate: false, allowlist: [] });
    try {
      const r2 = createRegistry({ store, keys, templates: localQwen() });
      keys.set('local', 'DASHSCOPE_API_KEY', SECRET);
      const r = must(await r2.list_vendor_models('local', 'qwen'));
      expect(r.source).toBe('curated');
      expect(seen).toHaveLength(0);
    } finally {
      configureVendorNet({ allowPrivate: true, allowlist: [] });
    }
  });

  it('live /models with the stored key as Bearer; curated entries enriched', async () => {
    const r2 = createRegistry({ store, keys, templates: localQwen() });
    keys.set('local', 'DASHSCOPE_API_KEY', SECRET);
    const r = must(await r2.list_vendor_models('local', 'qwen'));
    expect(r.source).toBe('live');
    expect(r.models.map((m) => m.id)).toEqual(['live-model-a', 'live-model-b', 'qwen-plus']);
    expect(r.models.find((m) => m.id === 'qwen-plus')).toMatchObject({ curated: true, name: 'Qwen Plus' });
    expect(seen[0]!.authorization).toBe(`Bearer ${SECRET}`);
  });

  it('no key stored → curated with a note, no request made', async () => {
    const r2 = createRegistry({ store, keys, templates: localQwen() });
    const r = must(await r2.list_vendor_models('local', 'qwen'));
    expect(r.source).toBe('curated');
    expect(r.note).toMatch(/no .*key stored/);
    expect(seen).toHaveLength(0);
  });

  it('401 → curated with a note that never contains the key', async () => {
    answer = { status: 401, body: { error: { message: `Incorrect API key provided: ${SECRET}` } } };
    const r2 = createRegistry({ store, keys, templates: localQwen() });
    keys.set('local', 'DASHSCOPE_API_KEY', SECRET);
    const r = must(await r2.list_vendor_models('local', 'qwen'));
    expect(r.source).toBe('curated');
    expect(r.note).toMatch(/401/);
    expect(JSON.stringify(r)).not.toContain(SECRET);
  });

  it('default key source reads the env var; timeouts fall back', async () => {
    const r2 = createRegistry({ store, env: { DASHSCOPE_API_KEY: SECRET }, templates: localQwen() });
    expect(must(await r2.list_vendor_models('local', 'qwen')).source).toBe('live');
    expect(await envKeySource({}).has('local', 'X_API_KEY')).toBe(false);
    const slow = createRegistry({
      store,
      keys,
      templates: localQwen(),
      discoveryTimeoutMs: 50,
      fetch: ((_u: string, init: RequestInit) =>
        new Promise((_res, rej) => init.signal!.addEventListener('abort', () => rej(init.signal!.reason)))) as typeof fetch,
    });
    keys.set('local', 'DASHSCOPE_API_KEY', SECRET);
    const r = must(await slow.list_vendor_models('local', 'qwen'));
    expect(r.source).toBe('curated');
    expect(r.note).toMatch(/did not answer/);
  });

  it('openai-compatible with a base_url (key optional) lists the live models without a key', async () => {
    const r = must(await reg.list_vendor_models('local', 'openai-compatible', { base_url: base }));
    expect(r.source).toBe('live');
    expect(seen[0]!.authorization).toBeUndefined();
  });

  it('vendor without discovery → curated with a note; unknown vendor → suggestions', async () => {
    const r = must(await reg.list_vendor_models('local', 'minimax'));
    expect(r.source).toBe('curated');
    expect(r.note).toMatch(/discovery/);
    expect(r.models.length).toBeGreaterThan(0);
    const u = await reg.list_vendor_models('local', 'deepsek');
    expect(u).toMatchObject({ ok: false, code: 'unknown_vendor' });
    expect((u as unknown as { suggestions: string[] }).suggestions).toContain('deepseek');
  });

  it("never sends a vendor's key to a host that no model of the workspace uses", async () => {
    const strict = loadTemplates().map((t) => (t.id === 'openai-compatible' ? { ...t, auth: { scheme: 'bearer' as const, optional: false } } : t));
    const r2 = createRegistry({ store, keys, templates: strict });
    keys.set('local', 'OPENAI_COMPATIBLE_API_KEY', SECRET);
    const r = must(await r2.list_vendor_models('local', 'openai-compatible', { base_url: base }));
    expect(r.source).toBe('curated');
    expect(r.note).toMatch(/only sent to hosts/);
    expect(seen).toHaveLength(0);
    must(await r2.add_template('local', 'openai-compatible', { base_url: base, upstream_model: 'live-model-a' }));
    const live = must(await r2.list_vendor_models('local', 'openai-compatible'));
    expect(live.source).toBe('live');
    expect(seen[0]!.authorization).toBe(`Bearer ${SECRET}`);
  });
});
