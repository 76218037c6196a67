/**
 * Maps vendor answers (HTTP status + error body + headers) and network failures to the
 * shared outcome classes, with a what-to-do hint and a short message that carries no key
 * material. Used by the probe (ProbeResult) and the relay (VendorError).
 *
 * Decisions worth knowing:
 *  - 401 is always invalid_key. 403 is invalid_key when the vendor speaks of the key,
 *    permissions, scopes or access (OpenAI "insufficient permissions ... Missing scopes",
 *    Anthropic permission_error, Bedrock AccessDeniedException): the user must fix or
 *    replace the key. Any other 403 (e.g. OpenAI unsupported_country_region_territory) is
 *    rejected.
 *  - Bedrock AccessDeniedException that names the model ("You don't have access to the
 *    model with the specified model ID") is invalid_model: the key works, model access is
 *    not enabled for it in that region.
 *  - 404 is invalid_model when the body names a model/deployment (or the vendor code says
 *    so); a bare 404 means the base URL path is wrong: rejected + check_base_url.
 *  - 429 is quota_exceeded when the vendor says quota/billing/balance/credits
 *    (insufficient_quota, Moonshot exceeded_current_quota_error), else rate_limited.
 *  - 402 (OpenRouter, DeepSeek "Insufficient Balance") and Anthropic billing_error / "credit
 *    balance is too low" are quota_exceeded.
 *  - 408, 5xx and Anthropic 529 are vendor_unavailable; network errors are unreachable.
 */
import { isByokError } from '../errors.ts';
import { keyShapeRe } from '../secrets/key-kinds.ts';
import { VendorError, type FailureOutcome, type WhatToDo } from './errors.ts';
import type { ProbeResult, VendorOutcome } from './types.ts';

export interface Classified {
  outcome: VendorOutcome;
  whatToDo: WhatToDo;
  message: string;
  status?: number;
  retryAfterMs?: number;
  vendorCode?: string;
}

export const WHAT_TO_DO: Record<VendorOutcome, WhatToDo> = {
  ok: 'none',
  invalid_key: 'resubmit_key',
  invalid_model: 'check_model',
  quota_exceeded: 'check_billing',
  rate_limited: 'wait',
  vendor_unavailable: 'try_later',
  unreachable: 'check_base_url',
  rejected: 'check_request',
};

const DEFAULT_MESSAGE: Record<VendorOutcome, string> = {
  ok: 'ok',
  invalid_key: 'the vendor did not accept the key',
  invalid_model: 'the vendor does not know this model, or the key has no access to it',
  quota_exceeded: 'the account behind the key has no quota or credit left',
  rate_limited: 'the vendor is rate-limiting this key',
  vendor_unavailable: 'the vendor is unavailable or overloaded',
  unreachable: 'the vendor could not be reached',
  rejected: 'the vendor rejected the request',
};

type HeaderBag = Record<string, string | string[] | undefined> | Headers | undefined;

function header(h: HeaderBag, name: string): string | undefined {
  if (!h) return undefined;
  if (typeof (h as Headers).get === 'function') return (h as Headers).get(name) ?? undefined;
  const bag = h as Record<string, string | string[] | undefined>;
  const v = bag[name] ?? bag[name.toLowerCase()] ?? Object.entries(bag).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After (seconds or HTTP date), `retry-after-ms`, in milliseconds; undefined when absent. */
export function parseRetryAfter(h: HeaderBag, now = Date.now()): number | undefined {
  const ms = header(h, 'retry-after-ms');
  if (ms && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms));
  const ra = header(h, 'retry-after');
  if (!ra) return undefined;
  const t = ra.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const d = Date.parse(t);
  if (!Number.isNaN(d)) return Math.max(0, d - now);
  return undefined;
}

// Key-looking material vendors echo back ("Incorrect API key provided: sk-abc***wxyz"): masked
// tokens, every kind of the shared key-kinds table by its prefix (vendors echo keys truncated, so a
// few characters after the prefix are enough), then generic shapes no vendor message needs.
const MASKED_RE = /\S*\*{2,}\S*/g; // any masked token: sk-abc***wxyz, ****1234
const GENERIC_PATTERNS: RegExp[] = [
  /\b[0-9a-fA-F]{32,}\b/g, // Azure-style hex keys
  /\b(?=[A-Za-z0-9_\-+/=]*[A-Z])(?=[A-Za-z0-9_\-+/=]*[a-z])(?=[A-Za-z0-9_\-+/=]*\d)[A-Za-z0-9_\-+/=]{24,}/g, // mixed-case high-entropy tokens
  /\b(?:Bearer|Basic)\s+\S+/gi,
];

/**
 * Removes anything key-like from a vendor message and bounds its length. When the exact
 * secrets are known (as strings, built only for this call) they are removed too.
 */
export function scrubVendorMessage(msg: string, known: string[] = []): string {
  let s = String(msg).replace(/[\u0000-\u001f\u007f]+/g, ' ');
  for (const k of known) if (k && k.length >= 4) s = s.split(k).join('[redacted]');
  s = s.replace(MASKED_RE, '[redacted]').replace(keyShapeRe({ minBody: 6, flags: 'g' }), '[redacted]');
  for (const re of GENERIC_PATTERNS) s = s.replace(re, '[redacted]');
  s = s.replace(/\s+/g, ' ').trim();
  return s.length > 300 ? `${s.slice(0, 297)}...` : s;
}

interface ParsedError {
  message?: string;
  code?: string;
  type?: string;
}

/** Pulls message/code/type out of OpenAI, Anthropic, Bedrock, Azure and ad-hoc bodies. */
export function parseErrorBody(body: unknown): ParsedError {
  let j: unknown = body;
  if (typeof body === 'string') {
    try {
      j = JSON.parse(body);
    } catch {
      return { message: body.slice(0, 500) };
    }
  }
  if (Array.isArray(j)) j = j[0]; // Gemini-compat sometimes wraps in an array
  if (!j || typeof j !== 'object') return {};
  const o = j as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined);
  if (o.error && typeof o.error === 'object') {
    const e = o.error as Record<string, unknown>;
    return { message: str(e.message), code: str(e.code) ?? str(e.status), type: str(e.type) };
  }
  if (typeof o.error === 'string') return { message: str(o.message) ?? o.error, code: str(o.code) ?? o.error };
  const detail = typeof o.detail === 'string' ? o.detail : Array.isArray(o.detail) ? JSON.stringify(o.detail) : undefined;
  return {
    message: str(o.message) ?? str(o.Message) ?? detail ?? str(o.msg),
    code: str(o.code) ?? str(o.__type)?.split('#').pop() ?? str(o.error_code),
    type: str(o.type),
  };
}

const AWS_CLASSES: Record<string, FailureOutcome> = {
  UnrecognizedClientException: 'invalid_key',
  InvalidSignatureException: 'invalid_key',
  IncompleteSignatureException: 'invalid_key',
  MissingAuthenticationTokenException: 'invalid_key',
  InvalidClientTokenId: 'invalid_key',
  ExpiredTokenException: 'invalid_key',
  AccessDeniedException: 'invalid_key',
  ResourceNotFoundException: 'invalid_model',
  ThrottlingException: 'rate_limited',
  TooManyRequestsException: 'rate_limited',
  ServiceQuotaExceededException: 'quota_exceeded',
  ServiceUnavailableException: 'vendor_unavailable',
  InternalServerException: 'vendor_unavailable',
  ModelNotReadyException: 'vendor_unavailable',
  ModelTimeoutException: 'vendor_unavailable',
  ModelErrorException: 'vendor_unavailable',
  ModelStreamErrorException: 'vendor_unavailable',
};

const ANTHROPIC_CLASSES: Record<string, FailureOutcome> = {
  authentication_error: 'invalid_key',
  permission_error: 'invalid_key',
  not_found_error: 'invalid_model',
  rate_limit_error: 'rate_limited',
  billing_error: 'quota_exceeded',
  overloaded_error: 'vendor_unavailable',
  api_error: 'vendor_unavailable',
  timeout_error: 'vendor_unavailable',
  request_too_large: 'rejected',
};

const OPENAI_CODES: Record<string, FailureOutcome> = {
  invalid_api_key: 'invalid_key',
  invalidapikey: 'invalid_key', // DashScope InvalidApiKey
  invalid_authentication: 'invalid_key',
  authentication_error: 'invalid_key',
  unauthorized: 'invalid_key',
  account_deactivated: 'invalid_key',
  insufficient_quota: 'quota_exceeded',
  exceeded_current_quota_error: 'quota_exceeded',
  billing_hard_limit_reached: 'quota_exceeded',
  insufficient_balance: 'quota_exceeded',
  arrearage: 'quota_exceeded', // DashScope: overdue payment
  model_not_found: 'invalid_model',
  deploymentnotfound: 'invalid_model', // Azure
  model_not_available: 'invalid_model',
  rate_limit_exceeded: 'rate_limited',
  engine_overloaded: 'vendor_unavailable',
  server_error: 'vendor_unavailable',
  service_unavailable: 'vendor_unavailable',
};

const QUOTA_WORDS = /quota|billing|balance|credit|insufficient|payment|arrear|余额|欠费/i;
const MODEL_WORDS = /\bmodel\b|deployment|模型/i;
const MODEL_MISSING = /does not exist|not exist|not found|no such|unknown|invalid|not supported|unsupported|not available|no access|do not have access|don't have access/i;
const KEY_WORDS = /api[- _]?key|token|credential|permission|scope|unauthori[sz]ed|forbidden|access|signature|auth/i;

function cls(outcome: FailureOutcome, message: string | undefined, extra: Partial<Classified> = {}): Classified {
  return { outcome, whatToDo: WHAT_TO_DO[outcome], message: message || DEFAULT_MESSAGE[outcome], ...extra };
}

/**
 * Classifies a non-2xx vendor HTTP answer. `body` is the raw text (or parsed JSON);
 * `known` are the key strings of this call, removed from the message if echoed.
 */
export function classifyHttp(status: number, headers: HeaderBag, body: unknown, known: string[] = []): Classified {
  const p = parseErrorBody(body);
  const awsType = (header(headers, 'x-amzn-errortype') ?? '').split(':')[0]!.split('#').pop() || undefined;
  const rawMsg = p.message ?? '';
  const message = rawMsg ? scrubVendorMessage(rawMsg, known) : undefined;
  const retryAfterMs = parseRetryAfter(headers);
  const base = { status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  const codeKey = (p.code ?? '').toLowerCase();
  const typeKey = (p.type ?? '').toLowerCase();

  if (status >= 300 && status < 400) {
    const loc = header(headers, 'location');
    return cls('rejected', `the vendor answered with a redirect${loc ? ` to ${scrubVendorMessage(loc)}` : ''}; set base_url to the final address`, {
      ...base,
      whatToDo: 'check_base_url',
    });
  }

  // Bedrock / AWS JSON protocol errors
  const aws = awsType ?? (p.code && AWS_CLASSES[p.code] ? p.code : undefined);
  if (aws) {
    let out: FailureOutcome | undefined = AWS_CLASSES[aws];
    if (aws === 'ValidationException') out = MODEL_WORDS.test(rawMsg) && MODEL_MISSING.test(rawMsg) ? 'invalid_model' : 'rejected';
    if (aws === 'AccessDeniedException' && /\bmodel\b/i.test(rawMsg)) out = 'invalid_model';
    if (aws === 'ThrottlingException' && /per day|daily|quota/i.test(rawMsg) && !/too many requests/i.test(rawMsg)) out = 'quota_exceeded';
    if (out) return cls(out, message, { ...base, vendorCode: aws });
  }

  // Anthropic {"type":"error","error":{"type":...}}
  if (typeKey && ANTHROPIC_CLASSES[typeKey]) {
    return cls(ANTHROPIC_CLASSES[typeKey]!, message, { ...base, vendorCode: p.type });
  }
  if (typeKey === 'invalid_request_error' && /credit balance is too low|billing/i.test(rawMsg)) {
    return cls('quota_exceeded', message, { ...base, vendorCode: p.type });
  }

  // OpenAI-style codes (OpenAI, Azure, DeepSeek, Moonshot, DashScope, Groq, OpenRouter ...)
  const byCode = OPENAI_CODES[codeKey] ?? OPENAI_CODES[typeKey];
  if (byCode) {
    return cls(byCode, message, { ...base, vendorCode: p.code ?? p.type });
  }

  const vendorCode = p.code ?? p.type;
  const extra = { ...base, ...(vendorCode ? { vendorCode } : {}) };
  if (status === 401) return cls('invalid_key', message, extra);
  if (status === 402) return cls('quota_exceeded', message, extra);
  if (status === 403) {
    if (QUOTA_WORDS.test(rawMsg) && !KEY_WORDS.test(rawMsg)) return cls('quota_exceeded', message, extra);
    if (MODEL_WORDS.test(rawMsg) && MODEL_MISSING.test(rawMsg)) return cls('invalid_model', message, extra);
    if (!rawMsg || KEY_WORDS.test(rawMsg)) return cls('invalid_key', message, extra);
    return cls('rejected', message, extra);
  }
  if (status === 404) {
    if (MODEL_WORDS.test(rawMsg)) return cls('invalid_model', message, extra);
    return cls('rejected', message ?? 'the vendor has no such endpoint; check base_url', { ...extra, whatToDo: 'check_base_url' });
  }
  if (status === 429) {
    if (QUOTA_WORDS.test(rawMsg) || QUOTA_WORDS.test(codeKey)) return cls('quota_exceeded', message, extra);
    return cls('rate_limited', message, extra);
  }
  if (status === 408 || status >= 500) return cls('vendor_unavailable', message, extra);
  if (status === 400 || status === 422) {
    if (MODEL_WORDS.test(rawMsg) && MODEL_MISSING.test(rawMsg) && !/max_tokens|temperature|parameter|field|json/i.test(rawMsg.replace(/model[^ ]*/i, ''))) {
      return cls('invalid_model', message, extra);
    }
    if (/credit balance is too low|insufficient balance|arrearage|quota/i.test(rawMsg)) return cls('quota_exceeded', message, extra);
  }
  return cls('rejected', message, extra);
}

const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EPROTO',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function causes(e: unknown): unknown[] {
  const out: unknown[] = [];
  let cur: unknown = e;
  for (let i = 0; i < 6 && cur; i++) {
    out.push(cur);
    const c = cur as { cause?: unknown; errors?: unknown[] };
    cur = c.cause ?? (Array.isArray(c.errors) ? c.errors[0] : undefined);
  }
  return out;
}

/** Classifies a thrown error (network failure, timeout, unsafe URL, abort, VendorError). */
export function classifyError(e: unknown): Classified {
  for (const c of causes(e)) {
    if (c instanceof VendorError) {
      return { outcome: c.outcome, whatToDo: c.whatToDo, message: c.message, status: c.status, retryAfterMs: c.retryAfterMs, vendorCode: c.vendorCode };
    }
    if (isByokError(c) && c.code === 'unsafe_url') return cls('rejected', c.message, { whatToDo: 'check_base_url', vendorCode: 'unsafe_url' });
  }
  for (const c of causes(e)) {
    const err = c as { code?: string; name?: string; message?: string };
    const code = err?.code;
    if (err?.name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
      return cls('unreachable', 'the request was cancelled', { vendorCode: 'aborted' });
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return cls('unreachable', 'the vendor host name does not resolve; check base_url', { vendorCode: code });
    if (code === 'ECONNREFUSED') return cls('unreachable', 'the vendor refused the connection; check base_url', { vendorCode: code });
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return cls('unreachable', 'connecting to the vendor timed out', { vendorCode: code });
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return cls('unreachable', 'the vendor did not answer in time', { vendorCode: code });
    if (code && (NET_CODES.has(code) || /^ERR_TLS|CERT|SSL/.test(code))) return cls('unreachable', `network error talking to the vendor (${code})`, { vendorCode: code });
  }
  const first = e as { message?: string; name?: string };
  if (first?.name === 'TypeError' && /fetch failed|terminated/i.test(first.message ?? '')) return cls('unreachable', 'network error talking to the vendor');
  return cls('rejected', 'unexpected error talking to the vendor', { vendorCode: 'internal' });
}

export function toVendorError(c: Classified): VendorError {
  const outcome = c.outcome === 'ok' ? 'rejected' : c.outcome;
  return new VendorError(outcome, c.message, { status: c.status, retryAfterMs: c.retryAfterMs, whatToDo: c.whatToDo, vendorCode: c.vendorCode });
}

/**
 * What a wire throws when reading a stream fails: the caller's abort as is, a classified
 * vendor error as is, anything else (socket reset, bad frame) classified.
 */
export function streamFailure(e: unknown, signal?: AbortSignal): never {
  if (signal?.aborted) throw signal.reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' });
  if (e instanceof VendorError) throw e;
  throw toVendorError(classifyError(e));
}

export function toProbeResult(c: Classified): ProbeResult {
  const r: ProbeResult = { outcome: c.outcome, message: c.message };
  if (c.status !== undefined) r.status = c.status;
  if (c.retryAfterMs !== undefined) r.retryAfterMs = c.retryAfterMs;
  return r;
}
