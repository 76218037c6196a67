import { randomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { testApp } from '../support/app.ts';
import { startFakeOpenAI, type FakeVendor } from '../support/fake-vendors.ts';
import { waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

// A process that dies after a form was submitted but before its job ran leaves a sealed
// submission in the store and no job (the embedded runner keeps jobs in memory). The next
// start must finish it: the key is stored once and the user is told.
describe('a sealed submission left by a crash is finished at the next start', () => {
  let app: App;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: RecordingChannel;
  const key = 'sk-' + randomBytes(24).toString('hex');
  const WS = 'tg:777';
  let modelId = '';

  beforeAll(async () => {
    fake = await startFakeOpenAI({ keys: [key] });
    ({ app, cleanup } = await testApp());
    const added = await app.registry.add(WS, { upstream_model: 'gpt-x', base_url: fake.baseUrl, api_key_env: 'REC_API_KEY', name: 'Recovered' });
    if (!added.ok) throw new Error(added.error);
    modelId = added.model.id;
    await sodium.ready;
    const { id: keyId, publicKey } = await app.boxKeys.current();
    const box = sodium.crypto_box_seal(sodium.from_string(key), publicKey);
    await app.submissions.add(WS, {
      model_id: modelId,
      key_id: keyId,
      sealed: { REC_API_KEY: Buffer.from(box).toString('base64') },
      token_hash: 'a'.repeat(64),
      channel: { channel: 'test', chat_id: '777' },
      lang: 'en',
    });
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });
  afterAll(async () => {
    await cleanup();
    await fake.close();
  });

  it('validates, stores the key, notifies once and removes the submission', async () => {
    const r = await waitFor(() => chan.results.find((x) => x.model_id === modelId), 10_000, 'the recovered result');
    expect(r.outcome).toBe('ok');
    expect(await app.vault.has(WS, 'REC_API_KEY')).toBe(true);
    expect(await app.submissions.forModel(WS, modelId)).toBeUndefined();
    await app.validateRunner.drain();
    await app.notifyRunner.drain();
    expect(chan.results.filter((x) => x.model_id === modelId)).toHaveLength(1);
    expect(fake.requests.filter((q) => q.key === key)).toHaveLength(1);
  });
});
