import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/registry/index.ts';
import { readVaultMeta } from '../../src/secrets/vault.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { launchBrowser } from '../support/browser.ts';
import { startFakeBotApi, type FakeBotApi } from '../support/fake-bot-api.ts';
import { startFakeCodeAssist, type FakeCodeAssist } from '../support/fake-code-assist.ts';
import { startFakeOAuth, type FakeOAuth, type FakeProvider } from '../support/fake-oauth.ts';
import { startFakeAnthropic, startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, waitFor } from '../support/form.ts';
import { deliverUpdate, deploymentEnv, privateTextUpdate } from '../support/webhook.ts';
import { startPrivateRedis, startProcess, startRoundRobinProxy, waitForOutput, type PrivateRedis, type ProcHandle, type RoundRobinProxy } from '../support/processes.ts';

/**
 * OAuth credential files end to end, as an operator runs the bot: two web processes (Telegram
 * webhook) behind a round-robin proxy, one worker, one Redis, a fake Bot API, a fake token
 * server for the three CLIs' OAuth clients and a fake API per vendor (Qwen: OpenAI-compatible;
 * Claude Code: Anthropic Messages with a bearer token; Gemini CLI: Code Assist). For each kind
 * a user pastes the CLI's file — with an access token that has already expired — into the
 * form's text box in real Chromium; the worker refreshes it, probes, stores it sealed; the
 * chat is relayed with the new access token; a 401 mid-conversation, hitting both web
 * processes at once, is refreshed exactly once; a revoked refresh token tells the user to log
 * in again in that CLI.
 */

const TOKEN = '700002:oauth-e2e-token';
const SECRET = 'oauth-webhook-secret';
const MASTER = randomBytes(32).toString('base64');
const PREFIX = 'byokoauth:';
const REPLY = 'An answer paid for by your own CLI login.';
const PROJECT = 'my-gemini-proj-42';

let redis: PrivateRedis;
let oauth: FakeOAuth;
let qwenApi: FakeVendor;
let claudeApi: FakeVendor;
let geminiApi: FakeCodeAssist;
let botApi: FakeBotApi;
let proxy: RoundRobinProxy;
let browser: Browser;
let dataDir: string;
let store: RedisStore;
const procs: ProcHandle[] = [];
let updateId = 5000;
/** Access tokens the fake vendors accept: every token the token server issued and did not revoke. */
const issued = new Set<string>();
const claudeTokens: string[] = [];
/** Every token and file the test handed out: none may appear in Redis, logs or chat. */
const canaries = new Set<string>();

function syncVendorKeys(): void {
  const live = [...issued].filter((t) => oauth.isValidAccess(t));
  qwenApi.setKeys(live);
  geminiApi.setKeys(live);
  claudeTokens.splice(0, claudeTokens.length, ...live);
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  const d = { redisUrl: redis.url, prefix: PREFIX, masterKey: MASTER, dataDir, proxyUrl: proxy.url, botToken: TOKEN, botApiUrl: botApi.url, webhookSecret: SECRET };
  return deploymentEnv(d, {
    ...extra,
  });
}

const deliver = (update: Record<string, unknown>) => deliverUpdate(`${proxy.url}/telegram/webhook`, SECRET, update).then(() => undefined);
const textUpdate = (user: number, text: string) => privateTextUpdate(user, text, ++updateId);

const texts = (user: number) => botApi.messages(user).map((m) => m.text);
const formUrlOf = (user: number): string | undefined => {
  for (const m of botApi.messages(user)) {
    const url = m.markup?.inline_keyboard?.[0]?.[0]?.url as string | undefined;
    if (url?.includes('/s/')) return url;
  }
  return undefined;
};

/** The file each CLI writes, in its own shape, around a login the fake token server issued. */
function credentialFile(p: FakeProvider, set: { access_token: string; refresh_token: string; expiry_ms: number }): string {
  if (p === 'qwen-code') {
    return JSON.stringify({ access_token: set.access_token, refresh_token: set.refresh_token, token_type: 'Bearer', resource_url: qwenApi.url, expiry_date: set.expiry_ms });
  }
  if (p === 'gemini-cli') {
    return JSON.stringify(
      { access_token: set.access_token, refresh_token: set.refresh_token, scope: 'https://www.googleapis.com/auth/cloud-platform', token_type: 'Bearer', id_token: 'eyJhbGciOiJSUzI1NiJ9.e30.sig', expiry_date: set.expiry_ms },
      null,
      2,
    );
  }
  return JSON.stringify({ claudeAiOauth: { accessToken: set.access_token, refreshToken: set.refresh_token, expiresAt: set.expiry_ms, scopes: ['user:inference'], subscriptionType: 'pro' } });
}

interface Case {
  provider: FakeProvider;
  user: number;
  cli: string;
  /** Requests the vendor's fake saw that carried `token`. */
  callsWith: (token: string) => number;
  baseUrl: () => string;
}

const cases: Case[] = [
  { provider: 'qwen-code', user: 31_001, cli: 'Qwen Code', callsWith: (t) => qwenApi.requests.filter((r) => r.key === t).length, baseUrl: () => qwenApi.baseUrl },
  { provider: 'claude-code', user: 31_002, cli: 'Claude Code', callsWith: (t) => claudeApi.requests.filter((r) => r.key === t).length, baseUrl: () => claudeApi.baseUrl },
  { provider: 'gemini-cli', user: 31_003, cli: 'Gemini CLI', callsWith: (t) => geminiApi.requests.filter((r) => r.key === t).length, baseUrl: () => geminiApi.url },
];

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-oauth-'));
  redis = await startPrivateRedis();
  oauth = await startFakeOAuth();
  qwenApi = await startFakeOpenAI({ reply: REPLY, keys: [] });
  claudeApi = await startFakeAnthropic({ reply: REPLY, oauthTokens: claudeTokens });
  geminiApi = await startFakeCodeAssist({ reply: REPLY, keys: [], projects: [PROJECT] });
  oauth.setResourceUrl(qwenApi.url);
  oauth.onIssue((t) => {
    issued.add(t);
    canaries.add(t);
    syncVendorKeys();
  });
  botApi = await startFakeBotApi();
  const ports = [await freePort(), await freePort()];
  proxy = await startRoundRobinProxy(ports);
  store = new RedisStore(redis.url, PREFIX);
  ports.forEach((port, i) => procs.push(startProcess(`web${i}`, 'src/main.ts', env({ PORT: String(port) }))));
  procs.push(startProcess('worker', 'worker/main.ts', env({ PORT: '0' })));
  browser = await launchBrowser();
  await Promise.all(procs.map((p) => waitForOutput(p, /byok-bot started|byok worker started/, 60_000)));
}, 120_000);

afterAll(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await browser?.close();
  await store?.close();
  await proxy?.close();
  await botApi?.close();
  await Promise.all([qwenApi?.close(), claudeApi?.close(), geminiApi?.close(), oauth?.close()]);
  await redis?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function diagnostics(user: number): string {
  return `user ${user} sees ${JSON.stringify(texts(user))}\n${procs.map((p) => `--- ${p.name}\n${p.output().slice(-2000)}`).join('\n')}`;
}

describe.each(cases)('OAuth credential file end to end: $provider', (c) => {
  let modelId: string;
  let refreshToken: string;

  it('pasted in the text box (expired access token) → refreshed → probed → stored sealed → the user is told', async () => {
    const registry = createRegistry({ store });
    const added = await registry.add_template(`tg:${c.user}`, c.provider, { base_url: c.baseUrl(), token_url: oauth.tokenUrl(c.provider) });
    if (!added.ok) throw new Error(added.error);
    modelId = added.model.id;
    expect(added.model.credential_kind).toBe('oauth_json');

    const login = oauth.issue(c.provider, { expiresInS: -60 }); // expired a minute ago
    issued.add(login.access_token);
    canaries.add(login.access_token).add(login.refresh_token);
    syncVendorKeys();
    const file = credentialFile(c.provider, login);
    canaries.add(file);

    await deliver(textUpdate(c.user, `/byok key ${modelId}`));
    const url = await waitFor(() => formUrlOf(c.user), 20_000, 'the form link').catch((e) => {
      throw new Error(`${(e as Error).message}; ${diagnostics(c.user)}`);
    });
    const page = await browser.newPage();
    try {
      await page.goto(url);
      await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
      // A text box for the file, not a password field; it asks for a file, not "create a key at".
      expect(await page.textContent('h1')).toMatch(/credentials file/);
      expect(await page.title()).toMatch(/^Paste your credentials file/);
      expect(await page.locator('p.home').count()).toBe(0);
      expect(await page.locator('textarea').count()).toBe(1);
      expect(await page.locator('input[type=password]').count()).toBe(0);
      expect(await page.locator('#project').count()).toBe(c.provider === 'gemini-cli' ? 1 : 0);
      await page.fill('textarea', file);
      if (c.provider === 'gemini-cli') await page.fill('#project', PROJECT);
      // Claude Code's login is kept for 7 days; the others never expire (the default).
      if (c.provider === 'claude-code') await page.selectOption('#keep', '7');
      await page.click('#submit');
      await page.waitForSelector('#status.ok', { timeout: 30_000 }).catch(async (e) => {
        throw new Error(`${(e as Error).message}; page says ${await page.textContent('#status')}; ${diagnostics(c.user)}`);
      });
      // The page never shows the file back.
      const html = await page.content();
      expect(html).not.toContain(login.refresh_token);
      expect(await page.inputValue('textarea')).toBe('');
    } finally {
      await page.close();
    }
    await waitFor(() => texts(c.user).some((t) => /verified and stored/i.test(t)), 20_000, 'the key notice').catch((e) => {
      throw new Error(`${(e as Error).message}; ${diagnostics(c.user)}`);
    });
    // The expired access token was refreshed once by the worker; the vendor never saw the expired one.
    expect(oauth.refreshes(c.provider)).toBe(1);
    expect(c.callsWith(login.access_token)).toBe(0);
    const live = oauth.liveRefreshTokens(c.provider);
    expect(live).toHaveLength(1);
    refreshToken = live[0]!;
    const got = await registry.get(`tg:${c.user}`, modelId);
    expect(got.ok && got.model.status).toBe('active');
    // What the form chose is on the stored credential: its kind, when it was checked, its expiry.
    const meta = (await readVaultMeta(store, `tg:${c.user}`)).find((e) => got.ok && e.env_var === got.model.api_key_env)?.meta;
    expect(meta?.kind).toBe('oauth_json');
    expect(Date.parse(meta?.validated_at ?? '')).toBeGreaterThan(Date.now() - 60_000);
    if (c.provider === 'claude-code') expect(Date.parse(meta?.expires_at ?? '') - Date.now()).toBeGreaterThan(7 * 86_400_000 - 120_000);
    else expect(meta?.expires_at ?? null).toBeNull();
    // Gemini: the project typed beside the file is the one Code Assist bills.
    if (c.provider === 'gemini-cli') expect(geminiApi.requests.some((r) => r.body?.project === PROJECT)).toBe(true);
  }, 90_000);

  it('chat is relayed with the access token; a 401 hitting both web processes at once is refreshed exactly once', async () => {
    await deliver(textUpdate(c.user, `/model custom/${modelId}`));
    await deliver(textUpdate(c.user, 'hello'));
    await waitFor(() => texts(c.user).some((t) => t.includes(REPLY)), 30_000, 'the first answer').catch((e) => {
      throw new Error(`${(e as Error).message}; ${diagnostics(c.user)}`);
    });
    const before = oauth.refreshes(c.provider);
    const answersBefore = texts(c.user).filter((t) => t.includes(REPLY)).length;
    // The vendor revokes every live access token of this login: the next calls get 401.
    for (const t of [...issued]) if (oauth.isValidAccess(t)) oauth.revokeAccess(t);
    syncVendorKeys();
    oauth.setDelay(400); // a slow token endpoint: both processes are refreshing-or-waiting at once
    const seen = proxy.counts.slice();
    await Promise.all([deliver(textUpdate(c.user, 'first of two')), deliver(textUpdate(c.user, 'second of two'))]);
    await waitFor(() => texts(c.user).filter((t) => t.includes(REPLY)).length >= answersBefore + 2, 40_000, 'both answers after the 401').catch((e) => {
      throw new Error(`${(e as Error).message}; ${diagnostics(c.user)}`);
    });
    oauth.setDelay(0);
    // Both web processes took one of the two messages.
    expect(proxy.counts.every((n, i) => n > seen[i]!)).toBe(true);
    expect(oauth.refreshes(c.provider) - before).toBe(1);
    // Rotation: exactly one refresh token works, and it is the one now stored.
    expect(oauth.liveRefreshTokens(c.provider)).toHaveLength(1);
    refreshToken = oauth.liveRefreshTokens(c.provider)[0]!;
  }, 90_000);

  it('a revoked refresh token: the user is told to log in again in the CLI and paste the new file', async () => {
    oauth.revoke(refreshToken);
    for (const t of [...issued]) if (oauth.isValidAccess(t)) oauth.revokeAccess(t);
    syncVendorKeys();
    const n = texts(c.user).length;
    await deliver(textUpdate(c.user, 'are you still there?'));
    const said = await waitFor(() => texts(c.user).slice(n).find((t) => /log in again/i.test(t)), 30_000, 'the log-in-again reply').catch((e) => {
      throw new Error(`${(e as Error).message}; ${diagnostics(c.user)}`);
    });
    expect(said).toContain(c.cli);
    const got = await createRegistry({ store }).get(`tg:${c.user}`, modelId);
    expect(got.ok && got.model.status).toBe('key_error');
  }, 60_000);
});

describe('OAuth credentials never leak', () => {
  it('no access token, refresh token or pasted file in Redis, process output or chat', async () => {
    expect(canaries.size).toBeGreaterThan(6);
    const r = new Redis(redis.url);
    let dump = '';
    try {
      const keys = await r.keys('*');
      for (const k of keys) {
        const type = await r.type(k);
        if (type === 'string') dump += (await r.get(k)) ?? '';
        else if (type === 'hash') dump += JSON.stringify(await r.hgetall(k));
        else if (type === 'list') dump += JSON.stringify(await r.lrange(k, 0, -1));
        else if (type === 'set') dump += JSON.stringify(await r.smembers(k));
        else if (type === 'zset') dump += JSON.stringify(await r.zrange(k, '0', '-1'));
        else if (type === 'stream') dump += JSON.stringify(await r.xrange(k, '-', '+'));
      }
    } finally {
      r.disconnect();
    }
    const output = procs.map((p) => p.output()).join('\n');
    const chat = botApi.of('sendMessage').concat(botApi.of('editMessageText')).map((c) => JSON.stringify(c.payload)).join('\n');
    const files = fs.readdirSync(dataDir, { recursive: true }).map((f) => path.join(dataDir, String(f))).filter((f) => fs.statSync(f).isFile()).map((f) => fs.readFileSync(f, 'utf8')).join('\n');
    for (const secret of canaries) {
      for (const [where, text] of [['redis', dump], ['logs', output], ['chat', chat], ['data dir', files]] as const) {
        expect(text.includes(secret), `a credential found in ${where}`).toBe(false);
      }
    }
    expect(dump.length).toBeGreaterThan(1000);
  });
});
