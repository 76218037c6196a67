import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/registry/index.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { applyTemplatePolicy, loadTemplates, offeredTemplates, templatePolicyFromEnv } from '../../src/vendors/templates.ts';

const all = loadTemplates();
const saved = { only: process.env.BYOK_TEMPLATES, off: process.env.BYOK_TEMPLATES_DISABLED };

afterEach(() => {
  for (const [k, v] of [['BYOK_TEMPLATES', saved.only], ['BYOK_TEMPLATES_DISABLED', saved.off]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('operator template policy', () => {
  it('offers every template by default; BYOK_TEMPLATES_DISABLED switches some off; BYOK_TEMPLATES keeps only the listed', () => {
    expect(offeredTemplates({}).map((t) => t.id)).toEqual(all.map((t) => t.id));
    const off = offeredTemplates({ BYOK_TEMPLATES_DISABLED: 'qwen-code, gemini-cli,claude-code' }).map((t) => t.id);
    expect(off).not.toContain('qwen-code');
    expect(off).not.toContain('claude-code');
    expect(off).toContain('qwen');
    expect(off).toHaveLength(all.length - 3);
    expect(offeredTemplates({ BYOK_TEMPLATES: 'openai,anthropic' }).map((t) => t.id).sort()).toEqual(['anthropic', 'openai']);
  });

  it('refuses an id that names no template (a typo never leaves a template on)', () => {
    expect(() => applyTemplatePolicy(all, templatePolicyFromEnv({ BYOK_TEMPLATES_DISABLED: 'qwen-cod' }))).toThrow(/BYOK_TEMPLATES_DISABLED: "qwen-cod" is not a template id/);
  });

  it('a switched-off template cannot be added and is not listed; the message says the operator switched it off', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-tplpol-'));
    try {
      process.env.BYOK_TEMPLATES_DISABLED = 'claude-code';
      const registry = createRegistry({ store: new FileStore(dir) });
      const listed = registry.templates();
      expect(listed.ok && listed.templates.map((t) => t.id)).not.toContain('claude-code');
      const r = await registry.add_template('local', 'claude-code');
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe('forbidden');
        expect(r.error).toMatch(/switched off on this bot by its operator/);
      }
      const ok = await registry.add_template('local', 'anthropic');
      expect(ok.ok || (!ok.ok && ok.code)).not.toBe('forbidden');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('wires that need a template', () => {
  it('add refuses the bedrock and gemini-code-assist wires for a custom endpoint and names the template to use', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-wire-'));
    try {
      const registry = createRegistry({ store: new FileStore(dir) });
      const ca = await registry.add('local', { upstream_model: 'gemini-2.5-pro', base_url: 'https://cloudcode-pa.googleapis.com', wire: 'gemini-code-assist' });
      expect(ca.ok).toBe(false);
      if (!ca.ok) expect(ca.error).toMatch(/add_template\("gemini-cli"\)/);
      const br = await registry.add('local', { upstream_model: 'x', base_url: 'https://bedrock-runtime.us-east-1.amazonaws.com', wire: 'bedrock' });
      expect(br.ok).toBe(false);
      const listed = await registry.list_models('local');
      expect(listed.ok && listed.models).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('token_url on add_template', () => {
  it('points an OAuth-file model at another token endpoint; refused for templates without one; a bad URL is refused', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-tokurl-'));
    try {
      const registry = createRegistry({ store: new FileStore(dir) });
      const r = await registry.add_template('local', 'qwen-code', { token_url: 'http://127.0.0.1:4555/api/v1/oauth2/token' });
      expect(r.ok).toBe(true);
      if (r.ok) {
        expect(r.model.credential_kind).toBe('oauth_json');
        expect(r.model.oauth?.token_url).toBe('http://127.0.0.1:4555/api/v1/oauth2/token');
        expect(r.model.oauth?.provider).toBe('qwen-code');
      }
      const plain = await registry.add_template('local', 'openai', { token_url: 'https://example.com/token' });
      expect(plain.ok).toBe(false);
      if (!plain.ok) expect(plain.error).toMatch(/no token endpoint/);
      const bad = await registry.add_template('local', 'gemini-cli', { token_url: 'ftp://example.com/token' });
      expect(bad.ok).toBe(false);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
