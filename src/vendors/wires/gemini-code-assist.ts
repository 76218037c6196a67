/**
 * The `gemini-code-assist` wire: Google's Code Assist API, which Gemini CLI's "Login with
 * Google" talks to (`<base_url>/v1internal:<method>`, base https://cloudcode-pa.googleapis.com).
 *
 *   POST :generateContent / :streamGenerateContent?alt=sse
 *     {model, project, request: {contents, systemInstruction?, generationConfig}}
 *   answers {response: {candidates: [{content: {parts: [{text} | {text, thought: true}]},
 *            finishReason}], usageMetadata}} (one per SSE `data:` line when streaming)
 *   POST :loadCodeAssist {metadata}  -> {currentTier?, allowedTiers?, cloudaicompanionProject?,
 *            ineligibleTiers?}
 *   POST :onboardUser {tierId, metadata} -> long-running operation {name, done, response:
 *            {cloudaicompanionProject: {id}}}, polled with GET v1internal/<name>
 *
 * The secret is the OAuth access token (src/credentials refreshed it from the pasted
 * credentials file), sent as `Authorization: Bearer`. The billed Google Cloud project is
 * `model.settings.project_id`; when it is empty the account's own project is found with
 * loadCodeAssist (and, for an account not yet set up on a free tier, onboardUser), as Gemini
 * CLI does at start-up; it is cached per token for the life of the process. No project at all
 * is a definite answer asking the user to give one on the form.
 *
 * Thinking: on -> `thinkingConfig.includeThoughts` (+ `thinkingBudget` = budget_tokens); off
 * -> `thinkingBudget: 0` unless the model's rule is always_on (2.5 Pro and Gemini 3 refuse 0).
 *
 * Errors are Google RPC bodies {error: {code, message, status, details}}: 401 UNAUTHENTICATED,
 * 403 PERMISSION_DENIED, 404 NOT_FOUND (an unknown model), 429 RESOURCE_EXHAUSTED split into
 * rate_limited (RATE_LIMIT_EXCEEDED, a per-minute quota or a short RetryInfo delay) and
 * quota_exceeded (QUOTA_EXHAUSTED, a daily quota, or a delay beyond 5 minutes), as Gemini CLI
 * tells them apart.
 */
import type { CustomModel } from '../../registry/types.ts';
import { classifyError, classifyHttp, parseRetryAfter, scrubVendorMessage, streamFailure, toProbeResult, toVendorError, WHAT_TO_DO, type Classified } from '../classify.ts';
import { VendorError } from '../errors.ts';
import { getDefaultNetOptions, USER_AGENT, vendorRequest, type NetOptions } from '../net.ts';
import { parseSse } from '../sse.ts';
import { thinkingState } from '../thinking.ts';
import type { ChatMessage, ProbeResult, Secrets, StreamEvent, StreamOptions, Wire } from '../types.ts';
import { extraHeaders, keyFor, PROBE_HEADERS_TIMEOUT_MS } from './openai.ts';

export const CODE_ASSIST_VERSION = 'v1internal';
/** What Gemini CLI sends as client metadata on loadCodeAssist / onboardUser. */
const CLIENT_METADATA = { ideType: 'IDE_UNSPECIFIED', platform: 'PLATFORM_UNSPECIFIED', pluginType: 'GEMINI' } as const;
const FREE_TIER = 'free-tier';
const ONBOARD_POLLS = 5;
const ONBOARD_POLL_MS = 2000;
/** Gemini CLI treats a suggested wait beyond this as a hard (daily) quota. */
const MAX_RETRYABLE_DELAY_MS = 300_000;

/** `<base>/v1internal:<method>`, or `<base>/v1internal/<name>` for an operation. */
export function codeAssistUrl(model: Pick<CustomModel, 'base_url' | 'query'>, method: string, query: Record<string, string> = {}): string {
  const u = new URL(model.base_url);
  const root = u.pathname.replace(/\/+$/, '').replace(new RegExp(`/${CODE_ASSIST_VERSION}$`), '');
  u.pathname = method.includes('/') ? `${root}/${CODE_ASSIST_VERSION}/${method}` : `${root}/${CODE_ASSIST_VERSION}:${method}`;
  for (const [k, v] of Object.entries({ ...(model.query ?? {}), ...query })) u.searchParams.set(k, v);
  return u.toString();
}

interface Part {
  text?: string;
  thought?: boolean;
}
interface Content {
  role?: string;
  parts?: Part[];
}
interface CaResponse {
  response?: {
    candidates?: { content?: Content; finishReason?: string }[];
    usageMetadata?: { promptTokenCount?: number; candidatesTokenCount?: number; thoughtsTokenCount?: number };
  };
  error?: unknown;
}

export function buildCodeAssistBody(
  model: CustomModel,
  project: string,
  messages: ChatMessage[],
  o: { maxTokens: number; thinking?: boolean; json?: boolean },
): Record<string, unknown> {
  const system: string[] = [];
  const contents: Content[] = [];
  for (const m of messages) {
    if (m.role === 'system') system.push(m.content);
    else contents.push({ role: m.role === 'assistant' ? 'model' : 'user', parts: [{ text: m.content }] });
  }
  const generationConfig: Record<string, unknown> = {};
  // request_fields land in generationConfig (temperature, topP ...): the request envelope is ours.
  for (const [k, v] of Object.entries(model.request_fields ?? {})) {
    if (k !== 'extra_body' && k !== 'model' && k !== 'project' && k !== 'contents') generationConfig[k] = v;
  }
  generationConfig.maxOutputTokens = o.maxTokens;
  if (o.json && model.capabilities?.json) generationConfig.responseMimeType = 'application/json';
  const rule = model.thinking ?? { style: 'none' as const };
  if (rule.style !== 'none') {
    const state = thinkingState(rule, o.thinking);
    if (state === 'on') generationConfig.thinkingConfig = { includeThoughts: true, ...(rule.budget_tokens ? { thinkingBudget: rule.budget_tokens } : {}) };
    else if (state === 'off' && rule.style !== 'always_on') generationConfig.thinkingConfig = { thinkingBudget: 0 };
  }
  const request: Record<string, unknown> = { contents, generationConfig };
  if (system.length) request.systemInstruction = { role: 'user', parts: [{ text: system.join('\n\n') }] };
  return { model: model.upstream_model, project, request };
}

/* ------------------------------------------------------------------------------------------ */
/* Google RPC errors                                                                            */

interface GoogleDetail {
  '@type'?: string;
  reason?: string;
  retryDelay?: string;
  violations?: { quotaId?: string }[];
  metadata?: Record<string, string>;
}

function googleError(body: unknown): { code?: number; message?: string; status?: string; details: GoogleDetail[] } | undefined {
  let j: unknown = body;
  if (typeof body === 'string') {
    try {
      j = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (Array.isArray(j)) j = j[0]; // streaming endpoints wrap the error in an array
  const e = (j as { error?: unknown } | null)?.error;
  if (!e || typeof e !== 'object') return undefined;
  const o = e as Record<string, unknown>;
  return {
    code: typeof o.code === 'number' ? o.code : undefined,
    message: typeof o.message === 'string' ? o.message : undefined,
    status: typeof o.status === 'string' ? o.status : undefined,
    details: Array.isArray(o.details) ? (o.details as GoogleDetail[]) : [],
  };
}

function durationMs(d: string | undefined): number | undefined {
  const m = /^([0-9.]+)(ms|s)$/.exec((d ?? '').trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : 1000));
}

/** Classifies a Code Assist error answer; other shapes go through the shared classifier. */
export function classifyGoogle(status: number, headers: Parameters<typeof classifyHttp>[1], body: unknown, known: string[]): Classified {
  const g = googleError(body);
  const base = classifyHttp(status, headers, g ? { error: { message: g.message, code: g.status } } : body, known);
  if (!g) return base;
  const vendorCode = g.status ?? base.vendorCode;
  const message = g.message ? scrubVendorMessage(g.message, known) : base.message;
  const out = (outcome: Classified['outcome'], extra: Partial<Classified> = {}): Classified => ({
    outcome,
    whatToDo: WHAT_TO_DO[outcome],
    message,
    status,
    ...(vendorCode ? { vendorCode } : {}),
    ...extra,
  });
  const type = (t: string) => g.details.find((d) => d['@type'] === `type.googleapis.com/google.rpc.${t}`);
  if (status === 401 || g.status === 'UNAUTHENTICATED') return out('invalid_key');
  if (status === 404 || g.status === 'NOT_FOUND') return out('invalid_model');
  if (status === 429 || g.status === 'RESOURCE_EXHAUSTED') {
    const info = type('ErrorInfo');
    const delay = durationMs(type('RetryInfo')?.retryDelay) ?? durationMs(/Please retry in ([0-9.]+(?:ms|s))/.exec(g.message ?? '')?.[1]) ?? parseRetryAfter(headers);
    const withDelay = delay !== undefined ? { retryAfterMs: delay } : {};
    const quotaIds = (type('QuotaFailure')?.violations ?? []).map((v) => v.quotaId ?? '');
    if (info?.reason === 'QUOTA_EXHAUSTED' || info?.reason === 'INSUFFICIENT_G1_CREDITS_BALANCE' || quotaIds.some((q) => /PerDay|Daily/.test(q))) {
      return out('quota_exceeded', { ...withDelay, vendorCode: info?.reason ?? vendorCode });
    }
    if (delay !== undefined && delay > MAX_RETRYABLE_DELAY_MS) return out('quota_exceeded', { ...withDelay, vendorCode: info?.reason ?? vendorCode });
    const rateDelay = delay ?? (info?.reason === 'RATE_LIMIT_EXCEEDED' ? 10_000 : quotaIds.some((q) => q.includes('PerMinute')) ? 60_000 : undefined);
    return out('rate_limited', { ...(rateDelay !== undefined ? { retryAfterMs: rateDelay } : {}), vendorCode: info?.reason ?? vendorCode });
  }
  return { ...base, message, ...(vendorCode ? { vendorCode } : {}) };
}

/* ------------------------------------------------------------------------------------------ */
/* Project discovery (loadCodeAssist / onboardUser)                                             */

interface LoadCodeAssistResponse {
  currentTier?: { id?: string } | null;
  allowedTiers?: { id?: string; isDefault?: boolean; userDefinedCloudaicompanionProject?: boolean }[];
  ineligibleTiers?: { reasonCode?: string; reasonMessage?: string }[];
  cloudaicompanionProject?: string | { id?: string } | null;
}
interface Operation {
  name?: string;
  done?: boolean;
  response?: { cloudaicompanionProject?: { id?: string } | string };
  error?: unknown;
}

function projectOf(p: string | { id?: string } | null | undefined): string | undefined {
  const id = typeof p === 'string' ? p : p?.id;
  return id && id.trim() ? id.trim() : undefined;
}

function projectRequired(reasons: string[], known: string[]): VendorError {
  const why = reasons.length ? ` (Google says: ${scrubVendorMessage(reasons.join('; '), known)})` : '';
  return new VendorError(
    'rejected',
    `this Google account has no Gemini Code Assist project of its own${why}: enter your Google Cloud project id on the form together with the credentials file`,
    { whatToDo: 'resubmit_key', vendorCode: 'project_required' },
  );
}

export function createGeminiCodeAssistWire(netOpts?: NetOptions): Wire {
  const net = () => netOpts ?? getDefaultNetOptions();
  // Discovered projects per access token (a refreshed token asks once more); bounded.
  const projects = new Map<string, string>();

  async function call(model: CustomModel, key: string, method: string, body: unknown, signal: AbortSignal | undefined, o: { get?: boolean } = {}): Promise<unknown> {
    let res;
    try {
      res = await vendorRequest(
        codeAssistUrl(model, method),
        {
          method: o.get ? 'GET' : 'POST',
          headers: { ...extraHeaders(model), 'content-type': 'application/json', accept: 'application/json', 'user-agent': USER_AGENT, authorization: `Bearer ${key}` },
          ...(o.get ? {} : { body: JSON.stringify(body) }),
          signal,
          headersTimeoutMs: PROBE_HEADERS_TIMEOUT_MS,
          bodyTimeoutMs: PROBE_HEADERS_TIMEOUT_MS,
        },
        net(),
      );
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw toVendorError(classifyError(e));
    }
    const text = await res.body.text().catch(() => '');
    if (res.statusCode >= 300) throw toVendorError(classifyGoogle(res.statusCode, res.headers, text, [key]));
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new VendorError('rejected', 'the answer is not a Code Assist response; check base_url', { status: res.statusCode, whatToDo: 'check_base_url' });
    }
  }

  async function discoverProject(model: CustomModel, key: string, signal?: AbortSignal): Promise<string> {
    const load = (await call(model, key, 'loadCodeAssist', { metadata: CLIENT_METADATA }, signal)) as LoadCodeAssistResponse;
    const reasons = (load.ineligibleTiers ?? []).map((t) => t.reasonMessage ?? '').filter(Boolean);
    const own = projectOf(load.cloudaicompanionProject);
    if (load.currentTier) {
      if (own) return own;
      throw projectRequired(reasons, [key]);
    }
    // Not set up yet: Gemini CLI onboards onto the default tier; only the free tier comes
    // with a Google-managed project, the others need the user's own.
    const tier = (load.allowedTiers ?? []).find((t) => t.isDefault);
    if (!tier?.id || tier.id !== FREE_TIER || tier.userDefinedCloudaicompanionProject) throw projectRequired(reasons, [key]);
    let op = (await call(model, key, 'onboardUser', { tierId: tier.id, metadata: CLIENT_METADATA }, signal)) as Operation;
    for (let i = 0; !op.done && op.name && i < ONBOARD_POLLS; i++) {
      await new Promise((r) => setTimeout(r, ONBOARD_POLL_MS));
      if (signal?.aborted) throw signal.reason;
      op = (await call(model, key, op.name, undefined, signal, { get: true })) as Operation;
    }
    const id = op.done ? projectOf(op.response?.cloudaicompanionProject) : undefined;
    if (!id) throw projectRequired(reasons, [key]);
    return id;
  }

  async function projectFor(model: CustomModel, key: string, signal?: AbortSignal): Promise<string> {
    const given = (model.settings?.project_id ?? '').trim();
    if (given) return given;
    const hit = projects.get(key);
    if (hit) return hit;
    const id = await discoverProject(model, key, signal);
    if (projects.size >= 1000) projects.delete(projects.keys().next().value!);
    projects.set(key, id);
    return id;
  }

  return {
    id: 'gemini-code-assist',

    async probe(model, secrets, opts = {}): Promise<ProbeResult> {
      try {
        const key = keyFor(model, secrets);
        const project = await projectFor(model, key, opts.signal);
        // A 16-token answer proves token, project and model (the cheapest real call).
        const body = buildCodeAssistBody(model, project, [{ role: 'user', content: 'ping' }], { maxTokens: 16, thinking: false });
        const parsed = (await call(model, key, 'generateContent', body, opts.signal)) as CaResponse;
        if (!parsed || typeof parsed !== 'object' || !parsed.response) {
          return { outcome: 'rejected', message: 'the answer is not a Code Assist response; check base_url' };
        }
        return { outcome: 'ok', status: 200 };
      } catch (e) {
        return toProbeResult(classifyError(e));
      }
    },

    async *stream(model: CustomModel, secrets: Secrets, messages: ChatMessage[], opts: StreamOptions = {}): AsyncGenerator<StreamEvent> {
      const key = keyFor(model, secrets);
      let project: string;
      try {
        project = await projectFor(model, key, opts.signal);
      } catch (e) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw e instanceof VendorError ? e : toVendorError(classifyError(e));
      }
      const body = buildCodeAssistBody(model, project, messages, { maxTokens: model.max_tokens, thinking: opts.thinking, json: opts.json });
      let res;
      try {
        res = await vendorRequest(
          codeAssistUrl(model, 'streamGenerateContent', { alt: 'sse' }),
          {
            method: 'POST',
            headers: { ...extraHeaders(model), 'content-type': 'application/json', accept: 'text/event-stream', 'user-agent': USER_AGENT, authorization: `Bearer ${key}` },
            body: JSON.stringify(body),
            signal: opts.signal,
          },
          net(),
        );
      } catch (e) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        throw toVendorError(classifyError(e));
      }
      if (res.statusCode >= 300) {
        const text = await res.body.text().catch(() => '');
        throw toVendorError(classifyGoogle(res.statusCode, res.headers, text, [key]));
      }
      let usage: { input_tokens: number; output_tokens: number } | undefined;
      let finish: string | undefined;
      let completed = false;
      try {
        for await (const ev of parseSse(res.body)) {
          if (!ev.data) continue;
          let obj: CaResponse;
          try {
            obj = JSON.parse(ev.data) as CaResponse;
          } catch {
            continue;
          }
          if (obj.error) {
            const g = googleError(obj);
            throw toVendorError(classifyGoogle(g?.code ?? 500, undefined, obj, [key]));
          }
          const cand = obj.response?.candidates?.[0];
          for (const p of cand?.content?.parts ?? []) {
            if (!p.text) continue;
            yield p.thought ? { type: 'reasoning', text: p.text } : { type: 'text', text: p.text };
          }
          if (cand?.finishReason) finish = cand.finishReason;
          const u = obj.response?.usageMetadata;
          // usageMetadata is cumulative; thoughts are billed as output.
          if (u) usage = { input_tokens: u.promptTokenCount ?? 0, output_tokens: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0) };
        }
        completed = true;
      } catch (e) {
        streamFailure(e, opts.signal);
      } finally {
        if (!completed) res.body.destroy();
      }
      if (usage) yield { type: 'usage', ...usage };
      yield { type: 'done', ...(finish ? { finish_reason: finish } : {}) };
    },
  };
}

export const geminiCodeAssistWire: Wire = createGeminiCodeAssistWire();
