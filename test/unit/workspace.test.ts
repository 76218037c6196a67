import { describe, expect, it } from 'vitest';
import { formatWorkspace, isValidWorkspace, parseWorkspace, SYSTEM_SCOPE, workspaceDirName, workspaceFromDirName } from '../../src/workspace.ts';

/** A small seeded generator (mulberry32), so a failure names a reproducible case. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WX_CHARS = 'abcXYZ019@._-';
/** Pieces that look like the store's own separators, to provoke ambiguity. */
const TRICKY = ['group_', 'tg_', 'wx_', 'room-', '_', '__', 'group', '@chatroom', '.', '-'];

function oddWorkspace(r: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const kind = Math.floor(r() * 4);
  const digits = () => `${r() < 0.3 ? '-' : ''}${Math.floor(r() * 1e12) + 1}`;
  if (kind === 0) return `tg:${digits()}`;
  if (kind === 1) return `tg:group:${digits()}`;
  if (kind === 2) {
    let id = '';
    const n = 1 + Math.floor(r() * 6);
    for (let i = 0; i < n; i++) id += r() < 0.5 ? pick(TRICKY) : pick([...WX_CHARS]);
    return `wx:${id}`;
  }
  let name = pick([...'abcxyz']);
  const n = Math.floor(r() * 10);
  for (let i = 0; i < n; i++) name += pick([...'abc019-']);
  return name;
}

describe('workspace ids', () => {
  it('parse and format round-trip, and only valid ids parse', () => {
    for (const ws of ['local', 'tg:42', 'tg:-5', 'tg:group:-1001', 'wx:group_abc', 'wx:room-x@chatroom', 'ops']) {
      const p = parseWorkspace(ws);
      expect(p, ws).toBeDefined();
      expect(formatWorkspace(p!)).toBe(ws);
    }
    expect(parseWorkspace('wx:group_abc')).toEqual({ kind: 'wechat', id: 'group_abc' });
    for (const bad of ['', 'tg:abc', 'wx:', 'wx:a/b', 'wx:..', 'wx:a..b', 'Local', '../x', 'tg:group:', SYSTEM_SCOPE]) {
      expect(parseWorkspace(bad), bad).toBeUndefined();
      expect(isValidWorkspace(bad), bad).toBe(false);
    }
  });

  it('the file store folder name reads back as the same workspace, for 5,000 odd ids', () => {
    const r = rng(20261202);
    let wechatGroupLike = 0;
    for (let i = 0; i < 5000; i++) {
      const ws = oddWorkspace(r);
      if (!isValidWorkspace(ws)) continue;
      if (ws.startsWith('wx:group_')) wechatGroupLike++;
      const dir = workspaceDirName(ws);
      expect(dir, ws).not.toMatch(/[:/\\]/);
      expect(workspaceFromDirName(dir), `${ws} -> ${dir}`).toBe(ws);
      expect(formatWorkspace(parseWorkspace(ws)!)).toBe(ws);
    }
    // The generator does reach the case that used to break.
    expect(wechatGroupLike).toBeGreaterThan(10);
  });

  it('folders that are not a workspace are not read as one', () => {
    expect(workspaceFromDirName('wx_group_abc')).toBe('wx:group_abc');
    expect(workspaceFromDirName('tg_group_-100')).toBe('tg:group:-100');
    expect(workspaceFromDirName(SYSTEM_SCOPE)).toBe(SYSTEM_SCOPE);
    for (const junk of ['tg_abc', 'tg_group_x', 'wx_', 'Has Space', '.hidden', 'wx_a..b']) expect(workspaceFromDirName(junk), junk).toBeUndefined();
  });
});
