import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import { bedrockRegion, createBedrockWire } from '../../src/vendors/wires/bedrock.ts';
import { testApp, type LogCapture } from '../support/app.ts';
import { startFakeBedrock, type FakeVendor } from '../support/fake-vendors.ts';
import { submitForm, waitFor } from '../support/form.ts';
import { RecordingChannel } from '../support/recording-channel.ts';

const WS = 'tg:7311';
const bedrockKey = () => 'ABSK' + randomBytes(45).toString('base64');
const accessKeyId = () => 'AKIA' + randomBytes(8).toString('hex').toUpperCase();
const secretAccessKey = () => randomBytes(30).toString('base64');

describe('Bedrock API keys through the form and the worker', () => {
  let app: App;
  let logs: LogCapture;
  let cleanup: () => Promise<void>;
  let fake: FakeVendor;
  let chan: RecordingChannel;
  const secretsUsed: string[] = [];
  /** The model the first test switched to the API key. */
  let switchedId = '';

  beforeAll(async () => {
    fake = await startFakeBedrock({ reply: 'pong' });
    ({ app, logs, cleanup } = await testApp());
    chan = new RecordingChannel();
    app.addChannel(chan);
    await app.start();
  });

  afterAll(async () => {
    await cleanup?.();
    await fake?.close();
  });

  async function model(id: string): Promise<CustomModel> {
    const got = await app.registry.get(WS, id);
    if (!got.ok) throw new Error(got.error);
    return got.model;
  }

  /** A form link for the model's current credential, as `/byok key <id>` issues it. */
  async function link(m: CustomModel): Promise<string> {
    const res = await app.requests.request({
      workspace: WS,
      channel: { channel: 'test', chat_id: '1' },
      env_vars: [m.api_key_env, ...m.extra_env_vars],
      reason: 'test',
      model_id: m.id,
      vendor: m.vendor,
      vendor_name: 'Amazon Bedrock',
      model_name: m.name,
      homepage: 'https://console.aws.amazon.com/bedrock',
      force: true,
    });
    if (res.status !== 'issued') throw new Error('no link');
    return res.url;
  }

  async function resultFor(id: string, n: number) {
    await waitFor(() => chan.results.filter((r) => r.model_id === id).length >= n, 15_000, `result ${n} for ${id}`);
    return chan.results.filter((r) => r.model_id === id)[n - 1]!;
  }

  it('a Bedrock API key sent for a key-pair model is probed with Bearer, stored, and the model (with its sibling) switches to it', async () => {
    const added = await app.registry.add_template(WS, 'bedrock', { base_url: fake.url, name: 'Sonnet on Bedrock' });
    const sibling = await app.registry.add_template(WS, 'bedrock', { base_url: fake.url, name: 'Haiku on Bedrock', upstream_model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' });
    if (!added.ok || !sibling.ok) throw new Error('add failed');
    const m = added.model;
    switchedId = m.id;
    expect(m.credential_kind).toBe('aws_keypair');
    expect([m.api_key_env, ...m.extra_env_vars]).toEqual(['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);

    // A wrong API key first: refused, and the model stays on the key pair.
    const wrong = bedrockKey();
    secretsUsed.push(wrong);
    const good = bedrockKey();
    secretsUsed.push(good);
    fake.setKeys([good]);
    const url1 = await link(m);
    // The page offers the choice.
    const html = await (await fetch(url1)).text();
    expect(html).toContain('data-env="AWS_BEARER_TOKEN_BEDROCK"');
    expect(html).toContain('data-env="AWS_ACCESS_KEY_ID"');
    expect((await submitForm(url1, { AWS_BEARER_TOKEN_BEDROCK: wrong })).status).toBe(202);
    expect((await resultFor(m.id, 1)).outcome).toBe('invalid_key');
    expect((await model(m.id)).api_key_env).toBe('AWS_ACCESS_KEY_ID');
    expect(await app.vault.has(WS, 'AWS_BEARER_TOKEN_BEDROCK')).toBe(false);

    // Both shapes at once are refused before the link is used.
    const url2 = await link(m);
    const both = await submitForm(url2, { AWS_BEARER_TOKEN_BEDROCK: good, AWS_ACCESS_KEY_ID: accessKeyId(), AWS_SECRET_ACCESS_KEY: secretAccessKey() });
    expect(both.status).toBe(400);
    expect(JSON.stringify(both.body)).toMatch(/one credential choice/);

    const before = fake.requests.length;
    const res = await submitForm(url2, { AWS_BEARER_TOKEN_BEDROCK: good });
    expect(res.status).toBe(202);
    const r = await resultFor(m.id, 2);
    expect(r.outcome).toBe('ok');
    expect(r.masked).toBe('****' + good.slice(-4));
    const probes = fake.requests.slice(before);
    expect(probes.length).toBeGreaterThan(0);
    for (const p of probes) {
      expect(p.headers.authorization).toBe(`Bearer ${good}`);
      expect(p.headers['x-amz-date']).toBeUndefined(); // no SigV4
    }
    expect(await app.vault.has(WS, 'AWS_BEARER_TOKEN_BEDROCK')).toBe(true);
    for (const id of [m.id, sibling.model.id]) {
      const now = await model(id);
      expect(now).toMatchObject({ credential_kind: 'bearer', api_key_env: 'AWS_BEARER_TOKEN_BEDROCK', extra_env_vars: [], status: 'active' });
    }
    expect((await (await fetch(res.statusUrl)).json()).status).toBe('ok');
  });

  it('a key pair sent for a bearer model switches it back, signed with SigV4', async () => {
    const current = await model(switchedId);
    expect(current.credential_kind).toBe('bearer');
    const pair = { accessKeyId: accessKeyId(), secretAccessKey: secretAccessKey() };
    secretsUsed.push(pair.secretAccessKey);
    fake.setCredentials([pair]);
    const url = await link(current);
    const html = await (await fetch(url)).text();
    expect(html).toContain('data-env="AWS_SECRET_ACCESS_KEY"'); // the other choice is offered
    const before = fake.requests.length;
    expect((await submitForm(url, { AWS_ACCESS_KEY_ID: pair.accessKeyId, AWS_SECRET_ACCESS_KEY: pair.secretAccessKey })).status).toBe(202);
    const r = await resultFor(current.id, 3);
    expect(r.outcome).toBe('ok');
    const probes = fake.requests.slice(before);
    expect(probes.length).toBeGreaterThan(0);
    for (const p of probes) expect(p.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${pair.accessKeyId}/\\d{8}/us-east-1/bedrock/aws4_request`));
    const now = await model(current.id);
    expect(now).toMatchObject({ credential_kind: 'aws_keypair', api_key_env: 'AWS_ACCESS_KEY_ID', extra_env_vars: ['AWS_SECRET_ACCESS_KEY'], status: 'active' });
  });

  it('no plaintext secret in the logs', async () => {
    await app.validateRunner.drain();
    await app.notifyRunner.drain();
    const text = logs.text();
    for (const s of secretsUsed) expect(text.includes(s)).toBe(false);
  });
});

describe('Bedrock signing region', () => {
  let fake: FakeVendor;
  const pair = { accessKeyId: 'AKIA' + 'R'.repeat(16), secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
  beforeAll(async () => {
    fake = await startFakeBedrock({ reply: 'pong', credentials: [pair] });
  });
  afterAll(async () => {
    await fake?.close();
  });

  function bedrockModel(over: Partial<CustomModel>): CustomModel {
    return {
      id: 'br-test',
      name: 'br',
      vendor: 'bedrock',
      wire: 'bedrock',
      upstream_model: 'us.anthropic.claude-sonnet-4-6',
      base_url: fake.url,
      api_key_env: 'AWS_ACCESS_KEY_ID',
      extra_env_vars: ['AWS_SECRET_ACCESS_KEY'],
      key_optional: false,
      credential_kind: 'aws_keypair',
      headers: {},
      query: {},
      // As add_template copies it from the template.
      settings: { region: 'us-east-1' },
      request_fields: {},
      thinking: { style: 'none' },
      max_tokens: 256,
      capabilities: { json: true, vision: false, tools: true, reasoning: false },
      status: 'active',
      created_at: new Date().toISOString(),
      updated_at: new Date().toISOString(),
      ...over,
    };
  }

  const secrets = () => ({
    AWS_ACCESS_KEY_ID: new TextEncoder().encode(pair.accessKeyId),
    AWS_SECRET_ACCESS_KEY: new TextEncoder().encode(pair.secretAccessKey),
  });

  it('follows a base_url moved to bedrock-runtime.eu-west-1 (the fake verifies the signature)', async () => {
    // The AWS host name resolves to the fake (this test only), as DNS would to AWS.
    const host = 'bedrock-runtime.eu-west-1.amazonaws.com';
    const lookup = dns.lookup;
    const patched = function (this: unknown, name: string, o: unknown, cb?: unknown) {
      const [opts, done] = typeof o === 'function' ? [{}, o] : [o as { all?: boolean }, cb];
      if (name !== host) return (lookup as (...a: unknown[]) => void).call(this, name, opts, done);
      const reply = done as (e: null, a: unknown, f?: number) => void;
      if ((opts as { all?: boolean }).all) reply(null, [{ address: '127.0.0.1', family: 4 }]);
      else reply(null, '127.0.0.1', 4);
    };
    dns.lookup = patched as typeof dns.lookup;
    const net: NetOptions = { allowPrivate: true, allowlist: [] };
    const wire = createBedrockWire(net);
    // settings.region is the template's us-east-1, as add_template left it before base_url moved.
    const m = bedrockModel({ base_url: `http://${host}:${fake.port}` });
    expect(bedrockRegion(m)).toBe('eu-west-1');
    const before = fake.requests.length;
    let r;
    try {
      r = await wire.probe(m, secrets());
    } finally {
      dns.lookup = lookup;
    }
    expect(r.outcome).toBe('ok');
    expect(fake.requests.slice(before)[0]!.headers.host).toBe(`${host}:${fake.port}`);
    const auth = fake.requests.slice(before).map((q) => q.headers.authorization);
    expect(auth.length).toBeGreaterThan(0);
    for (const a of auth) expect(a).toMatch(new RegExp(`Credential=${pair.accessKeyId}/\\d{8}/eu-west-1/bedrock/aws4_request,`));
  });

  it('keeps settings.region for a host that names no region', async () => {
    const wire = createBedrockWire({ allowPrivate: true, allowlist: [] });
    const m = bedrockModel({ settings: { region: 'ap-southeast-2' } });
    expect(bedrockRegion(m)).toBe('ap-southeast-2');
    const before = fake.requests.length;
    expect((await wire.probe(m, secrets())).outcome).toBe('ok');
    for (const q of fake.requests.slice(before)) expect(q.headers.authorization).toContain('/ap-southeast-2/bedrock/aws4_request');
    // Regional FIPS, VPC endpoint and China hosts name their region too.
    expect(bedrockRegion(bedrockModel({ base_url: 'https://bedrock-runtime-fips.us-gov-west-1.amazonaws.com' }))).toBe('us-gov-west-1');
    expect(bedrockRegion(bedrockModel({ base_url: 'https://vpce-0a1b-xyz.bedrock-runtime.eu-central-1.vpce.amazonaws.com' }))).toBe('eu-central-1');
    expect(bedrockRegion(bedrockModel({ base_url: 'https://bedrock-runtime.cn-north-1.amazonaws.com.cn' }))).toBe('cn-north-1');
    expect(bedrockRegion(bedrockModel({ base_url: 'https://bedrock-runtime.{region}.amazonaws.com', settings: { region: 'eu-west-3' } }))).toBe('eu-west-3');
  });
});
