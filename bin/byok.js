#!/usr/bin/env node
// `byok` command (see src/cli.ts). Registers tsx so the TypeScript sources run as they are.
import { register } from 'tsx/esm/api';

// `byok templates | head -1`: the reader went away, which is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

register();
const { runCli } = await import('../src/cli.ts');
await runCli(process.argv.slice(2));
