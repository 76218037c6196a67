import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { Confirmations } from '../../src/chat/confirmations.ts';
import { main } from '../../src/cli.ts';
import { runExpirySweep, runKeyHealth } from '../../src/jobs/key-health.ts';
import { VAULT_DOC, type KeyMeta, type VaultDoc } from '../../src/secrets/vault.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { LogCapture, testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { useTestRedis } from '../support/redis.ts';

/**
 * A key's whole life after validation, against both stores: /byok keys, /byok key delete
 * (confirm, cancel, stale button), /byok forget, the CLI's keys / delete-key / forget and
 * key fields in list, the expiry sweep and the periodic health check (with notices sent
 * once). Keys are stored directly through the vault (their validation is tested elsewhere);
 * the fake vendor's accepted keys change between health runs.
 */

const redis = useTestRedis('keylife');
const HOUR = 3_600_000;

/** A channel that also keeps the buttons it was sent. */
class ButtonChannel extends RecordingChannel {
  readonly buttons: string[][] = [];
  override async send(chat: Parameters<RecordingChannel['send']>[0], msg: Parameters<RecordingChannel['send']>[1]) {
    this.buttons.push((msg.choices ?? []).flat().map((c) => c.data ?? ''));
    return super.send(chat, msg);
  }
}

const backends: Array<{ name: string; env: () => Record<string, string> }> = [
  { name: 'file store', env: () => ({}) },
  {
    name: 'Redis store',
    env: () => ({ REDIS_URL: redis.url, BYOK_REDIS_PREFIX: redis.sub('app'), BYOK_MASTER_KEY: randomBytes(32).toString('base64') }),
  },
];

describe.each(backends)('key life: $name', ({ name, env: makeEnv }) => {
  let app: App;
  let dataDir: string;
  let logs: LogCapture;
  let cleanup: () => Promise<void>;
  let chan: ButtonChannel;
  let fake: FakeVendor;
  let env: Record<string, string>;
  let user = 500;
  let uid = '';
  const ws = () => `tg:${uid}`;
  const say = (text: string) => chan.say(text, uid);
  const keys: string[] = [];
  const newKey = () => {
    const k = 'sk-life-' + randomBytes(16).toString('hex');
    keys.push(k);
    return k;
  };

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    env = { BYOK_KEY_HEALTH_INTERVAL_HOURS: '1', ...makeEnv() };
    ({ app, dataDir, logs, cleanup } = await testApp(env));
    expect([app.store.kind, app.maintenanceRunner.kind]).toEqual(name === 'file store' ? ['file', 'inprocess'] : ['redis', 'bullmq']);
    chan = new ButtonChannel('test');
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
    // Canary: no stored key in any reply, notice or log line.
    const all = chan.texts() + logs.text();
    for (const k of keys) {
      expect(all).not.toContain(k);
      expect(all).not.toContain(k.slice(4, -4));
    }
  });
  beforeEach(() => {
    uid = String(++user) + (name === 'file store' ? '1' : '2');
    fake.setKeys(undefined);
    fake.setBehaviour('ok');
  });

  /** A custom model on the fake vendor, its key stored and active. */
  async function modelWithKey(key: string, meta: KeyMeta = {}, envVar = 'FAKE_API_KEY'): Promise<string> {
    const add = await app.registry.add(ws(), { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: 'Fake', api_key_env: envVar });
    if (!add.ok) throw new Error(JSON.stringify(add));
    await app.vault.put(ws(), envVar, new TextEncoder().encode(key), { kind: 'api_key', channel: { channel: 'test', chat_id: uid, user_id: uid }, validated_at: new Date().toISOString(), ...meta });
    await app.registry.set_key_status(ws(), envVar, 'active');
    return add.model.id;
  }
  async function status(id: string): Promise<{ status: string; code?: string }> {
    const g = await app.registry.get(ws(), id);
    if (!g.ok) throw new Error('model gone');
    return { status: g.model.status, code: g.model.last_error?.code };
  }
  /** Notices sent to this user's chat. */
  const notices = () => chan.sent.filter((s) => s.chat.chat_id === uid).map((s) => s.text);
  async function byok(...argv: string[]): Promise<{ code: number; json: any }> {
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (c: Buffer) => (out += c));
    const code = await main([...argv, '--workspace', ws()], { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dataDir, ...env } });
    return { code, json: JSON.parse(out) };
  }

  it('/byok keys lists each key masked, with kind, dates, health and models; never the key', async () => {
    const key = newKey();
    const exp = new Date(Date.now() + 10 * 24 * HOUR).toISOString();
    const id = await modelWithKey(key, { expires_at: exp });
    await say('/byok keys');
    const text = chan.last();
    expect(text).toContain(`FAKE_API_KEY (api_key) ****${key.slice(-4)}`);
    expect(text).toContain(`custom/${id}`);
    expect(text).toContain(exp.slice(0, 10));
    expect(text).toMatch(/health: not checked yet/);
    expect(text).not.toContain(key);
    await say('/byok key delete');
    expect(chan.last()).toMatch(/Usage: \/byok key delete/);
  });

  it('/byok key delete asks, /byok cancel keeps the key, a stale button does nothing, /byok confirm deletes it and the models ask for a key', async () => {
    const key = newKey();
    const id = await modelWithKey(key);
    await say('/byok key delete FAKE_API_KEY');
    expect(chan.last()).toMatch(/Delete your .* key \*\*\*\*.{4} \(FAKE_API_KEY\)\?/);
    const [confirmBtn, cancelBtn] = chan.buttons.at(-1)!;
    expect(confirmBtn).toMatch(/^\/byok confirm #[0-9a-f]{10}$/);
    expect(cancelBtn).toBe('/byok cancel');
    // The question is in the store: another process (another store client) sees it.
    if (app.store.kind === 'redis') {
      const other = new RedisStore(redis.url, env.BYOK_REDIS_PREFIX);
      try {
        expect(await new Confirmations(other).has(ws())).toBe(true);
      } finally {
        await other.close();
      }
    }
    await say(cancelBtn);
    expect(chan.last()).toBe('Cancelled.');
    await say(confirmBtn);
    expect(chan.last()).toMatch(/nothing to confirm/);
    expect(await app.vault.has(ws(), 'FAKE_API_KEY')).toBe(true);
    expect((await status(id)).status).toBe('active');

    // By model id this time; a button of an older question cannot confirm the new one.
    await say(`/byok key delete custom/${id}`);
    const fresh = chan.buttons.at(-1)![0]!;
    await say('/byok confirm #00000000aa');
    expect(chan.last()).toMatch(/nothing to confirm/);
    await say(fresh);
    expect(chan.last()).toMatch(/Deleted your .* key \*\*\*\*.{4} \(FAKE_API_KEY\)\. Waiting for a new key: custom\//);
    expect(await app.vault.has(ws(), 'FAKE_API_KEY')).toBe(false);
    expect(await status(id)).toEqual({ status: 'pending_key', code: 'key_deleted' });
    // Tapped twice (or by two processes): acted once.
    await say(fresh);
    expect(chan.last()).toMatch(/nothing to confirm/);
    // The model stays registered; the next message to it brings the secure form.
    const forms = chan.forms.length;
    await say(`/model custom/${id}`);
    expect(chan.forms.length).toBe(forms + 1);
    await say('hello');
    expect(chan.texts()).toMatch(/has no key yet/);
  });

  it('deletes both names of an AWS key pair (Bedrock) by vendor, typed /byok confirm', async () => {
    const add = await app.registry.add_template(ws(), 'bedrock');
    expect(add.ok).toBe(true);
    const enc = new TextEncoder();
    const secret = newKey();
    await app.vault.put(ws(), 'AWS_ACCESS_KEY_ID', enc.encode('AKIA' + randomBytes(8).toString('hex').toUpperCase()), { kind: 'aws_keypair' });
    await app.vault.put(ws(), 'AWS_SECRET_ACCESS_KEY', enc.encode(secret), { kind: 'aws_keypair' });
    await app.registry.set_key_status(ws(), 'AWS_ACCESS_KEY_ID', 'active');
    await say('/byok keys');
    expect(chan.last()).toContain('AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (aws_keypair)');
    await say('/byok key delete bedrock');
    expect(chan.last()).toMatch(/AWS_ACCESS_KEY_ID \+ AWS_SECRET_ACCESS_KEY/);
    await say('/byok confirm');
    expect(chan.last()).toMatch(/Deleted/);
    expect(await app.vault.list(ws())).toEqual([]);
    expect((await status(add.ok ? add.model.id : '')).status).toBe('pending_key');
  });

  it('an AWS pair no model uses any more (the model moved on): still one Bedrock key, deleted whole by either name (chat and CLI)', async () => {
    const enc = new TextEncoder();
    const put = async () => {
      await app.vault.put(ws(), 'AWS_ACCESS_KEY_ID', enc.encode('AKIA' + randomBytes(8).toString('hex').toUpperCase()), { kind: 'aws_keypair' });
      await app.vault.put(ws(), 'AWS_SECRET_ACCESS_KEY', enc.encode(newKey()), { kind: 'aws_keypair' });
    };
    await put();
    // No model references the pair (e.g. its model switched to a Bedrock API key).
    await say('/byok keys');
    expect(chan.last()).toContain('Amazon Bedrock: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (aws_keypair)');
    expect(chan.last()).not.toMatch(/AWS_SECRET_ACCESS_KEY: AWS_SECRET_ACCESS_KEY/);
    await say('/byok key delete AWS_ACCESS_KEY_ID');
    await say('/byok confirm');
    expect(chan.last()).toMatch(/Deleted/);
    expect(await app.vault.list(ws())).toEqual([]);
    await put();
    const del = await byok('delete-key', 'AWS_ACCESS_KEY_ID', '--yes');
    expect(del.json.deleted.sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    expect(await app.vault.list(ws())).toEqual([]);
  });

  it('/byok forget deletes keys, models, usage, chat state and pending forms after confirmation, and says how many', async () => {
    const id = await modelWithKey(newKey());
    await say(`/model custom/${id}`);
    await say('hello there'); // usage + history
    const other = await app.registry.add(ws(), { upstream_model: 'other', base_url: fake.baseUrl, name: 'Other', api_key_env: 'OTHER_API_KEY' });
    await say(`/byok key ${other.ok ? other.model.id : ''}`); // a pending form
    const formUrl = chan.forms.at(-1)!.url;
    expect((await fetch(formUrl)).status).toBe(200);
    await say('/byok forget');
    // Counts read right whatever they are (no "1 stored keys").
    expect(chan.last()).toMatch(/This deletes your stored keys \(1\), your models \(2\)/);
    expect(chan.last()).not.toMatch(/\b1 \w+s\b/);
    await say('/byok cancel');
    expect((await app.registry.list_models(ws())).ok).toBe(true);
    expect(await app.vault.list(ws())).toHaveLength(1);
    await say('/byok forget');
    await say(chan.buttons.at(-1)![0]!);
    expect(chan.last()).toMatch(/Deleted: keys 1, models 2, usage records 1, pending forms 1, pending submissions 0, chat messages 2\./);
    expect(chan.last()).not.toMatch(/\b1 \w+s\b/);
    expect(await app.vault.list(ws())).toEqual([]);
    const list = await app.registry.list_models(ws(), { include_removed: true });
    expect(list.ok && list.models).toEqual([]);
    expect((await app.router.usage.get(ws())).models).toEqual({});
    expect((await app.router.state.get(ws())).history).toEqual([]);
    expect((await fetch(formUrl)).status).toBe(410);
  });

  it('CLI: keys, list/get key fields, delete-key (needs --yes), forget (needs --yes)', async () => {
    const key = newKey();
    const id = await modelWithKey(key);
    const k = await byok('keys');
    expect(k.code).toBe(0);
    expect(k.json.keys).toHaveLength(1);
    expect(k.json.keys[0]).toMatchObject({ env_var: 'FAKE_API_KEY', kind: 'api_key', masked: `****${key.slice(-4)}`, models: [id], health: { status: 'unchecked' }, expires_at: null });
    const list = await byok('list');
    expect(list.code).toBe(0);
    expect(list.json.models[0].status).toBe('active'); // existing fields unchanged
    expect(list.json.models[0].key).toMatchObject({ env_vars: ['FAKE_API_KEY'], stored: true, masked: `****${key.slice(-4)}`, health: { status: 'unchecked' } });
    const get = await byok('get', id);
    expect(get.json.model.key.masked).toBe(`****${key.slice(-4)}`);
    expect(JSON.stringify([k.json, list.json, get.json])).not.toContain(key);

    const no = await byok('delete-key', 'FAKE_API_KEY');
    expect(no.code).toBe(2);
    expect(no.json).toMatchObject({ ok: false, code: 'usage' });
    expect(no.json.error).toMatch(/--yes/);
    expect(await app.vault.has(ws(), 'FAKE_API_KEY')).toBe(true);
    const missing = await byok('delete-key', 'NOPE_KEY', '--yes');
    expect(missing.code).toBe(1);
    expect(missing.json.code).toBe('not_found');
    const del = await byok('delete-key', id, '--yes');
    expect(del.code).toBe(0);
    expect(del.json).toMatchObject({ ok: true, deleted: ['FAKE_API_KEY'], models: [id], models_status: 'pending_key' });
    expect(await app.vault.has(ws(), 'FAKE_API_KEY')).toBe(false);
    expect((await status(id)).status).toBe('pending_key');
    expect((await byok('list')).json.models[0].key).toMatchObject({ stored: false, masked: null });

    const noForget = await byok('forget');
    expect(noForget.code).toBe(2);
    const forget = await byok('forget', '--yes');
    expect(forget.code).toBe(0);
    expect(forget.json.deleted).toMatchObject({ keys: 0, models: 1 });
    expect((await byok('list')).json.models).toEqual([]);
  });

  it('expiry: one "expires tomorrow" notice, then the key is deleted, its models need a key, one "expired" notice', async () => {
    const key = newKey();
    const exp = new Date(Date.now() + 30 * HOUR).toISOString();
    const id = await modelWithKey(key, { expires_at: exp });
    const deps = app.keyJobs;
    const before = notices().length;
    expect(await runExpirySweep({ ...deps, now: () => Date.now() + 2 * HOUR })).toMatchObject({ expired: 0, warned: 0 });
    expect((await runExpirySweep({ ...deps, now: () => Date.now() + 7 * HOUR })).warned).toBe(1);
    expect((await runExpirySweep({ ...deps, now: () => Date.now() + 8 * HOUR })).warned).toBe(0);
    await app.notifyRunner.drain();
    expect(notices().length).toBe(before + 1);
    expect(notices().at(-1)).toMatch(new RegExp(`key \\*\\*\\*\\*${key.slice(-4)} \\(FAKE_API_KEY\\) expires tomorrow, ${exp.slice(0, 10)}.*/byok key ${id}`));

    expect((await runExpirySweep({ ...deps, now: () => Date.now() + 31 * HOUR })).expired).toBe(1);
    expect((await runExpirySweep({ ...deps, now: () => Date.now() + 32 * HOUR })).expired).toBe(0);
    await app.notifyRunner.drain();
    expect(notices().length).toBe(before + 2);
    expect(notices().at(-1)).toBe(`🗑 Your ${new URL(fake.baseUrl).host} key ****${key.slice(-4)} (FAKE_API_KEY) expired and was deleted. Send /byok key ${id} to add a new one.`);
    expect(await app.vault.list(ws())).toEqual([]);
    expect(await status(id)).toEqual({ status: 'pending_key', code: 'key_expired' });
  });

  it('a key notice names the vendor in the reader\'s language (zh: 深度求索 DeepSeek), in the chat and in /byok keys', async () => {
    const add = await app.registry.add_template(ws(), 'deepseek', { base_url: fake.baseUrl });
    if (!add.ok) throw new Error(JSON.stringify(add));
    const envVar = add.model.api_key_env;
    const exp = new Date(Date.now() + 30 * HOUR).toISOString();
    const channel = { channel: 'test', chat_id: uid, user_id: uid, lang: 'zh' as const };
    await app.vault.put(ws(), envVar, new TextEncoder().encode(newKey()), { kind: 'api_key', channel, validated_at: new Date().toISOString(), expires_at: exp });
    await app.registry.set_key_status(ws(), envVar, 'active');
    expect((await runExpirySweep({ ...app.keyJobs, now: () => Date.now() + 7 * HOUR })).warned).toBe(1);
    await app.notifyRunner.drain();
    expect(notices().at(-1)).toContain('深度求索 DeepSeek');
    await chan.say('/byok keys', uid, { lang: 'zh' });
    expect(chan.last()).toContain('深度求索 DeepSeek');
  });

  it('expiry: a key already past expires_at is not used even before the sweep, and is deleted by it', async () => {
    const key = newKey();
    const id = await modelWithKey(key, { expires_at: new Date(Date.now() - 60_000).toISOString() });
    expect(await app.vault.has(ws(), 'FAKE_API_KEY')).toBe(false);
    expect(await app.vault.withKey(ws(), 'FAKE_API_KEY', async () => 'opened')).toBeUndefined();
    await say('/byok keys');
    expect(chan.last()).toMatch(/health: expired, being deleted/);
    await runExpirySweep(app.keyJobs);
    await app.notifyRunner.drain();
    expect(notices().at(-1)).toMatch(/expired and was deleted/);
    expect((await status(id)).status).toBe('pending_key');
    expect((await app.store.getDoc<VaultDoc>(ws(), VAULT_DOC)) ?? {}).toEqual({});
  });

  it('health: ok records meta without re-sealing; revoked → key_error + one notice; still revoked → no second notice; quota → quota_exceeded; ok again → active; transient changes nothing', async () => {
    const key = newKey();
    const id = await modelWithKey(key, { validated_at: new Date(Date.now() - 2 * HOUR).toISOString() });
    // Keep the other tests' keys out of these runs: this user's key only.
    const mine = async (opts = { force: true }) => {
      const r = await runKeyHealth({ ...app.keyJobs, store: app.store }, opts);
      await app.notifyRunner.drain();
      return r;
    };
    fake.setKeys([key]);
    const sealedBefore = (await app.store.getDoc<VaultDoc>(ws(), VAULT_DOC))!.FAKE_API_KEY!;
    const r1 = await mine();
    expect(r1.ok).toBeGreaterThanOrEqual(1);
    const after = (await app.store.getDoc<VaultDoc>(ws(), VAULT_DOC))!.FAKE_API_KEY!;
    expect({ ct: after.ct, nonce: after.nonce, fp: after.fp, last4: after.last4, updated_at: after.updated_at }).toEqual({
      ct: sealedBefore.ct,
      nonce: sealedBefore.nonce,
      fp: sealedBefore.fp,
      last4: sealedBefore.last4,
      updated_at: sealedBefore.updated_at,
    });
    expect(after.meta?.health?.status).toBe('ok');
    expect(Date.parse(after.meta!.validated_at!)).toBeGreaterThan(Date.now() - 60_000);

    // Checked just now: an unforced run (a restart) does not probe it again.
    const probed = () => fake.requests.filter((q) => q.key === key).length;
    const n = probed();
    const r0 = await mine({ force: false });
    expect(r0.skipped_recent).toBeGreaterThanOrEqual(1);
    expect(probed()).toBe(n);

    const before = notices().length;
    fake.setKeys(['sk-someone-else']);
    await mine();
    expect(await status(id)).toEqual({ status: 'key_error', code: 'invalid_key' });
    expect(notices().length).toBe(before + 1);
    expect(notices().at(-1)).toMatch(new RegExp(`no longer accepts your key \\*\\*\\*\\*${key.slice(-4)} \\(FAKE_API_KEY\\), so custom/${id} stopped working\\. Send /byok key ${id}`));
    await mine();
    expect(notices().length).toBe(before + 1); // no second notice for the same state

    fake.setKeys([key]);
    fake.setBehaviour('quota_exceeded');
    await mine();
    expect(await status(id)).toEqual({ status: 'key_error', code: 'quota_exceeded' });
    expect(notices().length).toBe(before + 2);
    expect(notices().at(-1)).toMatch(/has no quota or balance left/);
    await mine();
    expect(notices().length).toBe(before + 2);

    fake.setBehaviour('ok');
    await mine();
    expect((await status(id)).status).toBe('active');
    fake.setBehaviour('rate_limited');
    const r = await mine();
    expect(r.inconclusive).toBeGreaterThanOrEqual(1);
    expect((await status(id)).status).toBe('active');
    expect((await app.vault.list(ws()))[0]!.meta?.health?.status).toBe('ok');
    expect(notices().length).toBe(before + 2);
    await say('/byok keys');
    expect(chan.last()).toMatch(/health: ok \(checked /);
  });
});
