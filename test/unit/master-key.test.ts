import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ByokError } from '../../src/errors.ts';
import { loadMasterKeys, makeKeyring, type MasterKeyLogger } from '../../src/secrets/master-key.ts';
import { getSodium } from '../../src/secrets/sodium.ts';

function recorder(): MasterKeyLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => void lines.push(`info ${m}`), warn: (m) => void lines.push(`warn ${m}`) };
}

async function configError(p: Promise<unknown>): Promise<ByokError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ByokError);
    expect((e as ByokError).code).toBe('config');
    return e as ByokError;
  }
  throw new Error('expected a config error');
}

describe('master key', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-mk-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('accepts standard and URL-safe base64 (padded or not) of 32 bytes, same id', async () => {
    const s = await getSodium();
    let raw = s.randombytes_buf(32);
    while (!/[+/]/.test(Buffer.from(raw).toString('base64'))) raw = s.randombytes_buf(32);
    const std = Buffer.from(raw).toString('base64');
    const url = Buffer.from(raw).toString('base64url');
    const ids = new Set<string>();
    for (const v of [std, url, std.replace(/=$/, ''), `${url}=`, `  ${std}\n`]) {
      const ring = await loadMasterKeys({ dataDir: dir, masterKey: v }, recorder(), {});
      expect(ring.current.id).toMatch(/^[0-9a-f]{8}$/);
      ids.add(ring.current.id);
    }
    expect(ids.size).toBe(1);
    expect(ids).toContain((await makeKeyring(raw)).current.id);
    // An env key never creates the embedded file.
    await expect(fs.access(path.join(dir, 'master.key'))).rejects.toThrow();
  });

  it('refuses a malformed BYOK_MASTER_KEY without echoing it', async () => {
    const s = await getSodium();
    const bad = [
      'not-a-master-key-at-all',
      Buffer.from(s.randombytes_buf(31)).toString('base64'),
      Buffer.from(s.randombytes_buf(33)).toString('base64'),
      Buffer.from(s.randombytes_buf(32)).toString('hex'),
      Buffer.from(s.randombytes_buf(32)).toString('base64').replace(/.$/, '!'),
      Buffer.from(s.randombytes_buf(32)).toString('base64').slice(0, 20) + '-_' + Buffer.from(s.randombytes_buf(32)).toString('base64').slice(22, 43) + '+',
      Buffer.alloc(32).toString('base64'),
    ];
    for (const v of bad) {
      const e = await configError(loadMasterKeys({ dataDir: dir, masterKey: v }, recorder(), {}));
      expect(e.message).toMatch(/BYOK_MASTER_KEY must be 32 random bytes in base64/);
      expect(e.message).not.toContain(v);
      expect(e.message).not.toContain(v.slice(0, 10));
      expect(JSON.stringify(e.details ?? {})).not.toContain(v.slice(0, 10));
    }
  });

  it('BYOK_MASTER_KEY_PREVIOUS: old keys readable by id; malformed entries refused without the value', async () => {
    const s = await getSodium();
    const [a, b, c] = [s.randombytes_buf(32), s.randombytes_buf(32), s.randombytes_buf(32)];
    const b64 = (k: Uint8Array) => Buffer.from(k).toString('base64');
    const ringA = await makeKeyring(a);
    const ringB = await makeKeyring(b);
    const ring = await loadMasterKeys({ dataDir: dir, masterKey: b64(c) }, recorder(), { BYOK_MASTER_KEY_PREVIOUS: ` ${b64(a)}, ${Buffer.from(b).toString('base64url')},,${b64(c)}` });
    expect(ring.ids).toHaveLength(3);
    expect(ring.byId(ringA.current.id)?.id).toBe(ringA.current.id);
    expect(ring.byId(ringB.current.id)).toBeDefined();
    expect(ring.byId('deadbeef')).toBeUndefined();
    // The config field wins over the environment.
    const ring2 = await loadMasterKeys({ dataDir: dir, masterKey: b64(c), masterKeyPrevious: b64(a) }, recorder(), { BYOK_MASTER_KEY_PREVIOUS: b64(b) });
    expect(ring2.ids).toEqual([ring.current.id, ringA.current.id]);

    const e = await configError(loadMasterKeys({ dataDir: dir, masterKey: b64(c) }, recorder(), { BYOK_MASTER_KEY_PREVIOUS: `${b64(a)},oops-${b64(b)}` }));
    expect(e.message).toMatch(/BYOK_MASTER_KEY_PREVIOUS entry 2/);
    expect(e.message).not.toContain(b64(b).slice(0, 10));
  });

  it('embedded default: generates master.key once (0600, dir 0700), logs where, reuses it', async () => {
    const dataDir = path.join(dir, 'nested', 'data');
    const log1 = recorder();
    const ring1 = await loadMasterKeys({ dataDir }, log1, {});
    const file = path.join(dataDir, 'master.key');
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(dataDir)).mode & 0o777).toBe(0o700);
    const text = (await fs.readFile(file, 'utf8')).trim();
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(log1.lines).toHaveLength(1);
    expect(log1.lines[0]).toMatch(/^info generated a new master key/);
    expect(log1.lines[0]).toContain(file);
    expect(log1.lines[0]).toContain(ring1.current.id);
    expect(log1.lines[0]).not.toContain(text);
    expect(log1.lines[0]).not.toContain(text.slice(0, 12));

    const log2 = recorder();
    const ring2 = await loadMasterKeys({ dataDir }, log2, {});
    expect(ring2.current.id).toBe(ring1.current.id);
    expect(log2.lines).toEqual([]);
    expect((await fs.readFile(file, 'utf8')).trim()).toBe(text);
  });

  it('concurrent first starts agree on one generated key', async () => {
    const logs = Array.from({ length: 6 }, recorder);
    const rings = await Promise.all(logs.map((l) => loadMasterKeys({ dataDir: dir }, l, {})));
    expect(new Set(rings.map((r) => r.current.id)).size).toBe(1);
    expect(logs.flatMap((l) => l.lines).filter((l) => l.includes('generated'))).toHaveLength(1);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses a malformed master.key (and never replaces it)', async () => {
    const file = path.join(dir, 'master.key');
    const junk = 'this-is-not-a-valid-master-key-file-content\n';
    await fs.writeFile(file, junk, { mode: 0o600 });
    const e = await configError(loadMasterKeys({ dataDir: dir }, recorder(), {}));
    expect(e.message).toContain(file);
    expect(e.message).toMatch(/Refusing to start/);
    expect(e.message).not.toContain(junk.trim().slice(0, 10));
    expect(await fs.readFile(file, 'utf8')).toBe(junk);

    await fs.rm(file);
    await fs.mkdir(file);
    await configError(loadMasterKeys({ dataDir: dir }, recorder(), {}));
  });

  it('distributed mode (redisUrl) never generates a key: refuses without BYOK_MASTER_KEY, writes nothing', async () => {
    const dataDir = path.join(dir, 'fresh');
    const e = await configError(loadMasterKeys({ dataDir, redisUrl: 'redis://127.0.0.1:6379' }, recorder(), {}));
    expect(e.message).toContain('distributed mode needs BYOK_MASTER_KEY, the same on every process');
    expect(e.message).toContain('openssl rand -base64 32');
    await expect(fs.access(dataDir)).rejects.toThrow(); // not even the directory
    // An existing master.key (an embedded install moved to Redis) is still used, and an env key works.
    const embedded = await loadMasterKeys({ dataDir }, recorder(), {});
    expect((await loadMasterKeys({ dataDir, redisUrl: 'redis://x' }, recorder(), {})).current.id).toBe(embedded.current.id);
    const s = await getSodium();
    const env = await loadMasterKeys({ dataDir: path.join(dir, 'other'), redisUrl: 'redis://x', masterKey: Buffer.from(s.randombytes_buf(32)).toString('base64') }, recorder(), {});
    expect(env.current.id).toMatch(/^[0-9a-f]{8}$/);
  });

  it('mayGenerate false (the store holds sealed data): a missing master.key refuses with the restore advice', async () => {
    const log = recorder();
    const e = await configError(loadMasterKeys({ dataDir: dir }, log, {}, { mayGenerate: false, sealedBy: '0badc0de' }));
    expect(e.message).toContain(path.join(dir, 'master.key'));
    expect(e.message).toContain('0badc0de');
    expect(e.message).toContain('Refusing to start: restore the file from a backup (or set BYOK_MASTER_KEY); do not delete it while sealed keys exist');
    expect(await fs.readdir(dir)).toEqual([]);
    expect(log.lines).toEqual([]);
    // mayGenerate only matters for a missing file: an existing one is read as always.
    await loadMasterKeys({ dataDir: dir }, recorder(), {});
    await loadMasterKeys({ dataDir: dir }, recorder(), {}, { mayGenerate: false });
  });

  it('tightens a world-readable master.key to 0600 with a warning', async () => {
    const first = await loadMasterKeys({ dataDir: dir }, recorder(), {});
    const file = path.join(dir, 'master.key');
    await fs.chmod(file, 0o644);
    const log = recorder();
    const again = await loadMasterKeys({ dataDir: dir }, log, {});
    expect(again.current.id).toBe(first.current.id);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(log.lines.some((l) => l.startsWith('warn') && l.includes('0600'))).toBe(true);
  });

  it('warns when BYOK_MASTER_KEY is set but an embedded master.key with another key exists', async () => {
    const s = await getSodium();
    const embedded = await loadMasterKeys({ dataDir: dir }, recorder(), {});
    const log = recorder();
    const env = await loadMasterKeys({ dataDir: dir, masterKey: Buffer.from(s.randombytes_buf(32)).toString('base64') }, log, {});
    expect(env.current.id).not.toBe(embedded.current.id);
    expect(log.lines.some((l) => l.startsWith('warn') && l.includes(embedded.current.id) && l.includes('BYOK_MASTER_KEY_PREVIOUS'))).toBe(true);
  });

  it('wipe() zeroes the keys', async () => {
    const s = await getSodium();
    const ring = await makeKeyring(s.randombytes_buf(32));
    const sub = ring.current.subkey('vault');
    ring.wipe();
    expect(sub.every((b) => b === 0)).toBe(true);
    expect(() => ring.current.subkey('vault')).toThrow(ByokError);
  });
});
