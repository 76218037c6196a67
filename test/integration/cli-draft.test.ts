import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIO } from '../../src/cli.ts';
import { ROOT } from '../support/processes.ts';

/** `byok parse-example < ex | byok add --draft -` keeps everything parse-example found. */

const BIN = path.join(ROOT, 'bin/byok.js');

const AZURE = `curl "https://myres.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21" \\
  -H "Content-Type: application/json" \\
  -H "api-key: $AZURE_OPENAI_API_KEY" \\
  -d '{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 800}'`;

const ANTHROPIC = `curl https://api.anthropic.com/v1/messages \\
  -H "x-api-key: $ANTHROPIC_API_KEY" \\
  -H "anthropic-version: 2023-06-01" \\
  -H "anthropic-beta: interleaved-thinking-2025-05-14" \\
  -H "content-type: application/json" \\
  -d '{
    "model": "claude-sonnet-4-5",
    "max_tokens": 16000,
    "thinking": {"type": "enabled", "budget_tokens": 10000},
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "messages": [{"role": "user", "content": "Hello"}]
  }'`;

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-cli-draft-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A real shell pipe between two real `byok` processes, as a user types it. */
function pipeline(example: string, addArgs = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const byok = `"${process.execPath}" "${BIN}"`;
    const child = spawn('bash', ['-o', 'pipefail', '-c', `${byok} parse-example | ${byok} add --draft - ${addArgs}`], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BYOK_DATA_DIR: dir, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(example);
  });
}

async function run(args: string[], stdin = ''): Promise<{ code: number; out: any }> {
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (d) => (text += d));
  const io: CliIO = { stdin: Readable.from([stdin]), stdout, stderr: new PassThrough(), env: { BYOK_DATA_DIR: dir } };
  const code = await main(args, io);
  return { code, out: text ? JSON.parse(text) : undefined };
}

describe('byok add --draft', () => {
  it('Azure: parse-example | add --draft - keeps the api-version, deployment and wire', async () => {
    const r = await pipeline(AZURE);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const m = JSON.parse(r.stdout).model;
    expect(m.wire).toBe('azure-openai');
    expect(m.query).toEqual({ 'api-version': '2024-10-21' });
    expect(m.base_url).toContain('myres.openai.azure.com');
    expect(m.max_tokens).toBe(800);
    // Stored as registered: `get` shows the same.
    const got = await run(['get', m.id]);
    expect(got.out.model.query).toEqual({ 'api-version': '2024-10-21' });
  }, 30_000);

  it('Anthropic: thinking, extra headers and request fields survive; a flag overrides the draft', async () => {
    const r = await pipeline(ANTHROPIC, '--name "Sonnet thinking"');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const m = JSON.parse(r.stdout).model;
    expect(m.wire).toBe('anthropic');
    expect(m.upstream_model).toBe('claude-sonnet-4-5');
    expect(m.name).toBe('Sonnet thinking');
    expect(m.thinking).toMatchObject({ style: 'anthropic_budget', budget_tokens: 10000, default_on: true });
    expect(m.headers).toMatchObject({ 'anthropic-beta': 'interleaved-thinking-2025-05-14' });
    expect(m.request_fields).toEqual({ context_management: { edits: [{ type: 'clear_tool_uses_20250919' }] } });
    expect(m.max_tokens).toBe(16000);
    expect(JSON.stringify(m)).not.toMatch(/x-api-key|ANTHROPIC_API_KEY"?:/i);
  }, 30_000);

  it('--draft FILE reads a saved draft (the draft object itself)', async () => {
    const parsed = await run(['parse-example'], AZURE);
    const file = path.join(dir, 'draft.json');
    await fs.writeFile(file, JSON.stringify(parsed.out.draft));
    const r = await run(['add', '--draft', file]);
    expect(r.code, JSON.stringify(r.out)).toBe(0);
    expect(r.out.model.query).toEqual({ 'api-version': '2024-10-21' });
  });

  it('refuses what is not a draft, with the registry checks still applied', async () => {
    expect((await run(['add', '--draft', '-'], 'not json')).out).toMatchObject({ ok: false, code: 'invalid_input' });
    expect((await run(['add', '--draft', '-'], '{"ok":false,"code":"invalid_input","error":"no URL found"}')).out.error).toMatch(/no draft.*no URL found/);
    expect((await run(['add', '--draft', '-'], '{"upstream_model":"m","base_url":"https://api.example.com/v1","hedaers":{}}')).out.error).toMatch(/unknown draft field.*hedaers/);
    // The registry's own validation: an auth header in a hand-edited draft is refused.
    const auth = await run(['add', '--draft', '-'], JSON.stringify({ upstream_model: 'm', base_url: 'https://api.example.com/v1', headers: { Authorization: 'Bearer x' } }));
    expect(auth.out.ok).toBe(false);
    // Without a draft the fields are still required.
    const none = await run(['add', '--model', 'm']);
    expect(none.code).toBe(2);
    expect(none.out.error).toMatch(/--base-url is required/);
    expect((await run(['add', '--draft', path.join(dir, 'missing.json')])).code).toBe(2);
  });
});
