/**
 * One error family (issue 15, item 6): template, usage, queue and transient vendor failures are
 * ByokErrors with stable codes, so every catch that speaks codes (guarded results, the CLI, the
 * chat's err.<code> texts) handles them; and only the BullMQ runner loads bullmq (item 4).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/usage-error.ts';
import { main, type CliIO } from '../../src/cli.ts';
import { ByokError, isByokError } from '../../src/errors.ts';
import { en } from '../../src/i18n/en.ts';
import { zh } from '../../src/i18n/zh.ts';
import { validateKeyHandler, type ValidateDeps } from '../../src/jobs/validate-key.ts';
import { isUnrecoverable, UnrecoverableJobError } from '../../src/queue/errors.ts';
import { InProcessRunner, type FinalFailure } from '../../src/queue/index.ts';
import type { ProbeResult } from '../../src/vendors/types.ts';
import { guarded } from '../../src/result.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import { applyTemplatePolicy, loadTemplates, TemplateError } from '../../src/vendors/templates.ts';
import { ROOT } from '../support/processes.ts';

describe('TemplateError and UsageError are ByokErrors with stable codes', () => {
  it('a broken template file: TemplateError, code template, file and field in details, a text in both languages', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-tpl-'));
    try {
      fs.writeFileSync(path.join(dir, 'acme.yaml'), 'id: other\n');
      const err = (() => {
        try {
          loadTemplates(dir);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(TemplateError);
      expect(isByokError(err)).toBe(true);
      expect(err).toMatchObject({ code: 'template', file: `${path.basename(dir)}/acme.yaml` });
      expect((err as TemplateError).details).toMatchObject({ file: `${path.basename(dir)}/acme.yaml` });
      expect(en['err.template']).toBeTruthy();
      expect(zh['err.template']).toBeTruthy();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a guarded call that hits a template problem answers code template (it was "internal" with no reason)', async () => {
    const r = await guarded(() => {
      applyTemplatePolicy([], { only: ['nosuch'], disabled: [] });
      return { ok: true as const };
    });
    expect(r).toMatchObject({ ok: false, code: 'template', file: 'BYOK_TEMPLATES' });
    expect(r.ok || r.error).toContain('"nosuch" is not a template id');
  });

  it('UsageError: code usage, and the CLI still answers it with exit code 2 and the usage line', async () => {
    const e = new UsageError('missing argument', 'show <id>');
    expect(e).toBeInstanceOf(ByokError);
    expect(e).toMatchObject({ code: 'usage', usage: 'show <id>', name: 'UsageError' });
    let out = '';
    const { PassThrough, Writable } = await import('node:stream');
    const code = await main(['no-such-command'], {
      stdin: process.stdin,
      stdout: Object.assign(new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) }), { isTTY: false }),
      stderr: new PassThrough(),
      env: { BYOK_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'byok-usage-')) },
    } as CliIO);
    expect(code).toBe(2);
    expect(JSON.parse(out)).toMatchObject({ ok: false, code: 'usage' });
  });
});

describe('the queue has its own unrecoverable error', () => {
  it('is a ByokError whose code says what was definite, and the in-process runner does not retry it', async () => {
    const e = new UnrecoverableJobError('vendor answered invalid_key', 'invalid_key');
    expect(e).toBeInstanceOf(ByokError);
    expect(isUnrecoverable(e)).toBe(true);
    expect(isUnrecoverable(new ByokError('invalid_key', 'x'))).toBe(false);
    expect(new UnrecoverableJobError('x').code).toBe('rejected');

    const runner = new InProcessRunner({ retry: { attempts: 4, backoffMs: 1, maxBackoffMs: 1 } });
    let runs = 0;
    const finals: FinalFailure[] = [];
    runner.onFinalFailure((f) => void finals.push(f));
    runner.register('j', async () => {
      runs++;
      throw e;
    });
    await runner.start();
    await runner.enqueue('j', {});
    await runner.drain();
    await runner.close();
    expect(runs).toBe(1);
    expect(finals[0]).toMatchObject({ unrecoverable: true, attempts: 1 });
    expect(finals[0]!.error).toBe(e);
  });
});

describe('validate-key throws family errors', () => {
  const SECRET = 'sk-errors-test-0123456789abcdef';
  function deps(probe: ProbeResult | (() => never)): { deps: ValidateDeps; notices: unknown[] } {
    const sub = {
      model_id: 'm1',
      key_id: 'kid1',
      sealed: { ACME_API_KEY: Buffer.from('box').toString('base64') },
      token_hash: 'th',
      channel: { channel: 'test', chat_id: '1' },
      lang: 'en',
      created_at: new Date().toISOString(),
      attempts_rounds: 1,
    };
    const model = { id: 'm1', vendor: 'custom', status: 'validating', api_key_env: 'ACME_API_KEY', extra_env_vars: [], wire: 'openai' };
    const notices: unknown[] = [];
    const d = {
      registry: {
        get: async () => ({ ok: true, model }),
        set_status: async () => ({ ok: true }),
        record_key_attempt: async () => ({ ok: true }),
      },
      vault: { has: async () => false, put: async () => undefined },
      boxKeys: {
        open: async () => {
          if (typeof probe === 'function') probe();
          return new TextEncoder().encode(SECRET);
        },
      },
      submissions: { get: async () => sub, remove: async () => undefined },
      requests: { setStatus: async () => undefined },
      notifyQueue: { enqueue: async (_n: string, p: unknown) => (notices.push(p), 'id') },
      logger: { warn: () => undefined, info: () => undefined, error: () => undefined, debug: () => undefined },
      probe: async () => (typeof probe === 'function' ? { outcome: 'ok' } : probe),
      budget: { probeTimeoutMs: 5_000, totalMs: 60_000 },
    };
    return { deps: d as unknown as ValidateDeps, notices };
  }
  const job = { workspace: 'tg:1', model_id: 'm1', submission_id: 's1', token_hash: 'th', queued_at: Date.now() };
  const ctx = { attempt: 1, maxAttempts: 5, jobId: 'j' };
  const thrown = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

  it('a 429: a retryable VendorError carrying the status and Retry-After, with no key in it', async () => {
    const { deps: d } = deps({ outcome: 'rate_limited', status: 429, retryAfterMs: 2_000, message: `slow down (key ${SECRET})` });
    const err = await thrown(validateKeyHandler(d)({ ...job, queued_at: Date.now() }, ctx));
    expect(err).toBeInstanceOf(VendorError);
    expect(err).toMatchObject({ code: 'rate_limited', outcome: 'rate_limited', status: 429, retryAfterMs: 2_000, whatToDo: 'wait', retryable: true });
    expect(isUnrecoverable(err)).toBe(false);
    expect(JSON.stringify({ m: (err as Error).message, d: (err as VendorError).details })).not.toContain(SECRET.slice(-12));
  });

  it('a refused key: UnrecoverableJobError with the vendor outcome as its code', async () => {
    const { deps: d, notices } = deps({ outcome: 'invalid_key', status: 401, message: 'bad key' });
    const err = await thrown(validateKeyHandler(d)({ ...job, queued_at: Date.now() }, ctx));
    expect(err).toBeInstanceOf(UnrecoverableJobError);
    expect(err).toMatchObject({ code: 'invalid_key', message: 'vendor answered invalid_key' });
    expect(notices).toHaveLength(1);
  });

  it('a process without the master key: a retried ByokError master_key_unavailable, never final', async () => {
    const { deps: d } = deps(() => {
      throw new ByokError('master_key_unavailable', 'no such master key', { kid: 'abcd1234' });
    });
    const err = await thrown(validateKeyHandler(d)({ ...job, queued_at: Date.now() }, ctx));
    expect(err).toBeInstanceOf(ByokError);
    expect(err).toMatchObject({ code: 'master_key_unavailable', details: { kid: 'abcd1234' } });
    expect(isUnrecoverable(err)).toBe(false);
  });
});

describe('only the BullMQ runner loads bullmq', () => {
  /** Runs `source` in a fresh `node --import tsx` process and lists the packages it resolved. */
  function packagesLoaded(source: string): Set<string> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-trace-'));
    try {
      const hooks = path.join(dir, 'hooks.mjs');
      fs.writeFileSync(hooks, "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('LOADED ' + r.url + '\\n'); return r; }\n");
      const register = path.join(dir, 'register.mjs');
      fs.writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(new URL(`file://${hooks}`).href)});\n`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', register, '--input-type=module', '-e', source], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1', BYOK_DATA_DIR: dir },
        maxBuffer: 64 * 1024 * 1024,
        timeout: 60_000,
      });
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      expect(r.stdout).toContain('DONE');
      const urls = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
      return new Set(urls.map((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1]).filter((p): p is string => !!p));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const src = (p: string) => JSON.stringify(path.join(ROOT, p));

  it('queue types, the validate-key job, app.ts and the embedded runners load no bullmq', () => {
    const loaded = packagesLoaded(`
      await import(${src('src/queue/types.ts')});
      await import(${src('src/jobs/validate-key.ts')});
      await import(${src('src/app.ts')});
      const q = await import(${src('src/queue/index.ts')});
      const embedded = { redisUrl: undefined, redisPrefix: 'byok:' };
      const r = await q.createRunner(embedded);
      const n = await q.createNotifyQueues(embedded);
      await n.enqueue('notify', { channel: { channel: 'test', chat_id: '1' } });
      if (r.kind !== 'inprocess' || n.kind !== 'inprocess') throw new Error('not embedded');
      await r.close();
      await n.close();
      process.stdout.write('DONE\\n');
    `);
    expect(loaded.has('fastify'), 'the hook sees packages app.ts loads').toBe(true);
    expect(loaded.has('bullmq')).toBe(false);
  }, 90_000);

  it('the BullMQ runner module does load it (the check can fail)', () => {
    const loaded = packagesLoaded(`await import(${src('src/queue/bullmq-runner.ts')}); process.stdout.write('DONE\\n');`);
    expect(loaded.has('bullmq')).toBe(true);
  }, 90_000);
});
