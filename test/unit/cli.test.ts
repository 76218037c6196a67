import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIO } from '../../src/cli.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/byok.js');

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-cli-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, BYOK_DATA_DIR: dir, NO_COLOR: '1' };
  return env;
}

/** Spawns the real `byok` shim (slow: keep these few). */
function byok(args: string[], stdin?: string): Promise<{ code: number; out: any; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      let out: unknown;
      try {
        out = JSON.parse(stdout);
      } catch {
        out = undefined;
      }
      resolve({ code: code ?? -1, out, stdout, stderr });
    });
    child.stdin.end(stdin ?? '');
  });
}

/** Runs main() in-process with captured output. */
async function run(args: string[], stdin = ''): Promise<{ code: number; out: any }> {
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (d) => (text += d));
  const io: CliIO = { stdin: Readable.from([stdin]), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dir } };
  const code = await main(args, io);
  return { code, out: text ? JSON.parse(text) : undefined };
}

const CURL = `curl https://api.deepseek.com/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer \${DEEPSEEK_API_KEY}" \\
  -d '{
        "model": "deepseek-chat",
        "messages": [{"role": "user", "content": "Hello!"}],
        "stream": false
      }'`;

describe('byok (spawned bin/byok.js)', () => {
  it('exit 0 with JSON, --workspace, exit 1 on ok:false, exit 2 on usage, parse-example on stdin', async () => {
    const add = await byok(['add-template', 'qwen', '--model', 'qwen-plus', '--workspace', 'tg:42']);
    expect(add.code, add.stderr).toBe(0);
    expect(add.out.ok).toBe(true);
    expect(add.out.selector).toMatch(/^custom\/qwen-plus-[0-9a-f]{4}$/);
    expect(add.out.need_env_input.env_vars).toEqual(['DASHSCOPE_API_KEY']);
    await fs.access(path.join(dir, 'workspaces/tg_42/custom_models.yaml'));

    const list = await byok(['list', '-w', 'tg:42']);
    expect(list.code).toBe(0);
    expect(list.out.models.map((m: { id: string }) => m.id)).toEqual([add.out.model.id]);

    const missing = await byok(['get', 'nope']);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatchObject({ ok: false, code: 'not_found' });

    const usage = await byok(['add', '--model', 'm']);
    expect(usage.code).toBe(2);
    expect(usage.out).toMatchObject({ ok: false, code: 'usage' });
    expect(usage.out.error).toMatch(/--base-url/);

    const pe = await byok(['parse-example'], CURL);
    expect(pe.code, pe.stderr).toBe(0);
    expect(pe.out.draft).toMatchObject({ upstream_model: 'deepseek-chat', base_url: 'https://api.deepseek.com' });
  }, 90_000); // five cold starts of the CLI: slow on a loaded machine
});

describe('main() in-process', () => {
  it('help, unknown command, unknown option, arity', async () => {
    const h = await run(['help']);
    expect(h.code).toBe(0);
    expect(h.out.commands.map((c: { command: string }) => c.command)).toEqual(
      expect.arrayContaining(['templates', 'vendor-models', 'add-template', 'parse-example', 'add', 'list', 'get', 'remove', 'update', 'guard']),
    );
    expect((await run([])).code).toBe(2);
    expect((await run(['frobnicate'])).out).toMatchObject({ code: 'usage' });
    expect((await run(['list', '--bogus'])).code).toBe(2);
    expect((await run(['get'])).code).toBe(2);
    expect((await run(['get', 'a', 'b'])).code).toBe(2);
    expect((await run(['update', 'x'])).code).toBe(2);
    expect((await run(['get', '--help'])).out).toMatchObject({ ok: true, command: 'get' });
  });

  it('templates, vendor-models, add, update, remove, bad workspace', async () => {
    const t = await run(['templates']);
    expect(t.code).toBe(0);
    expect(t.out.templates.length).toBeGreaterThanOrEqual(20);
    const vm = await run(['vendor-models', 'minimax']);
    expect(vm.out).toMatchObject({ ok: true, source: 'curated' });

    const add = await run(['add', '--model', 'llama3', '--base-url', 'http://127.0.0.1:8000/v1', '--name', 'Local Llama', '--key-optional', '--max-tokens', '2048']);
    expect(add.code).toBe(0);
    expect(add.out.model).toMatchObject({ name: 'Local Llama', max_tokens: 2048, status: 'active' });
    const id = add.out.model.id as string;

    const bad = await run(['update', id, '--max-tokens', 'lots']);
    expect(bad.code).toBe(1);
    expect(bad.out.code).toBe('invalid_input');
    const up = await run(['update', `custom/${id}`, '--name', 'Llama Local', '--max-tokens', '100']);
    expect(up.code).toBe(0);
    expect(up.out.model).toMatchObject({ name: 'Llama Local', max_tokens: 100 });

    expect((await run(['remove', id])).out.model.status).toBe('removed');
    expect((await run(['list'])).out.models).toEqual([]);
    expect((await run(['list', '--include-removed'])).out.models).toHaveLength(1);

    const ws = await run(['list', '--workspace', '../x']);
    expect(ws.code).toBe(1);
    expect(ws.out.code).toBe('invalid_input');
  });

  it('guard streams JSON lines', async () => {
    const stdout = new PassThrough();
    let text = '';
    stdout.on('data', (d) => (text += d));
    const code = await main(['guard'], { stdin: Readable.from(['"hello"\n']), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dir } });
    expect(code).toBe(0);
    expect(JSON.parse(text.trim())).toMatchObject({ refused: false });
  });
});
