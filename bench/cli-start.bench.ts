/**
 * CLI cold start: whole-process wall time of `byok templates` (stdout to a pipe, so JSON) next
 * to a bare `node -e 0` measured in the same run, median of 5 each: the TypeScript sources
 * through tsx (development), the compiled dist/src/cli.js (built first when missing or stale),
 * and bin/byok.js (what `byok` runs: the compiled path after its freshness check). The compiled
 * runs use the build's templates snapshot (scripts/snapshot-templates.mjs), as after `npm run build`.
 *
 *   npx tsx bench/cli-start.bench.ts
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = 5;

function runMs(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 64 * 1024 * 1024 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 500)}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function measure(args: string[]): number {
  runMs(args); // warm the file cache
  return median(Array.from({ length: RUNS }, () => runMs(args)));
}

const build = spawnSync(process.execPath, [join(root, 'scripts/ensure-build.mjs')], { cwd: root, stdio: 'inherit' });
if (build.status !== 0) throw new Error('the build failed: the compiled path cannot be measured');
// ensure-build runs tsc only: (re)write the templates snapshot `npm run build` writes, so the
// compiled path is measured as built (a missing or stale snapshot falls back to parsing the YAML).
const snap = spawnSync(process.execPath, [join(root, 'scripts/snapshot-templates.mjs'), '--no-compile'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
if (snap.status !== 0) throw new Error('the templates snapshot failed');

const bare = measure(['-e', '0']);
const sources = measure(['--import', 'tsx', join(root, 'src/cli.ts'), 'templates']);
const compiled = measure([join(root, 'dist/src/cli.js'), 'templates']);
const bin = measure([join(root, 'bin/byok.js'), 'templates']);
const row = (label: string, ms: number) => `  ${label.padEnd(34)}${ms.toFixed(0).padStart(6)} ms${ms === bare ? '' : `   ratio ${(ms / bare).toFixed(1)}x`}`;
console.log(`CLI cold start, median of ${RUNS} (whole process, wall time)`);
console.log(row('node -e 0 (baseline)', bare));
console.log(row('byok templates, sources via tsx', sources));
console.log(row('byok templates, compiled (dist/)', compiled));
console.log(row('bin/byok.js templates (compiled)', bin));
console.log(`target within 3x of bare node (compiled): ${compiled / bare <= 3 ? 'MET' : 'NOT MET'}`);
