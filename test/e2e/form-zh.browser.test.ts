import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { launchBrowser } from '../support/browser.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

/**
 * Issue 12 "Chinese": a user who never set a language (no /lang, the channel gives none)
 * opens the form in a zh-CN browser. The page follows the browser's Accept-Language, and so
 * do its result texts: no English sentence, no bare what-to-do code ("建议：check_billing").
 */
const GOOD = 'sk-' + 'f00dfeed00112233445566778899aabb';
const BAD = 'sk-' + 'bad0bad0bad0bad0bad0bad0bad0bad0';
const CJK = /[\u4e00-\u9fff]/;

describe('secure form in a zh-CN browser for a user with no language set', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let browser: Browser;
  const chan = new RecordingChannel();
  const ws = 'tg:8801';

  /** A message as a channel without a language (shell, or Telegram without language_code) delivers it. */
  const say = (text: string) =>
    app.router.handle(
      { channel: chan.name, chat: { channel: chan.name, chat_id: '8801', user_id: '8801' }, messageId: String(Date.now()), senderId: '8801', workspace: ws, isPrivate: true, addressed_to_bot: true, text, kind: 'text' },
      chan,
    );

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [GOOD] });
    ({ app, cleanup } = await testApp());
    app.addChannel(chan);
    await app.start();
    browser = await launchBrowser();
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await cleanup?.();
    await fake?.close();
  });

  it('the page and its result are Chinese; an en-US browser gets English', async () => {
    await say('/byok example');
    await say(`curl ${fake.baseUrl}/chat/completions -H "Authorization: Bearer $ZHFORM_API_KEY" -d '{"model": "fake-chat", "messages": []}'`);
    await say('/byok confirm');
    const form = await waitFor(() => chan.forms.at(-1), 5_000, 'form');
    expect(form.lang).toBe('en');
    expect(form.url).not.toContain('lang=');

    // en-US browser: English, as before.
    const enCtx = await browser.newContext({ locale: 'en-US', extraHTTPHeaders: { 'Accept-Language': 'en-US,en;q=0.9' } });
    const enPage = await enCtx.newPage();
    await enPage.goto(form.url);
    expect(await enPage.textContent('h1')).toMatch(/Add your .* key/);
    await enCtx.close();

    const ctx = await browser.newContext({ locale: 'zh-CN', extraHTTPHeaders: { 'Accept-Language': 'zh-CN,zh;q=0.9' } });
    const page = await ctx.newPage();
    await page.goto(form.url);
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 });
    expect(await page.getAttribute('html', 'lang')).toBe('zh-CN');
    const body = (await page.textContent('main')) ?? '';
    expect(body).toMatch(/添加你的 .* 密钥/);
    expect(body).not.toMatch(/Enter your API key|This link expires|Seal and send/);

    // A refused key: the result and its what-to-do are Chinese, never a code.
    await page.fill('#k0', BAD);
    await page.click('#submit');
    await page.waitForFunction(() => /错误|拒绝|不接受|重试/.test(document.getElementById('status')?.textContent ?? '') && !document.getElementById('status')!.classList.contains('pending'), undefined, { timeout: 20_000 });
    const status = (await page.textContent('#status')) ?? '';
    expect(status).toMatch(CJK);
    expect(status).not.toMatch(/resubmit_key|check_billing|What to do|The vendor/);
    await ctx.close();
  }, 90_000);
});
