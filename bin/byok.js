#!/usr/bin/env node
// `byok` command (see src/cli.ts). Runs the compiled JavaScript in dist/ when it is built and
// not older than the sources (npm run build); otherwise registers tsx and runs the TypeScript
// sources as they are, so a fresh clone works without a build and an edit is never hidden by
// a stale dist/.
import { buildIsFresh } from '../scripts/ensure-build.mjs';

// `byok templates | head -1`: the reader went away, which is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

let cli;
if (buildIsFresh()) {
  cli = await import('../dist/src/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
await cli.runCli(process.argv.slice(2));
