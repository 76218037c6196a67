import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventStreamCodec, Int64 } from '@smithy/eventstream-codec';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CustomModel } from '../../src/registry/types.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import { decodeEventStream } from '../../src/vendors/wires/bedrock.ts';
import { createWire } from '../../src/vendors/wires/index.ts';

const ALLOW: NetOptions = { allowPrivate: true, allowlist: [] };
const KEY = 'ABSKQmVkcm9ja0FQSUtleS1jcmNjcmNjcmNjcmM=';
const enc = new TextEncoder();
const codec = new EventStreamCodec((b) => new TextDecoder().decode(b), (s) => enc.encode(s));

function frame(eventType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: { ':event-type': { type: 'string', value: eventType }, ':content-type': { type: 'string', value: 'application/json' }, ':message-type': { type: 'string', value: 'event' } },
    body: enc.encode(JSON.stringify(payload)),
  });
}

/** The frame with one byte flipped: in the body (message CRC fails) or in the prelude's length of headers (prelude CRC fails). */
function corrupt(f: Uint8Array, where: 'body' | 'prelude'): Uint8Array {
  const c = new Uint8Array(f);
  c[where === 'body' ? c.length - 6 : 7]! ^= 0x01;
  return c;
}

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* parts;
}

function model(baseUrl: string): CustomModel {
  return {
    id: 'm-crc1', name: 'M', vendor: 'bedrock', wire: 'bedrock', upstream_model: 'anthropic.claude-3-5-haiku-20241022-v1:0', base_url: baseUrl, api_key_env: 'AWS_BEARER_TOKEN_BEDROCK',
    extra_env_vars: [], key_optional: false, headers: {}, query: {}, settings: { region: 'us-east-1' }, request_fields: {}, thinking: { style: 'none' }, max_tokens: 64,
    capabilities: { json: false, vision: false, tools: false, reasoning: false }, status: 'active', created_at: '', updated_at: '',
  };
}

describe('Bedrock event-stream frames (@smithy/eventstream-codec)', () => {
  it('decodes frames split across chunks, and every header type to a plain value', async () => {
    const f = codec.encode({
      headers: {
        ':message-type': { type: 'string', value: 'event' },
        b: { type: 'boolean', value: true },
        n: { type: 'integer', value: -7 },
        l: { type: 'long', value: Int64.fromNumber(1234567890123) },
        t: { type: 'timestamp', value: new Date(1_700_000_000_000) },
        bin: { type: 'binary', value: new Uint8Array([1, 2, 3]) },
      },
      body: enc.encode('{"x":1}'),
    });
    const two = new Uint8Array([...f, ...frame('messageStop', { stopReason: 'end_turn' })]);
    const out = [];
    for await (const m of decodeEventStream(chunks(two.subarray(0, 3), two.subarray(3, 40), two.subarray(40)))) out.push(m);
    expect(out).toHaveLength(2);
    expect(out[0]!.headers).toEqual({ ':message-type': 'event', b: true, n: -7, l: 1234567890123, t: 1_700_000_000_000, bin: new Uint8Array([1, 2, 3]) });
    expect(new TextDecoder().decode(out[0]!.body)).toBe('{"x":1}');
    expect(out[1]!.headers[':event-type']).toBe('messageStop');
  });

  it('refuses a corrupted prelude or message CRC, a truncated frame and an absurd length', async () => {
    const good = frame('contentBlockDelta', { delta: { text: 'hi' } });
    const first = async (...parts: Uint8Array[]) => {
      for await (const m of decodeEventStream(chunks(...parts))) return m;
      return undefined;
    };
    await expect(first(corrupt(good, 'body'))).rejects.toThrow(/corrupted \(checksum mismatch\)/);
    await expect(first(corrupt(good, 'prelude'))).rejects.toThrow(/corrupted \(checksum mismatch\)/);
    await expect(first(good.subarray(0, good.length - 1))).rejects.toThrow(/truncated/);
    await expect(first(new Uint8Array([0x7f, 0xff, 0xff, 0xff]))).rejects.toThrow(/bad length/);
  });

  it('checks the CRC also where zlib.crc32 is missing (Node 20.0–20.14)', () => {
    // smithy picks its CRC32 at load time: hide zlib.crc32 before loading it, as on an older Node 20.
    const src = `
      import zlib from 'node:zlib';
      zlib.crc32 = undefined;
      const { EventStreamCodec } = await import('@smithy/eventstream-codec');
      const { decodeEventStream } = await import('./src/vendors/wires/bedrock.ts');
      const e = new TextEncoder();
      const c = new EventStreamCodec((b) => new TextDecoder().decode(b), (s) => e.encode(s));
      const f = c.encode({ headers: { ':message-type': { type: 'string', value: 'event' } }, body: e.encode('{"a":1}') });
      const bad = new Uint8Array(f); bad[bad.length - 6] ^= 1;
      async function* one(x) { yield x; }
      let ok = 0; for await (const m of decodeEventStream(one(f))) ok++;
      let refused = '';
      try { for await (const m of decodeEventStream(one(bad))) {} } catch (err) { refused = err.message; }
      console.log(JSON.stringify({ native: typeof zlib.crc32, ok, refused }));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], { cwd: process.cwd(), encoding: 'utf8' });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ native: 'undefined', ok: 1, refused: expect.stringMatching(/checksum mismatch/) });
  });

  describe('through the wire', () => {
    let server: http.Server;
    let url = '';
    let body: Uint8Array[] = [];
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' });
          for (const b of body) res.write(b);
          res.end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('a frame with a corrupted CRC is refused with a clear, key-free error (rejected, as before)', async () => {
      body = [frame('messageStart', { role: 'assistant' }), frame('contentBlockDelta', { delta: { text: 'Hel' } }), corrupt(frame('contentBlockDelta', { delta: { text: 'lo' } }), 'body')];
      const w = createWire('bedrock', ALLOW);
      const got: string[] = [];
      let err: unknown;
      try {
        for await (const e of w.stream(model(url), { AWS_BEARER_TOKEN_BEDROCK: enc.encode(KEY) }, [{ role: 'user', content: 'hi' }])) if (e.type === 'text') got.push(e.text);
      } catch (e) {
        err = e;
      }
      expect(got).toEqual(['Hel']);
      expect(err).toBeInstanceOf(VendorError);
      const v = err as VendorError;
      expect(v.outcome).toBe('rejected');
      expect(v.vendorCode).toBe('bad_event_stream');
      expect(v.message).toBe('Bedrock sent a corrupted (checksum mismatch) event-stream frame; the answer was dropped');
      expect(JSON.stringify({ m: v.message, d: (v as { details?: unknown }).details })).not.toContain(KEY.slice(4, 20));
    });

    it('good frames still stream text, stop reason and usage', async () => {
      body = [frame('contentBlockDelta', { delta: { text: 'ok' } }), frame('messageStop', { stopReason: 'end_turn' }), frame('metadata', { usage: { inputTokens: 3, outputTokens: 1 } })];
      const w = createWire('bedrock', ALLOW);
      const evs = [];
      for await (const e of w.stream(model(url), { AWS_BEARER_TOKEN_BEDROCK: enc.encode(KEY) }, [{ role: 'user', content: 'hi' }])) evs.push(e);
      expect(evs).toEqual([{ type: 'text', text: 'ok' }, { type: 'usage', input_tokens: 3, output_tokens: 1 }, { type: 'done', finish_reason: 'end_turn' }]);
    });
  });
});
