#!/usr/bin/env node
/**
 * `npm start` / `npm run worker` run the compiled JavaScript in dist/ (their prestart /
 * preworker run this): builds with the project's own TypeScript when dist/ is missing or
 * older than a source file, and does nothing otherwise (a few ms of stat calls).
 * bin/byok.js imports `buildIsFresh` to decide between dist/ and the TypeScript sources.
 *
 *   node scripts/ensure-build.mjs
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** What tsconfig.build.json compiles, and the settings that change its output. */
const SOURCE_DIRS = ['src', 'channels', 'worker'];
const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json'];
/** The entry points; tsc writes every output on each build, so their age is the build's. */
const OUTPUTS = ['dist/src/main.js', 'dist/src/cli.js', 'dist/worker/main.js'];

function newestSource(root) {
  let newest = 0;
  for (const f of CONFIG_FILES) newest = Math.max(newest, statSync(join(root, f)).mtimeMs);
  for (const dir of SOURCE_DIRS) {
    for (const e of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (e.isFile() && e.name.endsWith('.ts')) newest = Math.max(newest, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs);
    }
  }
  return newest;
}

/** dist/ holds every entry point and none is older than a source file or a tsconfig. */
export function buildIsFresh(root = ROOT) {
  let oldestOutput = Infinity;
  for (const f of OUTPUTS) {
    const p = join(root, f);
    if (!existsSync(p)) return false;
    oldestOutput = Math.min(oldestOutput, statSync(p).mtimeMs);
  }
  return newestSource(root) <= oldestOutput;
}

function localTsc(root) {
  try {
    return createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  } catch {
    return undefined;
  }
}

function main() {
  if (buildIsFresh()) return 0;
  const tsc = localTsc(ROOT);
  const built = OUTPUTS.every((f) => existsSync(join(ROOT, f)));
  if (!tsc) {
    // A production install (npm install --omit=dev) has no compiler: run what was built.
    if (built) {
      process.stderr.write('byok: dist/ is older than the sources and TypeScript is not installed; running the existing build\n');
      return 0;
    }
    process.stderr.write('byok: dist/ is not built and TypeScript is not installed: run npm install (with dev dependencies) and npm run build\n');
    return 1;
  }
  process.stderr.write(`byok: ${built ? 'sources changed since the last build' : 'no build yet'}: compiling to dist/ (npm run build)\n`);
  // The same build as `npm run build`: compile, then the templates snapshot (fast cold starts).
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'snapshot-templates.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.stderr.write('byok: the build failed (see above); dist/ was left as it was\n');
  return r.status ?? 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
