/**
 * No silence (issue 12, item 7): while a vendor is slow the chat shows "typing" at once and
 * every few seconds, then one "still waiting for <vendor>…"; a vendor that sends nothing for
 * BYOK_VENDOR_IDLE_TIMEOUT_SECONDS is given up on with a clear next step, and the chat works
 * again right after. Scripted through a recording channel (en, zh), the shell channel, and
 * the Telegram channel against the Bot API emulator.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import TelegramTestApi from 'telegram-test-api';
import type { TelegramServer as EmulatorServer } from 'telegram-test-api/lib/telegramServer.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelRef } from '../../src/queue/types.ts';
import { ShellChannel } from '../../channels/shell/shell.ts';
import { TelegramChannel } from '../../channels/telegram/index.ts';
import type { App } from '../../src/app.ts';
import { t } from '../../src/i18n/index.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { freePort, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { apiRecorder } from '../support/telegram.ts';

const TelegramServer = ((TelegramTestApi as any).default ?? TelegramTestApi) as typeof EmulatorServer;

/** A recording channel that also records the typing indicator. */
class TypingChannel extends RecordingChannel {
  readonly typing_at: number[] = [];
  async typing(_chat: ChannelRef): Promise<void> {
    this.typing_at.push(Date.now());
  }
}

/** A Qwen model on the fake vendor, its key stored. */
async function qwenWithKey(app: App, ws: string, fake: FakeVendor): Promise<string> {
  const add = await app.registry.add_template(ws, 'qwen', { upstream_model: 'qwen-plus', base_url: fake.baseUrl });
  if (!add.ok) throw new Error(JSON.stringify(add));
  await app.vault.put(ws, add.model.api_key_env, new TextEncoder().encode('sk-' + randomBytes(16).toString('hex')), { kind: 'api_key', validated_at: new Date().toISOString() });
  await app.registry.set_key_status(ws, add.model.api_key_env, 'active');
  return add.model.id;
}

describe('a slow or hung vendor (recording channel, 5 s idle timeout)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: TypingChannel;
  let user = 9100;
  let uid = '';
  const ws = () => `tg:${uid}`;

  beforeAll(async () => {
    fake = await startFakeOpenAI({ reply: 'Sorry for the wait, here it is.' });
    ({ app, cleanup } = await testApp({ BYOK_VENDOR_IDLE_TIMEOUT_SECONDS: '5' }));
    chan = new TypingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });
  beforeEach(async () => {
    uid = String(++user);
    fake.setLatency(0);
    const id = await qwenWithKey(app, ws(), fake);
    await chan.say(`/model custom/${id}`, uid);
  });

  it('a slow answer: typing at once and again after ~4 s, one "still waiting" at half the timeout, then the answer', async () => {
    fake.setLatency(4_400);
    const from = chan.sent.length;
    const started = Date.now();
    await chan.say('hello?', uid);
    const mine = chan.sent.slice(from).map((s) => s.text);
    expect(mine).toEqual([t('en', 'relay.still_waiting', { vendor: 'Qwen' }), 'Sorry for the wait, here it is.']);
    expect(mine[0]).toBe('Still waiting for Qwen…');
    const typing = chan.typing_at.filter((at) => at >= started).map((at) => at - started);
    expect(typing.length).toBe(2);
    expect(typing[0]).toBeLessThan(500);
    expect(typing[1]).toBeGreaterThan(3_500);
    // Answered: usage counted, history kept.
    expect(Object.values((await app.router.usage.get(ws())).models).map((u) => u.requests)).toEqual([1]);
    expect((await app.router.state.get(ws())).history).toHaveLength(2);
  }, 15_000);

  it('a hung vendor: aborted after the idle timeout with what to do, then the next message works', async () => {
    fake.setLatency(30_000);
    const from = chan.sent.length;
    const started = Date.now();
    await chan.say('are you there?', uid);
    const took = Date.now() - started;
    expect(took).toBeGreaterThan(4_900);
    expect(took).toBeLessThan(8_000);
    expect(chan.sent.slice(from).map((s) => s.text)).toEqual(['Still waiting for Qwen…', 'Qwen did not answer within 5 s; try again or switch model with /model.']);
    // Nothing half-done stays behind: no usage, no history for the unanswered message.
    expect((await app.router.usage.get(ws())).models).toEqual({});
    expect((await app.router.state.get(ws())).history).toEqual([]);
    fake.setLatency(0);
    await chan.say('again', uid);
    expect(chan.last()).toBe('Sorry for the wait, here it is.');
  }, 15_000);

  it('the same in Chinese', async () => {
    await chan.say('/lang zh', uid);
    fake.setLatency(30_000);
    const from = chan.sent.length;
    await chan.say('在吗？', uid, { lang: 'zh' });
    expect(chan.sent.slice(from).map((s) => s.text)).toEqual(['仍在等待 通义千问 的回答…', '通义千问 在 5 秒内没有回答；请重试，或用 /model 换一个模型。']);
  }, 15_000);
});

describe('a hung vendor in the shell channel and on Telegram (2 s idle timeout)', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let server: EmulatorServer;
  const TOKEN = '555077:waiting-telegram-token';
  const USER = 7701;
  const rec = apiRecorder({
    setMyCommands: { ok: true, result: true },
    sendMessageDraft: { ok: false, error_code: 404, description: 'Not Found: method not found' },
    // The emulator lacks sendChatAction (it answers 500): answered here and recorded.
    sendChatAction: { ok: true, result: true },
  });
  const input = new PassThrough();
  const output = new PassThrough();
  let out = '';
  output.on('data', (c: Buffer) => (out += c.toString('utf8')));
  let shell: ShellChannel;

  beforeAll(async () => {
    server = new TelegramServer({ port: await freePort(), storage: 'RAM', storeTimeout: 600 });
    await server.start();
    fake = await startFakeOpenAI({ reply: 'Back again.' });
    ({ app, cleanup } = await testApp({ BYOK_VENDOR_IDLE_TIMEOUT_SECONDS: '2', TELEGRAM_BOT_TOKEN: TOKEN, TELEGRAM_API_ROOT: server.config.apiURL }));
    shell = new ShellChannel({ input, output });
    app.addChannel(shell);
    app.addChannel(new TelegramChannel({ config: app.config, logger: app.logger, store: app.store, webApp: 'never', transformers: [rec.transformer], editIntervalMs: 150, pollRetryInterval: 100 }));
    await app.start();
    for (const ws of ['local', `tg:${USER}`]) {
      const id = await qwenWithKey(app, ws, fake);
      await app.router.state.update(ws, (s) => {
        s.model = `custom/${id}`;
      });
    }
  }, 60_000);
  afterAll(async () => {
    await cleanup?.();
    await fake?.close();
    await server?.stop();
  });

  it('shell: the waiting line and the timeout line, each once, no doubled prompt; the next answer streams', async () => {
    fake.setLatency(30_000);
    input.write('hello?\n');
    await waitFor(() => out.includes('did not answer'), 8_000, 'the timeout line');
    await shell.idle();
    expect(out).toContain('bot> Still waiting for Qwen…\n');
    expect(out).toContain('bot> Qwen did not answer within 2 s; try again or switch model with /model.\n');
    expect(out).not.toContain('bot> bot>');
    fake.setLatency(0);
    out = '';
    input.write('again\n');
    await waitFor(() => out.includes('Back again.'), 5_000, 'the answer');
    expect(out).toBe('bot> Back again.\n');
  }, 15_000);

  it('telegram: the typing action at once, then the waiting and the timeout messages', async () => {
    fake.setLatency(30_000);
    const client = server.getClient(TOKEN, { userId: USER, chatId: USER, firstName: 'Wu', type: 'private' });
    const started = Date.now();
    await client.sendMessage(client.makeMessage('hello?'));
    const texts = () => rec.of('sendMessage').filter((c) => c.at >= started).map((c) => c.payload.text as string);
    await waitFor(() => texts().some((x) => x.includes('did not answer')), 10_000, 'the timeout message');
    expect(texts()).toEqual(['Still waiting for Qwen…', 'Qwen did not answer within 2 s; try again or switch model with /model.']);
    const actions = rec.of('sendChatAction').filter((c) => c.at >= started);
    expect(actions.length).toBeGreaterThanOrEqual(1);
    expect(actions[0]!.payload).toMatchObject({ chat_id: USER, action: 'typing' });
    // The action came before anything else was sent, within a moment of the message.
    const firstSend = rec.of('sendMessage').find((c) => c.at >= started)!;
    expect(actions[0]!.at).toBeLessThanOrEqual(firstSend.at);
  }, 20_000);
});
