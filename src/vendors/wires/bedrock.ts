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
 * dispatcher + our own AWS event-stream frame decoder (prelude, headers, payload, both CRCs).
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
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import type { CustomModel } from '../../registry/types.ts';
import { classifyError, classifyHttp, toProbeResult, toVendorError, streamFailure } from '../classify.ts';
import { VendorError } from '../errors.ts';
import { getDefaultNetOptions, secretString, USER_AGENT, vendorRequest, type NetOptions } from '../net.ts';
import { applyThinking } from '../thinking.ts';
import type { ChatMessage, ProbeResult, Secrets, StreamEvent, StreamOptions, Wire } from '../types.ts';
import { extraHeaders, PROBE_HEADERS_TIMEOUT_MS } from './openai.ts';
import { JSON_INSTRUCTION } from './anthropic.ts';

// ---------------------------------------------------------------------------------------
// SigV4

/** AWS's URI escaping (RFC 3986 unreserved kept). */
export function awsEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key: Uint8Array, data: string): Buffer {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

export interface SigV4Input {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  accessKeyId: string;
  secretAccessKey: Uint8Array;
  sessionToken?: string;
  date?: Date;
}

/** Returns the headers to add (x-amz-date, x-amz-content-sha256, authorization, token). */
export function signV4(i: SigV4Input): Record<string, string> {
  const date = i.date ?? new Date();
  const amzDate = date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256Hex(i.body);
  const add: Record<string, string> = { 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
  if (i.sessionToken) add['x-amz-security-token'] = i.sessionToken;
  const all: Record<string, string> = { host: i.url.host, ...lower(i.headers), ...add };
  const toSign = Object.keys(all)
    .filter((k) => k === 'host' || k === 'content-type' || k.startsWith('x-amz-'))
    .sort();
  const canonicalHeaders = toSign.map((k) => `${k}:${all[k]!.trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = toSign.join(';');
  // Non-S3 services: each (already encoded) path segment is escaped again.
  const canonicalPath = i.url.pathname.split('/').map((seg) => awsEscape(seg)).join('/') || '/';
  const canonicalQuery = [...i.url.searchParams.entries()]
    .map(([k, v]) => [awsEscape(k), awsEscape(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [i.method, canonicalPath, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].join('\n');
  const scope = `${day}/${i.region}/${i.service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const k0 = new Uint8Array(4 + i.secretAccessKey.length);
  k0.set([0x41, 0x57, 0x53, 0x34]); // "AWS4"
  k0.set(i.secretAccessKey, 4);
  let k = hmac(k0, day);
  k0.fill(0);
  for (const part of [i.region, i.service, 'aws4_request']) {
    const next = hmac(k, part);
    k.fill(0);
    k = next;
  }
  const signature = crypto.createHmac('sha256', k).update(stringToSign, 'utf8').digest('hex');
  k.fill(0);
  add.authorization = `AWS4-HMAC-SHA256 Credential=${i.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return add;
}

function lower(h: Record<string, string>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) o[k.toLowerCase()] = v;
  return o;
}

// ---------------------------------------------------------------------------------------
// AWS event-stream frames (application/vnd.amazon.eventstream)

export interface EventStreamMessage {
  headers: Record<string, string | number | boolean | Uint8Array>;
  body: Uint8Array;
}

const crc32: ((b: Uint8Array) => number) | undefined = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32;

function decodeHeaders(b: Buffer): EventStreamMessage['headers'] {
  const out: EventStreamMessage['headers'] = {};
  let o = 0;
  while (o < b.length) {
    const nameLen = b.readUInt8(o);
    o += 1;
    const name = b.toString('utf8', o, o + nameLen);
    o += nameLen;
    const type = b.readUInt8(o);
    o += 1;
    switch (type) {
      case 0: out[name] = true; break;
      case 1: out[name] = false; break;
      case 2: out[name] = b.readInt8(o); o += 1; break;
      case 3: out[name] = b.readInt16BE(o); o += 2; break;
      case 4: out[name] = b.readInt32BE(o); o += 4; break;
      case 5: out[name] = Number(b.readBigInt64BE(o)); o += 8; break;
      case 6: { const n = b.readUInt16BE(o); o += 2; out[name] = new Uint8Array(b.subarray(o, o + n)); o += n; break; }
      case 7: { const n = b.readUInt16BE(o); o += 2; out[name] = b.toString('utf8', o, o + n); o += n; break; }
      case 8: out[name] = Number(b.readBigInt64BE(o)); o += 8; break;
      case 9: out[name] = b.subarray(o, o + 16).toString('hex'); o += 16; break;
      default: throw new Error(`event-stream: unknown header type ${type}`);
    }
  }
  return out;
}

/** Splits a byte stream into event-stream messages, verifying both CRCs. */
export async function* decodeEventStream(source: AsyncIterable<Uint8Array>): AsyncGenerator<EventStreamMessage> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    while (buf.length >= 12) {
      const total = buf.readUInt32BE(0);
      if (total < 16 || total > 16 * 1024 * 1024) throw new Error('event-stream: bad frame length');
      if (buf.length < total) break;
      const headersLen = buf.readUInt32BE(4);
      if (crc32) {
        if (crc32(buf.subarray(0, 8)) >>> 0 !== buf.readUInt32BE(8)) throw new Error('event-stream: prelude checksum mismatch');
        if (crc32(buf.subarray(0, total - 4)) >>> 0 !== buf.readUInt32BE(total - 4)) throw new Error('event-stream: message checksum mismatch');
      }
      const headers = decodeHeaders(buf.subarray(12, 12 + headersLen));
      const body = buf.subarray(12 + headersLen, total - 4);
      yield { headers, body };
      buf = buf.subarray(total);
    }
  }
  if (buf.length) throw new Error('event-stream: truncated frame');
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
