import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { t } from '../../src/i18n/index.ts';
import { issueFormLink, testApp } from '../support/app.ts';
import { launchBrowser } from '../support/browser.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const WS = 'tg:5151';
const GOOD = 'sk-good-' + randomBytes(16).toString('hex');
const TYPO = GOOD.slice(0, -1) + 'x';

let browser: Browser;
let app: App;
let fake: FakeVendor;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  fake = await startFakeOpenAI({ keys: [GOOD], reply: 'pong' });
  ({ app, cleanup } = await testApp());
  app.addChannel(new RecordingChannel());
  await app.start();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await cleanup?.();
  await fake?.close();
});

describe('secure form: a mistyped key is retried in place (real worker, headless Chromium)', () => {
  it('shows the form again on a fresh link after the vendor refuses the key, and takes the corrected key', async () => {
    const added = await app.registry.add(WS, { upstream_model: 'gpt-test', base_url: fake.baseUrl, name: 'Retry Me', api_key_env: 'FAKE_API_KEY' });
    if (!added.ok) throw new Error(added.error);
    const m = added.model;
    const req = { url: await issueFormLink(app, WS, m, '5151') };
    const original = new URL(req.url).pathname;

    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const posts: string[] = [];
    page.on('request', (r) => void (r.method() === 'POST' && posts.push(new URL(r.url()).pathname)));

    await page.goto(req.url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    await page.fill('#k0', TYPO);
    await page.click('#submit');
    // The vendor refuses: the form comes back, on a new link, with the retry message.
    await page.waitForFunction(() => !document.getElementById('keyform')!.classList.contains('done') && /try again/.test(document.getElementById('status')!.textContent ?? ''), undefined, { timeout: 20_000 });
    expect(await page.textContent('#status')).toContain(t('en', 'form.retry'));
    expect(await page.isEnabled('#submit')).toBe(true);
    expect(await page.inputValue('#k0')).toBe('');
    const retryPath = new URL(page.url()).pathname;
    expect(retryPath).toMatch(/^\/s\/[A-Za-z0-9_-]{43}$/);
    expect(retryPath).not.toBe(original);

    await page.fill('#k0', GOOD);
    await page.click('#submit');
    await page.waitForSelector('#status.ok', { timeout: 20_000 });
    expect(await page.textContent('#status')).toContain(`****${GOOD.slice(-4)}`);
    expect(posts).toEqual([original, retryPath]);
    expect(errors).toEqual([]);
    const got = await app.registry.get(WS, m.id);
    expect(got.ok && got.model.status).toBe('active');
    await context.close();
  });
});
