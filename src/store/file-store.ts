import { createHash, randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import YAML from 'yaml';
import { ByokError } from '../errors.ts';
import { workspaceDirName, workspaceFromDirName } from '../workspace.ts';
import { bucketStep, checkBucket, isValidWorkspace, SYSTEM_SCOPE, type Store, type TokenBucketOptions } from './types.ts';

/** Documents kept as YAML for people to read; everything else as JSON. */
const YAML_DOCS = new Set(['custom_models']);
/** A lock not refreshed for this long belongs to a crashed holder (holders refresh it every third of it; proper-lockfile's floor is 2 s). */
const LOCK_STALE_MS = 10_000;
/** Parsed YAML documents kept by their exact text (YAML parsing costs ~0.3 ms a document). */
const PARSE_CACHE_MAX = 2_000;

/**
 * Embedded store: one folder per workspace under `<dataDir>/workspaces/`, each document a
 * file written atomically (temp file + rename) under a per-scope lock. The lock is an
 * in-process queue plus a proper-lockfile lock directory, so the CLI and a running bot can
 * share a data dir.
 *
 * Cost notes. Every `fs/promises` call is a round trip through libuv's thread pool, which
 * costs far more than the syscall behind it for the small metadata operations here (creating
 * and removing the lock file, reading a few-KiB document, claiming an ephemeral file):
 * those run synchronously (tens of µs, no event-loop stall worth the name). Writing a
 * document's temp file and renaming it over the old one wait for the disk, so they stay
 * asynchronous. Folders are not created on every update: a missing folder shows up as
 * ENOENT, is created then, and the operation retried. A YAML document whose text is
 * unchanged since it was last parsed is not parsed again (a copy of the earlier result is
 * returned): same text, same value, whichever process wrote it.
 */
export class FileStore implements Store {
  readonly kind = 'file' as const;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly counters = new Map<string, { n: number; expires: number }>();
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly parsed = new Map<string, { text: string; value: unknown }>();

  private readonly lockStaleMs: number;

  constructor(
    readonly dataDir: string,
    opts: { lockStaleMs?: number } = {},
  ) {
    this.lockStaleMs = opts.lockStaleMs ?? LOCK_STALE_MS;
  }

  private scopeDir(scope: string): string {
    if (scope !== SYSTEM_SCOPE && !isValidWorkspace(scope)) {
      throw new ByokError('invalid_input', `invalid workspace id "${scope.slice(0, 80)}"`);
    }
    return path.join(this.dataDir, 'workspaces', workspaceDirName(scope));
  }

  private docPath(scope: string, name: string): string {
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(name)) throw new ByokError('invalid_input', `invalid document name "${name}"`);
    return path.join(this.scopeDir(scope), `${name}.${YAML_DOCS.has(name) ? 'yaml' : 'json'}`);
  }

  async getDoc<T>(scope: string, name: string): Promise<T | undefined> {
    return this.readDoc<T>(this.docPath(scope, name), name);
  }

  private readDoc<T>(file: string, name: string): T | undefined {
    let text: string;
    try {
      text = fsSync.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (!YAML_DOCS.has(name)) return JSON.parse(text) as T;
    const hit = this.parsed.get(file);
    if (hit && hit.text === text) return structuredClone(hit.value) as T;
    const value = YAML.parse(text) as unknown;
    this.parsed.delete(file);
    if (this.parsed.size >= PARSE_CACHE_MAX) this.parsed.delete(this.parsed.keys().next().value!);
    this.parsed.set(file, { text, value: structuredClone(value) });
    return value as T;
  }

  async updateDoc<T, R>(
    scope: string,
    name: string,
    mutate: (current: T | undefined) => Promise<{ value: T | undefined; result: R }> | { value: T | undefined; result: R },
  ): Promise<R> {
    const file = this.docPath(scope, name);
    return this.withLock(scope, async () => {
      const current = this.readDoc<T>(file, name);
      const { value, result } = await mutate(current);
      if (value === undefined) {
        fsSync.rmSync(file, { force: true });
      } else {
        const text = YAML_DOCS.has(name) ? YAML.stringify(value) : JSON.stringify(value);
        await writeAtomic(file, text);
      }
      return result;
    });
  }

  async listScopes(name: string): Promise<string[]> {
    const root = path.join(this.dataDir, 'workspaces');
    let dirs: string[];
    try {
      dirs = await fs.readdir(root);
    } catch {
      return [];
    }
    const ext = YAML_DOCS.has(name) ? 'yaml' : 'json';
    const out: string[] = [];
    for (const d of dirs) {
      try {
        await fs.access(path.join(root, d, `${name}.${ext}`));
        const ws = workspaceFromDirName(d);
        if (ws !== undefined) out.push(ws);
      } catch {
        /* no such document */
      }
    }
    return out.sort();
  }

  private ephemeralPath(key: string): string {
    return path.join(this.dataDir, 'ephemeral', createHash('sha256').update(key).digest('hex') + '.json');
  }

  async putEphemeral(key: string, value: string, ttlMs: number): Promise<void> {
    await writeAtomic(this.ephemeralPath(key), JSON.stringify({ value, expires: Date.now() + ttlMs }));
  }

  async getEphemeral(key: string): Promise<string | undefined> {
    const file = this.ephemeralPath(key);
    try {
      const rec = JSON.parse(fsSync.readFileSync(file, 'utf8')) as { value: string; expires: number };
      if (rec.expires <= Date.now()) {
        fsSync.rmSync(file, { force: true });
        return undefined;
      }
      return rec.value;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  async takeEphemeral(key: string): Promise<string | undefined> {
    const file = this.ephemeralPath(key);
    // rename is atomic: of two concurrent takers (even in two processes) only one wins.
    const claimed = `${file}.taken-${randomBytes(6).toString('hex')}`;
    try {
      fsSync.renameSync(file, claimed);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const rec = JSON.parse(fsSync.readFileSync(claimed, 'utf8')) as { value: string; expires: number };
      return rec.expires > Date.now() ? rec.value : undefined;
    } finally {
      fsSync.rmSync(claimed, { force: true });
    }
  }

  async deleteEphemeral(key: string): Promise<void> {
    fsSync.rmSync(this.ephemeralPath(key), { force: true });
  }

  /**
   * Exclusive create of the value's file (O_EXCL): atomic across processes on one data dir.
   * An expired value still on disk is claimed by renaming it away first (rename is atomic:
   * of two claimers only one moves it), then the create races as usual.
   */
  async putEphemeralIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const file = this.ephemeralPath(key);
    const text = JSON.stringify({ value, expires: Date.now() + ttlMs });
    // Written whole to a temp file and hard-linked into place: the link fails when the name
    // exists, and no reader ever sees a half-written value.
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          if (attempt === 0 || !fsSync.existsSync(tmp)) fsSync.writeFileSync(tmp, text, { mode: 0o600 });
          fsSync.linkSync(tmp, file);
          return true;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') {
            fsSync.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
            continue;
          }
          if (code !== 'EEXIST') throw e;
        }
        if ((await this.getEphemeral(key)) !== undefined) return false;
        // Expired (getEphemeral removed it): try the link again.
      }
      return false;
    } finally {
      fsSync.rmSync(tmp, { force: true });
    }
  }

  /** Token buckets are per process in the embedded mode (one process serves everything). */
  async takeToken(bucket: string, opts: TokenBucketOptions): Promise<number> {
    checkBucket(opts);
    const { state, waitMs } = bucketStep(this.buckets.get(bucket), Date.now(), opts);
    this.buckets.set(bucket, state);
    return waitMs;
  }

  /**
   * Removes expired one-time values and leftovers of a crash mid-take or mid-write. Redis
   * expires its own keys; files would otherwise stay until read again. (A value re-put at the
   * very moment its predecessor is swept could be lost; keys here are per token, never re-put
   * after expiry.)
   */
  async sweepExpired(now = Date.now()): Promise<number> {
    const dir = path.join(this.dataDir, 'ephemeral');
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        if (name.endsWith('.json')) {
          const rec = JSON.parse(await fs.readFile(file, 'utf8')) as { expires?: number };
          if (!(typeof rec.expires === 'number' && rec.expires > now)) {
            await fs.rm(file, { force: true });
            removed++;
          }
        } else if (/\.taken-[0-9a-f]+$|\.tmp$/.test(name)) {
          const st = await fs.stat(file);
          if (now - st.mtimeMs > 60_000) {
            await fs.rm(file, { force: true });
            removed++;
          }
        }
      } catch {
        /* taken or replaced meanwhile */
      }
    }
    return removed;
  }

  /** Rate counters are per process in the embedded mode (one process serves everything). */
  async incr(key: string, ttlMs: number): Promise<number> {
    const now = Date.now();
    const c = this.counters.get(key);
    if (!c || c.expires <= now) {
      this.counters.set(key, { n: 1, expires: now + ttlMs });
      if (this.counters.size > 100_000) this.sweepCounters(now);
      return 1;
    }
    c.n += 1;
    return c.n;
  }

  private sweepCounters(now: number): void {
    for (const [k, v] of this.counters) if (v.expires <= now) this.counters.delete(k);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.chains.values()]);
  }

  private async withLock<R>(scope: string, fn: () => Promise<R>): Promise<R> {
    const prev = this.chains.get(scope) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.withFileLock(scope, fn));
    this.chains.set(scope, run);
    try {
      return await run;
    } finally {
      if (this.chains.get(scope) === run) this.chains.delete(scope);
    }
  }

  /**
   * The cross-process lock, by proper-lockfile: a `.lock` directory in the workspace folder
   * (mkdir is atomic), its mtime refreshed while `fn` runs (so a slow writer keeps it), taken
   * over once not refreshed for `lockStaleMs` (a crashed holder). Waiting is ours: short
   * polls until a deadline, as before.
   */
  private async withFileLock<R>(scope: string, fn: () => Promise<R>): Promise<R> {
    const dir = this.scopeDir(scope);
    const lock = new DirLock(dir, path.join(dir, '.lock'), this.lockStaleMs);
    const deadline = Date.now() + Math.max(30_000, 3 * this.lockStaleMs);
    for (let wait = 2; !lock.tryAcquire(); wait = Math.min(wait * 2, 50)) {
      if (Date.now() > deadline) throw new ByokError('internal', `workspace ${scope} is locked`);
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      return await fn();
    } finally {
      lock.release();
    }
  }
}

/**
 * One acquisition of a workspace lock. proper-lockfile refreshes the lock (heartbeat), takes
 * over stale ones, and refuses to release a lock its heartbeat found taken over. The gap
 * between two heartbeats is closed here: before releasing, the lock must still be the
 * directory we created (same inode and birth time) with the mtime our heartbeat last wrote
 * (recorded through the fs proper-lockfile is given). Otherwise it is someone else's now and
 * is left alone (the heartbeat then marks ours compromised). The mtime alone cannot tell:
 * proper-lockfile stamps a new lock with the next whole second + 5 ms, the same for every
 * lock made within one second.
 */
class DirLock {
  private releaseFn?: () => void;
  private lastMtimeMs?: number;
  private identity?: string;
  private compromised = false;
  private readonly fs: typeof fsSync;

  constructor(
    private readonly dir: string,
    private readonly lockPath: string,
    private readonly staleMs: number,
  ) {
    // The fs methods below are handed to proper-lockfile, which calls them unbound.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    // Handed to lockSync, which calls the *Sync methods (metadata operations stay synchronous,
    // as everywhere in this store). Records the mtimes proper-lockfile writes on our lock (on
    // acquire and each heartbeat); removes a lock *file* a crashed older version left.
    this.fs = {
      ...fsSync,
      utimesSync(p: fsSync.PathLike, atime: fsSync.TimeLike, mtime: fsSync.TimeLike) {
        fsSync.utimesSync(p, atime, mtime);
        if (p === self.lockPath) self.lastMtimeMs = new Date(mtime as Date).getTime();
      },
      rmdirSync(p: fsSync.PathLike) {
        try {
          fsSync.rmdirSync(p);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e;
          fsSync.unlinkSync(p);
        }
      },
    } as typeof fsSync;
  }

  /** True when acquired; false when another holder has a fresh lock. Creates the folder when missing. */
  tryAcquire(): boolean {
    for (let attempt = 0; ; attempt++) {
      try {
        this.releaseFn = lockfile.lockSync(this.dir, {
          lockfilePath: this.lockPath,
          realpath: false,
          stale: this.staleMs,
          update: this.staleMs / 3,
          fs: this.fs,
          onCompromised: () => {
            this.compromised = true;
          },
        });
        const st = fsSync.statSync(this.lockPath);
        this.identity = identityOf(st);
        // proper-lockfile sets the mtime on acquire through our fs (recorded); stat if it did not.
        this.lastMtimeMs ??= st.mtime.getTime();
        return true;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ELOCKED') return false;
        if (code !== 'ENOENT' || attempt > 0) throw e;
        fsSync.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      }
    }
  }

  release(): void {
    const release = this.releaseFn;
    this.releaseFn = undefined;
    if (!release || this.compromised) return;
    let st: fsSync.Stats;
    try {
      st = fsSync.statSync(this.lockPath);
    } catch {
      return; // removed by someone else: nothing of ours to delete
    }
    if (identityOf(st) !== this.identity || st.mtime.getTime() !== this.lastMtimeMs) return;
    try {
      release();
    } catch {
      /* ERELEASED: the heartbeat found it lost meanwhile */
    }
  }
}

function identityOf(st: fsSync.Stats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeMs}`;
}

/** Temp file + rename, so readers see the old or the new text, never a part. Creates the folder when missing. */
export async function writeAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, text, { mode });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fs.writeFile(tmp, text, { mode });
  }
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}
