#!/usr/bin/env node
/**
 * `npm run build`: compiles with the project's TypeScript (tsconfig.build.json, plus any
 * arguments given, e.g. `npm run build -- --outDir .tmp/x`), then writes
 * `<outDir>/templates.snapshot.json`: templates/*.yaml parsed and validated by the compiled
 * parser, with a sha256 of each file and of the parser. src/vendors/templates.ts uses it only
 * while every hash still matches, so an edited template is parsed, never served stale.
 *
 *   node scripts/snapshot-templates.mjs [tsc arguments]    compile, then snapshot
 *   node scripts/snapshot-templates.mjs --no-compile [--outDir dir]    snapshot an existing build
 */
import { spawnSync } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

function main(argv) {
  const compile = !argv.includes('--no-compile');
  const tscArgs = argv.filter((a) => a !== '--no-compile');
  const i = tscArgs.findIndex((a) => a === '--outDir' || a.startsWith('--outDir='));
  const outDir = resolve(ROOT, i < 0 ? 'dist' : tscArgs[i].includes('=') ? tscArgs[i].slice('--outDir='.length) : (tscArgs[i + 1] ?? 'dist'));

  if (compile) {
    const tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', ...tscArgs], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) return r.status ?? 1;
  }
  return snapshot(outDir);
}

async function snapshot(outDir) {
  const loader = await import(pathToFileURL(join(outDir, 'src/vendors/templates.js')).href);
  const { parseTemplates } = await import(pathToFileURL(join(outDir, 'src/vendors/template-parse.js')).href);
  const dir = resolve(loader.DEFAULT_TEMPLATES_DIR);
  const names = loader.templateFileNames(dir);
  const files = loader.templateFileHashes(dir, names);
  // Parsed with the same code and checks as a miss at run time; a bad template fails the build.
  const templates = parseTemplates(dir, 'templates', names);
  const file = join(outDir, 'templates.snapshot.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify({ parser: loader.templateParserHash(), files, templates })}\n`);
  renameSync(`${file}.tmp`, file);
  process.stdout.write(`templates snapshot: ${templates.length} templates -> ${file}\n`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  Promise.resolve(main(process.argv.slice(2))).then(
    (code) => (process.exitCode = code),
    (err) => {
      process.stderr.write(`byok: the templates snapshot failed: ${err?.message ?? err}\n`);
      process.exitCode = 1;
    },
  );
}
