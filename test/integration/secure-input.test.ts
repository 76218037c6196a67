import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sodium from 'libsodium-wrappers';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.ts';
import {
  buildServer,
  CSP,
  EnvInputRequests,
  hashToken,
  type EnvInputParams,
  type RateLimits,
  type SubmissionContext,
} from '../../src/secure-input/index.ts';

const CANARY = 'sk-canary-3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e';
const PUBLIC_URL = 'http://127.0.0.1:8787';

interface Harness {
  app: FastifyInstance;
  store: FileStore;
  dir: string;
  requests: EnvInputRequests;
  keyPair: { publicKey: Uint8Array; privateKey: Uint8Array };
  keyId: { value: string };
  submissions: SubmissionContext[];
  logs: string[];
  failSubmit: { value: boolean };
  close(): Promise<void>;
}

const harnesses: Harness[] = [];

async function harness(
  opts: {
    ttlMs?: number;
    rateLimits?: Partial<RateLimits>;
    verifyLaunch?: (record: unknown, req: { telegramInitData?: string }) => Promise<boolean>;
  } = {},
): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'byok-secure-input-'));
  const store = new FileStore(dir);
  const requests = new EnvInputRequests(store, { ttlMs: opts.ttlMs ?? 15 * 60_000, publicUrl: PUBLIC_URL });
  const keyPair = sodium.crypto_box_keypair();
  const keyId = { value: 'box-1' };
  const submissions: SubmissionContext[] = [];
  const logs: string[] = [];
  const failSubmit = { value: false };
  const log = (obj: object, msg?: string) => logs.push(JSON.stringify({ ...obj, msg }));
  const app = buildServer({
    store,
    requests,
    boxKeys: { current: async () => ({ id: keyId.value, publicKey: keyPair.publicKey }) },
    onSubmit: async (ctx) => {
      // Let a concurrent POST interleave with this one.
      await new Promise((r) => setTimeout(r, 5));
      if (failSubmit.value) throw new Error('queue down');
      submissions.push(ctx);
    },
    logger: { debug: log, info: log, warn: log, error: log },
    rateLimits: opts.rateLimits,
    verifyLaunch: opts.verifyLaunch as never,
  });
  await app.ready();
  const h: Harness = {
    app,
    store,
    dir,
    requests,
    keyPair,
    keyId,
    submissions,
    logs,
    failSubmit,
    async close() {
      await app.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  harnesses.push(h);
  return h;
}

function params(over: Partial<EnvInputParams> = {}): EnvInputParams {
  return {
    workspace: 'tg:1001',
    channel: { channel: 'telegram', chat_id: '1001', user_id: '1001' },
    env_vars: ['DASHSCOPE_API_KEY'],
    reason: 'Qwen Plus needs your DashScope key to answer in this chat.',
    model_id: 'qwen-plus-e3f4',
    vendor: 'qwen',
    vendor_name: 'Alibaba Cloud DashScope',
    model_name: 'qwen-plus',
    homepage: 'https://dashscope.console.aliyun.com/apiKey',
    ...over,
  };
}

async function issue(h: Harness, over: Partial<EnvInputParams> = {}): Promise<{ token: string; url: string; expires_at: string; token_id: string }> {
  const res = await h.requests.request(params(over));
  if (res.status !== 'issued') throw new Error(`expected a new link, got ${res.status}`);
  const u = new URL(res.url);
  const token = u.pathname.split('/')[2]!;
  return { token, url: res.url, expires_at: res.expires_at, token_id: res.token_id };
}

function seal(h: Harness, value: string): string {
  return sodium.to_base64(sodium.crypto_box_seal(sodium.from_string(value), h.keyPair.publicKey), sodium.base64_variants.ORIGINAL);
}

function post(h: Harness, token: string, body: unknown, headers: Record<string, string> = {}) {
  return h.app.inject({
    method: 'POST',
    url: `/s/${token}`,
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

function goodBody(h: Harness, value = CANARY) {
  return { key_id: h.keyId.value, sealed: { DASHSCOPE_API_KEY: seal(h, value) } };
}

function expectSecurityHeaders(headers: Record<string, unknown>) {
  expect(headers['content-security-policy']).toBe(CSP);
  expect(String(headers['content-security-policy'])).toContain("frame-ancestors 'none'");
  expect(headers['referrer-policy']).toBe('no-referrer');
  expect(headers['cache-control']).toBe('no-store');
  expect(headers['x-frame-options']).toBe('DENY');
  expect(headers['x-content-type-options']).toBe('nosniff');
}

async function grepDir(dir: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  async function walk(d: string) {
    for (const ent of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) await walk(p);
      else if ((await readFile(p, 'utf8')).includes(needle)) hits.push(p);
    }
  }
  await walk(dir);
  return hits;
}

beforeAll(async () => {
  await sodium.ready;
});

afterAll(async () => {
  await Promise.all(harnesses.map((h) => h.close()));
});

describe('tokens', () => {
  it('issues a 256-bit base64url token, stores only its hash, and builds the link from PUBLIC_URL', async () => {
    const h = await harness();
    const { token, url, token_id, expires_at } = await issue(h);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url).toBe(`${PUBLIC_URL}/s/${token}`);
    expect(token_id).toBe(hashToken(token));
    expect(Date.parse(expires_at) - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(await grepDir(h.dir, token)).toEqual([]);
    const zh = await h.requests.request(params({ workspace: 'tg:1002', lang: 'zh' }));
    expect(zh.status === 'issued' && zh.url.endsWith('?lang=zh')).toBe(true);
  });

  it('does not re-issue while one is pending; force voids the old link and issues a fresh one', async () => {
    const h = await harness();
    const first = await issue(h);
    const again = await h.requests.request(params());
    expect(again).toEqual({ status: 'pending', expires_at: first.expires_at });
    // Another env var in the same workspace is independent.
    const other = await h.requests.request(params({ env_vars: ['OPENAI_API_KEY'], model_id: 'gpt-x-aaaa' }));
    expect(other.status).toBe('issued');

    const forced = await issue(h, { force: true });
    expect(forced.token).not.toBe(first.token);
    const oldGet = await h.app.inject({ method: 'GET', url: `/s/${first.token}` });
    expect([404, 410]).toContain(oldGet.statusCode);
    expect(oldGet.statusCode).toBe(410);
    const oldPost = await post(h, first.token, goodBody(h));
    expect(oldPost.statusCode).toBe(410);
    expect((await h.app.inject({ method: 'GET', url: `/s/${forced.token}` })).statusCode).toBe(200);
    expect((await post(h, forced.token, goodBody(h))).statusCode).toBe(202);

    // Once the pending one is redeemed, a new (non-forced) request issues again.
    expect((await h.requests.request(params())).status).toBe('issued');
  });

  it('concurrent non-forced requests issue exactly one link', async () => {
    const h = await harness();
    const results = await Promise.all([1, 2, 3, 4].map(() => h.requests.request(params({ workspace: 'tg:2002' }))));
    expect(results.filter((r) => r.status === 'issued')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'pending')).toHaveLength(3);
  });

  it('rejects bad parameters', async () => {
    const h = await harness();
    await expect(h.requests.request(params({ workspace: '../etc' }))).rejects.toThrow(/workspace/);
    await expect(h.requests.request(params({ env_vars: [] }))).rejects.toThrow(/env_vars/);
    await expect(h.requests.request(params({ env_vars: ['bad name'] }))).rejects.toThrow(/env var/);
  });
});

describe('secure-input server', () => {
  it('GET shows the form and does not burn the token (link previews)', async () => {
    const h = await harness();
    const { token } = await issue(h);
    for (let i = 0; i < 3; i++) {
      const res = await h.app.inject({ method: 'GET', url: `/s/${token}`, headers: { 'user-agent': 'TelegramBot (like TwitterBot)' } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expectSecurityHeaders(res.headers);
      const html = res.body;
      expect(html).toContain('Alibaba Cloud DashScope');
      expect(html).toContain('qwen-plus');
      expect(html).toContain('Qwen Plus needs your DashScope key');
      expect(html).toMatch(/<a href="https:\/\/dashscope\.console\.aliyun\.com\/apiKey" target="_blank" rel="noopener noreferrer">/);
      expect(html).toMatch(/<input id="k0" type="password" data-env="DASHSCOPE_API_KEY" autocomplete="off"/);
      expect(html).not.toMatch(/<input[^>]*\sname=/); // unnamed: a native submit can never carry the key
      expect(html).toContain(`data-public-key="${Buffer.from(h.keyPair.publicKey).toString('base64')}"`);
      expect(html).toContain('data-key-id="box-1"');
      expect(html).toContain('<script src="/assets/form.js"></script>');
      expect(html).not.toMatch(/<script>|<style|style=/); // nothing inline (CSP)
    }
    const res = await post(h, token, goodBody(h));
    expect(res.statusCode).toBe(202);
  });

  it('POST redeems once; the sealed box opens to the key; status moves pending → ok', async () => {
    const h = await harness();
    const { token } = await issue(h);
    const res = await post(h, token, goodBody(h));
    expect(res.statusCode).toBe(202);
    expectSecurityHeaders(res.headers);
    expect(res.json()).toEqual({ ok: true, status_url: `/s/${token}/status` });

    expect(h.submissions).toHaveLength(1);
    const sub = h.submissions[0]!;
    expect(sub.token_hash).toBe(hashToken(token));
    expect(sub.key_id).toBe('box-1');
    expect(sub.record.workspace).toBe('tg:1001');
    expect(sub.record.model_id).toBe('qwen-plus-e3f4');
    expect(sub.record.channel).toEqual({ channel: 'telegram', chat_id: '1001', user_id: '1001' });
    expect(Object.keys(sub.boxes)).toEqual(['DASHSCOPE_API_KEY']);
    const opened = sodium.crypto_box_seal_open(sub.sealed, h.keyPair.publicKey, h.keyPair.privateKey);
    expect(sodium.to_string(opened)).toBe(CANARY);

    const st1 = await h.app.inject({ method: 'GET', url: `/s/${token}/status` });
    expect(st1.statusCode).toBe(200);
    expect(st1.json().status).toBe('pending');

    await h.requests.setStatus(sub.token_hash, { status: 'ok', masked_key: '****9c1e' });
    const st2 = await h.app.inject({ method: 'GET', url: `/s/${token}/status` });
    expect(st2.json()).toMatchObject({ status: 'ok', masked_key: '****9c1e' });

    await h.requests.setStatus(sub.token_hash, { code: 'invalid_key', message: 'The vendor rejected the key.', what_to_do: 'Check it and send /byok key qwen-plus-e3f4.' });
    expect((await h.app.inject({ method: 'GET', url: `/s/${token}/status` })).json()).toMatchObject({
      status: 'error',
      code: 'invalid_key',
      what_to_do: 'Check it and send /byok key qwen-plus-e3f4.',
    });

    // Second POST and a later GET are refused.
    const again = await post(h, token, goodBody(h));
    expect(again.statusCode).toBe(410);
    expect(again.json()).toMatchObject({ code: 'already_used' });
    const page = await h.app.inject({ method: 'GET', url: `/s/${token}` });
    expect(page.statusCode).toBe(410);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('already used');
    expect(h.submissions).toHaveLength(1);

    // The plaintext never reached the store, and the token never reached a log line.
    expect(await grepDir(h.dir, CANARY)).toEqual([]);
    expect(h.logs.join('\n')).not.toContain(token);
    expect(h.logs.join('\n')).not.toContain(CANARY);
    expect(h.logs.some((l) => l.includes('/s/:token'))).toBe(true);
  });

  it('bindMessage adds the card message and launch mode, and cannot revive a redeemed link', async () => {
    const h = await harness();
    const { token, token_id } = await issue(h);
    await h.requests.bindMessage(token_id, '77', 'web_app');
    const seen = await h.requests.lookup(token);
    expect(seen.ok && seen.record.channel.message_id).toBe('77');
    expect(seen.ok && seen.record.launch).toBe('web_app');
    expect((await post(h, token, goodBody(h))).statusCode).toBe(202);
    expect(h.submissions[0]!.record.channel.message_id).toBe('77');
    // A late bind (the card was sent after the user already submitted) changes nothing.
    await h.requests.bindMessage(token_id, '78', 'link');
    expect((await post(h, token, goodBody(h))).statusCode).toBe(410);
  });

  it('two concurrent POSTs: exactly one 202, the other 410', async () => {
    const h = await harness();
    for (let round = 0; round < 5; round++) {
      const { token } = await issue(h, { force: true });
      const [a, b] = await Promise.all([post(h, token, goodBody(h)), post(h, token, goodBody(h))]);
      expect([a.statusCode, b.statusCode].sort()).toEqual([202, 410]);
    }
    expect(h.submissions).toHaveLength(5);
  });

  it('expired → 410 (page and POST), unknown → 404', async () => {
    const h = await harness({ ttlMs: 300 });
    const { token } = await issue(h);
    expect((await h.app.inject({ method: 'GET', url: `/s/${token}` })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 450));
    const page = await h.app.inject({ method: 'GET', url: `/s/${token}?lang=en` });
    expect(page.statusCode).toBe(410);
    expect(page.body).toContain('expired');
    expect(page.body).toContain('/byok key qwen-plus-e3f4');
    expectSecurityHeaders(page.headers);
    const p = await post(h, token, goodBody(h));
    expect(p.statusCode).toBe(410);
    expect(p.json()).toMatchObject({ code: 'expired' });
    expect((await h.app.inject({ method: 'GET', url: `/s/${token}/status` })).statusCode).toBe(410);
    expect(h.submissions).toHaveLength(0);

    const unknown = 'A'.repeat(43);
    const u1 = await h.app.inject({ method: 'GET', url: `/s/${unknown}` });
    expect(u1.statusCode).toBe(404);
    expect(u1.body).toContain('not valid');
    expectSecurityHeaders(u1.headers);
    expect((await post(h, unknown, goodBody(h))).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'GET', url: '/s/short' })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'GET', url: `/s/${unknown}/status` })).statusCode).toBe(404);
  });

  it('413 above the body limit, 409 on a stale key id, 400 on a bad body — none burns the token', async () => {
    const h = await harness();
    const { token } = await issue(h);
    const big = await post(h, token, { key_id: 'box-1', sealed: { DASHSCOPE_API_KEY: 'A'.repeat(20_000) } });
    expect(big.statusCode).toBe(413);
    expect(big.json()).toMatchObject({ code: 'too_large' });
    expectSecurityHeaders(big.headers);

    h.keyId.value = 'box-2'; // the worker key rotated after the page was rendered
    const stale = await post(h, token, { key_id: 'box-1', sealed: { DASHSCOPE_API_KEY: seal(h, CANARY) } });
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toEqual({ ok: false, code: 'stale_key_id', error: 'The page is out of date; reload it.' });

    expect((await post(h, token, { key_id: 'box-2', sealed: {} })).statusCode).toBe(400);
    expect((await post(h, token, { key_id: 'box-2', sealed: { DASHSCOPE_API_KEY: CANARY } })).statusCode).toBe(400); // not a box
    expect((await post(h, token, { key_id: 'box-2', sealed: { DASHSCOPE_API_KEY: seal(h, 'x'), OTHER: seal(h, 'y') } })).statusCode).toBe(400);
    expect((await post(h, token, 'not json')).statusCode).toBe(400);
    expect(h.submissions).toHaveLength(0);

    const ok = await post(h, token, goodBody(h));
    expect(ok.statusCode).toBe(202);
    expect(h.submissions[0]!.key_id).toBe('box-2');
  });

  it('a failed hand-over (onSubmit throws) answers 503 and leaves the link usable', async () => {
    const h = await harness();
    const { token } = await issue(h);
    h.failSubmit.value = true;
    const res = await post(h, token, goodBody(h));
    expect(res.statusCode).toBe(503);
    h.failSubmit.value = false;
    expect((await post(h, token, goodBody(h))).statusCode).toBe(202);
    expect(h.logs.join('\n')).not.toContain(token);
  });

  it('security headers on every response', async () => {
    const h = await harness();
    const { token } = await issue(h);
    const urls = ['/healthz', `/s/${token}`, `/s/${token}/status`, '/assets/form.js', '/assets/sodium.js', '/assets/libsodium.js', '/assets/form.css', '/assets/nope.js', '/nope'];
    for (const url of urls) {
      const res = await h.app.inject({ method: 'GET', url });
      expectSecurityHeaders(res.headers);
    }
    expect((await h.app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ ok: true });
    const js = await h.app.inject({ method: 'GET', url: '/assets/sodium.js' });
    expect(js.statusCode).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.body).toContain('crypto_box_seal');
    expect((await h.app.inject({ method: 'GET', url: '/assets/libsodium.js' })).body.length).toBeGreaterThan(100_000);
    expect((await h.app.inject({ method: 'GET', url: '/assets/form.css' })).headers['content-type']).toMatch(/^text\/css/);
    expect((await h.app.inject({ method: 'GET', url: '/assets/..%2fserver.ts' })).statusCode).toBe(404);
    const nope = await h.app.inject({ method: 'GET', url: '/assets/nope.js' });
    expect(nope.statusCode).toBe(404);
  });

  it('rate limits: per IP on GET, per token on POST → 429 with Retry-After', async () => {
    const h = await harness({ rateLimits: { pageGetsPerIp: 3, postsPerToken: 2 } });
    const { token } = await issue(h);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await h.app.inject({ method: 'GET', url: `/s/${token}` })).statusCode);
    expect(codes).toEqual([200, 200, 200, 429]);
    const limited = await h.app.inject({ method: 'GET', url: `/s/${token}` });
    expect(limited.headers['retry-after']).toBe('60');
    expectSecurityHeaders(limited.headers);
    // Another IP is not affected.
    expect((await h.app.inject({ method: 'GET', url: `/s/${token}`, remoteAddress: '10.0.0.9' })).statusCode).toBe(200);

    const p: number[] = [];
    for (let i = 0; i < 3; i++) p.push((await post(h, token, { key_id: 'old', sealed: { DASHSCOPE_API_KEY: seal(h, CANARY) } })).statusCode);
    expect(p).toEqual([409, 409, 429]);
    const last = await post(h, token, goodBody(h));
    expect(last.statusCode).toBe(429);
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
  });

  it('verifyLaunch hook: false → 403 without burning, sees the Telegram initData', async () => {
    let allow = false;
    const seen: (string | undefined)[] = [];
    const h = await harness({
      verifyLaunch: async (_record, req) => {
        seen.push(req.telegramInitData);
        return allow;
      },
    });
    const { token } = await issue(h);
    const denied = await post(h, token, goodBody(h), { 'x-telegram-init-data': 'query_id=1&user=%7B%7D&hash=abc' });
    expect(denied.statusCode).toBe(403);
    expect(seen).toEqual(['query_id=1&user=%7B%7D&hash=abc']);
    allow = true;
    expect((await post(h, token, goodBody(h))).statusCode).toBe(202);
  });

  it('speaks Chinese by the record language or ?lang=zh', async () => {
    const h = await harness();
    const { token } = await issue(h, { lang: 'zh' });
    const zh = await h.app.inject({ method: 'GET', url: `/s/${token}` });
    expect(zh.body).toContain('lang="zh-CN"');
    expect(zh.body).toContain('加密并提交');
    const en = await h.app.inject({ method: 'GET', url: `/s/${token}?lang=en` });
    expect(en.body).toContain('Seal and send');
  });
});
