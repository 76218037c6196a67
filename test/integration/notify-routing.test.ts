import { randomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { Notifier } from '../../src/chat/notifier.ts';
import { createLogger } from '../../src/log.ts';
import { JOB_NOTIFY, type NotifyPayload } from '../../src/queue/types.ts';
import type { Registry } from '../../src/registry/index.ts';
import { RedisStore } from '../../src/store/redis-store.ts';
import { testApp, type LogCapture } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';
import { useTestRedis } from '../support/redis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const redisCtx = useTestRedis('notify');

/** A sealed submission for `modelId`, as the form would leave it, and its validate job. */
async function sealedSubmission(app: App, ws: string, modelId: string, env: string, key: string, channel: string): Promise<void> {
  await sodium.ready;
  const { id: keyId, publicKey } = await app.boxKeys.current();
  const box = sodium.crypto_box_seal(sodium.from_string(key), publicKey);
  await app.submissions.add(ws, {
    model_id: modelId,
    key_id: keyId,
    sealed: { [env]: Buffer.from(box).toString('base64') },
    token_hash: randomBytes(32).toString('hex'),
    channel: { channel, chat_id: ws.split(':')[1]! },
    lang: 'en',
  });
}

// Two processes on one Redis: a worker that runs no channel, and a bot that runs the
// "wechat-like" channel (one logged-in session: only this process can deliver its notices).
describe('notices are routed to the process that runs their channel (BullMQ)', () => {
  let bot: App;
  let worker: App;
  let botLogs: LogCapture;
  let workerLogs: LogCapture;
  const cleanups: Array<() => Promise<void>> = [];
  let fake: FakeVendor;
  let chan: RecordingChannel;
  const key = 'sk-' + randomBytes(24).toString('hex');

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [key] });
    const env = { REDIS_URL: redisCtx.url, BYOK_REDIS_PREFIX: redisCtx.sub('route'), BYOK_MASTER_KEY: randomBytes(32).toString('base64') };
    let c: () => Promise<void>;
    ({ app: bot, logs: botLogs, cleanup: c } = await testApp(env, { runWorker: false }));
    cleanups.push(c);
    ({ app: worker, logs: workerLogs, cleanup: c } = await testApp(env, { runWorker: true }));
    cleanups.push(c);
    chan = new RecordingChannel('wechat-like');
    bot.addChannel(chan);
    await bot.start();
    await worker.start();
  });
  afterAll(async () => {
    for (const c of cleanups) await c();
    await fake.close();
  });

  it('each process consumes only the queues of its own channels', () => {
    expect(bot.notifyRunner.servedQueues()).toEqual(['notify-wechat-like']);
    expect(worker.notifyRunner.servedQueues()).toEqual([]);
  });

  it('a result validated by the worker is delivered once, by the bot, with no error loop', async () => {
    const ws = 'wx:alice';
    const added = await worker.registry.add(ws, { upstream_model: 'gpt-x', base_url: fake.baseUrl, api_key_env: 'ROUTE_API_KEY', name: 'Routed' });
    if (!added.ok) throw new Error(added.error);
    await sealedSubmission(worker, ws, added.model.id, 'ROUTE_API_KEY', key, 'wechat-like');
    expect(await worker.requeuePending()).toBe(1);
    const r = await waitFor(() => chan.results.find((x) => x.model_id === added.model.id), 15_000, 'the routed notice');
    expect(r.outcome).toBe('ok');
    await worker.validateRunner.drain();
    await bot.notifyRunner.drain();
    await sleep(300);
    expect(chan.results.filter((x) => x.model_id === added.model.id)).toHaveLength(1);
    // Neither process tried to deliver a notice for a channel it does not run.
    expect(workerLogs.text()).not.toMatch(/no channel/);
    expect(botLogs.text()).not.toMatch(/no channel/);
    expect(workerLogs.text()).not.toMatch(/key result delivered/);
  });

  it('a notice for a channel no process runs waits in its own queue', async () => {
    const payload: NotifyPayload = { channel: { channel: 'nobody', chat_id: '1' }, workspace: 'tg:5', model_id: 'm', outcome: 'ok', notice_id: 'n-nobody' };
    await worker.notifyRunner.enqueue(JOB_NOTIFY, payload, { jobId: 'notify-nobody' });
    await sleep(1_000);
    const waiting = await redisCtx.redis.llen(`${redisCtx.prefix}route1:notify-nobody:wait`);
    expect(waiting).toBe(1);
    expect(botLogs.text()).not.toMatch(/no channel/);
    expect(chan.results.filter((x) => x.model_id === 'm')).toHaveLength(0);
  });

  it('the same notice under two job ids, and again after it was sent, is sent once', async () => {
    const ws = 'wx:bob';
    const added = await bot.registry.add(ws, { upstream_model: 'gpt-y', base_url: fake.baseUrl, api_key_env: 'DUP_API_KEY', name: 'Dup' });
    if (!added.ok) throw new Error(added.error);
    const payload: NotifyPayload = { channel: { channel: 'wechat-like', chat_id: 'bob' }, workspace: ws, model_id: added.model.id, outcome: 'ok', masked_key: '****abcd', notice_id: `sub-${randomBytes(4).toString('hex')}` };
    // From both processes at once, as after a lost lock in an outage.
    await Promise.all([
      worker.notifyRunner.enqueue(JOB_NOTIFY, payload, { jobId: 'notify-dup-a' }),
      bot.notifyRunner.enqueue(JOB_NOTIFY, payload, { jobId: 'notify-dup-b' }),
    ]);
    await waitFor(() => chan.results.find((x) => x.model_id === added.model.id), 10_000, 'the first copy');
    await bot.notifyRunner.drain();
    await worker.notifyRunner.enqueue(JOB_NOTIFY, payload, { jobId: 'notify-dup-c' });
    await bot.notifyRunner.drain();
    await sleep(300);
    expect(chan.results.filter((x) => x.model_id === added.model.id)).toHaveLength(1);
  });
});

describe('embedded mode routes the same way', () => {
  let app: App;
  let logs: LogCapture;
  let cleanup: () => Promise<void>;
  let chan: RecordingChannel;

  beforeAll(async () => {
    ({ app, logs, cleanup } = await testApp());
    chan = new RecordingChannel('test');
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => cleanup());

  it('delivers its own channel once, and leaves another channel waiting without errors', async () => {
    const base = { workspace: 'tg:9', model_id: 'emb', outcome: 'ok', notice_id: 'emb-1' };
    await app.notifyRunner.enqueue(JOB_NOTIFY, { ...base, channel: { channel: 'test', chat_id: '9' } }, { jobId: 'notify-emb-1' });
    await app.notifyRunner.enqueue(JOB_NOTIFY, { ...base, channel: { channel: 'test', chat_id: '9' } }, { jobId: 'notify-emb-2' });
    await app.notifyRunner.enqueue(JOB_NOTIFY, { ...base, notice_id: 'emb-2', channel: { channel: 'elsewhere', chat_id: '9' } }, { jobId: 'notify-emb-3' });
    await app.notifyRunner.drain(); // only this process's own queues: resolves although "elsewhere" waits
    expect(chan.results.filter((x) => x.model_id === 'emb')).toHaveLength(1);
    expect(app.notifyRunner.servedQueues()).toEqual(['notify-test']);
    expect(logs.text()).not.toMatch(/no channel/);
  });
});

describe('Notifier: two concurrent runs of one notice', () => {
  it('sends once; the second waits for the first and skips', async () => {
    const store = new RedisStore(redisCtx.url, redisCtx.sub('claims'));
    try {
      const registry = { get: async () => ({ ok: false }) } as unknown as Registry;
      const notifier = new Notifier({ registry, logger: createLogger({ level: 'silent' }), store });
      const sends: string[] = [];
      const slow = new RecordingChannel('slow');
      const send = slow.send.bind(slow);
      slow.keyResult = async (chat, result) => {
        await sleep(300); // a slow chat API: the second run arrives while the first sends
        sends.push(result.text);
        await send(chat, { text: result.text });
      };
      notifier.addChannel(slow);
      const p: NotifyPayload = { channel: { channel: 'slow', chat_id: '1' }, workspace: 'tg:1', model_id: 'm1', outcome: 'ok', notice_id: 'twice-1' };
      await Promise.all([notifier.deliver(p, { jobId: 'a' }), notifier.deliver(p, { jobId: 'b' })]);
      expect(sends).toHaveLength(1);
      // A failed send releases the claim: the retry sends.
      slow.keyResult = async () => {
        throw new Error('chat API down');
      };
      const q = { ...p, notice_id: 'twice-2' };
      await expect(notifier.deliver(q)).rejects.toThrow(/chat API down/);
      slow.keyResult = async (_chat, result) => void sends.push(result.text);
      await notifier.deliver(q);
      expect(sends).toHaveLength(2);
    } finally {
      await store.close();
    }
  });
});
