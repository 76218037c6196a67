import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sodium from 'libsodium-wrappers';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/store/file-store.ts';
import { buildServer, EnvInputRequests, type EnvInputParams, type SubmissionContext } from '../../src/secure-input/index.ts';
import { launchBrowser } from '../support/browser.ts';

const CANARY = 'sk-e2e-canary-7c1d9e3f5a7b9c1d3e5f7a9b1c3d5e7f';
const BAD_KEY = 'sk-e2e-wrong-0000000000000000000000000000';
const SCREENSHOT = path.resolve(import.meta.dirname, '../../.tmp/form.png');

let browser: Browser;
let app: FastifyInstance;
let store: FileStore;
let dir: string;
let base: string;
let requests: EnvInputRequests;
let keyPair: { publicKey: Uint8Array; privateKey: Uint8Array };
const submissions: { ctx: SubmissionContext; plain: string }[] = [];
const logs: string[] = [];

function params(over: Partial<EnvInputParams> = {}): EnvInputParams {
  return {
    workspace: 'tg:4242',
    channel: { channel: 'telegram', chat_id: '4242' },
    env_vars: ['DASHSCOPE_API_KEY'],
    reason: 'Qwen Plus answers in this chat with your own DashScope quota.',
    model_id: 'qwen-plus-e3f4',
    vendor: 'qwen',
    vendor_name: 'Alibaba Cloud DashScope',
    model_name: 'qwen-plus',
    homepage: 'https://dashscope.console.aliyun.com/apiKey',
    force: true,
    ...over,
  };
}

/** Issues a link and points it at the test server's real port. */
async function issue(reqs: EnvInputRequests = requests, over: Partial<EnvInputParams> = {}): Promise<{ url: string; token: string }> {
  const res = await reqs.request(params(over));
  if (res.status !== 'issued') throw new Error('expected a link');
  const u = new URL(res.url);
  return { url: `${base}${u.pathname}${u.search}`, token: u.pathname.split('/')[2]! };
}

interface Watch {
  requests: Request[];
  console: string[];
  errors: string[];
}

function watch(page: Page): Watch {
  const w: Watch = { requests: [], console: [], errors: [] };
  page.on('request', (r) => w.requests.push(r));
  page.on('console', (m) => w.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => w.errors.push(String(e)));
  return w;
}

beforeAll(async () => {
  await sodium.ready;
  keyPair = sodium.crypto_box_keypair();
  dir = await mkdtemp(path.join(os.tmpdir(), 'byok-e2e-form-'));
  store = new FileStore(dir);
  // The link origin is fixed up after listen (port 0); the server does not use it for routing.
  requests = new EnvInputRequests(store, { ttlMs: 15 * 60_000, publicUrl: 'http://127.0.0.1:1' });
  const log = (obj: object, msg?: string) => logs.push(JSON.stringify({ ...obj, msg }));
  app = buildServer({
    store,
    requests,
    boxKeys: { current: async () => ({ id: 'box-e2e-1', publicKey: keyPair.publicKey }) },
    // Stands in for the worker: opens the box, "validates", and reports a status a bit later.
    onSubmit: async (ctx) => {
      const opened = sodium.crypto_box_seal_open(ctx.sealed, keyPair.publicKey, keyPair.privateKey);
      const plain = sodium.to_string(opened);
      sodium.memzero(opened);
      submissions.push({ ctx, plain });
      setTimeout(() => {
        const status =
          plain === CANARY
            ? ({ status: 'ok', masked_key: `****${plain.slice(-4)}` } as const)
            : { code: 'invalid_key', message: 'The vendor rejected the key.', what_to_do: 'Check the key and send /byok key qwen-plus-e3f4 for a new form.' };
        void requests.setStatus(ctx.token_hash, status);
      }, 1500);
    },
    logger: { debug: log, info: log, warn: log, error: log },
  });
  base = await app.listen({ port: 0, host: '127.0.0.1' });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('secure form in headless Chromium', () => {
  it('seals the key in the browser, posts only the sealed box, and shows the result', async () => {
    const { url, token } = await issue();
    const context = await browser.newContext({ viewport: { width: 520, height: 900 } });
    const page = await context.newPage();
    const w = watch(page);

    const resp = await page.goto(url);
    expect(resp?.status()).toBe(200);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    expect(await page.isEnabled('#submit')).toBe(true);
    expect(await page.textContent('h1')).toContain('Alibaba Cloud DashScope');
    expect(await page.getAttribute('a[rel="noopener noreferrer"]', 'href')).toBe('https://dashscope.console.aliyun.com/apiKey');

    await mkdir(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await page.fill('#k0', CANARY);
    const postSeen = page.waitForRequest((r) => r.method() === 'POST');
    await page.click('#submit');
    const postReq = await postSeen;

    // The wire: JSON with the key id and a sealed box, nothing resembling the key.
    const body = postReq.postData() ?? '';
    expect(body.length).toBeGreaterThan(0);
    const variants = [
      CANARY,
      Buffer.from(CANARY).toString('base64'),
      Buffer.from(CANARY).toString('base64url'),
      Buffer.from(CANARY).toString('hex'),
      encodeURIComponent(CANARY),
      CANARY.slice(-12),
    ];
    for (const v of variants) expect(body).not.toContain(v);
    const json = JSON.parse(body) as { key_id: string; sealed: Record<string, string> };
    expect(json.key_id).toBe('box-e2e-1');
    expect(Object.keys(json.sealed)).toEqual(['DASHSCOPE_API_KEY']);
    const box = Buffer.from(json.sealed.DASHSCOPE_API_KEY!, 'base64');
    expect(box.length).toBe(CANARY.length + sodium.crypto_box_SEALBYTES);
    expect(postReq.url()).toBe(`${base}/s/${token}`);
    expect(postReq.headers()['content-type']).toMatch(/application\/json/);
    // The field is cleared once sealed.
    expect(await page.inputValue('#k0')).toBe('');

    await page.waitForSelector('#status.pending', { timeout: 10_000 });
    await page.waitForSelector('#status.ok', { timeout: 15_000 });
    expect(await page.textContent('#status')).toContain('Key verified and stored');
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-ok.png'), fullPage: true });

    expect(submissions.map((s) => s.plain)).toContain(CANARY);

    // Every request stayed on our origin; the page polled the status endpoint.
    for (const r of w.requests) expect(r.url().startsWith(`${base}/`)).toBe(true);
    expect(w.requests.some((r) => r.url() === `${base}/s/${token}/status`)).toBe(true);
    expect(w.requests.map((r) => new URL(r.url()).pathname)).toEqual(
      expect.arrayContaining(['/assets/libsodium.js', '/assets/sodium.js', '/assets/form.js', '/assets/form.css']),
    );
    // No CSP violation, no script error (libsodium's wasm runs under 'wasm-unsafe-eval').
    expect(w.errors).toEqual([]);
    expect(w.console.filter((m) => /Content Security Policy|Refused/i.test(m))).toEqual([]);

    // Reuse: the link is dead now.
    const again = await page.goto(url);
    expect(again?.status()).toBe(410);
    expect(await page.textContent('body')).toContain('already used');
    const replay = await page.evaluate(
      async ([path, b]) => (await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b })).status,
      [`/s/${token}`, body] as const,
    );
    expect(replay).toBe(410);

    expect(logs.join('\n')).not.toContain(token);
    expect(logs.join('\n')).not.toContain(CANARY);
    await context.close();
  });

  it('shows a classified error with what to do', async () => {
    const { url } = await issue();
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    await page.fill('#k0', BAD_KEY);
    await page.click('#submit');
    await page.waitForSelector('#status.error', { timeout: 15_000 });
    const text = (await page.textContent('#status')) ?? '';
    expect(text).toContain('The vendor rejected the key.');
    expect(text).toContain('/byok key qwen-plus-e3f4');
    await context.close();
  });

  it('a second tab of the same link is refused once the first submitted', async () => {
    const { url } = await issue();
    const context = await browser.newContext();
    const [a, b] = [await context.newPage(), await context.newPage()];
    for (const p of [a, b]) {
      await p.goto(url);
      await p.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    }
    await a.fill('#k0', CANARY);
    await a.click('#submit');
    await a.waitForSelector('#status.pending', { timeout: 10_000 });
    await b.fill('#k0', CANARY);
    await b.click('#submit');
    await b.waitForSelector('#status.error', { timeout: 10_000 });
    expect(await b.textContent('#status')).toMatch(/already used or has expired/);
    expect(await b.inputValue('#k0')).toBe('');
    await context.close();
  });

  it('an expired link shows the 410 page', async () => {
    const short = new EnvInputRequests(store, { ttlMs: 500, publicUrl: 'http://127.0.0.1:1' });
    const { url } = await issue(short, { workspace: 'tg:4343' });
    await new Promise((r) => setTimeout(r, 700));
    const context = await browser.newContext();
    const page = await context.newPage();
    const resp = await page.goto(url);
    expect(resp?.status()).toBe(410);
    expect(resp?.headers()['content-security-policy']).toContain("default-src 'none'");
    const text = (await page.textContent('body')) ?? '';
    expect(text).toContain('This link has expired.');
    expect(text).toContain('/byok key qwen-plus-e3f4');
    await context.close();
  });

  it('the Chinese form works too', async () => {
    const { url } = await issue(requests, { lang: 'zh', workspace: 'tg:4444' });
    expect(url).toContain('?lang=zh');
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    expect(await page.textContent('#submit')).toBe('加密并提交');
    await page.fill('#k0', CANARY);
    await page.click('#submit');
    await page.waitForSelector('#status.ok', { timeout: 15_000 });
    expect(await page.textContent('#status')).toContain('密钥已验证并保存');
    await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, '-zh.png'), fullPage: true });
    await context.close();
  });
});
