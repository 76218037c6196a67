import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sodium from 'libsodium-wrappers';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry, type Registry } from '../../src/registry/index.ts';
import { buildServer, EnvInputRequests, type SubmissionContext } from '../../src/secure-input/index.ts';
import { Submissions, submissionFields, type Submission } from '../../src/secure-input/submissions.ts';
import { FileStore } from '../../src/store/file-store.ts';
import { Template } from '../../src/vendors/template-schema.ts';
import { launchBrowser } from '../support/browser.ts';

/**
 * The credential form in headless Chromium: a pasted OAuth credentials file (textarea, sealed
 * like a key, 16 KiB at most), Gemini CLI's optional project id, the Bedrock choice between
 * a key pair and an API key, and the "keep this key" expiry.
 */

const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../.tmp');
const WS = 'tg:5150';
// A credentials file as Gemini CLI writes it (made-up values; the refresh token is the canary).
const OAUTH_FILE = JSON.stringify(
  {
    access_token: 'ya29.a0AfB_byCANARYaccess7c1d9e3f5a7b9c1d3e5f7a9b1c3d5e7f',
    refresh_token: '1//0gCANARYrefresh4b2d6f8a0c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2',
    scope: 'https://www.googleapis.com/auth/cloud-platform openid',
    token_type: 'Bearer',
    expiry_date: 1767225600000,
  },
  null,
  2,
) + '\n';
const ABSK = 'ABSKQmVkcm9ja0FQSUtleS1DQU5BUllfdGVzdF9rZXlfOWYzYTFjN2U1YjJkNGY2YThjMGUxYjNkNWY3YTljMWU=';

let browser: Browser;
let app: FastifyInstance;
let store: FileStore;
let dir: string;
let base: string;
let requests: EnvInputRequests;
let registry: Registry;
let subs: Submissions;
let keyPair: { publicKey: Uint8Array; privateKey: Uint8Array };
const contexts: SubmissionContext[] = [];
const logs: string[] = [];

function oauthTemplate(id: string, provider: 'gemini-cli' | 'qwen-code', projectId: 'none' | 'optional'): Template {
  return Template.parse({
    id,
    name: `${provider} (test)`,
    aliases: [`${id} alias`],
    homepage: 'https://example.com/cli',
    base_url: 'https://cloudcode-pa.googleapis.com',
    wire: 'openai',
    auth: { scheme: 'bearer' },
    credential: { kind: 'oauth_json', oauth: { provider, token_url: 'https://oauth2.example.com/token', client_id: 'test-client', project_id: projectId } },
    env_var: `${id.toUpperCase().replace(/-/g, '_')}_OAUTH`,
    default_model: 'm1',
    models: [{ id: 'm1', name: 'Model One', capabilities: { json: true } }],
    model_discovery: false,
    thinking: { style: 'none' },
  });
}

function open(box: string): string {
  const opened = sodium.crypto_box_seal_open(Buffer.from(box, 'base64'), keyPair.publicKey, keyPair.privateKey);
  const text = sodium.to_string(opened);
  sodium.memzero(opened);
  return text;
}

/** Registers a model (real registry over the store the server reads) and issues its form link. */
async function linkFor(vendor: string, name: string, lang: 'en' | 'zh' = 'en'): Promise<{ url: string; token: string; modelId: string; env: string[] }> {
  const added = await registry.add_template(WS, vendor, { name });
  if (!added.ok) throw new Error(added.error);
  const m = added.model;
  const env = [m.api_key_env, ...m.extra_env_vars];
  const res = await requests.request({
    workspace: WS,
    channel: { channel: 'telegram', chat_id: '5150' },
    env_vars: env,
    reason: 'test',
    model_id: m.id,
    vendor: m.vendor,
    vendor_name: vendor,
    model_name: m.name,
    homepage: 'https://example.com/keys',
    lang,
    force: true,
  });
  if (res.status !== 'issued') throw new Error('no link');
  const u = new URL(res.url);
  return { url: `${base}${u.pathname}${u.search}`, token: u.pathname.split('/')[2]!, modelId: m.id, env };
}

async function ready(page: Page, url: string): Promise<string> {
  const resp = await page.goto(url);
  expect(resp?.status()).toBe(200);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
  return (await resp!.text()) ?? '';
}

/** A POST straight to the server, sealed as the page does, with the plain fields given. */
async function rawPost(token: string, values: Record<string, string>, extra: Record<string, unknown> = {}): Promise<{ status: number; body: { code?: string; error?: string } }> {
  const sealed: Record<string, string> = {};
  for (const [env, v] of Object.entries(values)) {
    sealed[env] = sodium.to_base64(sodium.crypto_box_seal(sodium.from_string(v), keyPair.publicKey), sodium.base64_variants.ORIGINAL);
  }
  const res = await fetch(`${base}/s/${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key_id: 'box-cred-1', sealed, ...extra }),
  });
  return { status: res.status, body: (await res.json()) as { code?: string; error?: string } };
}

function postsOf(reqs: Request[]): Request[] {
  return reqs.filter((r) => r.method() === 'POST');
}

beforeAll(async () => {
  await sodium.ready;
  keyPair = sodium.crypto_box_keypair();
  dir = await mkdtemp(path.join(os.tmpdir(), 'byok-e2e-cred-form-'));
  store = new FileStore(dir);
  requests = new EnvInputRequests(store, { ttlMs: 15 * 60_000, publicUrl: 'http://127.0.0.1:1' });
  const { loadTemplates } = await import('../../src/vendors/templates.ts');
  registry = createRegistry({
    store,
    env: {},
    templates: [...loadTemplates(), oauthTemplate('gemini-cli-test', 'gemini-cli', 'optional'), oauthTemplate('qwen-code-test', 'qwen-code', 'none')],
  });
  subs = new Submissions(store);
  const log = (obj: object, msg?: string) => logs.push(JSON.stringify({ ...obj, msg }));
  app = buildServer({
    store,
    requests,
    boxKeys: { current: async () => ({ id: 'box-cred-1', publicKey: keyPair.publicKey }) },
    // What app.ts hands to the worker: the submission, boxes still sealed.
    onSubmit: async (ctx) => {
      contexts.push(ctx);
      await subs.add(ctx.record.workspace, submissionFields(ctx));
      await requests.setStatus(ctx.token_hash, 'pending');
    },
    logger: { debug: log, info: log, warn: log, error: log },
    rateLimits: { postsPerIp: 1000 },
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

async function submissionFor(modelId: string): Promise<Submission> {
  const s = await subs.forModel(WS, modelId);
  if (!s) throw new Error('no submission');
  return s;
}

describe('credential form in headless Chromium', () => {
  it('an OAuth file goes through a textarea, sealed as pasted, with the project id and the expiry as plain fields', async () => {
    const { url, modelId, env } = await linkFor('gemini-cli-test', 'Gemini via CLI');
    const context = await browser.newContext({ viewport: { width: 520, height: 1100 } });
    const page = await context.newPage();
    const seen: Request[] = [];
    const errors: string[] = [];
    page.on('request', (r) => seen.push(r));
    page.on('pageerror', (e) => errors.push(String(e)));
    const served = await ready(page, url);

    expect(await page.$eval('#k0', (el) => el.tagName)).toBe('TEXTAREA');
    expect(await page.$eval('#k0', (el) => el.getAttribute('data-env'))).toBe(env[0]);
    expect(await page.$('input[type="password"]')).toBeNull();
    expect(await page.isVisible('#project')).toBe(true);
    expect(await page.textContent('label[for="project"]')).toContain('Google Cloud project ID');
    expect(await page.inputValue('#keep')).toBe('never');
    expect(await page.textContent('#k0-hint')).toContain('~/.gemini/oauth_creds.json');
    expect(served).not.toMatch(/<(input|textarea|select)[^>]*\sname=/);

    await page.fill('#k0', OAUTH_FILE);
    await page.fill('#project', 'my-gemini-project-42');
    await page.selectOption('#keep', '7');
    // Typed, not yet sealed: nothing of it in the document's HTML.
    expect(await page.content()).not.toContain('CANARYrefresh');
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'form-oauth.png'), fullPage: true });

    const postSeen = page.waitForRequest((r) => r.method() === 'POST');
    await page.click('#submit');
    const post = await postSeen;
    expect((await post.response())?.status()).toBe(202);

    const raw = post.postData() ?? '';
    for (const v of ['CANARYrefresh', 'CANARYaccess', Buffer.from(OAUTH_FILE).toString('base64').slice(8, 40), encodeURIComponent('CANARYrefresh')]) {
      expect(raw).not.toContain(v);
    }
    const body = JSON.parse(raw) as Record<string, unknown>;
    expect(Object.keys(body.sealed as object)).toEqual(env);
    expect(body.project_id).toBe('my-gemini-project-42');
    expect(body.expires_in_days).toBe(7);
    // Cleared once sealed; never in the page.
    expect(await page.inputValue('#k0')).toBe('');
    expect(await page.content()).not.toContain('CANARY');

    const sub = await submissionFor(modelId);
    expect(open(sub.sealed[env[0]!]!)).toBe(OAUTH_FILE);
    expect(sub.project_id).toBe('my-gemini-project-42');
    expect(sub.expires_in_days).toBe(7);
    // Nothing of the file on disk but the sealed box.
    for (const f of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!f.isFile()) continue;
      const text = await readFile(path.join(f.parentPath, f.name), 'utf8');
      expect(text.includes('CANARY'), f.name).toBe(false);
    }
    expect(logs.join('\n')).not.toContain('CANARY');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('an oversize paste is refused in the browser, and by the server, with a clear message', async () => {
    const { url, token, env } = await linkFor('gemini-cli-test', 'Gemini big');
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen: Request[] = [];
    page.on('request', (r) => seen.push(r));
    await ready(page, url);
    const big = JSON.stringify({ refresh_token: 'x'.repeat(17 * 1024) });
    await page.fill('#k0', big);
    await page.click('#submit');
    await page.waitForSelector('#status.error', { timeout: 5_000 });
    expect(await page.textContent('#status')).toContain('larger than 16 KiB');
    expect(postsOf(seen)).toEqual([]);
    expect(await page.content()).not.toContain('xxxxxxxxxx');
    await context.close();

    // Past the page (a hand-made POST): refused before the link is used.
    const res = await rawPost(token, { [env[0]!]: big });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/larger than 16 KiB/);
    // 16 KiB exactly still fits (a sealed box of that size is above a key form's body limit).
    const fits = await rawPost(token, { [env[0]!]: 'y'.repeat(16 * 1024) });
    expect(fits.status).toBe(202);
  });

  it('an invalid project id is refused clearly, in the page and by the server', async () => {
    const { url, token, env } = await linkFor('gemini-cli-test', 'Gemini bad project');
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen: Request[] = [];
    page.on('request', (r) => seen.push(r));
    await ready(page, url);
    await page.fill('#k0', OAUTH_FILE);
    await page.fill('#project', 'My_Project');
    await page.click('#submit');
    await page.waitForSelector('#status.error', { timeout: 5_000 });
    expect(await page.textContent('#status')).toContain('not a Google Cloud project ID');
    expect(postsOf(seen)).toEqual([]);
    await context.close();

    for (const bad of ['My_Project', 'abc', 'ends-with-', 42]) { // 4 + 1 posts: the per-link limit is 5
      const res = await rawPost(token, { [env[0]!]: OAUTH_FILE }, { project_id: bad });
      expect(res.status, String(bad)).toBe(400);
      expect(res.body.error).toMatch(/not a Google Cloud project ID/);
    }
    const ok = await rawPost(token, { [env[0]!]: OAUTH_FILE });
    expect(ok.status).toBe(202);
  });

  it('the project box is shown only when the CLI takes one', async () => {
    const { url, token, env, modelId } = await linkFor('qwen-code-test', 'Qwen via CLI', 'zh');
    const context = await browser.newContext();
    const page = await context.newPage();
    await ready(page, url);
    expect(await page.$eval('#k0', (el) => el.tagName)).toBe('TEXTAREA');
    expect(await page.$('#project')).toBeNull();
    expect(await page.textContent('label[for="k0"]')).toContain('凭证文件');
    expect(await page.textContent('#k0-hint')).toContain('~/.qwen/oauth_creds.json');
    // A credentials file is a login: kept as one, not as a "key".
    expect(await page.textContent('label[for="keep"]')).toContain('登录凭证保留时间');
    await context.close();
    const res = await rawPost(token, { [env[0]!]: OAUTH_FILE }, { project_id: 'my-project-123' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatch(/project_id is not asked/);
    expect((await rawPost(token, { [env[0]!]: OAUTH_FILE })).status).toBe(202);
    expect((await submissionFor(modelId)).project_id).toBeUndefined();
  });

  it('Bedrock: a choice shows one set of inputs, and the API key choice seals only AWS_BEARER_TOKEN_BEDROCK', async () => {
    const { url, modelId } = await linkFor('bedrock', 'Claude on Bedrock');
    const context = await browser.newContext({ viewport: { width: 520, height: 1100 } });
    const page = await context.newPage();
    await ready(page, url);
    const visible = async () =>
      page.$$eval('[data-env]', (els) => els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => e.getAttribute('data-env')));
    expect(await page.isChecked('#cred-0')).toBe(true);
    expect(await page.textContent('label:has(#cred-0)')).toContain('IAM access key pair');
    expect(await page.textContent('label:has(#cred-1)')).toContain('Bedrock API key (ABSK');
    expect(await visible()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

    // Something typed into the pair, then the user changes their mind: it is dropped.
    await page.fill('#k0', 'AKIAIOSFODNN7EXAMPLE');
    await page.check('#cred-1');
    expect(await page.isChecked('#cred-0')).toBe(false);
    expect(await visible()).toEqual(['AWS_BEARER_TOKEN_BEDROCK']);
    expect(await page.inputValue('#k0')).toBe('');
    await page.fill('#k2', ABSK);
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'form-bedrock.png'), fullPage: true });

    const postSeen = page.waitForRequest((r) => r.method() === 'POST');
    await page.click('#submit');
    const post = await postSeen;
    const body = JSON.parse(post.postData() ?? '{}') as { sealed: Record<string, string>; expires_in_days?: unknown };
    expect(Object.keys(body.sealed)).toEqual(['AWS_BEARER_TOKEN_BEDROCK']);
    expect(post.postData()).not.toContain(ABSK.slice(4, 30));
    expect('expires_in_days' in body).toBe(false); // "never" is the default: nothing posted
    expect((await post.response())?.status()).toBe(202);

    const sub = await submissionFor(modelId);
    expect(Object.keys(sub.sealed)).toEqual(['AWS_BEARER_TOKEN_BEDROCK']);
    expect(open(sub.sealed.AWS_BEARER_TOKEN_BEDROCK!)).toBe(ABSK);
    expect(sub.expires_in_days).toBeUndefined();
    const ctx = contexts.at(-1)!;
    expect(open(Buffer.from(ctx.sealed).toString('base64'))).toBe(ABSK);
    await context.close();
  });

  it('the expiry: a chosen value lands on the submission; anything but 1, 7, 30 or never is refused', async () => {
    const { url, token, modelId } = await linkFor('bedrock', 'Claude on Bedrock 2');
    for (const bad of [3, '7', 'never', 365]) { // 4 + 1 posts: the per-link limit is 5
      const res = await rawPost(token, { AWS_BEARER_TOKEN_BEDROCK: ABSK }, { expires_in_days: bad });
      expect(res.status, String(bad)).toBe(400);
      expect(res.body.error).toMatch(/expires_in_days must be 1, 7, 30, or null/);
    }
    const context = await browser.newContext();
    const page = await context.newPage();
    await ready(page, url);
    await page.fill('#k0', 'AKIAIOSFODNN7EXAMPLE');
    await page.fill('#k1', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
    await page.selectOption('#keep', '30');
    const answered = page.waitForResponse((r) => r.request().method() === 'POST');
    await page.click('#submit');
    expect((await answered).status()).toBe(202);
    const sub = await submissionFor(modelId);
    expect(Object.keys(sub.sealed).sort()).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    expect(sub.expires_in_days).toBe(30);
    await context.close();
  });
});
