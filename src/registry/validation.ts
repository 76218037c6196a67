/**
 * Argument checks of the registry API. Each throws ByokError('invalid_input', message, {field})
 * (turned into `{ok: false}` results by `guarded`); messages say what is expected and never
 * echo anything key-like.
 */
import { ByokError } from '../errors.ts';
import { fail, ok, type Result } from '../result.ts';
import { isValidWorkspace } from '../store/types.ts';
import { Pricing, ThinkingRule, type Capabilities } from '../vendors/template-schema.ts';
import type { AddArgs } from './contract.ts';
import { looksLikeKey } from './key-like.ts';
import {
  BAD_CHARS,
  CAPABILITY_KEYS,
  capabilityFlagsSchema,
  envVarSchema,
  keyLikeMessage,
  lastErrorSchema,
  maxTokensSchema,
  modelIdSchema,
  nameSchema,
  objectOf,
  parseArg,
  upstreamModelSchema,
} from './shapes.ts';
import { MODEL_SELECTOR_PREFIX } from './types.ts';

export { BAD_CHARS, looksLikeKey };

export function invalid(message: string, details?: Record<string, unknown>): ByokError {
  return new ByokError('invalid_input', message, details);
}

export function keyLike(field: string): ByokError {
  return invalid(keyLikeMessage(field), { field });
}

export function checkName(raw: unknown): string {
  return parseArg(nameSchema, raw, 'name');
}

export function checkUpstreamModel(raw: unknown): string {
  return parseArg(upstreamModelSchema, raw, 'upstream_model');
}

export function checkMaxTokens(raw: unknown): number {
  return parseArg(maxTokensSchema, raw, 'max_tokens');
}

export function checkEnvVar(raw: unknown): string {
  return parseArg(envVarSchema, raw, 'api_key_env');
}

export function checkModelId(raw: unknown): string {
  return parseArg(modelIdSchema, raw, 'id');
}

export function zodMessage(field: string, err: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
  const parts = err.issues.slice(0, 3).map((i) => `${[field, ...i.path.map(String)].join('.')}: ${i.message}`);
  return `invalid ${field} (${parts.join('; ')})`;
}

/** Partial capability flags merged over `base` (zod defaults would turn missing flags off). */
/** Partial capability flags merged over `base` (zod defaults would turn missing flags off). */
export function checkCapabilities(raw: unknown, base: Capabilities): Capabilities {
  if (raw === undefined) return base;
  const flags = parseArg(capabilityFlagsSchema, raw, 'capabilities');
  const out = { ...base };
  for (const k of CAPABILITY_KEYS) if (flags[k] !== undefined) out[k] = flags[k];
  return out;
}

export function checkPricing(raw: unknown): Pricing {
  const r = Pricing.safeParse(raw);
  if (!r.success) throw invalid(zodMessage('pricing', r.error) + '; expected {input_per_mtok, output_per_mtok, currency?}', { field: 'pricing' });
  return r.data;
}


export function checkThinking(raw: unknown): ThinkingRule {
  const r = ThinkingRule.safeParse(raw);
  if (!r.success) throw invalid(zodMessage('thinking', r.error), { field: 'thinking' });
  return r.data;
}

export const AUTH_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'cookie',
  'x-auth-token',
  'x-access-token',
]);
export const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'content-type']);

export function checkHeaders(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  parseArg(objectOf('headers must be an object of header name → string value'), raw, 'headers');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > 32) throw invalid('at most 32 headers', { field: 'headers' });
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/.test(name)) throw invalid('headers: invalid header name', { field: 'headers' });
    const lower = name.toLowerCase();
    if (AUTH_HEADERS.has(lower)) {
      throw invalid(`headers: ${lower} carries the key and is set from the stored key; remove it (the key is entered through the secure form)`, {
        field: 'headers',
      });
    }
    if (FORBIDDEN_HEADERS.has(lower)) throw invalid(`headers: ${lower} is set by the client and cannot be configured`, { field: 'headers' });
    if (typeof value !== 'string' || value.length > 1024 || BAD_CHARS.test(value)) {
      throw invalid(`headers: the value of ${name} must be a single-line string of at most 1024 chars`, { field: 'headers' });
    }
    if (looksLikeKey(value)) throw keyLike(`headers.${name}`);
    out[name] = value;
  }
  return out;
}

export const RESERVED_FIELDS = ['model', 'messages', 'stream', 'max_tokens', 'max_completion_tokens'];

export function checkRequestFields(raw: unknown, warnings: string[]): Record<string, unknown> {
  if (raw === undefined || raw === null) return {};
  parseArg(objectOf('request_fields must be an object'), raw, 'request_fields');
  let text: string;
  try {
    text = JSON.stringify(raw);
  } catch {
    throw invalid('request_fields must be plain JSON', { field: 'request_fields' });
  }
  if (text.length > 16 * 1024) throw invalid('request_fields is too large (max 16 KB of JSON)', { field: 'request_fields' });
  if (looksLikeKey(text)) throw keyLike('request_fields');
  const out = JSON.parse(text) as Record<string, unknown>;
  for (const k of RESERVED_FIELDS) {
    if (k in out) {
      delete out[k];
      warnings.push(`request_fields.${k} was dropped: it is set per request (use max_tokens / upstream_model instead)`);
    }
  }
  return out;
}

export function checkQuery(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  const out: Record<string, string> = {};
  parseArg(objectOf('query must be an object of name → string value'), raw, 'query');
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length > 16) throw invalid('at most 16 query parameters', { field: 'query' });
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(k)) throw invalid('query: invalid parameter name', { field: 'query' });
    if (/key|token|secret|sig|password|auth/i.test(k)) {
      throw invalid(`query: ${k} would carry a credential; keys are entered only through the secure form`, { field: 'query' });
    }
    if (typeof v !== 'string' || v.length > 256 || BAD_CHARS.test(v)) throw invalid(`query: ${k} must be a short string`, { field: 'query' });
    if (looksLikeKey(v)) throw keyLike(`query.${k}`);
    out[k] = v;
  }
  return out;
}

export function isLocalHost(host: string): boolean {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\]|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+)$/.test(host) || host.endsWith('.local');
}

/** http/https only, no credentials, query or fragment; trailing `/chat/completions` etc. stripped. */
export function checkBaseUrl(raw: unknown, warnings: string[]): string {
  if (typeof raw !== 'string' || !raw.trim()) {
    throw invalid('base_url is required: the endpoint root, e.g. https://api.example.com/v1', { field: 'base_url' });
  }
  const s = raw.trim();
  if (s.length > 2048) throw invalid('base_url is too long (max 2048 chars)', { field: 'base_url' });
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw invalid('base_url is not a valid URL; expected e.g. https://api.example.com/v1', { field: 'base_url' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid('base_url must use http:// or https://', { field: 'base_url' });
  if (u.username || u.password) {
    throw invalid('base_url must not contain credentials (user:password@); keys are entered only through the secure form', { field: 'base_url' });
  }
  if (u.search) throw invalid('base_url must not have a query string (?...); give only the endpoint root, keys go through the secure form', { field: 'base_url' });
  if (u.hash) throw invalid('base_url must not have a #fragment', { field: 'base_url' });
  if (looksLikeKey(s)) throw keyLike('base_url');
  let path = u.pathname.replace(/\/+$/, '');
  const m = path.match(/\/(chat\/completions|completions|messages|responses)$/);
  if (m) {
    path = path.slice(0, -m[0].length);
    warnings.push(`base_url: dropped the trailing /${m[1]} (the base URL is the root the client appends it to)`);
  }
  if (u.protocol === 'http:' && !isLocalHost(u.hostname)) {
    warnings.push(`base_url uses plain http: the key would cross the network unencrypted to ${u.host}; prefer https`);
  }
  return u.origin + path;
}

export function checkWorkspace(ws: unknown): string {
  if (typeof ws !== 'string' || !isValidWorkspace(ws)) {
    throw invalid('invalid workspace id: use local, tg:<user id>, tg:group:<chat id> or wx:<contact id>', { field: 'workspace' });
  }
  return ws;
}

export function stripSelector(raw: unknown, field = 'model_id'): string {
  if (typeof raw !== 'string' || !raw.trim()) throw invalid(`${field} is required (e.g. custom/qwen-plus-e3f4)`, { field });
  const s = raw.trim();
  return s.startsWith(MODEL_SELECTOR_PREFIX) ? s.slice(MODEL_SELECTOR_PREFIX.length) : s;
}

export function checkLastError(e: unknown): { code: string; message: string } {
  const { code, message } = parseArg(lastErrorSchema, e, 'last_error');
  let msg = typeof message === 'string' ? message.replace(BAD_CHARS, ' ').slice(0, 300) : '';
  // Vendors sometimes quote (part of) the key back; never keep anything key-like.
  msg = msg.replace(/\S+/g, (w) => (looksLikeKey(w) ? '[redacted]' : w));
  return { code, message: msg };
}

/** What a draft handed to add may hold: parse_example's draft fields plus add's own. */
export const DRAFT_FIELDS = new Set<string>([
  'upstream_model', 'base_url', 'wire', 'name', 'api_key_env', 'key_optional', 'headers', 'request_fields',
  'thinking', 'max_tokens', 'capabilities', 'pricing', 'query', 'id',
]);

/**
 * A parse_example draft as add arguments, so nothing it found (headers, thinking, request
 * fields, Azure's api-version) is lost on the way. Takes the draft itself or parse_example's
 * whole answer (`{ok: true, draft, warnings}`); `source` is informational and dropped. An
 * unknown field is refused rather than silently ignored. Values are checked by add itself.
 */
export function addArgsFromDraft(input: unknown): Result<{ args: AddArgs }> {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(input)) return fail('invalid_input', 'the draft must be a JSON object (the output of parse_example)');
  if (input.ok === false) {
    const why = typeof input.error === 'string' ? `: ${input.error.slice(0, 300)}` : '';
    return fail('invalid_input', `parse_example found no draft${why}`);
  }
  const draft = input.ok === true && 'draft' in input ? input.draft : input;
  if (!isObj(draft)) return fail('invalid_input', 'the draft must be a JSON object (the output of parse_example)');
  const unknown = Object.keys(draft).filter((k) => k !== 'source' && !DRAFT_FIELDS.has(k));
  if (unknown.length) return fail('invalid_input', `unknown draft field(s): ${unknown.slice(0, 5).map((k) => k.slice(0, 40)).join(', ')}`, { field: unknown[0]!.slice(0, 40) });
  const args = Object.fromEntries(Object.entries(draft).filter(([k]) => DRAFT_FIELDS.has(k))) as unknown as AddArgs;
  return ok({ args });
}
