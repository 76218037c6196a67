#!/usr/bin/env node
// `byok` command (see src/cli.ts). Registers tsx so the TypeScript sources run as they are.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli.ts');
await runCli(process.argv.slice(2));
