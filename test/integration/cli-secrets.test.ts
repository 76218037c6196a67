import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { main } from '../../src/cli.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';

/** Runs `byok ...` in-process against the app's data dir; returns exit code and parsed JSON. */
async function byok(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; json: any }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c));
  const code = await main(argv, { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env });
  return { code, json: JSON.parse(out) };
}

describe('byok CLI: request-key, test, rotate-master-key against a running app', () => {
  let app: App;
  let dataDir: string;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let env: Record<string, string>;
  const key = 'sk-' + randomBytes(24).toString('hex');
  const WS = 'tg:4242';
  let id = '';

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [key] });
    ({ app, dataDir, cleanup } = await testApp());
    await app.start();
    env = { BYOK_DATA_DIR: dataDir, PUBLIC_URL: app.config.publicUrl, BYOK_ALLOW_PRIVATE_BASE_URLS: '1' };
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });

  it('add answers need_env_input; request-key issues a link the running app accepts', async () => {
    const add = await byok(env, 'add', '--model', 'gpt-test', '--base-url', fake.baseUrl, '--name', 'Fake', '--env-var', 'FAKE_API_KEY', '--workspace', WS);
    expect(add.code).toBe(0);
    expect(add.json.need_env_input.env_vars).toEqual(['FAKE_API_KEY']);
    id = add.json.model.id;
    const req = await byok(env, 'request-key', id, '--workspace', WS);
    expect(req.code).toBe(0);
    expect(req.json.url).toMatch(new RegExp(`^${app.config.publicUrl}/s/[A-Za-z0-9_-]{43}$`));
    // A second request voids the first link.
    const again = await byok(env, 'request-key', id, '--workspace', WS);
    expect((await fetch(req.json.url)).status).toBe(410);
    const res = await submitForm(again.json.url, { FAKE_API_KEY: key });
    expect(res.status).toBe(202);
    await waitFor(async () => {
      const g = await app.registry.get(WS, id);
      return g.ok && g.model.status === 'active';
    }, 10_000, 'the model to become active');
    expect(await app.vault.has(WS, 'FAKE_API_KEY')).toBe(true);
    const list = await byok(env, 'list', '--workspace', WS);
    expect(list.json.models[0].status).toBe('active');
  });

  it('test probes the vendor with the stored key; a revoked key is reported, not thrown', async () => {
    const ok = await byok(env, 'test', id, '--workspace', WS);
    expect(ok.code).toBe(0);
    expect(ok.json.outcome).toBe('ok');
    fake.setKeys(['sk-another']);
    const bad = await byok(env, 'test', id, '--workspace', WS);
    expect(bad.code).toBe(1);
    expect(bad.json.outcome).toBe('invalid_key');
    expect(JSON.stringify(bad.json)).not.toContain(key.slice(3));
    fake.setKeys([key]);
  });

  it('rotate-master-key re-seals under the new key; the old one can then be dropped', async () => {
    const oldKey = fs.readFileSync(`${dataDir}/master.key`, 'utf8').trim();
    const newKey = randomBytes(32).toString('base64');
    const rot = await byok({ ...env, BYOK_MASTER_KEY: newKey, BYOK_MASTER_KEY_PREVIOUS: oldKey }, 'rotate-master-key');
    expect(rot.code).toBe(0);
    expect(rot.json.vault.resealed).toBeGreaterThanOrEqual(1);
    const after = await byok({ ...env, BYOK_MASTER_KEY: newKey }, 'test', id, '--workspace', WS);
    expect(after.json.outcome).toBe('ok');
  });

  it('unknown model and usage errors have stable exit codes', async () => {
    expect((await byok(env, 'request-key', 'nope-0000', '--workspace', WS)).code).toBe(1);
    expect((await byok(env, 'request-key')).code).toBe(2);
  });
});
