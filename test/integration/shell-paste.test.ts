import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShellChannel } from '../../channels/shell/shell.ts';
import type { InboundMessage } from '../../channels/types.ts';
import { startFakeAnthropic, type FakeVendor } from '../support/fake-vendors.ts';
import { waitFor } from '../support/form.ts';
import { startProcess, waitForOutput, type ProcHandle } from '../support/processes.ts';

const CURL = (base: string) =>
  [
    `curl ${base}/v1/messages \\`,
    '  -H "x-api-key: $ANTHROPIC_API_KEY" \\',
    '  -H "anthropic-version: 2023-06-01" \\',
    '  -H "content-type: application/json" \\',
    `  -d '{"model": "claude-paste-1", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello"}]}'`,
  ].join('\n');

const replies = (out: string) => (out.match(/^bot> /gm) ?? []).length;

describe('shell channel process (npm start, piped stdin): a paste is one message', () => {
  let fake: FakeVendor;
  let proc: ProcHandle;
  let dataDir: string;
  let out = '';

  beforeAll(async () => {
    fake = await startFakeAnthropic({ reply: 'ok' });
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-shell-paste-'));
    proc = startProcess('shell', 'src/main.ts', { BYOK_DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', BYOK_ALLOW_PRIVATE_BASE_URLS: '1' });
    proc.child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    await waitForOutput(proc, 'Type /help.');
  }, 60_000);

  afterAll(async () => {
    proc?.kill('SIGTERM');
    await proc?.exited;
    await fake?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const settle = async (n: number) => {
    await waitFor(() => replies(out) >= n, 15_000, `${n} replies`);
    // A second reply would come within the paste window plus handling: give it the chance.
    await new Promise((r) => setTimeout(r, 600));
  };

  it('/byok example, then a 5-line curl example in one write: exactly one reply, the draft', async () => {
    proc.child.stdin!.write('/byok example\n');
    await settle(1);
    const before = replies(out);
    proc.child.stdin!.write(CURL(fake.url) + '\n');
    await settle(before + 1);
    expect(replies(out), out).toBe(before + 1);
    const reply = out.slice(out.lastIndexOf('bot> '));
    expect(reply).toContain('claude-paste-1');
    expect(reply).toContain(`${fake.url}/v1`);
  }, 30_000);

  it('the command and the example pasted together: the command, then the example (two replies)', async () => {
    const before = replies(out);
    proc.child.stdin!.write('/byok example\n' + CURL(fake.url) + '\n');
    await settle(before + 2);
    expect(replies(out), out).toBe(before + 2);
    expect(out.slice(out.lastIndexOf('bot> '))).toContain('claude-paste-1');
    // Nothing reached the vendor: parsing an example does not call it.
    expect(fake.requests).toHaveLength(0);
  }, 30_000);

  it('/help tells how multi-line input works here', async () => {
    const before = replies(out);
    proc.child.stdin!.write('/help\n');
    await settle(before + 1);
    expect(out).toMatch(/multi-line paste[^\n]*one message/);
  }, 30_000);
});

describe('ShellChannel: gathering lines', () => {
  const setup = (pasteWindowMs = 40) => {
    const input = new PassThrough();
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const got: string[] = [];
    const shell = new ShellChannel({ input, output, pasteWindowMs });
    void shell.start(async (m: InboundMessage) => void got.push(m.text));
    const settle = async () => {
      await new Promise((r) => setImmediate(r));
      await shell.idle();
    };
    return { input, shell, got, settle, printed: () => printed };
  };

  it('lines of one write are one message; commands stand alone; blank edges are dropped', async () => {
    const { input, got, settle } = setup();
    input.write('\n/model 1\nfirst line\n\n  second line\n/reset\n');
    await settle();
    expect(got).toEqual(['/model 1', 'first line\n\n  second line', '/reset']);
  });

  it('lines apart by more than the window are separate messages', async () => {
    const { input, got, settle } = setup(20);
    input.write('hello\n');
    await settle();
    input.write('how are you\n');
    await settle();
    expect(got).toEqual(['hello', 'how are you']);
  });

  it('a trailing backslash continues across slow lines (typed curl), until a line without one', async () => {
    const { input, got, settle } = setup(20);
    input.write('curl https://api.example.com/v1/chat/completions \\\n');
    await new Promise((r) => setTimeout(r, 80));
    expect(got).toEqual([]);
    input.write('  -H "content-type: application/json" \\\n');
    await new Promise((r) => setTimeout(r, 80));
    input.write(`  -d '{"model": "m"}'\n`);
    await settle();
    expect(got).toEqual([`curl https://api.example.com/v1/chat/completions \\\n  -H "content-type: application/json" \\\n  -d '{"model": "m"}'`]);
  });

  it('the end of input sends what was gathered', async () => {
    const { input, shell, got } = setup(10_000);
    input.end('one\ntwo');
    await new Promise((r) => input.once('end', r));
    await new Promise((r) => setImmediate(r));
    await shell.idle();
    expect(got).toEqual(['one\ntwo']);
  });
});

describe('ShellChannel: one prompt per reply', () => {
  const make = () => {
    const output = new PassThrough();
    let printed = '';
    output.on('data', (c: Buffer) => (printed += c.toString('utf8')));
    const shell = new ShellChannel({ input: new PassThrough(), output });
    return { shell, printed: () => printed };
  };
  const chat = { channel: 'shell', chat_id: 'local', user_id: 'local' } as const;
  async function* failing(before: string[]): AsyncGenerator<string> {
    for (const c of before) yield c;
    throw new Error('vendor failed');
  }

  it('a stream that fails before any text, then the error reply: "bot> " once', async () => {
    const { shell, printed } = make();
    await expect(shell.streamReply(chat, failing([]), 'en')).rejects.toThrow('vendor failed');
    await shell.send(chat, { text: 'The vendor is unavailable.' });
    expect(printed()).toBe('bot> The vendor is unavailable.\n');
  });

  it('a stream cut after some text: the error starts on a line of its own', async () => {
    const { shell, printed } = make();
    await expect(shell.streamReply(chat, failing(['Hel', 'lo']), 'en')).rejects.toThrow();
    await shell.send(chat, { text: 'Cut off.' });
    expect(printed()).toBe('bot> Hello\nbot> Cut off.\n');
  });

  it('a complete stream, then a reply: each on its own line', async () => {
    const { shell, printed } = make();
    async function* ok(): AsyncGenerator<string> {
      yield 'Hi';
    }
    await shell.streamReply(chat, ok(), 'en');
    await shell.send(chat, { text: 'Next.' });
    expect(printed()).toBe('bot> Hi\nbot> Next.\n');
  });
});
