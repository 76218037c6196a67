import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.ts';
import { main as cli } from '../../src/cli.ts';
import { loadConfig } from '../../src/config.ts';
import { ByokError } from '../../src/errors.ts';
import { t } from '../../src/i18n/index.ts';
import { createLogger } from '../../src/log.ts';
import { MASTER_KEY_DOC } from '../../src/secrets/keyring-check.ts';
import { makeKeyring } from '../../src/secrets/master-key.ts';
import { LogCapture, issueFormLink } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { keysWithPrefix, useTestRedis } from '../support/redis.ts';

/**
 * One master key per store, across processes: a process with another key refuses to start
 * and changes nothing; distributed mode never generates a key; a deleted master.key is not
 * replaced beside sealed data; a process that lacks a form key pair's master key leaves the
 * submission for one that has it; rotate-master-key moves the store's record.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WS = 'tg:1'; // RecordingChannel.say's default user
const RESTORE = 'Refusing to start: restore the file from a backup (or set BYOK_MASTER_KEY); do not delete it while sealed keys exist';
const DISTRIBUTED = 'distributed mode needs BYOK_MASTER_KEY, the same on every process; generate one with `openssl rand -base64 32`';

const redisCtx = useTestRedis('mk');

interface Proc {
  app: App;
  dataDir: string;
  logs: LogCapture;
  chan: RecordingChannel;
  stop(): Promise<void>;
}

const procs: Proc[] = [];
const dirs: string[] = [];
let fake: FakeVendor;

function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-mk-'));
  dirs.push(d);
  return d;
}

function newKey(): string {
  return randomBytes(32).toString('base64');
}

async function idOf(k: string): Promise<string> {
  const ring = await makeKeyring(new Uint8Array(Buffer.from(k, 'base64')));
  const id = ring.current.id;
  ring.wipe();
  return id;
}

function redisEnv(prefix: string, masterKey?: string): Record<string, string> {
  return { REDIS_URL: redisCtx.url, BYOK_REDIS_PREFIX: prefix, ...(masterKey ? { BYOK_MASTER_KEY: masterKey } : {}) };
}

/** A createApp start as `npm start` / `npm run worker` does it (not started yet). */
async function boot(env: Record<string, string>, opts: { dataDir?: string; runWorker?: boolean } = {}): Promise<Proc> {
  const dataDir = opts.dataDir ?? tmpDir();
  const config = loadConfig({ BYOK_DATA_DIR: dataDir, PORT: String(await freePort()), HOST: '127.0.0.1', BYOK_ALLOW_PRIVATE_BASE_URLS: '1', ...env });
  const logs = new LogCapture();
  const app = await createApp({
    config,
    logger: createLogger({ level: 'debug', destination: logs }),
    retry: { attempts: 2, backoffMs: 20, maxBackoffMs: 50 },
    runWorker: opts.runWorker ?? true,
  });
  const chan = new RecordingChannel();
  app.addChannel(chan);
  let stopped = false;
  const p: Proc = {
    app,
    dataDir,
    logs,
    chan,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await app.stop();
    },
  };
  procs.push(p);
  return p;
}

async function refused(env: Record<string, string>, opts: { dataDir?: string; runWorker?: boolean } = {}): Promise<ByokError> {
  try {
    await boot(env, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ByokError);
    expect((e as ByokError).code).toBe('config');
    return e as ByokError;
  }
  throw new Error('expected the start to be refused');
}

/** `npm run worker` as a real process: exit code and output. */
async function runWorkerProcess(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  // One process (node --import tsx), so the fallback SIGKILL reaches the worker itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), NO_COLOR: '1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, out };
}

async function byok(env: Record<string, string>, ...argv: string[]): Promise<{ code: number; json: any }> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (c: Buffer) => (out += c));
  const code = await cli(argv, { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env });
  return { code, json: JSON.parse(out) };
}

function docKey(prefix: string, name: string): string {
  return `${prefix}doc:{_system}:${name}`;
}

/** A model on the fake vendor in `app`'s store, with a fresh one-time form link. */
async function modelWithForm(app: App): Promise<{ id: string; env: string; url: string }> {
  const added = await app.registry.add(WS, { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: `m ${randomBytes(3).toString('hex')}`, api_key_env: 'FAKE_API_KEY' });
  if (!added.ok) throw new Error(added.error);
  const m = added.model;
  const req = { url: await issueFormLink(app, WS, m, '1') };
  return { id: m.id, env: m.api_key_env, url: req.url };
}

function canary(): string {
  return 'sk-proj-' + randomBytes(30).toString('base64url');
}

beforeAll(async () => {
  fake = await startFakeOpenAI({ reply: 'pong' });
});
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop().catch(() => undefined);
  fake.setKeys(undefined);
});
afterAll(async () => {
  await fake.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('master key shared by every process (Redis)', () => {
  it('a process with another BYOK_MASTER_KEY refuses, names both ids, and leaves the form keys byte-for-byte as they were', async () => {
    const prefix = redisCtx.sub('two');
    const [k1, k2] = [newKey(), newKey()];
    const [id1, id2] = [await idOf(k1), await idOf(k2)];
    const web = await boot(redisEnv(prefix, k1), { runWorker: false });
    await web.app.start();
    const boxBefore = await redisCtx.redis.get(docKey(prefix, 'box_keys'));
    const recordBefore = await redisCtx.redis.get(docKey(prefix, MASTER_KEY_DOC));
    expect(boxBefore).toBeTruthy();
    expect(JSON.parse(recordBefore!).id).toBe(id1);
    expect(recordBefore).not.toContain(k1.slice(0, 12)); // an id, never the key

    // The worker of the issue: a new host, another key, a fresh data dir.
    const e = await refused(redisEnv(prefix, k2), { runWorker: true });
    expect(e.message).toContain(`sealed under master key ${id1}`);
    expect(e.message).toContain(`this process has master key ${id2}`);
    expect(e.message).toContain('Set the same BYOK_MASTER_KEY on every process');
    expect(e.message).toMatch(/BYOK_MASTER_KEY_PREVIOUS and run `byok rotate-master-key`/);
    expect(e.message).not.toContain(k1.slice(0, 12));
    expect(e.message).not.toContain(k2.slice(0, 12));
    // A real `npm run worker` with that key prints the same and exits 1.
    const worker = await runWorkerProcess({ ...redisEnv(prefix, k2), BYOK_DATA_DIR: tmpDir() });
    expect(worker.code).toBe(1);
    expect(worker.out).toContain('byok worker failed to start: config:');
    expect(worker.out).toContain(id1);
    expect(worker.out).toContain(id2);
    expect(worker.out).not.toContain(k2.slice(0, 12));

    expect(await redisCtx.redis.get(docKey(prefix, 'box_keys'))).toBe(boxBefore);
    expect(await redisCtx.redis.get(docKey(prefix, MASTER_KEY_DOC))).toBe(recordBefore);
    // The first process still serves its form key pair.
    expect((await web.app.boxKeys.current()).id).toBe(Object.keys(JSON.parse(boxBefore!).keys)[0]);
  }, 90_000);

  it('two processes with different keys starting at once on a fresh store: exactly one starts', async () => {
    const prefix = redisCtx.sub('race');
    const [k1, k2] = [newKey(), newKey()];
    const results = await Promise.allSettled([boot(redisEnv(prefix, k1)), boot(redisEnv(prefix, k2))]);
    const ok = results.filter((r) => r.status === 'fulfilled');
    const bad = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(bad).toHaveLength(1);
    expect((bad[0].reason as ByokError).code).toBe('config');
    const winnerKey = results[0].status === 'fulfilled' ? k1 : k2;
    expect(JSON.parse((await redisCtx.redis.get(docKey(prefix, MASTER_KEY_DOC)))!).id).toBe(await idOf(winnerKey));
    expect((bad[0].reason as ByokError).message).toContain(await idOf(winnerKey));
  });

  it('Redis mode without BYOK_MASTER_KEY and an empty data dir refuses and writes no master.key (nor anything in Redis)', async () => {
    const prefix = redisCtx.sub('nokey');
    const dataDir = tmpDir();
    const e = await refused(redisEnv(prefix), { dataDir });
    expect(e.message).toContain(DISTRIBUTED);
    expect(fs.readdirSync(dataDir)).toEqual([]);
    const worker = await runWorkerProcess({ ...redisEnv(prefix), BYOK_DATA_DIR: dataDir });
    expect(worker.code).toBe(1);
    expect(worker.out).toContain(DISTRIBUTED);
    expect(fs.readdirSync(dataDir)).toEqual([]);
    expect(await keysWithPrefix(redisCtx.redis, prefix)).toEqual([]);
  }, 90_000);

  it('a worker without the form key pair\'s master key leaves the submission pending (retried, never rejected); a worker with it validates it', async () => {
    const prefix = redisCtx.sub('stale');
    const [kOld, kNew] = [newKey(), newKey()];
    const idNew = await idOf(kNew);
    // A worker started before the rotation, with the old key only.
    const oldWorker = await boot(redisEnv(prefix, kOld), { runWorker: true });
    await oldWorker.app.start();
    const rot = await byok({ ...redisEnv(prefix, kNew), BYOK_MASTER_KEY_PREVIOUS: kOld, BYOK_DATA_DIR: tmpDir() }, 'rotate-master-key');
    expect(rot.code).toBe(0);
    const web = await boot(redisEnv(prefix, kNew), { runWorker: false });
    await web.app.start();

    const key = canary();
    fake.setKeys([key]);
    const { id, env, url } = await modelWithForm(web.app);
    const before = fake.requests.length;
    const res = await submitForm(url, { [env]: key });
    expect(res.status).toBe(202);
    // Both attempts fail in the old worker; the last one leaves the submission pending.
    const status = await waitFor(
      async () => {
        const b = (await (await fetch(res.statusUrl)).json()) as { code?: string };
        return b.code === 'pending_retry' ? b : undefined;
      },
      30_000,
      'the old worker to give up on the job',
    );
    expect(status.code).toBe('pending_retry');
    const warnings = oldWorker.logs.lines.filter((l) => l.includes('lacks the master key of the form key pair'));
    expect(warnings.length).toBeGreaterThanOrEqual(2);
    expect(warnings.join('\n')).toContain(idNew);
    expect(oldWorker.logs.text()).not.toContain(key);
    expect(await web.app.submissions.forModel(WS, id)).toBeDefined();
    expect(await web.app.vault.has(WS, env)).toBe(false);
    expect(fake.requests.slice(before).filter((r) => r.key === key)).toEqual([]);
    const got = await web.app.registry.get(WS, id);
    expect(got.ok && got.model.status).toBe('validating');
    expect(web.chan.results.filter((r) => r.model_id === id).map((r) => r.outcome)).not.toContain('rejected');

    // The old worker can no longer even start again; a correctly configured one finishes the job.
    await oldWorker.stop();
    const e = await refused(redisEnv(prefix, kOld), { runWorker: true });
    expect(e.message).toContain(idNew);
    const newWorker = await boot(redisEnv(prefix, kNew), { runWorker: true });
    await newWorker.app.start();
    await waitFor(
      async () => {
        const g = await web.app.registry.get(WS, id);
        // The submission goes last (after the status and the notification).
        return g.ok && g.model.status === 'active' && !(await web.app.submissions.forModel(WS, id));
      },
      30_000,
      'the new worker to validate the pending submission',
    );
    expect(await web.app.submissions.forModel(WS, id)).toBeUndefined();
    expect(await web.app.vault.withKey(WS, env, async (k) => Buffer.from(k).toString('utf8'))).toBe(key);
    expect(((await (await fetch(res.statusUrl)).json()) as { status?: string }).status).toBe('ok');
  }, 120_000);

  it('rotate-master-key moves the record: only-new starts, only-old refuses; a running old process tells the chat to restore the key', async () => {
    const prefix = redisCtx.sub('rotate');
    const [kA, kB] = [newKey(), newKey()];
    const [idA, idB] = [await idOf(kA), await idOf(kB)];
    const a = await boot(redisEnv(prefix, kA));
    await a.app.start();
    const key = canary();
    fake.setKeys([key]);
    const added = await a.app.registry.add(WS, { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: 'Rotated', api_key_env: 'FAKE_API_KEY' });
    if (!added.ok) throw new Error(added.error);
    await a.app.vault.put(WS, 'FAKE_API_KEY', new TextEncoder().encode(key));
    await a.app.registry.set_status(WS, added.model.id, 'active');
    await a.chan.say(`/model custom/${added.model.id}`);
    await a.chan.say('hello');
    expect(a.chan.last()).toBe('pong');

    // B alone is refused before the rotation.
    expect((await refused(redisEnv(prefix, kB))).message).toContain(`sealed under master key ${idA}`);
    const rot = await byok({ ...redisEnv(prefix, kB), BYOK_MASTER_KEY_PREVIOUS: kA, BYOK_DATA_DIR: tmpDir() }, 'rotate-master-key');
    expect(rot.code).toBe(0);
    expect(rot.json.master_key_id).toBe(idB);
    expect(rot.json.store_master_key.id).toBe(idB);
    expect(rot.json.vault.resealed).toBe(1);
    expect(rot.json.box_keys).toEqual({ resealed: 1, unopenable: 0 });
    const record = JSON.parse((await redisCtx.redis.get(docKey(prefix, MASTER_KEY_DOC)))!);
    expect(record.id).toBe(idB);
    expect(record.rotated_at).toBeTruthy();

    // The process still running with A alone cannot open the re-sealed key: the chat says why.
    await a.chan.say('hello again');
    expect(a.chan.last()).toBe(t('en', 'error.master_key_missing'));
    expect(a.chan.last()).not.toBe(t('en', 'error.generic'));
    await a.chan.say('你好', '1', { lang: 'zh' });
    expect(a.chan.last()).toBe(t('zh', 'error.master_key_missing'));
    expect(a.chan.texts()).not.toContain(key);
    expect(a.logs.text()).not.toContain(key);

    const e = await refused(redisEnv(prefix, kA));
    expect(e.message).toContain(`sealed under master key ${idB}`);
    expect(e.message).toContain(`this process has master key ${idA}`);
    const b = await boot(redisEnv(prefix, kB));
    await b.app.start();
    await b.chan.say('hello from B');
    expect(b.chan.last()).toBe('pong');
    expect(await b.app.vault.withKey(WS, 'FAKE_API_KEY', async (k) => Buffer.from(k).toString('utf8'))).toBe(key);
  }, 90_000);
});

describe('embedded master.key', () => {
  it('a deleted master.key is not regenerated while sealed keys exist (with and without the record)', async () => {
    const dataDir = tmpDir();
    const file = path.join(dataDir, 'master.key');
    const first = await boot({}, { dataDir });
    await first.app.start();
    const id: string = JSON.parse(fs.readFileSync(path.join(dataDir, 'workspaces', '_system', `${MASTER_KEY_DOC}.json`), 'utf8')).id;
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    await first.app.vault.put(WS, 'OPENAI_API_KEY', new TextEncoder().encode('sk-embedded-test-key-000000000001'));
    await first.stop();
    const saved = fs.readFileSync(file);

    fs.rmSync(file);
    const e = await refused({}, { dataDir });
    expect(e.message).toContain(RESTORE);
    expect(e.message).toContain(file);
    expect(e.message).toContain(id);
    expect(fs.existsSync(file)).toBe(false);
    expect(fs.readdirSync(dataDir).filter((f) => f.startsWith('master.key'))).toEqual([]);

    // A store from before the record: the sealed vault documents alone are enough.
    fs.rmSync(path.join(dataDir, 'workspaces', '_system', `${MASTER_KEY_DOC}.json`));
    fs.rmSync(path.join(dataDir, 'workspaces', '_system', 'box_keys.json'));
    const e2 = await refused({}, { dataDir });
    expect(e2.message).toContain(RESTORE);
    expect(e2.message).toContain(id);
    expect(fs.existsSync(file)).toBe(false);

    // Another key in BYOK_MASTER_KEY is refused too (it cannot open the vault).
    const e3 = await refused({ BYOK_MASTER_KEY: newKey() }, { dataDir });
    expect(e3.message).toContain(`sealed under master key ${id}`);
    expect(e3.message).toContain('Restore the master key this store was sealed with');

    // Restored from the backup: starts, opens the key, and writes the record again.
    fs.writeFileSync(file, saved, { mode: 0o600 });
    const again = await boot({}, { dataDir });
    await again.app.start();
    expect(await again.app.vault.withKey(WS, 'OPENAI_API_KEY', async (k) => Buffer.from(k).toString('utf8'))).toBe('sk-embedded-test-key-000000000001');
    expect(JSON.parse(fs.readFileSync(path.join(dataDir, 'workspaces', '_system', `${MASTER_KEY_DOC}.json`), 'utf8')).id).toBe(id);
  });

  it('a fresh data dir still generates master.key and records its id', async () => {
    const dataDir = tmpDir();
    const p = await boot({}, { dataDir });
    const text = fs.readFileSync(path.join(dataDir, 'master.key'), 'utf8').trim();
    const rec = JSON.parse(fs.readFileSync(path.join(dataDir, 'workspaces', '_system', `${MASTER_KEY_DOC}.json`), 'utf8'));
    expect(rec.id).toBe(await idOf(text));
    expect(JSON.stringify(rec)).not.toContain(text.slice(0, 12));
    await p.stop();
  });
});
