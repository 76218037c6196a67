/**
 * The `bedrock` wire: Amazon Bedrock Runtime Converse / ConverseStream
 * (`POST /model/<modelId>/converse` and `/converse-stream` on
 * `https://bedrock-runtime.<region>.amazonaws.com`, or model.base_url).
 *
 * Auth, from the secrets:
 *  - `AWS_BEARER_TOKEN_BEDROCK` (a Bedrock API key, `ABSK…`) → `Authorization: Bearer …`
 *    (also when the main key itself looks like one and no secret access key is given);
 *  - otherwise AWS SigV4 (service `bedrock`) with `AWS_ACCESS_KEY_ID` (or the model's
 *    api_key_env) + `AWS_SECRET_ACCESS_KEY` (+ optional `AWS_SESSION_TOKEN`). The secret
 *    access key never becomes a JS string: the HMAC key is built from its bytes and wiped.
 * Region: the base_url host's (bedrock-runtime.<region>.amazonaws.com), else settings.region,
 * else secrets AWS_REGION, else us-east-1 (see bedrockRegion).
 *
 * Client choice: hand-signed (SigV4 is ~40 lines; the fake Bedrock verifies every signature
 * with @smithy/signature-v4, the signer the AWS SDK uses) + undici through the SSRF-safe
 * dispatcher (signer in ../sigv4.ts) + @smithy/eventstream-codec for the AWS event-stream
 * frames (both CRCs, all header types; we only split the byte stream into frames).
 * @aws-sdk/client-bedrock-runtime would need its own request handler bridged onto our
 * dispatcher and retry strategy switched off, and it is the heaviest of the three SDKs per
 * call; the hand-written path keeps Bedrock on the same code path (and numbers) as the other
 * wires.
 *
 * Request mapping: system messages → `system: [{text}]`; others → `messages: [{role,
 * content: [{text}]}]`; `inferenceConfig.maxTokens`; request_fields: Converse top-level keys
 * (inferenceConfig, additionalModelRequestFields, guardrailConfig, performanceConfig, …) are
 * merged at the top, OpenAI-style temperature/top_p/stop/max_tokens go to inferenceConfig,
 * anything else into additionalModelRequestFields (where model-native parameters live:
 * Anthropic `thinking`, `top_k`, gpt-oss `reasoning_effort`).
 */
import { EventStreamCodec, type Int64, type Message, type MessageHeaders } from '@smithy/eventstream-codec';
import type { CustomModel } from '../../registry/types.ts';
import { classifyError, classifyHttp, toProbeResult, toVendorError, streamFailure } from '../classify.ts';
import { VendorError } from '../errors.ts';
import { getDefaultNetOptions, secretString, USER_AGENT, vendorRequest, type NetOptions } from '../net.ts';
import { signV4 } from '../sigv4.ts';
import { applyThinking } from '../thinking.ts';
import type { ChatMessage, ProbeResult, Secrets, StreamEvent, StreamOptions, Wire } from '../types.ts';
import { extraHeaders, PROBE_HEADERS_TIMEOUT_MS } from './openai.ts';
import { JSON_INSTRUCTION } from './anthropic.ts';

// ---------------------------------------------------------------------------------------
// AWS event-stream frames (application/vnd.amazon.eventstream)

export type EventStreamHeaderValue = string | number | boolean | Uint8Array;

export interface EventStreamMessage {
  headers: Record<string, EventStreamHeaderValue>;
  body: Uint8Array;
}

/** A frame longer than this is refused before it is buffered (Converse events are a few KiB). */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const utf8Dec = new TextDecoder();
const utf8Enc = new TextEncoder();
const codec = new EventStreamCodec((b) => utf8Dec.decode(b), (s) => utf8Enc.encode(s));

/** A broken frame: classified as before (rejected), with a fixed message that never carries the frame's bytes. */
function badFrame(what: string): VendorError {
  return new VendorError('rejected', `Bedrock sent a ${what} event-stream frame; the answer was dropped`, { whatToDo: 'check_request', vendorCode: 'bad_event_stream' });
}

/** smithy's header values as the plain values the wire reads (int64 → number, timestamp → ms). */
function plainHeaders(h: MessageHeaders): EventStreamMessage['headers'] {
  const out: EventStreamMessage['headers'] = {};
  for (const [name, { type, value }] of Object.entries(h)) {
    out[name] = type === 'long' ? Number((value as Int64).valueOf()) : type === 'timestamp' ? (value as Date).getTime() : (value as EventStreamHeaderValue);
  }
  return out;
}

/**
 * Splits a byte stream into event-stream messages. Framing (the 4-byte total length, with a
 * size cap) is done here; each whole frame is decoded by @smithy/eventstream-codec, which
 * verifies the prelude and message CRC32s (in JS where zlib.crc32 is missing, Node < 20.15)
 * and parses every header type.
 */
export async function* decodeEventStream(source: AsyncIterable<Uint8Array>): AsyncGenerator<EventStreamMessage> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (buf.length >= 4) {
      const total = buf.readUInt32BE(0);
      if (total < 16 || total > MAX_FRAME_BYTES) throw badFrame('malformed (bad length)');
      if (buf.length < total) break;
      let msg: Message;
      try {
        msg = codec.decode(new Uint8Array(buf.buffer, buf.byteOffset, total));
      } catch (e) {
        throw badFrame(/checksum/i.test((e as Error).message) ? 'corrupted (checksum mismatch)' : 'malformed');
      }
      yield { headers: plainHeaders(msg.headers), body: msg.body };
      buf = buf.subarray(total);
    }
  }
  if (buf.length) throw badFrame('truncated');
}

// ---------------------------------------------------------------------------------------
// Request building

const CONVERSE_TOP = new Set([
  'inferenceConfig',
  'additionalModelRequestFields',
  'guardrailConfig',
  'performanceConfig',
  'promptVariables',
  'additionalModelResponseFieldPaths',
  'requestMetadata',
  'toolConfig',
]);
const INFERENCE_ALIASES: Record<string, string> = { temperature: 'temperature', top_p: 'topP', topP: 'topP', stop: 'stopSequences', stop_sequences: 'stopSequences', stopSequences: 'stopSequences', max_tokens: 'maxTokens', maxTokens: 'maxTokens' };

/** The region an AWS Bedrock Runtime host names (regional, FIPS, VPC endpoint, China), if any. */
export function regionOfHost(baseUrl: string | undefined): string | undefined {
  let host: string;
  try {
    host = new URL(baseUrl ?? '').hostname.toLowerCase();
  } catch {
    return undefined;
  }
  return /(?:^|\.)bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-gov)?-[a-z]+-\d+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$/.exec(host)?.[1];
}

/**
 * The signing region. An AWS host decides: Bedrock refuses a signature scoped to another
 * region than its endpoint's, and settings.region is copied from the template (us-east-1)
 * when the model is added, so it would go stale when base_url moves to another region.
 * settings.region is the override for hosts that name no region (a proxy, a private DNS
 * name, a `{region}` placeholder in base_url); then secrets AWS_REGION, then us-east-1.
 */
export function bedrockRegion(model: CustomModel, secrets?: Secrets): string {
  const fromHost = regionOfHost(model.base_url);
  if (fromHost) return fromHost;
  if (model.settings?.region) return model.settings.region;
  const r = secrets ? secretString(secrets, 'AWS_REGION') : '';
  return r || 'us-east-1';
}

export function bedrockUrl(model: CustomModel, region: string, stream: boolean): URL {
  const base = (model.base_url || 'https://bedrock-runtime.{region}.amazonaws.com').replace(/\{region\}/g, region).replace(/\/+$/, '');
  return new URL(`${base}/model/${encodeURIComponent(model.upstream_model)}/${stream ? 'converse-stream' : 'converse'}`);
}

export function buildConverseBody(
  model: CustomModel,
  messages: ChatMessage[],
  o: { maxTokens: number; thinking?: boolean; json?: boolean },
): Record<string, unknown> {
  const system: { text: string }[] = [];
  const msgs: { role: 'user' | 'assistant'; content: { text: string }[] }[] = [];
  for (const m of messages) {
    if (m.role === 'system') system.push({ text: m.content });
    else msgs.push({ role: m.role, content: [{ text: m.content }] });
  }
  if (o.json && model.capabilities?.json) system.push({ text: JSON_INSTRUCTION });
  const inference: Record<string, unknown> = { maxTokens: o.maxTokens };
  let extra: Record<string, unknown> = {};
  const top: Record<string, unknown> = {};
  const fields = { ...(model.request_fields ?? {}) } as Record<string, unknown>;
  if (fields.extra_body && typeof fields.extra_body === 'object') Object.assign(fields, fields.extra_body as object);
  delete fields.extra_body;
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'inferenceConfig' && v && typeof v === 'object') Object.assign(inference, v);
    else if (k === 'additionalModelRequestFields' && v && typeof v === 'object') extra = { ...extra, ...(v as object) };
    else if (CONVERSE_TOP.has(k)) top[k] = v;
    else if (INFERENCE_ALIASES[k]) inference[INFERENCE_ALIASES[k]!] = k === 'stop' && typeof v === 'string' ? [v] : v;
    else if (k !== 'messages' && k !== 'system' && k !== 'modelId') extra[k] = v;
  }
  // Thinking goes into the model-native fields; max_tokens is read back into inferenceConfig.
  const scratch: Record<string, unknown> = { ...extra, max_tokens: inference.maxTokens };
  if (inference.temperature !== undefined) scratch.temperature = inference.temperature;
  applyThinking({ thinking: model.thinking, max_tokens: Number(inference.maxTokens) }, scratch, { thinking: o.thinking, maxTokensField: 'max_tokens' });
  inference.maxTokens = scratch.max_tokens;
  if (!('temperature' in scratch)) delete inference.temperature;
  if (scratch.thinking) delete inference.topP;
  delete scratch.max_tokens;
  delete scratch.temperature;
  const body: Record<string, unknown> = { messages: msgs, inferenceConfig: inference, ...top };
  if (system.length) body.system = system;
  if (Object.keys(scratch).length) body.additionalModelRequestFields = scratch;
  return body;
}

interface AuthMaterial {
  kind: 'bearer' | 'sigv4';
  /** The string form, for scrubbing messages. */
  known: string[];
  headers(url: URL, body: string, baseHeaders: Record<string, string>): Record<string, string>;
}

function looksLikeBedrockApiKey(s: string): boolean {
  return /^ABSK[A-Za-z0-9+/=]{16,}$/.test(s);
}

function authFor(model: CustomModel, secrets: Secrets, region: string): AuthMaterial {
  const bearer = secretString(secrets, 'AWS_BEARER_TOKEN_BEDROCK');
  const main = secretString(secrets, model.api_key_env);
  const secretBytes = secrets.AWS_SECRET_ACCESS_KEY;
  if (bearer || (looksLikeBedrockApiKey(main) && !secretBytes?.length)) {
    const token = bearer || main;
    return { kind: 'bearer', known: [token], headers: () => ({ authorization: `Bearer ${token}` }) };
  }
  const accessKeyId = secretString(secrets, 'AWS_ACCESS_KEY_ID') || main;
  if (!accessKeyId || !secretBytes?.length) {
    throw new VendorError('invalid_key', 'Bedrock needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK)', { whatToDo: 'resubmit_key' });
  }
  const sessionToken = secretString(secrets, 'AWS_SESSION_TOKEN') || undefined;
  return {
    kind: 'sigv4',
    known: [accessKeyId, ...(sessionToken ? [sessionToken] : [])],
    headers: (url, body, base) =>
      signV4({ method: 'POST', url, headers: base, body, region, service: 'bedrock', accessKeyId, secretAccessKey: secretBytes, sessionToken }),
  };
}

function awsHeaders(res: { headers: Record<string, string | string[] | undefined> }): Record<string, string | string[] | undefined> {
  return res.headers;
}

/** Stream exception → a VendorError (event types are lowerCamel: throttlingException). */
function streamException(type: string, payload: Uint8Array, known: string[]): VendorError {
  const t = type.charAt(0).toUpperCase() + type.slice(1);
  const status = /Throttling/.test(t) ? 429 : /Validation/.test(t) ? 400 : /AccessDenied/.test(t) ? 403 : 500;
  let body: unknown = Buffer.from(payload).toString('utf8');
  try {
    body = JSON.parse(body as string);
  } catch {
    /* raw text */
  }
  return toVendorError(classifyHttp(status, { 'x-amzn-errortype': t }, body, known));
}

export function createBedrockWire(netOpts?: NetOptions): Wire {
  const net = () => netOpts ?? getDefaultNetOptions();

  async function send(model: CustomModel, secrets: Secrets, body: Record<string, unknown>, stream: boolean, signal?: AbortSignal, probe = false) {
    const region = bedrockRegion(model, secrets);
    const url = bedrockUrl(model, region, stream);
    const auth = authFor(model, secrets, region);
    const json = JSON.stringify(body);
    const base: Record<string, string> = {
      ...extraHeaders(model),
      'content-type': 'application/json',
      accept: stream ? 'application/vnd.amazon.eventstream' : 'application/json',
      'user-agent': USER_AGENT,
    };
    const headers = { ...base, ...auth.headers(url, json, { 'content-type': 'application/json' }) };
    const res = await vendorRequest(
      url.toString(),
      { method: 'POST', headers, body: json, signal, ...(probe ? { headersTimeoutMs: PROBE_HEADERS_TIMEOUT_MS, bodyTimeoutMs: PROBE_HEADERS_TIMEOUT_MS } : {}) },
      net(),
    );
    return { res, known: auth.known };
  }

  return {
    id: 'bedrock',

    async probe(model, secrets, opts = {}): Promise<ProbeResult> {
      try {
        const body = buildConverseBody(model, [{ role: 'user', content: 'ping' }], { maxTokens: 1, thinking: false });
        const { res, known } = await send(model, secrets, body, false, opts.signal, true);
        const text = await res.body.text().catch(() => '');
        if (res.statusCode >= 300) return toProbeResult(classifyHttp(res.statusCode, awsHeaders(res), text, known));
        let parsed: { output?: unknown } | undefined;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        if (!parsed || !parsed.output) return { outcome: 'rejected', status: res.statusCode, message: 'the answer is not a Bedrock Converse response; check base_url' };
        return { outcome: 'ok', status: res.statusCode };
      } catch (e) {
        return toProbeResult(classifyError(e));
      }
    },

    async *stream(model: CustomModel, secrets: Secrets, messages: ChatMessage[], opts: StreamOptions = {}): AsyncGenerator<StreamEvent> {
      const body = buildConverseBody(model, messages, { maxTokens: model.max_tokens, thinking: opts.thinking, json: opts.json });
      let sent;
      try {
        sent = await send(model, secrets, body, true, opts.signal);
      } catch (e) {
        streamFailure(e, opts.signal);
      }
      const { res, known } = sent;
      if (res.statusCode >= 300) {
        const text = await res.body.text().catch(() => '');
        throw toVendorError(classifyHttp(res.statusCode, awsHeaders(res), text, known));
      }
      let usage: { input_tokens: number; output_tokens: number } | undefined;
      let stop: string | undefined;
      let completed = false;
      try {
        for await (const msg of decodeEventStream(res.body)) {
          const mtype = msg.headers[':message-type'];
          if (mtype === 'exception' || mtype === 'error') {
            const t = String(msg.headers[':exception-type'] ?? msg.headers[':error-code'] ?? 'internalServerException');
            throw streamException(t, msg.body, known);
          }
          const et = msg.headers[':event-type'];
          if (et === 'contentBlockDelta') {
            const p = JSON.parse(Buffer.from(msg.body).toString('utf8')) as { delta?: { text?: string; reasoningContent?: { text?: string } } };
            if (p.delta?.text) yield { type: 'text', text: p.delta.text };
            else if (p.delta?.reasoningContent?.text) yield { type: 'reasoning', text: p.delta.reasoningContent.text };
          } else if (et === 'messageStop') {
            const p = JSON.parse(Buffer.from(msg.body).toString('utf8')) as { stopReason?: string };
            stop = p.stopReason;
          } else if (et === 'metadata') {
            const p = JSON.parse(Buffer.from(msg.body).toString('utf8')) as { usage?: { inputTokens?: number; outputTokens?: number; cacheReadInputTokens?: number; cacheWriteInputTokens?: number } };
            if (p.usage) {
              usage = {
                input_tokens: (p.usage.inputTokens ?? 0) + (p.usage.cacheReadInputTokens ?? 0) + (p.usage.cacheWriteInputTokens ?? 0),
                output_tokens: p.usage.outputTokens ?? 0,
              };
            }
          }
        }
        completed = true;
      } catch (e) {
        streamFailure(e, opts.signal);
      } finally {
        if (!completed) res.body.destroy();
      }
      if (usage) yield { type: 'usage', ...usage };
      yield { type: 'done', ...(stop ? { finish_reason: stop } : {}) };
    },
  };
}

export const bedrockWire: Wire = createBedrockWire();
