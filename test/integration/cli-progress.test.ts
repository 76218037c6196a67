import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { main } from '../../src/cli.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';

/** A slow `byok test` says on stderr that it is still waiting; stdout stays one JSON document. */

const KEY = 'sk-progress-' + '0123456789abcdef0123';

describe('byok: progress on stderr while a command waits', () => {
  let app: App;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let id = '';

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [KEY] });
    ({ app, dataDir, cleanup } = await testApp({}, { runWorker: false }));
    const add = await app.registry.add('local', { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: 'Slow', api_key_env: 'SLOW_API_KEY' });
    if (!add.ok) throw new Error(JSON.stringify(add));
    id = add.model.id;
    await app.vault.put('local', 'SLOW_API_KEY', new TextEncoder().encode(KEY), { kind: 'api_key', validated_at: new Date().toISOString() });
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });

  async function byok(argv: string[], progressEveryMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c));
    stderr.on('data', (c: Buffer) => (err += c));
    const env = { BYOK_DATA_DIR: dataDir, BYOK_ALLOW_PRIVATE_BASE_URLS: '1' };
    const code = await main(argv, { stdin: new PassThrough(), stdout, stderr, env }, { progressEveryMs });
    return { code, stdout: out, stderr: err };
  }

  it('a slow vendor: "checking … still waiting (N s)" lines on stderr, clean JSON on stdout', async () => {
    fake.setLatency(1300);
    try {
      const r = await byok(['test', id], 400);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, outcome: 'ok', model_id: id });
      expect(r.stderr).toMatch(new RegExp(`^checking \\S+ \\(custom/${id}\\)… still waiting \\(\\d+ s\\)$`, 'm'));
      expect(r.stderr.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(2);
      expect(r.stdout + r.stderr).not.toContain(KEY);
    } finally {
      fake.setLatency(0);
    }
  });

  it('names the user\'s own endpoint by its host, not "Any OpenAI-compatible endpoint"', async () => {
    const add = await app.registry.add_template('local', 'openai-compatible', { base_url: fake.baseUrl, upstream_model: 'gpt-test', name: 'Own' });
    if (!add.ok) throw new Error(JSON.stringify(add));
    fake.setLatency(900);
    try {
      const r = await byok(['test', add.model.id], 300);
      expect(r.stderr).toContain(`checking ${new URL(fake.baseUrl).host} (custom/${add.model.id})… still waiting`);
      expect(r.stderr).not.toContain('Any OpenAI-compatible');
    } finally {
      fake.setLatency(0);
    }
  });

  it('a fast command prints nothing on stderr', async () => {
    const r = await byok(['get', id], 400);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).model.id).toBe(id);
  });
});
