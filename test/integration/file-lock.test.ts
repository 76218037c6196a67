import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STALE = 400;

// Two FileStore instances on one data dir stand for two processes: each has its own
// in-process queue, so only the lock file keeps them apart.
describe('file store lock: heartbeat, stale takeover, ownership', () => {
  let dir: string;
  let lockFile: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-lock-'));
    lockFile = path.join(dir, 'workspaces', 'tg_1', '.lock');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a slow holder (mutate longer than the stale time) keeps its lock: the other waits', async () => {
    const a = new FileStore(dir, { lockStaleMs: STALE });
    const b = new FileStore(dir, { lockStaleMs: STALE });
    const events: string[] = [];
    const slow = a.updateDoc<number[], void>('tg:1', 'lockdoc', async (cur) => {
      events.push('a:start');
      await sleep(STALE * 4);
      events.push('a:end');
      return { value: [...(cur ?? []), 1], result: undefined };
    });
    await sleep(50);
    const fast = b.updateDoc<number[], void>('tg:1', 'lockdoc', (cur) => {
      events.push('b:start');
      return { value: [...(cur ?? []), 2], result: undefined };
    });
    await Promise.all([slow, fast]);
    expect(events).toEqual(['a:start', 'a:end', 'b:start']);
    expect(await b.getDoc('tg:1', 'lockdoc')).toEqual([1, 2]);
    expect(fs.existsSync(lockFile)).toBe(false);
  });

  it("a crashed holder's lock (old mtime) is taken over", async () => {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, '99999.deadbeef');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lockFile, old, old);
    const b = new FileStore(dir, { lockStaleMs: STALE });
    const t0 = Date.now();
    await b.updateDoc<string, void>('tg:1', 'lockdoc', () => ({ value: 'taken over', result: undefined }));
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await b.getDoc('tg:1', 'lockdoc')).toBe('taken over');
    expect(fs.existsSync(lockFile)).toBe(false);
  });

  it('a fresh lock of another holder is not taken over', async () => {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    fs.writeFileSync(lockFile, '99999.alive');
    const b = new FileStore(dir, { lockStaleMs: 5_000 });
    let ran = false;
    const p = b.updateDoc<string, void>('tg:1', 'lockdoc', () => {
      ran = true;
      return { value: 'x', result: undefined };
    });
    await sleep(500);
    expect(ran).toBe(false);
    expect(fs.readFileSync(lockFile, 'utf8')).toBe('99999.alive');
    fs.rmSync(lockFile); // the holder releases
    await p;
    expect(ran).toBe(true);
  });

  it('a holder that lost its lock does not delete the new holder’s lock', async () => {
    const a = new FileStore(dir, { lockStaleMs: 5_000 });
    let other: (() => Promise<void>) | undefined;
    await a.updateDoc<string, void>('tg:1', 'lockdoc', async () => {
      // Meanwhile another process took the lock over (as after a long pause of this one):
      // the lock is a proper-lockfile directory, so it removes ours and makes its own.
      fs.rmdirSync(lockFile);
      other = await lockfile.lock(path.join(dir, 'other-process'), { lockfilePath: lockFile, realpath: false, stale: 5_000 });
      return { value: 'a', result: undefined };
    });
    expect(fs.statSync(lockFile).isDirectory()).toBe(true);
    // Nothing else left beside it.
    expect(fs.readdirSync(path.dirname(lockFile)).filter((f) => f.startsWith('.lock'))).toEqual(['.lock']);
    await other!();
    expect(fs.existsSync(lockFile)).toBe(false);
  });

  it('a holder whose lock went stale and was taken over does not delete the new owner’s lock', async () => {
    const a = new FileStore(dir, { lockStaleMs: 3_000 });
    const b = new FileStore(dir, { lockStaleMs: 3_000 });
    let bStarted!: () => void;
    const bIn = new Promise<void>((r) => (bStarted = r));
    let lockAfterA: boolean | undefined;
    let bDone: Promise<void> | undefined;
    const aDone = a.updateDoc<string[], void>('tg:1', 'lockdoc', async (cur) => {
      // This holder stalls (its heartbeat did not run): the lock looks abandoned.
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(lockFile, old, old);
      bDone = b.updateDoc<string[], void>('tg:1', 'lockdoc', async (cur2) => {
        bStarted();
        await aDone; // a finishes and releases while b holds the lock
        lockAfterA = fs.existsSync(lockFile) && (await lockfile.check(path.join(dir, 'x'), { lockfilePath: lockFile, realpath: false, stale: 3_000 }));
        return { value: [...(cur2 ?? []), 'b'], result: undefined };
      });
      await bIn; // b took the stale lock over
      return { value: [...(cur ?? []), 'a'], result: undefined };
    });
    await aDone;
    await bDone;
    // b still held a live lock after a's release: a did not delete it.
    expect(lockAfterA).toBe(true);
    await b.close();
    expect(fs.existsSync(lockFile)).toBe(false);
  });
});
