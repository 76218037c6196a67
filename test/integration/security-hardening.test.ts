import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import sodium from 'libsodium-wrappers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { types as wxTypes } from 'wechaty';
import { WechatChannel } from '../../channels/wechat/index.ts';
import type { App } from '../../src/app.ts';
import { hashToken } from '../../src/secure-input/tokens.ts';
import { testApp, type LogCapture, issueFormLink } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { connectTestRedis, deleteWithPrefix, dumpPrefix, newTestPrefix, TEST_REDIS_URL } from '../support/redis.ts';

/** Every file under a folder, as latin1 text. */
function treeText(dir: string): string {
  let out = '';
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out += `\n${p}\n${fs.readFileSync(p, 'latin1')}`;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** Runs of 8 characters of `key` (raw or URL-encoded) found in `text`. */
function leaks(text: string, key: string): string[] {
  const out = new Set<string>();
  for (const form of [key, encodeURIComponent(key)]) {
    for (let i = 0; i + 8 <= form.length; i++) if (text.includes(form.slice(i, i + 8))) out.add(form.slice(i, i + 8));
  }
  return [...out];
}

function tokenOf(url: string): string {
  return new URL(url).pathname.split('/').pop()!;
}

let seq = 0;

/**
 * A submission handed to the worker as a web process that could not open the box (another
 * master key) would: redeemed, saved and queued without the POST's check.
 */
async function submitUnchecked(h: Harness, ws: string, id: string, env: string, url: string, box: string): Promise<void> {
  const keyId = await keyIdOf(url);
  const redeemed = await h.app.requests.redeem(tokenOf(url));
  if (!redeemed.ok) throw new Error('link not redeemable');
  await h.app.submissions.add(ws, { model_id: id, key_id: keyId, sealed: { [env]: box }, token_hash: redeemed.token_hash, channel: redeemed.record.channel, lang: 'en' });
  if ((await modelOf(h, ws, id)).status !== 'active') await h.app.registry.set_status(ws, id, 'validating');
  await h.app.requeuePending();
}

interface Harness {
  app: App;
  dataDir: string;
  logs: LogCapture;
  fake: FakeVendor;
  chan: RecordingChannel;
  redis?: Redis;
  prefix: string;
  cleanup(): Promise<void>;
}

async function harness(mode: 'embedded' | 'redis' = 'embedded', env: Record<string, string> = {}, beforeStart?: (app: App) => void): Promise<Harness> {
  const fake = await startFakeOpenAI({ reply: 'pong' });
  const prefix = newTestPrefix('sec');
  const redisEnv: Record<string, string> = mode === 'redis' ? { REDIS_URL: TEST_REDIS_URL, BYOK_REDIS_PREFIX: prefix, BYOK_MASTER_KEY: randomBytes(32).toString('base64') } : {};
  const t = await testApp({ ...redisEnv, ...env });
  const redis = mode === 'redis' ? await connectTestRedis() : undefined;
  const chan = new RecordingChannel();
  t.app.addChannel(chan);
  beforeStart?.(t.app);
  await t.app.start();
  return {
    ...t,
    fake,
    chan,
    redis,
    prefix,
    async cleanup() {
      await t.cleanup();
      await fake.close();
      if (redis) {
        await deleteWithPrefix(redis, prefix);
        await redis.quit();
      }
    },
  };
}

/** A model on the fake vendor and a fresh one-time link for it, in a workspace of its own. */
async function modelWithLink(h: Harness, user = String(1000 + ++seq)): Promise<{ ws: string; user: string; id: string; env: string; url: string }> {
  const ws = `tg:${user}`;
  const added = await h.app.registry.add(ws, { upstream_model: 'gpt-test', base_url: h.fake.baseUrl, name: `m ${randomBytes(3).toString('hex')}`, api_key_env: 'FAKE_API_KEY' });
  if (!added.ok) throw new Error(added.error);
  const url = await newLink(h, ws, user, added.model.id);
  return { ws, user, id: added.model.id, env: added.model.api_key_env, url };
}

async function newLink(h: Harness, ws: string, user: string, id: string): Promise<string> {
  const got = await h.app.registry.get(ws, id);
  if (!got.ok) throw new Error(got.error);
  const m = got.model;
  const req = { url: await issueFormLink(h.app, ws, m, user) };
  return req.url;
}

async function keyIdOf(url: string): Promise<string> {
  const html = await (await fetch(url)).text();
  return /data-key-id="([^"]+)"/.exec(html)![1]!;
}

async function postRaw(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const u = new URL(url);
  const res = await fetch(`${u.origin}${u.pathname}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

async function statusOf(url: string): Promise<any> {
  const u = new URL(url);
  return (await fetch(`${u.origin}${u.pathname}/status`)).json();
}

async function finalStatus(url: string): Promise<any> {
  return waitFor(async () => {
    const s = await statusOf(url);
    return s.status === 'ok' || s.status === 'error' ? s : undefined;
  }, 15_000, 'final form status');
}

async function modelOf(h: Harness, ws: string, id: string) {
  const got = await h.app.registry.get(ws, id);
  if (!got.ok) throw new Error(got.error);
  return got.model;
}

// -------------------------------------------------------------------------------------------
describe('finding 1: /wechat/qr is served to loopback or with BYOK_ADMIN_SECRET only', () => {
  const SECRET = `admin-${randomBytes(12).toString('hex')}`;
  let h: Harness;
  let ch: WechatChannel;

  beforeAll(async () => {
    h = await harness('embedded', { BYOK_ADMIN_SECRET: SECRET }, (app) => {
      ch = new WechatChannel({ config: app.config, logger: app.logger, printQr: false });
      ch.mount(app.server);
    });
    // The puppet's "scan" event, without a puppet: a login QR is waiting.
    (ch as unknown as { onScan(v: string, s: number): void }).onScan('https://login.weixin.qq.com/l/Qsec==', wxTypes.ScanStatus.Waiting);
    expect(ch.waitingForScan).toBe(true);
  });
  afterAll(async () => {
    h.app.config.trustProxyHops = 0;
    await h.cleanup();
  });

  const get = (remoteAddress: string, url = '/wechat/qr', headers: Record<string, string> = {}) => h.app.server.inject({ method: 'GET', url, remoteAddress, headers });

  it('a remote peer without the secret gets the same 404 as a missing route; with the secret (query or bearer) the PNG', async () => {
    const missing = await get('203.0.113.7', '/no-such-route');
    const refused = await get('203.0.113.7');
    expect(refused.statusCode).toBe(404);
    expect(refused.json()).toEqual(missing.json());
    expect(refused.headers['content-type']).not.toMatch(/image/);
    // X-Forwarded-For claiming loopback changes nothing: the TCP peer decides.
    expect((await get('203.0.113.7', '/wechat/qr', { 'x-forwarded-for': '127.0.0.1' })).statusCode).toBe(404);
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    expect((await get('203.0.113.7', `/wechat/qr?secret=${wrong}`)).statusCode).toBe(404);
    expect((await get('203.0.113.7', '/wechat/qr', { authorization: `Bearer ${wrong}` })).statusCode).toBe(404);
    const byQuery = await get('203.0.113.7', `/wechat/qr?secret=${SECRET}`);
    expect(byQuery.statusCode).toBe(200);
    expect(byQuery.headers['content-type']).toBe('image/png');
    const byBearer = await get('203.0.113.8', '/wechat/qr', { authorization: `Bearer ${SECRET}` });
    expect(byBearer.statusCode).toBe(200);
    // Refusals are logged, never with the secret tried nor the real one.
    const log = h.logs.text();
    expect(log).toMatch(/login QR refused/);
    expect(log).not.toContain(wrong);
    expect(log).not.toContain(SECRET);
  });

  it('a loopback peer gets it without the secret, unless a proxy is trusted (then every request looks local)', async () => {
    expect((await get('127.0.0.1')).statusCode).toBe(200);
    expect((await get('::1')).statusCode).toBe(200);
    // A reverse proxy or tunnel on the same host, TRUST_PROXY left at 0: what it forwards is not local.
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip', 'cf-connecting-ip']) {
      expect((await get('127.0.0.1', '/wechat/qr', { [header]: header === 'forwarded' ? 'for=203.0.113.9' : '203.0.113.9' })).statusCode, header).toBe(404);
    }
    expect((await get('127.0.0.1', `/wechat/qr?secret=${SECRET}`, { 'x-forwarded-for': '203.0.113.9' })).statusCode).toBe(200);
    h.app.config.trustProxyHops = 1;
    try {
      expect((await get('127.0.0.1')).statusCode).toBe(404);
      expect((await get('127.0.0.2', `/wechat/qr?secret=${SECRET}`)).statusCode).toBe(200);
    } finally {
      h.app.config.trustProxyHops = 0;
    }
  });

  it('is rate-limited per client, before the secret is looked at', async () => {
    let last = 0;
    for (let i = 0; i < 31; i++) last = (await get('198.51.100.20', `/wechat/qr?secret=${SECRET}`)).statusCode;
    expect(last).toBe(404); // remote and over the limit: not even the right secret gets it
    for (let i = 0; i < 31; i++) last = (await get('127.0.0.9')).statusCode;
    expect(last).toBe(429);
    expect((await get('198.51.100.21', `/wechat/qr?secret=${SECRET}`)).statusCode).toBe(200);
  });
});

// -------------------------------------------------------------------------------------------
for (const mode of ['embedded', 'redis'] as const) {
  describe(`finding 2: a plaintext key posted as the sealed value is refused before the link is used (${mode})`, () => {
    let h: Harness;
    beforeAll(async () => {
      await sodium.ready;
      h = await harness(mode);
    });
    afterAll(async () => h.cleanup());

    it('refuses URL-safe, unpadded, non-canonical and wrong-length values with 400; the link still works; nothing is kept', async () => {
      const { url: first, env, ws, id, user } = await modelWithLink(h);
      const keyId = await keyIdOf(first);
      // A real-looking project key: 164 characters of the URL-safe alphabet.
      const plain = 'sk-proj-' + randomBytes(117).toString('base64url');
      expect(plain.length).toBe(164);
      // Standard alphabet only, but a length no padded base64 has (a Gemini-style key, 39 characters).
      const plainStd = 'AIza' + randomBytes(27).toString('base64').replace(/[+/=]/g, 'x').slice(0, 35);
      expect(plainStd).toMatch(/^[A-Za-z0-9]{39}$/);
      const box = Buffer.from(sodium.crypto_box_seal(sodium.from_string('sk-real-key-12345'), sodium.randombytes_buf(32))).toString('base64');
      expect(box.endsWith('=')).toBe(true);
      // Same bytes, padding bits set: Buffer decodes it, but it is not what the page sends.
      const nonCanonical = box.replace(/([A-Za-z0-9+/])(=+)$/, (_m, c: string, pad: string) => {
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
        return alphabet[alphabet.indexOf(c) | 1]! + pad;
      });
      expect(nonCanonical).not.toBe(box);
      const tooShort = randomBytes(48 + 4).toString('base64');
      const tooLong = randomBytes(48 + 5000).toString('base64');
      // Keys written in the standard base64 alphabet with a box's length: only opening tells.
      const bedrock = 'ABSK' + randomBytes(117).toString('base64');
      expect(bedrock.length % 4).toBe(0);
      const randomB64 = randomBytes(64).toString('base64');
      const foreign = Buffer.from(sodium.crypto_box_seal(sodium.from_string('sk-whatever-123456'), sodium.crypto_box_keypair().publicKey)).toString('base64');
      let url = first;
      for (const [i, value] of [plain, plainStd, nonCanonical, box.replace(/=+$/, ''), tooShort, tooLong, `${box}\n`, bedrock, randomB64, foreign].entries()) {
        // A link takes 5 POSTs an hour: a fresh one every 4 values.
        if (i > 0 && i % 4 === 0) url = await newLink(h, ws, user, id);
        const r = await postRaw(url, { key_id: keyId, sealed: { [env]: value } });
        expect(r.status, value.slice(0, 12)).toBe(400);
        expect(JSON.stringify(r.body)).not.toContain(value.slice(10, 30));
      }
      // The link was not redeemed: the form still shows and takes a real sealed key.
      expect((await statusOf(url)).status).toBe('awaiting_input');
      expect((await fetch(url)).status).toBe(200);
      expect(await h.app.submissions.forModel(ws, id)).toBeUndefined();
      const stored = mode === 'redis' ? JSON.stringify(await dumpPrefix(h.redis!, h.prefix)) : treeText(h.dataDir);
      for (const secret of [plain, plainStd, bedrock, randomB64]) {
        expect(leaks(stored, secret)).toEqual([]);
        expect(leaks(h.logs.text(), secret)).toEqual([]);
      }
      const ok = await submitForm(url, { [env]: 'sk-good-' + randomBytes(16).toString('hex') });
      expect(ok.status).toBe(202);
      expect((await finalStatus(url)).status).toBe('ok');
    });
  });
}

// -------------------------------------------------------------------------------------------
describe('findings 3, 4 and 8: vendor echoes, replacement keys, retry after a typo', () => {
  let h: Harness;
  beforeAll(async () => {
    await sodium.ready;
    h = await harness('embedded');
  });
  afterAll(async () => h.cleanup());

  /** No 8-character run of lowercase letters, digits, / and +: no key pattern matches it whole. */
  const echoKey = () => `zq${randomBytes(8).toString('hex').replace(/[a-f]/g, 'x')}/k${randomBytes(6).toString('hex')}+m${randomBytes(6).toString('hex')}/p`;

  it('3: a vendor error echoing the key cut short or URL-encoded reaches no page, store, registry, chat or log', async () => {
    const { ws, id, env, url } = await modelWithLink(h);
    const key = echoKey();
    h.fake.setKeyBehaviour(key, 'invalid_key_echo');
    try {
      expect((await submitForm(url, { [env]: key })).status).toBe(202);
      const s = await finalStatus(url);
      expect(s.status).toBe('error');
      expect(s.code).toBe('invalid_key');
      expect(s.message).toContain('[redacted]');
      expect(leaks(JSON.stringify(s), key)).toEqual([]);
      const m = await modelOf(h, ws, id);
      expect(m.status).toBe('key_error');
      expect(m.last_error?.message).toContain('Incorrect API key provided');
      expect(leaks(JSON.stringify(m), key)).toEqual([]);
      await waitFor(() => h.chan.results.find((r) => r.model_id === id), 10_000, 'notification');
      expect(leaks(h.chan.texts(), key)).toEqual([]);
      expect(leaks(treeText(h.dataDir), key)).toEqual([]);
      expect(leaks(h.logs.text(), key)).toEqual([]);
    } finally {
      h.fake.setKeyBehaviour(key, undefined);
    }
  });

  it('3: the relay and /byok test scrub a vendor message echoing the stored key', async () => {
    const { ws, user, id, env, url } = await modelWithLink(h);
    const key = echoKey();
    expect((await submitForm(url, { [env]: key })).status).toBe(202);
    expect((await finalStatus(url)).status).toBe('ok');
    await h.chan.say(`/model custom/${id}`, user);
    h.fake.setKeyBehaviour(key, 'rejected_echo');
    try {
      const before = h.chan.sent.length;
      await h.chan.say('hello', user);
      const reply = h.chan.sent.slice(before).map((s) => s.text).join('\n');
      expect(reply).toContain('[redacted]');
      expect(leaks(reply, key)).toEqual([]);
      const before2 = h.chan.sent.length;
      await h.chan.say(`/byok test ${id}`, user);
      const tested = h.chan.sent.slice(before2).map((s) => s.text).join('\n');
      expect(tested).toContain('[redacted]');
      expect(leaks(tested, key)).toEqual([]);
      expect(leaks(h.logs.text(), key)).toEqual([]);
      // A 400 about the request is the model's setup, never the key's: the key is not blamed.
      expect((await modelOf(h, ws, id)).status).not.toBe('key_error');
    } finally {
      h.fake.setKeyBehaviour(key, undefined);
    }
  });

  it('4: a refused replacement key leaves the working model active on its previous key', async () => {
    const { ws, user, id, env, url } = await modelWithLink(h);
    const good = 'sk-good-' + randomBytes(16).toString('hex');
    expect((await submitForm(url, { [env]: good })).status).toBe(202);
    expect((await finalStatus(url)).status).toBe('ok');
    await h.chan.say(`/model custom/${id}`, user);

    const bad = 'sk-bad-' + randomBytes(16).toString('hex');
    h.fake.setKeyBehaviour(bad, 'invalid_key');
    // Slow vendor: the check is still running when the status is read.
    h.fake.setLatency(600);
    try {
      const url2 = await newLink(h, ws, user, id);
      expect((await submitForm(url2, { [env]: bad })).status).toBe(202);
      expect((await modelOf(h, ws, id)).status).toBe('active'); // not "validating"
      const s = await finalStatus(url2);
      expect(s).toMatchObject({ status: 'error', code: 'invalid_key', kept_previous: true });
      expect(s.message).toMatch(/previous key is still in use/);
      const m = await modelOf(h, ws, id);
      expect(m.status).toBe('active'); // not "key_error"
      expect(m.last_error).toBeUndefined();
      expect(m.last_key_attempt).toMatchObject({ outcome: 'invalid_key' });
      const note = await waitFor(() => h.chan.results.find((r) => r.model_id === id && r.outcome === 'invalid_key'), 10_000, 'notification');
      expect(note.text).toMatch(/previous key is still in use/);
      // The previous key still answers.
      h.fake.setLatency(0);
      const before = h.chan.sent.length;
      await h.chan.say('hello', user);
      expect(h.chan.sent.slice(before).map((x) => x.text).join('')).toContain('pong');
      expect(h.fake.requests.at(-1)?.key).toBe(good);
    } finally {
      h.fake.setLatency(0);
      h.fake.setKeyBehaviour(bad, undefined);
    }
  });

  it('4: a box that does not open is a form problem (the vendor never contacted), and keeps the previous key', async () => {
    const { ws, user, id, env, url } = await modelWithLink(h);
    expect((await submitForm(url, { [env]: 'sk-good-' + randomBytes(16).toString('hex') })).status).toBe(202);
    expect((await finalStatus(url)).status).toBe('ok');
    const url2 = await newLink(h, ws, user, id);
    const calls = h.fake.requests.length;
    // Well formed, the current key id, but sealed to another key pair: the page refuses it
    // at once and the link stays usable ...
    const foreign = Buffer.from(sodium.crypto_box_seal(sodium.from_string('sk-whatever-123456'), sodium.crypto_box_keypair().publicKey)).toString('base64');
    const r = await postRaw(url2, { key_id: await keyIdOf(url2), sealed: { [env]: foreign } });
    expect(r.status).toBe(400);
    expect((await statusOf(url2)).status).toBe('awaiting_input');
    // ... and a worker that meets such a box anyway reports a form problem.
    await submitUnchecked(h, ws, id, env, url2, foreign);
    const s = await finalStatus(url2);
    expect(s).toMatchObject({ status: 'error', code: 'form_error', kept_previous: true });
    expect(s.message).toMatch(/nothing was sent to the vendor/);
    expect(s.message).not.toMatch(/vendor refused/i);
    expect(h.fake.requests.length).toBe(calls);
    const m = await modelOf(h, ws, id);
    expect(m.status).toBe('active');
    expect(m.last_key_attempt).toMatchObject({ outcome: 'form_error' });
    const note = await waitFor(() => h.chan.results.find((x) => x.model_id === id && x.outcome === 'form_error'), 10_000, 'notification');
    expect(note.text).toMatch(/nothing was sent to the vendor/);
    expect(note.text).not.toMatch(/vendor (refused|rejected)/i);
  });

  it('4: a form problem on a model without a key puts it back to "key needed", not "checking"', async () => {
    const { ws, id, env, url } = await modelWithLink(h);
    const foreign = Buffer.from(sodium.crypto_box_seal(sodium.from_string('sk-whatever-123456'), sodium.crypto_box_keypair().publicKey)).toString('base64');
    await submitUnchecked(h, ws, id, env, url, foreign);
    expect(await finalStatus(url)).toMatchObject({ status: 'error', code: 'form_error' });
    expect((await modelOf(h, ws, id)).status).toBe('pending_key');
  });

  it('8: after a refused key the status offers a fresh link for the same request, up to 3 times', async () => {
    const { ws, id, env, url } = await modelWithLink(h);
    const good = 'sk-good-' + randomBytes(16).toString('hex');
    h.fake.setKeys([good]);
    try {
      // Garbage does not use the link, so it gets no retry.
      const garbage = await postRaw(url, { key_id: await keyIdOf(url), sealed: { [env]: 'sk-typo' } });
      expect(garbage.status).toBe(400);
      expect((await statusOf(url)).retry).toBeUndefined();

      let link = url;
      const seen: string[] = [];
      for (let i = 1; i <= 3; i++) {
        expect((await submitForm(link, { [env]: `sk-typo-${i}-${randomBytes(8).toString('hex')}` })).status).toBe(202);
        const s = await finalStatus(link);
        expect(s).toMatchObject({ status: 'error', code: 'invalid_key' });
        expect(s.retry?.url).toMatch(/^\/s\/[A-Za-z0-9_-]{43}$/);
        // Every poll answers the same retry link.
        expect((await statusOf(link)).retry.url).toBe(s.retry.url);
        const next = new URL(s.retry.url, link).href;
        seen.push(tokenOf(next));
        // The retry link is the same request: same model, env vars and channel.
        const rec = await h.app.requests.lookup(tokenOf(next));
        expect(rec.ok && { ws: rec.record.workspace, model: rec.record.model_id, env: rec.record.env_vars, chat: rec.record.channel.chat_id }).toEqual({ ws, model: id, env: [env], chat: ws.slice(3) });
        link = next;
      }
      // Third retry refused again: no fourth.
      expect((await submitForm(link, { [env]: 'sk-typo-4-' + randomBytes(8).toString('hex') })).status).toBe(202);
      const last = await finalStatus(link);
      expect(last).toMatchObject({ status: 'error', code: 'invalid_key' });
      expect(last.retry).toBeUndefined();
      // Only hashes of the retry links are stored.
      const stored = treeText(h.dataDir);
      for (const tkn of seen) {
        expect(stored).not.toContain(tkn);
        expect(h.logs.text()).not.toContain(tkn);
      }
      expect(stored).toContain(hashToken(seen[0]!));
    } finally {
      h.fake.setKeys(undefined);
    }
  });

  it('8: the retry link takes the corrected key; garbage on it still counts against its per-link limit', async () => {
    const { ws, id, env, url } = await modelWithLink(h);
    const good = 'sk-good-' + randomBytes(16).toString('hex');
    h.fake.setKeys([good]);
    try {
      expect((await submitForm(url, { [env]: 'sk-typo-' + randomBytes(8).toString('hex') })).status).toBe(202);
      const s = await finalStatus(url);
      const retry = new URL(s.retry.url, url).href;
      const keyId = await keyIdOf(retry);
      // Garbage and wrong key ids: 400 / 409, the link stays usable, each counts.
      expect((await postRaw(retry, { key_id: keyId, sealed: { [env]: good } })).status).toBe(400);
      expect((await postRaw(retry, { key_id: 'stale', sealed: { [env]: Buffer.from(randomBytes(80)).toString('base64') } })).status).toBe(409);
      expect((await statusOf(retry)).status).toBe('awaiting_input');
      expect((await submitForm(retry, { [env]: good })).status).toBe(202);
      expect((await finalStatus(retry)).status).toBe('ok');
      expect((await modelOf(h, ws, id)).status).toBe('active');
      // The original link's page follows to the result: its retry is used now.
      expect((await statusOf(url)).retry).toBeUndefined();

      const { url: other, env: env2 } = await modelWithLink(h);
      expect((await submitForm(other, { [env2]: 'sk-typo-' + randomBytes(8).toString('hex') })).status).toBe(202);
      const r2 = new URL((await finalStatus(other)).retry.url, other).href;
      const kid = await keyIdOf(r2);
      const codes: number[] = [];
      // From six addresses, so only the link's own limit (5 per hour) applies.
      for (let i = 0; i < 6; i++) {
        const res = await h.app.server.inject({ method: 'POST', url: new URL(r2).pathname, remoteAddress: `192.0.2.${10 + i}`, payload: { key_id: kid, sealed: { [env2]: 'garbage' } } });
        codes.push(res.statusCode);
      }
      expect(codes).toEqual([400, 400, 400, 400, 400, 429]);
    } finally {
      h.fake.setKeys(undefined);
    }
  });
});

// -------------------------------------------------------------------------------------------
describe('finding 7: per-IP limits count an IPv6 client by its /64', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness('embedded');
  });
  afterAll(async () => h.cleanup());

  it('addresses rotated within one /64 share one counter; another /64 has its own; IPv4-mapped is IPv4', async () => {
    const { url } = await modelWithLink(h);
    const path = new URL(url).pathname;
    const get = (remoteAddress: string) => h.app.server.inject({ method: 'GET', url: path, remoteAddress });
    const codes: number[] = [];
    for (let i = 1; i <= 31; i++) codes.push((await get(`2001:db8:7:1:${i.toString(16)}::${i.toString(16)}`)).statusCode);
    expect(codes.slice(0, 30).every((c) => c === 200)).toBe(true);
    expect(codes[30]).toBe(429);
    expect((await get('2001:db8:7:2::1')).statusCode).toBe(200);
    for (let i = 0; i < 30; i++) expect((await get('::ffff:198.51.100.77')).statusCode).toBe(200);
    expect((await get('198.51.100.77')).statusCode).toBe(429);
  });
});
