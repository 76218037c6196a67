/**
 * Fake LLM vendors on 127.0.0.1 (port 0) speaking the real wire formats and the real error
 * bodies, for every test that needs a vendor (wires, worker, chat relay, channels).
 *
 *   const fake = await startFakeOpenAI({ keys: ['sk-good'] });
 *   model.base_url = fake.baseUrl;             // http://127.0.0.1:PORT/v1
 *   fake.setBehaviour('rate_limit_then_ok', 2); // first 2 calls 429, then ok
 *   fake.requests                               // every request: method, path, headers, body
 *   await fake.close();
 *
 * The wires refuse 127.0.0.1 unless the network policy allows it: use
 * `createWire(id, { allowPrivate: true, allowlist: [] })`, or set
 * BYOK_ALLOW_PRIVATE_BASE_URLS=1 / `configureVendorNet(...)` for the shared wires.
 *
 * Behaviours (`setBehaviour(b, times?)`: with `times` it applies to the next `times` calls
 * and then reverts to 'ok'; `setKeyBehaviour(key, b)` pins one key value to a behaviour):
 *   ok                  normal answer (stream or not)
 *   invalid_key         OpenAI 401 invalid_api_key (echoing the masked key, as OpenAI does) /
 *                       Anthropic 401 authentication_error / Bedrock 403 UnrecognizedClientException
 *   invalid_key_echo    OpenAI only: 401 whose message echoes the key minus its last 4 characters
 *                       and URL-encoded (a careless vendor or proxy)
 *   rejected_echo       OpenAI only: 400 (no key words, so "rejected") echoing the key the same ways
 *   invalid_model       OpenAI 404 model_not_found / Anthropic 404 not_found_error /
 *                       Bedrock 400 ValidationException "The provided model identifier is invalid."
 *   permission          OpenAI 403 / Anthropic 403 permission_error / Bedrock 403 AccessDeniedException
 *   quota_exceeded      OpenAI 429 insufficient_quota / Anthropic 400 "credit balance is too low" /
 *                       Bedrock 400 ServiceQuotaExceededException
 *   rate_limited        429 with Retry-After (OpenAI rate_limit_exceeded, Anthropic
 *                       rate_limit_error, Bedrock ThrottlingException)
 *   server_error        500 (OpenAI server_error, Anthropic api_error, Bedrock InternalServerException)
 *   overloaded          OpenAI 503 / Anthropic 529 overloaded_error / Bedrock 503 ServiceUnavailableException
 *   error_mid_stream    a few tokens, then the vendor's in-stream error
 *   hang                accepts the request and never answers
 *   rate_limit_then_ok  shorthand: setBehaviour('rate_limit_then_ok', n) = n x rate_limited, then ok
 *   server_error_then_ok  same with server_error
 * Unknown keys get invalid_key, unknown models invalid_model, whatever the behaviour
 * (only when `keys` / `models` were given; by default any key and model pass — the OpenAI
 * fake then also accepts no key at all, like a self-hosted server; Anthropic requires one).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import crypto from 'node:crypto';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import { SignatureV4 } from '@smithy/signature-v4';

export type FakeBehaviour =
  | 'ok'
  | 'invalid_key'
  | 'invalid_key_echo'
  | 'rejected_echo'
  | 'invalid_model'
  | 'permission'
  | 'quota_exceeded'
  | 'rate_limited'
  | 'server_error'
  | 'overloaded'
  | 'error_mid_stream'
  | 'hang'
  | 'rate_limit_then_ok'
  | 'server_error_then_ok';

export interface RecordedRequest {
  method: string;
  /** Path with query string, as received. */
  path: string;
  headers: Record<string, string>;
  /** Raw body text. */
  raw: string;
  /** Parsed JSON body (undefined when not JSON). */
  body: any;
  /** The credential the request carried (bearer token / api key / AWS access key id). */
  key?: string;
  at: number;
}

export interface FakeVendorOptions {
  /** Valid keys (bearer/api-key/x-api-key values; Bedrock: API keys for bearer auth). Default: any non-empty key. */
  keys?: string[];
  /** Known model ids (Azure: deployment names). Default: any model. */
  models?: string[];
  /** Reply text, streamed word by word. */
  reply?: string;
  /** Reasoning text streamed before the reply (reasoning_content / thinking_delta / reasoningContent). */
  reasoning?: string;
  /** Delay between streamed chunks, ms (default 0). */
  chunkDelayMs?: number;
  /** Retry-After seconds on rate_limited (default 2). */
  retryAfterSeconds?: number;
  /** Token usage reported (default: input 12, output = number of reply chunks). */
  usage?: { input: number; output: number };
  /** Bedrock SigV4 credentials accepted. */
  credentials?: { accessKeyId: string; secretAccessKey: string }[];
  /** Delay before any answer, ms (default 0): a slow vendor, so work is in flight when a test strikes. */
  latencyMs?: number;
  /**
   * Anthropic only: Claude Code OAuth access tokens. They pass only as `Authorization: Bearer`
   * with `anthropic-beta` listing oauth-2025-04-20 (else 401 as the API answers); in x-api-key
   * they are refused. Any bearer token not listed is refused once this is given.
   */
  oauthTokens?: string[];
}

export interface FakeVendor {
  /** http://127.0.0.1:PORT */
  url: string;
  /** What to put in model.base_url (OpenAI: url + '/v1'; Anthropic and Bedrock: url). */
  baseUrl: string;
  port: number;
  requests: RecordedRequest[];
  setKeys(keys: string[] | undefined): void;
  setModels(ids: string[] | undefined): void;
  setBehaviour(b: FakeBehaviour, times?: number): void;
  setKeyBehaviour(key: string, b: FakeBehaviour | undefined): void;
  setReply(text: string, reasoning?: string): void;
  setChunkDelay(ms: number): void;
  setLatency(ms: number): void;
  /** Bedrock only. */
  setCredentials(creds: { accessKeyId: string; secretAccessKey: string }[]): void;
  /** Forget recorded requests. */
  reset(): void;
  close(): Promise<void>;
}

type Kind = 'openai' | 'anthropic' | 'bedrock';

interface State {
  opts: FakeVendorOptions;
  behaviour: FakeBehaviour;
  remaining: number | undefined;
  perKey: Map<string, FakeBehaviour>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mask(key: string): string {
  return key.length > 8 ? `${key.slice(0, 3)}***${key.slice(-4)}` : '***';
}

function nextBehaviour(st: State, key: string | undefined): FakeBehaviour {
  if (key && st.perKey.has(key)) return st.perKey.get(key)!;
  let b = st.behaviour;
  if (st.remaining !== undefined) {
    if (st.remaining <= 0) {
      st.behaviour = 'ok';
      st.remaining = undefined;
      b = 'ok';
    } else {
      st.remaining--;
    }
  }
  return b;
}

function chunksOf(text: string): string[] {
  return text.match(/\S+\s*|\s+/g) ?? [];
}

/**
 * A fake vendor's HTTP server: every request is read whole, recorded (headers flattened, body
 * parsed as JSON when it is JSON) and handed to `handle`; a handler that throws answers 500
 * with `internalError(e)` as the body.
 */
export function recordingServer(
  requests: RecordedRequest[],
  handle: (req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest) => Promise<void>,
  internalError: (e: unknown) => unknown,
): http.Server {
  return http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      let body: unknown;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v ?? '');
      const rec: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers, raw, body, at: Date.now() };
      requests.push(rec);
      handle(req, res, rec).catch((e) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify(internalError(e)));
      });
    });
  });
}

async function start(kind: Kind, opts: FakeVendorOptions, handler: (st: State, req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest) => Promise<void>): Promise<FakeVendor> {
  const st: State = { opts: { reply: 'Hello from the fake vendor.', ...opts }, behaviour: 'ok', remaining: undefined, perKey: new Map() };
  const requests: RecordedRequest[] = [];
  const server = recordingServer(
    requests,
    async (req, res, rec) => {
      const latency = st.opts.latencyMs ?? 0;
      if (latency > 0) await sleep(latency);
      await handler(st, req, res, rec);
    },
    (e) => ({ error: { message: String(e), type: 'fake_error' } }),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    baseUrl: kind === 'openai' ? `${url}/v1` : url,
    port,
    requests,
    setKeys: (k) => void (st.opts.keys = k),
    setModels: (m) => void (st.opts.models = m),
    setBehaviour: (b, times) => {
      if (b === 'rate_limit_then_ok' || b === 'server_error_then_ok') {
        st.behaviour = b === 'rate_limit_then_ok' ? 'rate_limited' : 'server_error';
        st.remaining = times ?? 1;
      } else {
        st.behaviour = b;
        st.remaining = times;
      }
    },
    setKeyBehaviour: (key, b) => void (b ? st.perKey.set(key, b) : st.perKey.delete(key)),
    setReply: (text, reasoning) => {
      st.opts.reply = text;
      st.opts.reasoning = reasoning;
    },
    setChunkDelay: (ms) => void (st.opts.chunkDelayMs = ms),
    setLatency: (ms) => void (st.opts.latencyMs = ms),
    setCredentials: (c) => void (st.opts.credentials = c),
    reset: () => void requests.splice(0),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(s)), ...headers });
  res.end(s);
}

// ---------------------------------------------------------------------------------------
// OpenAI (also Azure shapes: /openai/deployments/<dep>/chat/completions?api-version=, /openai/v1/...)

const OPENAI_ERRORS = {
  invalid_key: (key: string) => [401, { error: { message: `Incorrect API key provided: ${mask(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }] as const,
  invalid_model: (model: string) => [404, { error: { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: null, code: 'model_not_found' } }] as const,
  permission: () => [403, { error: { message: 'You have insufficient permissions for this operation. Missing scopes: model.request. Check that you have the correct role in your organization (Reader, Writer, Owner) and project (Member, Owner), and if you\'re using a restricted API key, that it has the necessary scopes.', type: 'invalid_request_error', param: null, code: null } }] as const,
  quota_exceeded: () => [429, { error: { message: 'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.', type: 'insufficient_quota', param: null, code: 'insufficient_quota' } }] as const,
  rate_limited: (model: string, s: number) => [429, { error: { message: `Rate limit reached for ${model} in organization org-FakeOrg123 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in ${s}s. Visit https://platform.openai.com/account/rate-limits to learn more.`, type: 'requests', param: null, code: 'rate_limit_exceeded' } }] as const,
  server_error: () => [500, { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } }] as const,
  overloaded: () => [503, { error: { message: 'The engine is currently overloaded, please try again later', type: 'server_error', param: null, code: null } }] as const,
};

export async function startFakeOpenAI(opts: FakeVendorOptions = {}): Promise<FakeVendor> {
  return start('openai', opts, async (st, req, res, rec) => {
    const u = new URL(rec.path, 'http://x');
    const auth = rec.headers.authorization ?? '';
    const key = auth.startsWith('Bearer ') ? auth.slice(7) : rec.headers['api-key'] || undefined;
    rec.key = key;
    const dep = /\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(u.pathname);
    if (req.method === 'GET' && u.pathname.endsWith('/models')) {
      if (st.opts.keys && (!key || !st.opts.keys.includes(key))) return void json(res, ...OPENAI_ERRORS.invalid_key(key ?? ''));
      return void json(res, 200, { object: 'list', data: (st.opts.models ?? ['gpt-4o-mini']).map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'system' })) });
    }
    if (req.method !== 'POST' || !u.pathname.endsWith('/chat/completions')) {
      return void json(res, 404, { error: { message: `Invalid URL (${req.method} ${u.pathname})`, type: 'invalid_request_error', param: null, code: null } });
    }
    if (dep && !u.searchParams.get('api-version')) {
      return void json(res, 404, { error: { code: '404', message: 'Resource not found' } });
    }
    const body = (rec.body ?? {}) as { model?: string; stream?: boolean; response_format?: { type?: string }; stream_options?: { include_usage?: boolean } };
    const model = dep ? decodeURIComponent(dep[1]!) : (body.model ?? '');
    // Without a key list any key, or none (self-hosted servers), passes.
    if (st.opts.keys && (!key || !st.opts.keys.includes(key))) {
      if (dep) return void json(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
      return void json(res, ...OPENAI_ERRORS.invalid_key(key ?? ''));
    }
    if (st.opts.models && !st.opts.models.includes(model)) {
      if (dep) return void json(res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } });
      return void json(res, ...OPENAI_ERRORS.invalid_model(model));
    }
    const b = nextBehaviour(st, key);
    const ra = st.opts.retryAfterSeconds ?? 2;
    switch (b) {
      case 'hang':
        return; // never answer
      case 'invalid_key':
        return void json(res, ...OPENAI_ERRORS.invalid_key(key ?? ''));
      case 'invalid_key_echo':
        return void json(res, 401, { error: { message: `Incorrect API key provided: ${(key ?? '').slice(0, -4)}; lookup ?key=${encodeURIComponent(key ?? '')} failed.`, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
      case 'rejected_echo':
        return void json(res, 400, { error: { message: `Unsupported value in request: ${(key ?? '').slice(0, -4)} (${encodeURIComponent(key ?? '')})`, type: 'invalid_request_error', param: null, code: null } });
      case 'invalid_model':
        return void json(res, ...OPENAI_ERRORS.invalid_model(model));
      case 'permission':
        return void json(res, ...OPENAI_ERRORS.permission());
      case 'quota_exceeded':
        return void json(res, ...OPENAI_ERRORS.quota_exceeded());
      case 'rate_limited':
        return void json(res, ...OPENAI_ERRORS.rate_limited(model, ra), { 'retry-after': String(ra), 'x-ratelimit-limit-requests': '3', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': `${ra}s` });
      case 'server_error':
        return void json(res, ...OPENAI_ERRORS.server_error());
      case 'overloaded':
        return void json(res, ...OPENAI_ERRORS.overloaded());
      default:
        break;
    }
    const id = `chatcmpl-${crypto.randomBytes(8).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const text = body.response_format?.type === 'json_object' || body.response_format?.type === 'json_schema' ? '{"status":"ok"}' : st.opts.reply!;
    const pieces = chunksOf(text);
    const usage = { prompt_tokens: st.opts.usage?.input ?? 12, completion_tokens: st.opts.usage?.output ?? pieces.length, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (!body.stream) {
      return void json(res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, ...(st.opts.reasoning ? { reasoning_content: st.opts.reasoning } : {}), refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage,
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const delay = st.opts.chunkDelayMs ?? 0;
    const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
    const base = { id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake' };
    const inclUsage = body.stream_options?.include_usage;
    send({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }], ...(inclUsage ? { usage: null } : {}) });
    for (const r of st.opts.reasoning ? chunksOf(st.opts.reasoning) : []) {
      if (delay) await sleep(delay);
      send({ ...base, choices: [{ index: 0, delta: { reasoning_content: r }, logprobs: null, finish_reason: null }], ...(inclUsage ? { usage: null } : {}) });
    }
    let n = 0;
    for (const p of pieces) {
      if (res.destroyed) return;
      if (delay) await sleep(delay);
      send({ ...base, choices: [{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }], ...(inclUsage ? { usage: null } : {}) });
      if (b === 'error_mid_stream' && ++n === 2) {
        send({ error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } });
        return void res.end();
      }
    }
    send({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], ...(inclUsage ? { usage: null } : {}) });
    if (inclUsage) send({ ...base, choices: [], usage });
    res.write('data: [DONE]\n\n');
    res.end();
  });
}

// ---------------------------------------------------------------------------------------
// Anthropic

const anthropicError = (type: string, message: string) => ({ type: 'error', error: { type, message }, request_id: `req_${crypto.randomBytes(8).toString('hex')}` });

export async function startFakeAnthropic(opts: FakeVendorOptions = {}): Promise<FakeVendor> {
  return start('anthropic', opts, async (st, req, res, rec) => {
    const u = new URL(rec.path, 'http://x');
    const auth = rec.headers.authorization ?? '';
    const bearer = !rec.headers['x-api-key'] && auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    const key = rec.headers['x-api-key'] || bearer || undefined;
    rec.key = key;
    if (req.method !== 'POST' || u.pathname !== '/v1/messages') return void json(res, 404, anthropicError('not_found_error', 'Not Found'));
    if (!key) return void json(res, 401, anthropicError('authentication_error', 'x-api-key header is required'));
    if (!rec.headers['anthropic-version']) return void json(res, 400, anthropicError('invalid_request_error', 'anthropic-version: header is required'));
    if (bearer) {
      const betas = (rec.headers['anthropic-beta'] ?? '').split(',').map((b) => b.trim());
      if (!betas.includes('oauth-2025-04-20')) return void json(res, 401, anthropicError('authentication_error', 'OAuth authentication is currently not supported.'));
      if (st.opts.oauthTokens && !st.opts.oauthTokens.includes(bearer)) return void json(res, 401, anthropicError('authentication_error', 'Invalid bearer token'));
    } else if ((st.opts.keys && !st.opts.keys.includes(key)) || st.opts.oauthTokens?.includes(key)) {
      return void json(res, 401, anthropicError('authentication_error', 'invalid x-api-key'));
    }
    const body = (rec.body ?? {}) as { model?: string; stream?: boolean; max_tokens?: number; thinking?: { type?: string; budget_tokens?: number } };
    const model = body.model ?? '';
    if (typeof body.max_tokens !== 'number') return void json(res, 400, anthropicError('invalid_request_error', 'max_tokens: Field required'));
    if (body.thinking?.type === 'enabled' && !(body.max_tokens > (body.thinking.budget_tokens ?? 0))) {
      return void json(res, 400, anthropicError('invalid_request_error', '`max_tokens` must be greater than `thinking.budget_tokens`.'));
    }
    if (st.opts.models && !st.opts.models.includes(model)) return void json(res, 404, anthropicError('not_found_error', `model: ${model}`));
    const b = nextBehaviour(st, key);
    const ra = st.opts.retryAfterSeconds ?? 2;
    switch (b) {
      case 'hang':
        return;
      case 'invalid_key':
        return void json(res, 401, anthropicError('authentication_error', 'invalid x-api-key'));
      case 'invalid_model':
        return void json(res, 404, anthropicError('not_found_error', `model: ${model}`));
      case 'permission':
        return void json(res, 403, anthropicError('permission_error', 'Your API key does not have permission to use the specified resource.'));
      case 'quota_exceeded':
        return void json(res, 400, anthropicError('invalid_request_error', 'Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.'));
      case 'rate_limited':
        return void json(res, 429, anthropicError('rate_limit_error', 'This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.'), { 'retry-after': String(ra), 'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-requests-remaining': '0' });
      case 'server_error':
        return void json(res, 500, anthropicError('api_error', 'Internal server error'));
      case 'overloaded':
        return void json(res, 529, anthropicError('overloaded_error', 'Overloaded'));
      default:
        break;
    }
    const id = `msg_${crypto.randomBytes(12).toString('hex')}`;
    const pieces = chunksOf(st.opts.reply!);
    const usage = { input: st.opts.usage?.input ?? 12, output: st.opts.usage?.output ?? pieces.length };
    if (!body.stream) {
      const text = body.max_tokens === 1 ? (pieces[0] ?? '').trim() : st.opts.reply!;
      return void json(res, 200, {
        id, type: 'message', role: 'assistant', model,
        content: [{ type: 'text', text }],
        stop_reason: body.max_tokens === 1 ? 'max_tokens' : 'end_turn', stop_sequence: null,
        usage: { input_tokens: usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: body.max_tokens === 1 ? 1 : usage.output },
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const delay = st.opts.chunkDelayMs ?? 0;
    const send = (event: string, obj: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(obj)}\n\n`);
    send('message_start', { type: 'message_start', message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: usage.input, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 1 } } });
    let index = 0;
    if (body.thinking?.type === 'enabled' && st.opts.reasoning) {
      send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
      for (const r of chunksOf(st.opts.reasoning)) {
        if (delay) await sleep(delay);
        send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: r } });
      }
      send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds' } });
      send('content_block_stop', { type: 'content_block_stop', index });
      index++;
    }
    send('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
    send('ping', { type: 'ping' });
    let n = 0;
    for (const p of pieces) {
      if (res.destroyed) return;
      if (delay) await sleep(delay);
      send('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: p } });
      if (b === 'error_mid_stream' && ++n === 2) {
        send('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
        return void res.end();
      }
    }
    send('content_block_stop', { type: 'content_block_stop', index });
    send('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output } });
    send('message_stop', { type: 'message_stop' });
    res.end();
  });
}

// ---------------------------------------------------------------------------------------
// Bedrock (Converse / ConverseStream, SigV4 verified with @smithy/signature-v4, or bearer API keys)

const AWS_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.bedrock/';

function awsError(res: http.ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { message }, { 'x-amzn-errortype': `${type}${AWS_SUFFIX}`, 'x-amzn-requestid': crypto.randomUUID(), ...headers });
}

class NodeSha256 {
  private h: crypto.Hash | crypto.Hmac;
  constructor(secret?: string | Uint8Array) {
    this.h = secret ? crypto.createHmac('sha256', secret) : crypto.createHash('sha256');
  }
  update(d: string | Uint8Array): void {
    this.h.update(d);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
}

const utf8Enc = new TextEncoder();
const utf8Dec = new TextDecoder();
const codec = new EventStreamCodec((b: Uint8Array) => utf8Dec.decode(b), (s: string) => utf8Enc.encode(s));

function frame(eventType: string, payload: unknown, messageType: 'event' | 'exception' = 'event'): Uint8Array {
  const headers: Record<string, { type: 'string'; value: string }> =
    messageType === 'event'
      ? { ':event-type': { type: 'string', value: eventType }, ':content-type': { type: 'string', value: 'application/json' }, ':message-type': { type: 'string', value: 'event' } }
      : { ':exception-type': { type: 'string', value: eventType }, ':content-type': { type: 'string', value: 'application/json' }, ':message-type': { type: 'string', value: 'exception' } };
  return codec.encode({ headers, body: utf8Enc.encode(JSON.stringify(payload)) });
}

async function verifySigV4(rec: RecordedRequest, creds: { accessKeyId: string; secretAccessKey: string }[], hostHeader: string): Promise<'ok' | 'unknown_key' | 'bad_signature'> {
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(rec.headers.authorization ?? '');
  if (!m) return 'unknown_key';
  const [, akid, , region, service, signed, sig] = m;
  const cred = creds.find((c) => c.accessKeyId === akid);
  if (!cred) return 'unknown_key';
  const amz = rec.headers['x-amz-date'] ?? '';
  const signingDate = new Date(`${amz.slice(0, 4)}-${amz.slice(4, 6)}-${amz.slice(6, 8)}T${amz.slice(9, 11)}:${amz.slice(11, 13)}:${amz.slice(13, 15)}Z`);
  const headers: Record<string, string> = {};
  for (const h of signed!.split(';')) headers[h] = h === 'host' ? hostHeader : (rec.headers[h] ?? '');
  const [path, qs] = rec.path.split('?');
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(qs ?? '')) query[k] = v;
  const signer = new SignatureV4({ credentials: cred, region: region!, service: service!, sha256: NodeSha256 as never });
  const out = await signer.sign({ method: rec.method, protocol: 'http:', hostname: hostHeader.split(':')[0]!, path: path!, query, headers, body: rec.raw } as never, { signingDate });
  const auth = String((out as unknown as { headers: Record<string, string> }).headers.authorization ?? '');
  return auth.endsWith(`Signature=${sig}`) ? 'ok' : 'bad_signature';
}

export async function startFakeBedrock(opts: FakeVendorOptions = {}): Promise<FakeVendor> {
  return start('bedrock', opts, async (st, req, res, rec) => {
    const u = new URL(rec.path, 'http://x');
    const m = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(u.pathname);
    if (req.method !== 'POST' || !m) return void awsError(res, 404, 'UnknownOperationException', 'Unknown operation');
    const modelId = decodeURIComponent(m[1]!);
    const stream = m[2] === 'converse-stream';
    const auth = rec.headers.authorization ?? '';
    let key: string | undefined;
    if (auth.startsWith('Bearer ')) {
      key = auth.slice(7);
      rec.key = key;
      if (st.opts.keys && !st.opts.keys.includes(key)) return void awsError(res, 403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
    } else {
      key = /Credential=([^/]+)\//.exec(auth)?.[1];
      rec.key = key;
      const v = await verifySigV4(rec, st.opts.credentials ?? [], rec.headers.host ?? '');
      if (v === 'unknown_key') return void awsError(res, 403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      if (v === 'bad_signature') {
        return void awsError(res, 403, 'InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
      }
    }
    if (st.opts.models && !st.opts.models.includes(modelId)) return void awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
    const body = (rec.body ?? {}) as { messages?: unknown[]; inferenceConfig?: { maxTokens?: number } };
    if (!Array.isArray(body.messages) || body.messages.length === 0) return void awsError(res, 400, 'ValidationException', 'A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    const b = nextBehaviour(st, key);
    const ra = st.opts.retryAfterSeconds ?? 2;
    switch (b) {
      case 'hang':
        return;
      case 'invalid_key':
        return void awsError(res, 403, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      case 'invalid_model':
        return void awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
      case 'permission':
        return void awsError(res, 403, 'AccessDeniedException', "You don't have access to the model with the specified model ID.");
      case 'quota_exceeded':
        return void awsError(res, 400, 'ServiceQuotaExceededException', 'Your request exceeded the service quota for your account. You can view your quotas at https://docs.aws.amazon.com/servicequotas/latest/userguide/gs-request-quota.html.');
      case 'rate_limited':
        return void awsError(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.', { 'retry-after': String(ra) });
      case 'server_error':
        return void awsError(res, 500, 'InternalServerException', 'The server encountered an internal error.');
      case 'overloaded':
        return void awsError(res, 503, 'ServiceUnavailableException', 'Bedrock is unable to process your request.');
      default:
        break;
    }
    const pieces = chunksOf(st.opts.reply!);
    const usage = { inputTokens: st.opts.usage?.input ?? 12, outputTokens: st.opts.usage?.output ?? pieces.length, totalTokens: 0 };
    usage.totalTokens = usage.inputTokens + usage.outputTokens;
    if (!stream) {
      const text = body.inferenceConfig?.maxTokens === 1 ? (pieces[0] ?? '').trim() : st.opts.reply!;
      return void json(res, 200, {
        metrics: { latencyMs: 120 },
        output: { message: { role: 'assistant', content: [{ text }] } },
        stopReason: body.inferenceConfig?.maxTokens === 1 ? 'max_tokens' : 'end_turn',
        usage: body.inferenceConfig?.maxTokens === 1 ? { inputTokens: usage.inputTokens, outputTokens: 1, totalTokens: usage.inputTokens + 1 } : usage,
      }, { 'x-amzn-requestid': crypto.randomUUID() });
    }
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': crypto.randomUUID() });
    const delay = st.opts.chunkDelayMs ?? 0;
    const p = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJ'; // Bedrock pads payloads with a "p" field
    res.write(frame('messageStart', { p: p.slice(0, 8), role: 'assistant' }));
    let idx = 0;
    if (st.opts.reasoning) {
      for (const r of chunksOf(st.opts.reasoning)) {
        if (delay) await sleep(delay);
        res.write(frame('contentBlockDelta', { contentBlockIndex: idx, delta: { reasoningContent: { text: r } }, p }));
      }
      res.write(frame('contentBlockStop', { contentBlockIndex: idx, p }));
      idx++;
    }
    let n = 0;
    for (const piece of pieces) {
      if (res.destroyed) return;
      if (delay) await sleep(delay);
      res.write(frame('contentBlockDelta', { contentBlockIndex: idx, delta: { text: piece }, p: p.slice(0, 5) }));
      if (b === 'error_mid_stream' && ++n === 2) {
        res.write(frame('throttlingException', { message: 'Too many tokens, please wait before trying again.' }, 'exception'));
        return void res.end();
      }
    }
    res.write(frame('contentBlockStop', { contentBlockIndex: idx, p }));
    res.write(frame('messageStop', { stopReason: 'end_turn', p }));
    res.write(frame('metadata', { usage, metrics: { latencyMs: 150 }, p }));
    res.end();
  });
}
