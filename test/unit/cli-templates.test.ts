import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, templatesFormat, templatesTable } from '../../src/cli.ts';
import { ROOT } from '../support/processes.ts';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-cli-tpl-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function run(argv: string[], isTTY: boolean): Promise<{ code: number; out: string }> {
  const stdout = Object.assign(new PassThrough(), { isTTY });
  let out = '';
  stdout.on('data', (d) => (out += d));
  const code = await main(argv, { stdin: new PassThrough(), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dir } });
  return { code, out };
}

describe('byok templates: a table for a person, JSON for a script', () => {
  it('the choice: table only on a terminal without --json', () => {
    expect(templatesFormat(true, false)).toBe('table');
    expect(templatesFormat(false, false)).toBe('json');
    expect(templatesFormat(true, true)).toBe('json');
    expect(templatesFormat(false, true)).toBe('json');
  });

  it('the table: aligned columns id, name, wire, credential kind', () => {
    const t = templatesTable([
      { id: 'qwen', name: 'Qwen (DashScope)', wire: 'openai', credential_kind: 'api_key' },
      { id: 'bedrock', name: 'AWS Bedrock', wire: 'bedrock', credential_kind: 'aws_keypair' },
    ]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^ID\s+NAME\s+WIRE\s+CREDENTIAL$/);
    expect(lines[1]).toMatch(/^qwen\s+Qwen \(DashScope\)\s+openai\s+api_key$/);
    expect(lines[0]!.indexOf('WIRE')).toBe(lines[1]!.indexOf('openai'));
    expect(t).toContain('2 templates.');
  });

  it('on a terminal: every template in a few KB, not JSON', async () => {
    const tty = await run(['templates'], true);
    const json = await run(['templates'], false);
    expect(tty.code).toBe(0);
    expect(() => JSON.parse(tty.out)).toThrow();
    const all = JSON.parse(json.out).templates as Array<{ id: string; wire: string; credential_kind: string }>;
    for (const t of all) expect(tty.out).toMatch(new RegExp(`^${t.id}\\s.*\\s${t.wire}\\s+${t.credential_kind}$`, 'm'));
    expect(tty.out.length).toBeLessThan(json.out.length / 5);
    // --json on a terminal: the full JSON again.
    const forced = await run(['templates', '--json'], true);
    expect(JSON.parse(forced.out)).toEqual(JSON.parse(json.out));
  });

  it('spawned with stdout piped: JSON, as scripts read it today', async () => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/byok.js'), 'templates'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BYOK_DATA_DIR: dir, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(0);
    const doc = JSON.parse(out);
    expect(doc.ok).toBe(true);
    expect(doc.templates.length).toBeGreaterThan(5);
  }, 30_000);
});
