import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { ROOT } from '../support/processes.ts';

it('`byok templates | head -1`: the reader closing early ends the CLI quietly, exit 0', async () => {
  // A real pipe to a real `head -1`, as a user's shell does it.
  // pipefail: the exit status is the CLI's own, not head's.
  const child = spawn('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${join(ROOT, 'bin/byok.js')}" templates | head -1`], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1' },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code).toBe(0);
  expect(out.split('\n')[0]).toBe('{');
  expect(err).not.toMatch(/EPIPE|Error|at /);
}, 30_000);
