/**
 * Runs every benchmark (`bench/*.bench.ts`), one child process at a time so they do not
 * disturb each other, shows their output as it comes, and ends with the lines that carry a
 * ratio or a target from each.
 *
 *   npm run bench                 # all of them
 *   npm run bench -- guard relay  # only those whose file name contains one of the words
 *
 * Exits 1 when a benchmark fails to run (not when a target is missed: that is a finding).
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const filters = process.argv.slice(2);
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}; there are: ${readdirSync(here).filter((f) => f.endsWith('.bench.ts')).join(', ')}`);
  process.exit(2);
}

/** Node flags a benchmark needs (the Telegram one measures memory after a forced GC). */
const NODE_FLAGS: Record<string, string[]> = { 'telegram.bench.ts': ['--expose-gc'] };
/** A summary line: a ratio against the baseline, or a target verdict. */
const SUMMARY = /ratio|\/baseline|target|overhead/i;

function runOne(file: string): Promise<{ code: number; lines: string[]; seconds: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const args = [...(NODE_FLAGS[file] ?? []), '--import', 'tsx', join(here, file)];
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NO_COLOR: '1' } });
    const lines: string[] = [];
    let rest = '';
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      const text = rest + chunk.toString('utf8');
      const parts = text.split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
    });
    child.on('close', (code) => {
      if (rest) lines.push(rest);
      resolve({ code: code ?? 1, lines, seconds: (Date.now() - started) / 1000 });
    });
  });
}

const results: Array<{ file: string; code: number; summary: string[]; seconds: number }> = [];
for (const file of files) {
  console.log(`\n### ${file}`);
  const r = await runOne(file);
  results.push({ file, code: r.code, summary: r.lines.filter((l) => SUMMARY.test(l)).map((l) => l.trim()), seconds: r.seconds });
}

console.log('\n### summary');
for (const r of results) {
  console.log(`${r.file} (${r.seconds.toFixed(0)} s)${r.code === 0 ? '' : `: FAILED, exit ${r.code}`}`);
  for (const l of r.summary) console.log(`  ${l}`);
}
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
