import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { asPreview, BudgetSkipped, bucketName, isBudgeted, SendBudget } from '../../channels/telegram/budget.ts';
import { FileStore } from '../../src/store/file-store.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-tgbudget-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const store = new FileStore(dir);

describe('telegram outbound budget', () => {
  it('names the bucket by a hash of the token, never the token', () => {
    const name = bucketName('123456:secret-token-value');
    expect(name).toMatch(/^tg:bot:[0-9a-f]{24}$/);
    expect(name).not.toContain('123456');
    expect(name).not.toContain('secret');
    expect(bucketName('123456:other')).not.toBe(name);
  });

  it('counts sends and edits, not reads, configuration or callback answers', () => {
    for (const m of ['sendMessage', 'editMessageText', 'sendMessageDraft', 'deleteMessage', 'editMessageReplyMarkup', 'sendChatAction']) expect(isBudgeted(m)).toBe(true);
    for (const m of ['getUpdates', 'getMe', 'getChatMember', 'answerCallbackQuery', 'setWebhook', 'deleteWebhook', 'setMyCommands']) expect(isBudgeted(m)).toBe(false);
  });

  it('previews stop above the reserve; finals still get the reserved tokens, then wait for the refill', async () => {
    const b = new SendBudget(store, 'b1', { ratePerSec: 10, burst: 4, previewReserve: 2 });
    expect(await b.tryPreview()).toBe(true); // 4 → 3
    expect(await b.tryPreview()).toBe(true); // 3 → 2
    expect(await b.tryPreview()).toBe(false); // would leave fewer than 2
    const t0 = Date.now();
    await b.take(); // 2 → 1
    await b.take(); // 1 → 0
    expect(Date.now() - t0).toBeLessThan(75);
    await b.take(); // refill at 10/s: about 100 ms
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
  });

  it('serves waiting finals in order, and previews yield to them', async () => {
    const b = new SendBudget(store, 'b2', { ratePerSec: 20, burst: 1, previewReserve: 0 });
    const order: number[] = [];
    const all = Promise.all([1, 2, 3, 4].map((i) => b.take().then(() => order.push(i))));
    expect(await b.tryPreview()).toBe(false); // finals are waiting
    await all;
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it('the transformer takes a token per counted call; a short budget skips a preview', async () => {
    const b = new SendBudget(store, 'b3', { ratePerSec: 1, burst: 2, previewReserve: 1 });
    const sent: string[] = [];
    const tr = b.transformer();
    const prev = (async (method: string) => {
      sent.push(method);
      return { ok: true, result: true };
    }) as never;
    const call = (m: string) => tr(prev, m as never, {} as never);
    await call('getMe');
    await call('answerCallbackQuery');
    await asPreview(() => call('sendMessageDraft')); // 2 → 1
    await expect(asPreview(() => call('sendMessageDraft'))).rejects.toBeInstanceOf(BudgetSkipped);
    await call('sendMessage'); // finals may use the reserve: 1 → 0
    expect(sent).toEqual(['getMe', 'answerCallbackQuery', 'sendMessageDraft', 'sendMessage']);
  });
});
