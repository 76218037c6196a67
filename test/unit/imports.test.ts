import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/processes.ts';

/**
 * Module boundaries, checked on the source as it is: no runtime import cycle in src/,
 * channels/ and worker/ (type-only imports are erased and do not count; dynamic import()
 * is lazy and does not either), src/ never imports worker/ (worker/main.ts is a thin entry
 * point over src/), and only the composition root src/main.ts imports channels/.
 */

const DIRS = ['src', 'channels', 'worker'];
const STATIC_IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (f.endsWith('.ts')) out.push(f);
    }
  };
  for (const d of DIRS) walk(path.join(ROOT, d));
  return out;
}

/** file (relative to the repo) → the files it imports at run time (or also for types only). */
function runtimeGraph(withTypes = false): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of sources()) {
    const text = fs.readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(STATIC_IMPORT)) {
      if (m[2] && !withTypes) continue; // import type / export type
      deps.push(path.relative(ROOT, path.resolve(path.dirname(f), m[3]!)));
    }
    graph.set(path.relative(ROOT, f), deps);
  }
  return graph;
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

describe('module boundaries', () => {
  const graph = runtimeGraph();

  it('reads the whole source tree (the check is not vacuous)', () => {
    expect(graph.size).toBeGreaterThan(80);
    expect(graph.get('src/app.ts')?.length).toBeGreaterThan(10);
  });

  it('has no runtime import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('has no cycle even through type-only imports (madge --circular would see those too)', () => {
    expect(cycles(runtimeGraph(true))).toEqual([]);
  });

  it('finds a cycle when there is one (the detector works)', () => {
    const g = new Map([['a.ts', ['b.ts']], ['b.ts', ['c.ts']], ['c.ts', ['a.ts']], ['d.ts', ['a.ts']]]);
    expect(cycles(g)).toEqual([['a.ts', 'b.ts', 'c.ts']]);
  });

  it('src/ never imports worker/', () => {
    const bad = [...graph].flatMap(([f, deps]) => (f.startsWith('src/') ? deps.filter((d) => d.startsWith('worker/')).map((d) => `${f} → ${d}`) : []));
    expect(bad).toEqual([]);
  });

  it('src/vendors/ never imports src/registry/ at run time (the registry uses the vendors, not the reverse)', () => {
    const bad = [...graph].flatMap(([f, deps]) => (f.startsWith('src/vendors/') ? deps.filter((d) => d.startsWith('src/registry/')).map((d) => `${f} → ${d}`) : []));
    expect(bad).toEqual([]);
    expect([...graph].some(([f, deps]) => f.startsWith('src/registry/') && deps.some((d) => d.startsWith('src/vendors/')))).toBe(true);
  });

  it('only src/main.ts imports channels/ at run time', () => {
    const bad = [...graph].flatMap(([f, deps]) => (f.startsWith('src/') && f !== 'src/main.ts' ? deps.filter((d) => d.startsWith('channels/')).map((d) => `${f} → ${d}`) : []));
    expect(bad).toEqual([]);
  });
});
