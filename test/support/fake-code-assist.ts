/**
 * A fake Gemini Code Assist server (cloudcode-pa.googleapis.com, `v1internal`) on 127.0.0.1,
 * speaking what Gemini CLI's login talks to, with Google RPC error bodies:
 *
 *   POST /v1internal:loadCodeAssist          tier + the account's project (see `setAccount`)
 *   POST /v1internal:onboardUser             long-running operation, polled with
 *   GET  /v1internal/operations/<id>         (done after `onboardPolls` polls)
 *   POST /v1internal:generateContent        {response: {candidates, usageMetadata}}
 *   POST /v1internal:streamGenerateContent?alt=sse   the same, one `data:` line per chunk
 *
 *   const fake = await startFakeCodeAssist({ keys: ['ya29.good'], projects: ['my-proj'] });
 *   model.base_url = fake.url;
 *   fake.setBehaviour('rate_limited', 1);  // next call 429 RESOURCE_EXHAUSTED RATE_LIMIT_EXCEEDED
 *   fake.requests                           // every request: method, path, headers, body, key
 *
 * Unknown tokens get 401 UNAUTHENTICATED, unknown models 404 NOT_FOUND, a project the token
 * may not use 403 PERMISSION_DENIED, a missing project 400 INVALID_ARGUMENT (only when
 * `keys` / `models` / `projects` are given; by default any token, model and project pass).
 * Behaviours: ok, invalid_key, invalid_model, permission, quota_exceeded (429 QUOTA_EXHAUSTED,
 * a reset hours away), rate_limited (429 RATE_LIMIT_EXCEEDED + RetryInfo), server_error (500
 * INTERNAL), overloaded (503 UNAVAILABLE), error_mid_stream, hang.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { recordingServer, type FakeBehaviour, type RecordedRequest } from './fake-vendors.ts';

export type CodeAssistBehaviour = Extract<
  FakeBehaviour,
  'ok' | 'invalid_key' | 'invalid_model' | 'permission' | 'quota_exceeded' | 'rate_limited' | 'server_error' | 'overloaded' | 'error_mid_stream' | 'hang'
>;

/**
 * What loadCodeAssist says about the account:
 *  - project:        set up (currentTier standard-tier) with this Code Assist project
 *  - onboardProject: not set up; the default tier is free-tier and onboardUser gives this project
 *  - neither:        set up but without a project of its own; `ineligible` is Google's reason
 */
export interface CodeAssistAccount {
  project?: string;
  onboardProject?: string;
  ineligible?: string;
}

export interface FakeCodeAssistOptions {
  /** Accepted access tokens. Default: any non-empty token. */
  keys?: string[];
  /** Known models. Default: any. */
  models?: string[];
  /** Projects the tokens may bill. Default: any. */
  projects?: string[];
  account?: CodeAssistAccount;
  /** How many operation polls before onboardUser is done (default 0: done at once). */
  onboardPolls?: number;
  reply?: string;
  /** Thought text streamed (as `thought: true` parts) when the request asks includeThoughts. */
  reasoning?: string;
  chunkDelayMs?: number;
  /** RetryInfo delay on rate_limited, seconds (default 2). */
  retryAfterSeconds?: number;
  usage?: { input: number; output: number; thoughts?: number };
}

export interface FakeCodeAssist {
  /** http://127.0.0.1:PORT — what goes in model.base_url. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  setKeys(keys: string[] | undefined): void;
  setModels(models: string[] | undefined): void;
  setProjects(projects: string[] | undefined): void;
  setAccount(account: CodeAssistAccount): void;
  setOnboardPolls(n: number): void;
  setBehaviour(b: CodeAssistBehaviour, times?: number): void;
  setReply(text: string, reasoning?: string): void;
  setChunkDelay(ms: number): void;
  reset(): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const chunksOf = (text: string) => text.match(/\S+\s*|\s+/g) ?? [];

function googleError(code: number, status: string, message: string, details: unknown[] = []) {
  return [code, { error: { code, message, status, ...(details.length ? { details } : {}) } }] as const;
}

const ERRORS = {
  unauthenticated: () =>
    googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.'),
  notFound: () => googleError(404, 'NOT_FOUND', 'Requested entity was not found.'),
  permission: (project: string) =>
    googleError(403, 'PERMISSION_DENIED', `Permission 'cloudaicompanion.companions.generateChat' denied on resource '//cloudaicompanion.googleapis.com/projects/${project}/locations/global' (or it may not exist).`, [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'IAM_PERMISSION_DENIED', domain: 'cloudaicompanion.googleapis.com', metadata: { permission: 'cloudaicompanion.companions.generateChat', resource: `projects/${project}/locations/global` } },
    ]),
  noProject: () => googleError(400, 'INVALID_ARGUMENT', 'Request contains an invalid argument.'),
  rateLimited: (model: string, s: number) =>
    googleError(429, 'RESOURCE_EXHAUSTED', `You have exhausted your capacity on this model. Your quota will reset after ${s}s.`, [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'RATE_LIMIT_EXCEEDED', domain: 'cloudcode-pa.googleapis.com', metadata: { uiMessage: 'true', model, quotaResetDelay: `${s}s` } },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${s}s` },
    ]),
  quota: (model: string) =>
    googleError(429, 'RESOURCE_EXHAUSTED', 'You have exhausted your capacity on this model. Your quota will reset after 19h27m40s.', [
      { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'QUOTA_EXHAUSTED', domain: 'cloudcode-pa.googleapis.com', metadata: { uiMessage: 'true', model, quotaResetDelay: '19h27m40s' } },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '70060s' },
    ]),
  internal: () => googleError(500, 'INTERNAL', 'Internal error encountered.'),
  unavailable: () => googleError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'),
};

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': String(Buffer.byteLength(s)) });
  res.end(s);
}

export async function startFakeCodeAssist(opts: FakeCodeAssistOptions = {}): Promise<FakeCodeAssist> {
  const o: FakeCodeAssistOptions = { reply: 'Hello from the fake vendor.', account: { project: 'fake-managed-project' }, ...opts };
  let behaviour: CodeAssistBehaviour = 'ok';
  let remaining: number | undefined;
  const operations = new Map<string, number>(); // operation id -> polls left
  const requests: RecordedRequest[] = [];

  const next = (): CodeAssistBehaviour => {
    if (remaining === undefined) return behaviour;
    if (remaining <= 0) {
      behaviour = 'ok';
      remaining = undefined;
      return 'ok';
    }
    remaining--;
    return behaviour;
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, rec: RecordedRequest): Promise<void> {
    const u = new URL(rec.path, 'http://x');
    const auth = rec.headers.authorization ?? '';
    const key = auth.startsWith('Bearer ') ? auth.slice(7) : undefined;
    rec.key = key;
    if (!key || (o.keys && !o.keys.includes(key))) return void json(res, ...ERRORS.unauthenticated());
    const method = /^\/v1internal:(\w+)$/.exec(u.pathname)?.[1];
    const op = /^\/v1internal\/(operations\/[\w-]+)$/.exec(u.pathname)?.[1];
    const meta = { currentTier: { id: 'standard-tier', name: 'Gemini Code Assist', userDefinedCloudaicompanionProject: true } };

    if (req.method === 'GET' && op) {
      const left = operations.get(op);
      if (left === undefined) return void json(res, ...ERRORS.notFound());
      if (left > 0) {
        operations.set(op, left - 1);
        return void json(res, 200, { name: op, done: false });
      }
      return void json(res, 200, { name: op, done: true, response: { '@type': 'type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse', cloudaicompanionProject: { id: o.account?.onboardProject, name: o.account?.onboardProject } } });
    }
    if (req.method !== 'POST' || !method) return void json(res, ...ERRORS.notFound());

    if (method === 'loadCodeAssist') {
      const a = o.account ?? {};
      if (a.project) return void json(res, 200, { ...meta, allowedTiers: [{ id: 'standard-tier', isDefault: true, userDefinedCloudaicompanionProject: true }], cloudaicompanionProject: a.project, gcpManaged: false });
      if (a.onboardProject) {
        return void json(res, 200, { allowedTiers: [{ id: 'free-tier', name: 'Gemini Code Assist for individuals', isDefault: true, userDefinedCloudaicompanionProject: false }, { id: 'standard-tier', userDefinedCloudaicompanionProject: true }] });
      }
      return void json(res, 200, { ...meta, ...(a.ineligible ? { ineligibleTiers: [{ reasonCode: 'UNSUPPORTED_CLIENT', reasonMessage: a.ineligible, tierId: 'free-tier' }] } : {}) });
    }
    if (method === 'onboardUser') {
      const id = `operations/${crypto.randomBytes(6).toString('hex')}`;
      const polls = o.onboardPolls ?? 0;
      operations.set(id, polls - 1); // not-done answers before the done one: onboardUser's own + polls - 1
      if (polls === 0) return void json(res, 200, { name: id, done: true, response: { cloudaicompanionProject: { id: o.account?.onboardProject, name: o.account?.onboardProject } } });
      return void json(res, 200, { name: id, done: false });
    }
    if (method !== 'generateContent' && method !== 'streamGenerateContent') return void json(res, ...ERRORS.notFound());

    const body = (rec.body ?? {}) as { model?: string; project?: string; request?: { contents?: unknown[]; generationConfig?: { thinkingConfig?: { includeThoughts?: boolean }; responseMimeType?: string } } };
    const model = body.model ?? '';
    if (!body.project) return void json(res, ...ERRORS.noProject());
    if (o.projects && !o.projects.includes(body.project)) return void json(res, ...ERRORS.permission(body.project));
    if (o.models && !o.models.includes(model)) return void json(res, ...ERRORS.notFound());
    if (!Array.isArray(body.request?.contents) || body.request.contents.length === 0) return void json(res, 400, { error: { code: 400, message: '* GenerateContentRequest.contents: contents is not specified\n', status: 'INVALID_ARGUMENT' } });
    const b = next();
    switch (b) {
      case 'hang':
        return;
      case 'invalid_key':
        return void json(res, ...ERRORS.unauthenticated());
      case 'invalid_model':
        return void json(res, ...ERRORS.notFound());
      case 'permission':
        return void json(res, ...ERRORS.permission(body.project));
      case 'quota_exceeded':
        return void json(res, ...ERRORS.quota(model));
      case 'rate_limited':
        return void json(res, ...ERRORS.rateLimited(model, o.retryAfterSeconds ?? 2));
      case 'server_error':
        return void json(res, ...ERRORS.internal());
      case 'overloaded':
        return void json(res, ...ERRORS.unavailable());
      default:
        break;
    }
    const text = body.request?.generationConfig?.responseMimeType === 'application/json' ? '{"status":"ok"}' : o.reply!;
    const pieces = chunksOf(text);
    const thoughts = body.request?.generationConfig?.thinkingConfig?.includeThoughts && o.reasoning ? chunksOf(o.reasoning) : [];
    const usage = (n: number) => ({
      promptTokenCount: o.usage?.input ?? 12,
      candidatesTokenCount: n,
      ...(o.usage?.thoughts ? { thoughtsTokenCount: o.usage.thoughts } : {}),
      totalTokenCount: (o.usage?.input ?? 12) + n + (o.usage?.thoughts ?? 0),
    });
    const traceId = crypto.randomBytes(8).toString('hex');
    const wrap = (parts: unknown[], finish?: string, n?: number) => ({
      response: {
        candidates: [{ content: { role: 'model', parts }, ...(finish ? { finishReason: finish } : {}) }],
        ...(n !== undefined ? { usageMetadata: usage(n) } : {}),
        modelVersion: model,
        createTime: new Date().toISOString(),
        responseId: traceId,
      },
      traceId,
    });
    const outTokens = o.usage?.output ?? pieces.length;
    if (method === 'generateContent') {
      return void json(res, 200, wrap([...(thoughts.length ? [{ text: thoughts.join(''), thought: true }] : []), { text }], 'STOP', outTokens));
    }
    if (u.searchParams.get('alt') !== 'sse') return void json(res, 400, { error: { code: 400, message: 'streamGenerateContent needs alt=sse in this fake', status: 'INVALID_ARGUMENT' } });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const delay = o.chunkDelayMs ?? 0;
    // Code Assist ends each event with CRLF CRLF.
    const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\r\n\r\n`);
    for (const t of thoughts) {
      if (delay) await sleep(delay);
      send(wrap([{ text: t, thought: true }]));
    }
    let n = 0;
    for (const [i, p] of pieces.entries()) {
      if (res.destroyed) return;
      if (delay) await sleep(delay);
      const last = i === pieces.length - 1;
      send(wrap([{ text: p }], last ? 'STOP' : undefined, last ? outTokens : i + 1));
      if (b === 'error_mid_stream' && ++n === 2) {
        send({ error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } });
        return void res.end();
      }
    }
    res.end();
  }

  const server = recordingServer(requests, handle, (e) => ({ error: { code: 500, message: String(e), status: 'INTERNAL' } }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    setKeys: (k) => void (o.keys = k),
    setModels: (m) => void (o.models = m),
    setProjects: (p) => void (o.projects = p),
    setAccount: (a) => void (o.account = a),
    setOnboardPolls: (n) => void (o.onboardPolls = n),
    setBehaviour: (b, times) => {
      behaviour = b;
      remaining = times;
    },
    setReply: (text, reasoning) => {
      o.reply = text;
      o.reasoning = reasoning;
    },
    setChunkDelay: (ms) => void (o.chunkDelayMs = ms),
    reset: () => void requests.splice(0),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
