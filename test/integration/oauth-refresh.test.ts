import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  isLoginAgain,
  parseCredentialFile,
  probeWithCredentials,
  readStoredSet,
  serializeTokenSet,
  withModelCredentials,
  type CredentialDeps,
} from '../../src/credentials/index.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import { makeKeyring, type MasterKeyring } from '../../src/secrets/master-key.ts';
import { readVaultMeta, Vault } from '../../src/secrets/vault.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import type { Store } from '../../src/store/types.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import { configureVendorNet, getDefaultNetOptions, type NetOptions } from '../../src/vendors/net.ts';
import { Submissions } from '../../src/secure-input/submissions.ts';
import { validateKeyHandler, type ValidateDeps } from '../../src/jobs/validate-key.ts';
import { createWire } from '../../src/vendors/wires/index.ts';
import { FAKE_CLIENT, startFakeOAuth, type FakeOAuth } from '../support/fake-oauth.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { ROOT, spawnModuleChild, type ModuleChild } from '../support/processes.ts';
import { useTestRedis } from '../support/redis.ts';

const NET: NetOptions = { allowPrivate: true, allowlist: [] };
const WS = 'tg:4242';
const ENV = 'QWEN_CODE_OAUTH';
const redisCtx = useTestRedis('oauth');

let oauth: FakeOAuth;
let vendor: FakeVendor;
let ring: MasterKeyring;
let masterKey: Uint8Array;
/** Access tokens the fake vendor accepts: issued by the fake OAuth server and not expired or revoked. */
const issued = new Set<string>();
const syncVendorKeys = () => vendor.setKeys([...issued].filter((t) => oauth.isValidAccess(t)));

beforeAll(async () => {
  oauth = await startFakeOAuth();
  vendor = await startFakeOpenAI({ keys: [] });
  // Qwen's token responses name the API host: here the fake OpenAI-compatible vendor.
  oauth.setResourceUrl(vendor.baseUrl.replace(/\/v1$/, ''));
  oauth.onIssue((t) => {
    issued.add(t);
    syncVendorKeys();
  });
  masterKey = new Uint8Array(randomBytes(32));
  ring = await makeKeyring(masterKey);
});
afterAll(async () => {
  await oauth.close();
  await vendor.close();
});

function qwenModel(): CustomModel {
  return {
    id: 'qwen3-coder-plus-a1b2',
    name: 'Qwen3 Coder Plus',
    vendor: 'qwen-code',
    wire: 'openai',
    upstream_model: 'qwen3-coder-plus',
    base_url: 'https://portal.qwen.ai/v1',
    api_key_env: ENV,
    extra_env_vars: [],
    key_optional: false,
    credential_kind: 'oauth_json',
    oauth: { provider: 'qwen-code', token_url: oauth.tokenUrl('qwen-code'), client_id: FAKE_CLIENT['qwen-code'].client_id, refresh_skew_seconds: 300, project_id: 'none' },
    headers: {},
    query: {},
    settings: {},
    request_fields: {},
    thinking: { style: 'none' },
    max_tokens: 64,
    capabilities: { json: false, vision: false, tools: false, reasoning: false },
    status: 'active',
    created_at: new Date().toISOString(),
    updated_at: new Date().toISOString(),
  };
}

interface Backing {
  name: 'file' | 'redis';
  open(): Store;
  /** What a child process needs to open the same backing (Redis only). */
  child?: { url: string; prefix: string };
  cleanup(): Promise<void>;
}

const backings: Array<[string, () => Backing]> = [
  [
    'file store',
    () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-oauth-'));
      return { name: 'file', open: () => new FileStore(dir), cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'Redis store',
    () => {
      const prefix = redisCtx.sub('oauth');
      return { name: 'redis', open: () => new RedisStore(redisCtx.url, prefix), child: { url: redisCtx.url, prefix }, cleanup: async () => undefined };
    },
  ],
];

const wire = createWire('openai', NET);

/** One vendor call as the relay makes it: a refused token throws VendorError (invalid_key on 401). */
async function call(deps: CredentialDeps, model = qwenModel()): Promise<string> {
  const r = await withModelCredentials(deps, WS, model, async (m, secrets) => {
    const res = await wire.probe(m, secrets);
    if (res.outcome !== 'ok') throw new VendorError(res.outcome, res.message ?? res.outcome, { whatToDo: 'resubmit_key', status: res.status });
    return new TextDecoder().decode(secrets[ENV]);
  });
  if (r === undefined) throw new Error('no credential stored');
  return r;
}

describe.each(backings)('OAuth refresh, one at a time across processes: %s', (_name, makeBacking) => {
  let backing: Backing;
  let stores: Store[];
  /** A "process": its own store client and vault over the shared backing. */
  const proc = (lock?: CredentialDeps['lock']): CredentialDeps => {
    const store = backing.open();
    stores.push(store);
    return { store, vault: new Vault(store, ring), net: NET, ...(lock && { lock }) };
  };

  beforeEach(() => {
    backing = makeBacking();
    stores = [];
    oauth.setDelay(0);
  });
  afterEach(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await backing.cleanup();
  });

  /** Stores a pasted Qwen Code file whose access token expires in `expiresInS`. */
  async function seed(deps: CredentialDeps, expiresInS: number) {
    const s = oauth.issue('qwen-code', { expiresInS });
    const text = JSON.stringify({ access_token: s.access_token, token_type: 'Bearer', refresh_token: s.refresh_token, resource_url: vendor.baseUrl.replace(/\/v1$/, ''), expiry_date: s.expiry_ms });
    const bytes = serializeTokenSet(parseCredentialFile('qwen-code', text));
    await deps.vault.put(WS, ENV, bytes, { kind: 'oauth_json', validated_at: new Date().toISOString(), expires_at: null, channel: { channel: 'test', chat_id: '4242' } });
    return s;
  }

  it('two callers on an expired token: exactly one refresh, both use the new token, the rotated refresh token is stored, meta kept', async () => {
    const a = proc();
    const b = proc();
    const first = await seed(a, -60);
    oauth.setDelay(200); // the second caller arrives while the first refresh is in flight
    const before = oauth.refreshes('qwen-code');
    const [ta, tb] = await Promise.all([call(a), call(b)]);
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
    expect(ta).toBe(tb);
    expect(ta).not.toBe(first.access_token);
    expect(oauth.isValidAccess(ta)).toBe(true);
    const stored = (await readStoredSet(a, WS, ENV, qwenModel().oauth!))!;
    expect(stored.ts.access_token).toBe(ta);
    expect(stored.ts.refresh_token).not.toBe(first.refresh_token);
    expect(oauth.liveRefreshTokens('qwen-code')).toContain(stored.ts.refresh_token);
    expect(oauth.liveRefreshTokens('qwen-code')).not.toContain(first.refresh_token);
    // The token's own host was used (resource_url from the token response).
    expect(stored.ts.resource_url).toBe(vendor.baseUrl.replace(/\/v1$/, ''));
    const [entry] = await readVaultMeta(a.store as Store, WS);
    expect(entry!.meta).toMatchObject({ kind: 'oauth_json', expires_at: null, channel: { channel: 'test', chat_id: '4242' } });
    // Fresh now: no further refresh.
    oauth.setDelay(0);
    expect(await call(b)).toBe(ta);
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
  });

  it('a 401 on an unexpired token: one refresh for two callers, the call is retried once with the new token', async () => {
    const a = proc();
    const b = proc();
    const first = await seed(a, 3600);
    oauth.revokeAccess(first.access_token); // the vendor stops accepting it early
    syncVendorKeys();
    oauth.setDelay(150);
    const before = oauth.refreshes('qwen-code');
    const [ta, tb] = await Promise.all([call(a), call(b)]);
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
    expect(ta).toBe(tb);
    expect(oauth.isValidAccess(ta)).toBe(true);
    // A 401 that persists after the refresh is not retried again.
    oauth.setDelay(0);
    oauth.revokeAccess(ta);
    syncVendorKeys();
    const r = await probeWithCredentials(a, WS, qwenModel(), (m, s, o) => wire.probe(m, s, o));
    expect(r!.result.outcome).toBe('ok'); // refreshed once more, then accepted
    expect(oauth.refreshes('qwen-code') - before).toBe(2);
  });

  it('a revoked refresh token: both callers are told to log in again, the endpoint is asked once', async () => {
    const a = proc();
    const b = proc();
    const first = await seed(a, -60);
    oauth.revoke(first.refresh_token);
    oauth.setDelay(150);
    const asked = () => oauth.requests.filter((r) => r.body.refresh_token === first.refresh_token).length;
    const errs = await Promise.all([call(a).catch((e: unknown) => e), call(b).catch((e: unknown) => e)]);
    for (const e of errs) {
      expect(isLoginAgain(e)).toBe(true);
      expect((e as VendorError).outcome).toBe('invalid_key');
      expect((e as Error).message).not.toContain(first.refresh_token);
    }
    expect(asked()).toBe(1);
    // The stored set is left as it was (nothing better exists); health probes answer invalid_key.
    const r = await probeWithCredentials(a, WS, qwenModel(), (m, s, o) => wire.probe(m, s, o));
    expect(r!.result.outcome).toBe('invalid_key');
    expect(r!.result.message).toMatch(/log in again in Qwen Code/);
  });

  it('a crashed holder’s lock lapses: the next caller refreshes after the lease, not never', async () => {
    const lock = { leaseMs: 800, waitMs: 5_000, pollMs: 25 };
    const a = proc(lock);
    await seed(a, -60);
    const [entry] = await readVaultMeta(a.store as Store, WS);
    // A process took the lease for this version and died (no release).
    expect(await a.store.putEphemeralIfAbsent(`oauth-refresh:${WS}:${ENV}:${entry!.version}`, 'dead-holder', lock.leaseMs)).toBe(true);
    const before = oauth.refreshes('qwen-code');
    const t0 = Date.now();
    const token = await call(a);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(oauth.isValidAccess(token)).toBe(true);
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
  });

  it('a new file pasted while a refresh is in flight wins: the refreshed set is not written over it', async () => {
    const a = proc();
    await seed(a, -60);
    oauth.setDelay(300);
    const pending = call(a);
    await new Promise((r) => setTimeout(r, 100));
    const replacement = await seed(proc(), 3600); // the user's new login, stored meanwhile
    const token = await pending;
    expect(token).toBe(replacement.access_token);
    const stored = (await readStoredSet(a, WS, ENV, qwenModel().oauth!))!;
    expect(stored.ts.refresh_token).toBe(replacement.refresh_token);
  });

  // Child processes share Redis only (the file store's cross-process lock has its own file-lock tests).
  if (_name === 'Redis store') it('two separate processes (Redis): one refresh, both get the new token', async () => {
    if (!backing.child) throw new Error('the Redis backing names no child connection');
    const a = proc();
    await seed(a, -60);
    oauth.setDelay(300);
    const before = oauth.refreshes('qwen-code');
    const model = qwenModel();
    const source = `
      const { createHash } = await import('node:crypto');
      const { RedisStore } = await import(${JSON.stringify(path.join(ROOT, 'src/store/redis-store.ts'))});
      const { Vault } = await import(${JSON.stringify(path.join(ROOT, 'src/secrets/vault.ts'))});
      const { makeKeyring } = await import(${JSON.stringify(path.join(ROOT, 'src/secrets/master-key.ts'))});
      const { withModelCredentials } = await import(${JSON.stringify(path.join(ROOT, 'src/credentials/index.ts'))});
      const model = JSON.parse(process.env.T_MODEL);
      const store = new RedisStore(process.env.T_URL, process.env.T_PREFIX);
      const ring = await makeKeyring(new Uint8Array(Buffer.from(process.env.T_MK, 'base64')));
      const deps = { store, vault: new Vault(store, ring), net: { allowPrivate: true, allowlist: [] } };
      process.stdout.write('READY\\n');
      while (!(await store.getEphemeral('go'))) await new Promise((r) => setTimeout(r, 5));
      const digest = await withModelCredentials(deps, process.env.T_WS, model, async (_m, s) => createHash('sha256').update(s[model.api_key_env]).digest('hex'));
      process.stdout.write('TOKEN ' + digest + '\\n');
      await store.close();
      process.exit(0);
    `;
    const env = { T_MODEL: JSON.stringify(model), T_URL: backing.child.url, T_PREFIX: backing.child.prefix, T_MK: Buffer.from(masterKey).toString('base64'), T_WS: WS };
    const children: ModuleChild[] = [spawnModuleChild(source, env), spawnModuleChild(source, env)];
    const outs: string[] = ['', ''];
    children.forEach((c, i) => c.child.stdout!.on('data', (d: Buffer) => (outs[i] += d.toString())));
    try {
      await Promise.all(children.map((c) => c.waitOut(/READY/, 30_000)));
      await a.store.putEphemeral('go', '1', 60_000);
      await Promise.all(children.map((c) => c.waitOut(/TOKEN [0-9a-f]{64}/, 30_000)));
    } finally {
      await Promise.all(children.map((c) => c.killHard()));
    }
    const digests = outs.map((o) => /TOKEN ([0-9a-f]{64})/.exec(o)![1]);
    expect(digests[0]).toBe(digests[1]);
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
    const stored = (await readStoredSet(a, WS, ENV, model.oauth!))!;
    expect(createHash('sha256').update(stored.ts.access_token).digest('hex')).toBe(digests[0]);
    expect(oauth.isValidAccess(stored.ts.access_token)).toBe(true);
    expect(oauth.liveRefreshTokens('qwen-code')).toContain(stored.ts.refresh_token);
  }, 60_000);
});

describe('validate-key with an OAuth credentials file (file store)', () => {
  let dir: string;
  let store: Store;
  let vault: Vault;
  let savedNet: NetOptions;
  const statuses: Array<Record<string, unknown>> = [];
  const notices: Array<Record<string, unknown>> = [];
  const registryCalls: string[] = [];
  let model: CustomModel;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-oauth-validate-'));
    store = new FileStore(dir);
    vault = new Vault(store, ring);
    statuses.length = 0;
    notices.length = 0;
    registryCalls.length = 0;
    model = { ...qwenModel(), status: 'validating' };
    // The token endpoint is a loopback fake: let the process-wide vendor policy reach it.
    savedNet = getDefaultNetOptions();
    configureVendorNet(NET);
  });
  afterEach(async () => {
    configureVendorNet(savedNet);
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function handler() {
    const registry = {
      get: async () => ({ ok: true, model }),
      set_status: async (_ws: string, _id: string, status: string) => void registryCalls.push(`status ${status}`),
      set_status_and_key: async (_ws: string, _id: string, _env: string, status: string) => void registryCalls.push(`status ${status}`),
      record_key_attempt: async (_ws: string, _id: string, a: { outcome: string }) => void registryCalls.push(`attempt ${a.outcome}`),
    };
    return validateKeyHandler({
      registry: registry as unknown as ValidateDeps['registry'],
      vault,
      // The test's "box" is the plaintext itself: sealing is covered by the worker-flow tests.
      boxKeys: { open: async (_k: string, sealed: Uint8Array) => new Uint8Array(sealed) },
      submissions: new Submissions(store),
      requests: { setStatus: async (_h: string, s: Record<string, unknown>) => void statuses.push(s) } as unknown as ValidateDeps['requests'],
      notifyQueue: { enqueue: async (_n: string, p: unknown) => void notices.push(p as Record<string, unknown>) } as unknown as ValidateDeps['notifyQueue'],
      logger: { warn() {}, info() {}, error() {}, debug() {} } as unknown as ValidateDeps['logger'],
      probe: (m, s, o) => wire.probe(m, s, o),
    });
  }

  async function submit(text: string, extra: { expires_in_days?: number; lang?: 'en' | 'zh' } = {}) {
    const sub = await new Submissions(store).add(WS, {
      model_id: model.id,
      key_id: 'k1',
      sealed: { [ENV]: Buffer.from(text).toString('base64') },
      token_hash: 'h1',
      channel: { channel: 'test', chat_id: '4242' },
      lang: extra.lang ?? 'en',
      ...(extra.expires_in_days !== undefined && { expires_in_days: extra.expires_in_days }),
    });
    return handler()({ workspace: WS, submission_id: sub.id, model_id: model.id } as never, {} as never);
  }

  it('an expired file is refreshed, probed and stored sealed in its own shape with meta; masked by the refresh token', async () => {
    const s = oauth.issue('qwen-code', { expiresInS: -60 });
    const text = JSON.stringify({ access_token: s.access_token, token_type: 'Bearer', refresh_token: s.refresh_token, resource_url: 'portal.qwen.ai', expiry_date: s.expiry_ms, id_token: 'keep-me' });
    const before = oauth.refreshes('qwen-code');
    expect(await submit(text, { expires_in_days: 7 })).toBe('ok');
    expect(oauth.refreshes('qwen-code') - before).toBe(1);
    const stored = (await readStoredSet({ store, vault }, WS, ENV, model.oauth!))!;
    expect(stored.ts.refresh_token).not.toBe(s.refresh_token);
    expect(oauth.liveRefreshTokens('qwen-code')).toContain(stored.ts.refresh_token);
    expect(stored.ts.doc.id_token).toBe('keep-me');
    expect(statuses.at(-1)).toMatchObject({ status: 'ok', masked_key: `****${stored.ts.refresh_token.slice(-4)}` });
    const [entry] = await readVaultMeta(store, WS);
    expect(entry!.meta).toMatchObject({ kind: 'oauth_json', channel: { channel: 'test', chat_id: '4242' } });
    const days = (Date.parse(entry!.meta!.expires_at!) - Date.parse(entry!.meta!.validated_at!)) / 86_400_000;
    expect(days).toBeCloseTo(7, 3);
    // Nothing in the store holds a token in clear.
    const raw = fs.readdirSync(dir, { recursive: true }).map((f) => { const p = path.join(dir, String(f)); return fs.statSync(p).isFile() ? fs.readFileSync(p, 'latin1') : ''; }).join('\n');
    for (const tok of [s.refresh_token, stored.ts.refresh_token, stored.ts.access_token]) expect(raw).not.toContain(tok);
  });

  it('another CLI’s file is a definite form error in the user’s language, never sent to the vendor', async () => {
    const g = oauth.issue('gemini-cli');
    const before = oauth.requests.length;
    const vendorCalls = vendor.requests.length;
    const err = await submit(JSON.stringify({ access_token: g.access_token, refresh_token: g.refresh_token, expiry_date: g.expiry_ms }), { lang: 'zh' }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('UnrecoverableJobError');
    expect(oauth.requests.length).toBe(before);
    expect(vendor.requests.length).toBe(vendorCalls);
    expect(statuses.at(-1)).toMatchObject({ code: 'form_error', what_to_do: 'open_new_form' });
    expect(String(statuses.at(-1)!.message)).toContain('Gemini CLI');
    expect(String(statuses.at(-1)!.message)).toContain('不是 Qwen Code');
    expect(JSON.stringify([statuses, notices])).not.toContain(g.refresh_token);
    expect(registryCalls).toContain('status pending_key');
    expect(await vault.has(WS, ENV)).toBe(false);
  });

  it('a revoked login is invalid_key ("log in again"), not retried', async () => {
    const s = oauth.issue('qwen-code', { expiresInS: -60 });
    oauth.revoke(s.refresh_token);
    const err = await submit(JSON.stringify({ access_token: s.access_token, refresh_token: s.refresh_token, resource_url: 'portal.qwen.ai', expiry_date: s.expiry_ms })).catch((e: unknown) => e);
    expect((err as Error).name).toBe('UnrecoverableJobError');
    expect(statuses.at(-1)).toMatchObject({ code: 'invalid_key' });
    expect(String(statuses.at(-1)!.message)).toMatch(/log in again in Qwen Code/);
    expect(registryCalls).toContain('status key_error');
  });
});
