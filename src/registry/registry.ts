/**
 * The custom-model registry: the seed's exports API (`templates`, `list_vendor_models`,
 * `add_template`, `parse_example`, `add`, `list_models`, `get`, `remove`) plus `update`,
 * `set_status`, `set_key_status` and `resolve`, all scoped to a workspace.
 *
 * Every method answers `{ ok: true, ... }` or `{ ok: false, error, code }` and never throws for
 * user error. Entries live in the workspace document `custom_models` (YAML in the file store),
 * read-modify-written atomically under the store's per-workspace lock. No key is ever stored
 * here or echoed in an error: keys are read only through a KeySource, as bytes, for discovery.
 */
import { createHash } from 'node:crypto';
import { ByokError } from '../errors.ts';
import { fail, guarded, ok, type Fail, type Result } from '../result.ts';
import { detectKeys } from '../secrets/detector.ts';
import { keyShapeRe } from '../secrets/key-kinds.ts';
import { isValidWorkspace, type Store } from '../store/types.ts';
import {
  Capabilities,
  Pricing,
  ThinkingRule,
  WireId,
  type CredentialKind,
  type Template,
  type TemplateModel,
} from '../vendors/template-schema.ts';
import { findTemplate, loadTemplates, normalize, offeredTemplates, suggestTemplates, TemplateError } from '../vendors/templates.ts';
import { parseExample } from './parse-example.ts';
import { withReasoningParam } from './reasoning-param.ts';
import { vendorFetch } from '../vendors/net.ts';
import { editDistance, envVarFromHost, idBase, MODEL_ID_RE, nameKey, newModelId } from './slug.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel, type ModelStatus } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Public types

/** Where keys come from. The vault implements it; a plaintext key is only ever bytes the caller wipes. */
export interface KeySource {
  has(workspace: string, envVar: string): Promise<boolean>;
  withKey<T>(workspace: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
}

export interface RegistryDeps {
  store: Store;
  /** Defaults to the process environment (the template's env var), until the vault replaces it. */
  keys?: KeySource;
  fetch?: typeof fetch;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Vendor templates to use instead of `templates/*.yaml` (tests). */
  templates?: Template[];
  /** Timeout of the live `/models` call (default 10 s). */
  discoveryTimeoutMs?: number;
}

export interface NeedEnvInput {
  env_vars: string[];
  reason: string;
}

export interface TemplateSummary {
  id: string;
  name: string;
  aliases: string[];
  homepage: string;
  docs?: string;
  wire: WireId;
  base_url: string | null;
  base_url_hint?: string;
  base_url_required: boolean;
  env_var: string;
  key_optional: boolean;
  credential_kind: CredentialKind;
  default_model: string;
  models: VendorModel[];
  model_discovery: boolean;
  notes: string[];
  notes_zh: string[];
}

export interface VendorModel {
  id: string;
  name: string;
  capabilities?: Capabilities;
  pricing?: Pricing;
  tee?: boolean;
  context_window?: number;
  /** In the template's curated list. */
  curated: boolean;
}

export interface VendorModels {
  vendor: string;
  source: 'live' | 'curated';
  models: VendorModel[];
  /** Why the list is the curated one (no key yet, no discovery, the vendor refused...). */
  note?: string;
}

export interface AddResult {
  model: CustomModel;
  selector: string;
  need_env_input?: NeedEnvInput;
  warnings?: string[];
  /** True when a removed entry with the same id / name and vendor was brought back. */
  reactivated?: boolean;
}

export interface AddTemplateOptions {
  upstream_model?: string;
  name?: string;
  base_url?: string;
  max_tokens?: number;
  /** Explicit model id (slug, no random suffix); re-adding a removed id reactivates it. */
  id?: string;
  /** Overrides of the template's non-secret settings (Bedrock `region`). */
  settings?: Record<string, string>;
  /** Overrides of the template's query parameters (Azure `api-version`); only those it has. */
  query?: Record<string, string>;
  /**
   * oauth_json templates: another token endpoint than the template's (a gateway in front of
   * the vendor, a local fake in tests). Checked like a base URL (https, no private address
   * unless the operator allows it). Not offered in chat.
   */
  token_url?: string;
}

export interface AddArgs {
  upstream_model: string;
  base_url: string;
  wire?: WireId;
  name?: string;
  api_key_env?: string;
  /** The endpoint needs no key (self-hosted servers); no secure form is asked for. */
  key_optional?: boolean;
  headers?: Record<string, string>;
  request_fields?: Record<string, unknown>;
  thinking?: ThinkingRule;
  max_tokens?: number;
  capabilities?: Partial<Capabilities>;
  pricing?: Pricing;
  /** Non-secret query parameters (Azure `api-version`), as parse_example detects them. */
  query?: Record<string, string>;
  id?: string;
}

/** What a draft handed to add may hold: parse_example's draft fields plus add's own. */
const DRAFT_FIELDS = new Set<string>([
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

export interface ModelChanges {
  name?: string;
  upstream_model?: string;
  base_url?: string;
  max_tokens?: number;
  capabilities?: Partial<Capabilities>;
  /** null clears the pricing. */
  pricing?: Pricing | null;
  /**
   * The request field carrying the thinking switch or budget (see reasoning-param.ts);
   * null restores the template's rule (custom endpoints: no switch).
   */
  reasoning_param?: string | null;
}

export interface Registry {
  templates(): Result<{ templates: TemplateSummary[] }>;
  list_vendor_models(
    workspace: string,
    vendor: string,
    opts?: { base_url?: string },
  ): Promise<Result<VendorModels>>;
  add_template(workspace: string, vendor: string, opts?: AddTemplateOptions): Promise<Result<AddResult>>;
  parse_example(text: string): ReturnType<typeof parseExample>;
  add(workspace: string, args: AddArgs): Promise<Result<AddResult>>;
  list_models(workspace: string, opts?: { include_removed?: boolean }): Promise<Result<{ models: CustomModel[] }>>;
  get(workspace: string, modelId: string): Promise<Result<{ model: CustomModel }>>;
  remove(workspace: string, modelId: string): Promise<Result<{ model: CustomModel; already_removed?: boolean }>>;
  /** A base URL on another host switches the model to that host's key (need_env_input when not stored). */
  update(workspace: string, modelId: string, changes: ModelChanges): Promise<Result<{ model: CustomModel; warnings?: string[]; need_env_input?: NeedEnvInput }>>;
  set_status(
    workspace: string,
    modelId: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ model: CustomModel }>>;
  /** Sets the status of every live model of the workspace that uses this key (after a probe). */
  set_key_status(
    workspace: string,
    envVar: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ models: CustomModel[] }>>;
  /**
   * `set_status(modelId)` then `set_key_status(envVar)` in one atomic update of the workspace
   * (after a probe: the model and every other live model using the key). The key part applies
   * even when the model part fails (not found, removed meanwhile), as the two calls in a row
   * would; the result is the model part's.
   */
  set_status_and_key(
    workspace: string,
    modelId: string,
    envVar: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ model: CustomModel; models: CustomModel[] }>>;
  resolve(workspace: string, selector: string): Promise<Result<{ model: CustomModel }>>;
  /** Records the outcome of a submitted replacement key without touching the status (the previous key stays in use). */
  record_key_attempt(workspace: string, modelId: string, attempt: { outcome: string }): Promise<Result<{ model: CustomModel }>>;
  /**
   * Switches the model to another credential shape its template accepts (Bedrock: IAM key
   * pair ⇄ Bedrock API key), with the live models of the same vendor that shared its key, in
   * one atomic update. Called by the worker once the vendor accepted the new credential.
   */
  use_credential(
    workspace: string,
    modelId: string,
    credential: { kind: CredentialKind; api_key_env: string; extra_env_vars: string[] },
  ): Promise<Result<{ model: CustomModel; models: CustomModel[] }>>;
}

/** Name of the workspace document holding the entries. */
export const MODELS_DOC = 'custom_models';
export interface ModelsDoc {
  version: 1;
  models: CustomModel[];
  /**
   * The host each key name was given for (keyHostOf form). A stored key stays bound to it
   * even when no model uses that name any more (a model moved to another host).
   */
  key_hosts?: Record<string, string>;
}

export const DEFAULT_MAX_TOKENS = 4096;
export const MAX_TOKENS_LIMIT = 10_000_000;
const DISCOVERY_TIMEOUT_MS = 10_000;
const DISCOVERY_MAX_BYTES = 5 * 1024 * 1024;
const DISCOVERY_MAX_MODELS = 1000;
const STATUSES: ModelStatus[] = ['pending_key', 'validating', 'active', 'key_error', 'model_problem', 'removed'];
const DEFAULT_CAPABILITIES: Capabilities = { json: true, vision: false, tools: true, reasoning: false };

/** The default KeySource: keys from the environment under the template's env var name. */
export function envKeySource(env: NodeJS.ProcessEnv = process.env): KeySource {
  return {
    async has(_ws, envVar) {
      return typeof env[envVar] === 'string' && env[envVar] !== '';
    },
    async withKey(_ws, envVar, fn) {
      const v = env[envVar];
      if (!v) return undefined;
      const bytes = Buffer.from(v, 'utf8');
      try {
        return await fn(bytes);
      } finally {
        bytes.fill(0);
      }
    },
  };
}

export function selectorOf(model: Pick<CustomModel, 'id'>): string {
  return `${MODEL_SELECTOR_PREFIX}${model.id}`;
}

// ---------------------------------------------------------------------------------------------
// Validation helpers (throw ByokError, turned into results by `guarded`)

function invalid(message: string, details?: Record<string, unknown>): ByokError {
  return new ByokError('invalid_input', message, details);
}

/** a JWT (header.payload.): a bearer credential, never a parameter; the guard sees it only next to a key word */
const JWT_RE = /\bey[A-Za-z0-9_-]{15,}\.ey[A-Za-z0-9_-]{15,}\./;

/**
 * Text that looks like an API key: the shared detector (secrets/detector.ts), every kind of the
 * key-kinds table by shape alone (prefix + charset + length, no entropy judgement: no key belongs
 * in names, model ids or URLs at all), a JWT, and long random runs.
 */
export function looksLikeKey(text: string): boolean {
  if (detectKeys(text).refused) return true;
  if (keyShapeRe().test(text) || JWT_RE.test(text)) return true;
  for (const tok of text.match(/[A-Za-z0-9]{32,}/g) ?? []) {
    if (/[a-z]/.test(tok) && /[A-Z]/.test(tok) && /\d/.test(tok)) return true;
    if (/^[a-f0-9]{40,}$/.test(tok)) return true;
  }
  return false;
}

function keyLike(field: string): ByokError {
  return invalid(
    `${field} looks like an API key. Keys are accepted only through the secure form, never as a parameter; if this was a real key, rotate it at the vendor.`,
    { field },
  );
}

// Control characters, bidi overrides and zero-width characters that make names deceptive.
const BAD_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff\u2028\u2029]/;

function checkName(raw: unknown): string {
  if (typeof raw !== 'string') throw invalid('name must be a string of 1–64 characters', { field: 'name' });
  const name = raw.trim().replace(/\s+/g, ' ');
  const len = [...name].length;
  if (len < 1 || len > 64) throw invalid(`name must be 1–64 characters (got ${len})`, { field: 'name' });
  if (BAD_CHARS.test(name)) throw invalid('name must not contain control or invisible characters', { field: 'name' });
  if (looksLikeKey(name)) throw keyLike('name');
  return name;
}

function checkUpstreamModel(raw: unknown): string {
  if (typeof raw !== 'string') throw invalid('upstream_model (the vendor\'s model id, e.g. qwen-plus) is required', { field: 'upstream_model' });
  const m = raw.trim();
  if (m.length < 1 || m.length > 200) throw invalid(`upstream_model must be 1–200 characters (got ${m.length})`, { field: 'upstream_model' });
  if (BAD_CHARS.test(m)) throw invalid('upstream_model must not contain control characters', { field: 'upstream_model' });
  if (/\s/.test(m)) throw invalid('upstream_model is the vendor\'s model id and contains no spaces (e.g. qwen-plus); use name for a display name', { field: 'upstream_model' });
  if (looksLikeKey(m)) throw keyLike('upstream_model');
  return m;
}

function checkMaxTokens(raw: unknown): number {
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1) {
    throw invalid('max_tokens must be an integer ≥ 1 (the completion cap, e.g. 4096)', { field: 'max_tokens' });
  }
  if (raw > MAX_TOKENS_LIMIT) throw invalid(`max_tokens must be at most ${MAX_TOKENS_LIMIT}`, { field: 'max_tokens' });
  return raw;
}

function checkEnvVar(raw: unknown): string {
  if (typeof raw !== 'string' || !/^[A-Z][A-Z0-9_]{1,63}$/.test(raw)) {
    throw invalid('api_key_env must be an env var NAME such as MYVENDOR_API_KEY (uppercase letters, digits, _), not the key itself', {
      field: 'api_key_env',
    });
  }
  if (looksLikeKey(raw) || (raw.length >= 24 && !raw.includes('_'))) throw keyLike('api_key_env');
  return raw;
}

function checkModelId(raw: unknown): string {
  if (typeof raw !== 'string') throw invalid('id must be a lowercase slug (a-z, 0-9, -)', { field: 'id' });
  const id = raw.startsWith(MODEL_SELECTOR_PREFIX) ? raw.slice(MODEL_SELECTOR_PREFIX.length) : raw;
  if (!MODEL_ID_RE.test(id)) throw invalid('id must be a lowercase slug of 1–64 chars (a-z, 0-9, -), e.g. qwen-plus-e3f4', { field: 'id' });
  return id;
}

function zodMessage(field: string, err: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
  const parts = err.issues.slice(0, 3).map((i) => `${[field, ...i.path.map(String)].join('.')}: ${i.message}`);
  return `invalid ${field} (${parts.join('; ')})`;
}

const CAPABILITY_KEYS = ['json', 'vision', 'tools', 'reasoning'] as const;

/** Partial capability flags merged over `base` (zod defaults would turn missing flags off). */
function checkCapabilities(raw: unknown, base: Capabilities): Capabilities {
  if (raw === undefined) return base;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalid('capabilities must be an object of booleans json, vision, tools, reasoning', { field: 'capabilities' });
  }
  const out = { ...base };
  for (const [k, v] of Object.entries(raw)) {
    if (!(CAPABILITY_KEYS as readonly string[]).includes(k)) {
      throw invalid(`capabilities: unknown flag "${k.slice(0, 30)}" (known: ${CAPABILITY_KEYS.join(', ')})`, { field: 'capabilities' });
    }
    if (v === undefined) continue;
    if (typeof v !== 'boolean') throw invalid(`capabilities.${k} must be true or false`, { field: 'capabilities' });
    out[k as keyof Capabilities] = v;
  }
  return out;
}

function checkPricing(raw: unknown): Pricing {
  const r = Pricing.safeParse(raw);
  if (!r.success) throw invalid(zodMessage('pricing', r.error) + '; expected {input_per_mtok, output_per_mtok, currency?}', { field: 'pricing' });
  return r.data;
}

/** `update({reasoning_param})`: the thinking rule's field; null back to the template's rule. */
function applyReasoningParam(m: CustomModel, raw: unknown, touchCapability: boolean, t: Template | undefined): void {
  if (raw === null || raw === '') {
    m.thinking = structuredClone(t ? (t.models.find((x) => x.id === m.upstream_model)?.thinking ?? t.thinking) : { style: 'none' as const });
    return;
  }
  if (typeof raw !== 'string') throw invalid('reasoning_param must be a request field name, or null', { field: 'reasoning_param' });
  const r = withReasoningParam(m.thinking ?? { style: 'none' }, raw.trim(), m.max_tokens);
  if (!r.ok) {
    const why =
      r.reason === 'fixed'
        ? `${selectorOf(m)} thinks through the ${m.thinking.style} API, whose parameter is fixed`
        : r.reason === 'bad_name'
          ? 'reasoning_param must be a request field name (letters, digits, _ - .)'
          : `reasoning_param for ${selectorOf(m)} must be one of: ${(r.known ?? []).join(', ')}`;
    throw invalid(why, { field: 'reasoning_param' });
  }
  // A model that gained a thinking switch supports reasoning (unless the same call says otherwise).
  if (touchCapability && m.thinking.style === 'none' && r.rule.style !== 'none') m.capabilities = { ...m.capabilities, reasoning: true };
  m.thinking = r.rule;
}

function checkThinking(raw: unknown): ThinkingRule {
  const r = ThinkingRule.safeParse(raw);
  if (!r.success) throw invalid(zodMessage('thinking', r.error), { field: 'thinking' });
  return r.data;
}

const AUTH_HEADERS = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'cookie',
  'x-auth-token',
  'x-access-token',
]);
const FORBIDDEN_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'content-type']);

function checkHeaders(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('headers must be an object of header name → string value', { field: 'headers' });
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

const RESERVED_FIELDS = ['model', 'messages', 'stream', 'max_tokens', 'max_completion_tokens'];

function checkRequestFields(raw: unknown, warnings: string[]): Record<string, unknown> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('request_fields must be an object', { field: 'request_fields' });
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

function checkQuery(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('query must be an object of name → string value', { field: 'query' });
  const out: Record<string, string> = {};
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

function isLocalHost(host: string): boolean {
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

function hostOf(url: string | null | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The host a stored key is bound to. AWS credentials work in every Bedrock region, so all
 * `bedrock-runtime[-fips].<region>.amazonaws.com` hosts count as one (other amazonaws.com
 * names, such as S3 buckets, do not).
 */
function keyHostOf(url: string | null | undefined): string | undefined {
  const h = hostOf(url);
  if (h && /^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$/.test(h)) return 'bedrock-runtime.*.amazonaws.com';
  return h;
}

/** The plain name a host-specific key name derives from: `DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM` → `DASHSCOPE_API_KEY`. */
export function keyFamily(envVar: string): string {
  const i = envVar.indexOf('__');
  return i > 0 ? envVar.slice(0, i) : envVar;
}

/**
 * The name of a vendor's key for one host other than the one its plain name serves:
 * `<NAME>__<HOST>` (DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM), so the name itself says where
 * the key may go. At most 64 characters: a long host is cut and ends in a short hash of it.
 */
export function hostKeyName(envVar: string, keyHost: string): string {
  const part = keyHost.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'HOST';
  const full = `${keyFamily(envVar)}__${part}`;
  if (full.length <= 64) return full;
  const hash = createHash('sha256').update(keyHost).digest('hex').slice(0, 6).toUpperCase();
  return `${full.slice(0, 57).replace(/_+$/, '')}_${hash}`;
}

interface KeyNames {
  api_key_env: string;
  extra_env_vars: string[];
}

/** A key name held for one host. */
interface Binding {
  name: string;
  host: string | undefined;
  /** The model holding it (absent for a recorded key_hosts entry). */
  model?: CustomModel;
}

/**
 * Which key names are bound to which host. A live model binds its names to its host; a removed
 * one only while its key is still stored (a removed model without a key binds nothing); a
 * stored key stays bound to the host it was given for (key_hosts), also when the model moved
 * on. `selfId` (a model being moved) is left out.
 */
function bindingsOf(models: CustomModel[], keyHosts: Record<string, string>, stored: ReadonlySet<string>, selfId?: string): Binding[] {
  const out: Binding[] = [];
  for (const m of models) {
    if (m.id === selfId) continue;
    const live = m.status !== 'removed';
    if (!live && !stored.has(m.api_key_env)) continue;
    for (const name of [m.api_key_env, ...m.extra_env_vars]) out.push({ name, host: keyHostOf(m.base_url), ...(live && { model: m }) });
  }
  for (const [name, host] of Object.entries(keyHosts)) if (stored.has(name)) out.push({ name, host });
  return out;
}

/**
 * The key names for a model at `baseUrl`: those a model of the same key family already uses
 * at that host; else the plain names, when no other host holds them (the first host to take a
 * name keeps it: existing models and keys are unchanged); else `<NAME>__<HOST>`.
 * A stored key is thus only ever sent to the host it was validated for, and a model on
 * another host simply asks for its own key.
 */
function keyNamesAt(bindings: Binding[], plain: KeyNames, baseUrl: string): KeyNames {
  const host = keyHostOf(baseUrl);
  const fam = keyFamily(plain.api_key_env);
  const suffixed = (v: string) => hostKeyName(v, host ?? 'host');
  const same = bindings.find((b) => b.model && keyFamily(b.model.api_key_env) === fam && b.host === host);
  if (same?.model) return { api_key_env: same.model.api_key_env, extra_env_vars: [...same.model.extra_env_vars] };
  const elsewhere = (vs: string[]) => bindings.some((b) => b.host !== host && vs.includes(b.name));
  const names = [plain.api_key_env, ...plain.extra_env_vars];
  if (!elsewhere(names)) return { api_key_env: plain.api_key_env, extra_env_vars: [...plain.extra_env_vars] };
  const own = { api_key_env: suffixed(plain.api_key_env), extra_env_vars: plain.extra_env_vars.map(suffixed) };
  if (elsewhere([own.api_key_env, ...own.extra_env_vars])) {
    throw new ByokError('conflict', `no free key name for ${host}; pass api_key_env with a name of your own`, { field: 'api_key_env', reason: 'no_key_name' });
  }
  return own;
}

/** A model's stored key names, bound to its current host (it is about to leave it). */
function oldHostOf(m: CustomModel, stored: ReadonlySet<string>): Record<string, string> {
  const host = keyHostOf(m.base_url);
  const out: Record<string, string> = {};
  if (host) for (const v of [m.api_key_env, ...m.extra_env_vars]) if (stored.has(v)) out[v] = host;
  return out;
}

/** Records the host of a model's key names (see ModelsDoc.key_hosts). */
function recordKeyHost(keyHosts: Record<string, string>, m: Pick<CustomModel, 'api_key_env' | 'extra_env_vars' | 'base_url'>): void {
  const host = keyHostOf(m.base_url);
  if (host) for (const v of [m.api_key_env, ...m.extra_env_vars]) keyHosts[v] = host;
}

function checkWorkspace(ws: unknown): string {
  if (typeof ws !== 'string' || !isValidWorkspace(ws)) {
    throw invalid('invalid workspace id: use local, tg:<user id>, tg:group:<chat id> or wx:<contact id>', { field: 'workspace' });
  }
  return ws;
}

function stripSelector(raw: unknown, field = 'model_id'): string {
  if (typeof raw !== 'string' || !raw.trim()) throw invalid(`${field} is required (e.g. custom/qwen-plus-e3f4)`, { field });
  const s = raw.trim();
  return s.startsWith(MODEL_SELECTOR_PREFIX) ? s.slice(MODEL_SELECTOR_PREFIX.length) : s;
}

function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

// ---------------------------------------------------------------------------------------------
// Template catalog (the real templates, or an injected list)

interface Catalog {
  /** Templates users may add (the operator's policy applied). */
  all(): Template[];
  /** Every template, for models already registered. */
  any(): Template[];
  find(q: string): Template | undefined;
  suggest(q: string, n: number): string[];
}

/** The templates of `templates/*.yaml` (loaded and cached by vendors/templates.ts), or an injected list. */
function makeCatalog(list?: Template[]): Catalog {
  // Every template, switched off or not: existing models and host ownership still need them.
  const any = () => {
    if (list) return list;
    try {
      return loadTemplates();
    } catch (e) {
      if (e instanceof TemplateError) throw new ByokError('config', e.message);
      throw e;
    }
  };
  // What users may add: the operator's BYOK_TEMPLATES / BYOK_TEMPLATES_DISABLED applied.
  const all = () => {
    if (list) return list;
    try {
      return offeredTemplates();
    } catch (e) {
      // A broken template names its file and field; that is for the operator, and holds no secret.
      if (e instanceof TemplateError) throw new ByokError('config', e.message);
      throw e;
    }
  };
  return {
    all,
    any,
    find: (q) => findTemplate(q, all()),
    suggest: (q, n) => suggestTemplates(q, n, all()).map((t) => t.id),
  };
}

// ---------------------------------------------------------------------------------------------

type Draft = Omit<CustomModel, 'id' | 'status' | 'last_error' | 'created_at' | 'updated_at'>;

interface RegisterOptions {
  explicitId?: string;
  /** The user typed the name (otherwise it is a default and may be disambiguated). */
  nameGiven: boolean;
  /** Used instead of a default name that collides with another vendor's model. */
  altName?: string;
  vendorLabel: string;
  homepage?: string;
}

export function createRegistry(deps: RegistryDeps): Registry {
  const store = deps.store;
  const keys = deps.keys ?? envKeySource(deps.env ?? process.env);
  // Discovery sends the stored key: it goes through the same SSRF-safe network layer as the relay.
  const doFetch = deps.fetch ?? (vendorFetch as typeof fetch);
  const now = deps.now ?? (() => new Date());
  const catalog = makeCatalog(deps.templates);
  const discoveryTimeout = deps.discoveryTimeoutMs ?? DISCOVERY_TIMEOUT_MS;

  function templateOrFail(vendor: unknown): Template {
    if (typeof vendor !== 'string' || !vendor.trim()) throw invalid('vendor is required (e.g. qwen, anthropic); see templates()', { field: 'vendor' });
    const q = vendor.trim().slice(0, 100);
    // Named exactly but switched off: say so (a fuzzy match would pick a neighbour: "claude-code" → anthropic).
    const nq = normalize(q);
    const off = catalog.any().find((x) => [x.id, x.name, ...x.aliases].some((n) => normalize(n) === nq));
    if (off && !catalog.all().includes(off)) throw new ByokError('forbidden', `${off.name} (${off.id}) is switched off on this bot by its operator.`, { reason: 'template_disabled', vendor: off.id });
    const t = catalog.find(q);
    if (t) return t;
    const suggestions = catalog.suggest(q, 3);
    const hint = suggestions.length ? ` Did you mean ${suggestions.join(', ')}?` : '';
    throw new ByokError(
      'unknown_vendor',
      `unknown vendor "${looksLikeKey(q) ? '…' : q.slice(0, 40)}".${hint} For any other OpenAI-compatible endpoint use openai-compatible (add_template) or parse_example + add.`,
      { suggestions },
    );
  }

  function templateById(id: string): Template | undefined {
    return catalog.any().find((t) => t.id === id);
  }

  async function readModels(ws: string): Promise<CustomModel[]> {
    const doc = await store.getDoc<ModelsDoc>(ws, MODELS_DOC);
    return modelsOf(doc);
  }

  function modelsOf(doc: ModelsDoc | undefined): CustomModel[] {
    if (doc === undefined || doc === null) return [];
    if (typeof doc !== 'object' || !Array.isArray(doc.models)) {
      throw new ByokError('internal', 'custom_models.yaml of this workspace is malformed; fix or move it aside (it is never overwritten while malformed)');
    }
    return doc.models.filter((m): m is CustomModel => !!m && typeof m === 'object' && typeof m.id === 'string');
  }

  async function mutateModels<R>(ws: string, fn: (models: CustomModel[], keyHosts: Record<string, string>) => R): Promise<R> {
    return store.updateDoc<ModelsDoc, R>(ws, MODELS_DOC, (cur) => {
      const models = modelsOf(cur).map((m) => ({ ...m }));
      const keyHosts: Record<string, string> = { ...keyHostsOf(cur) };
      const result = fn(models, keyHosts);
      return { value: { version: 1, models, ...(Object.keys(keyHosts).length && { key_hosts: keyHosts }) }, result };
    });
  }

  function keyHostsOf(doc: ModelsDoc | undefined): Record<string, string> {
    const kh = doc?.key_hosts;
    if (!kh || typeof kh !== 'object' || Array.isArray(kh)) return {};
    return Object.fromEntries(Object.entries(kh).filter(([k, v]) => typeof v === 'string' && /^[A-Z][A-Z0-9_]{0,127}$/.test(k)));
  }

  /** The models, the recorded key hosts, and which of their key names are stored (for bindingsOf). */
  async function keyState(ws: string): Promise<{ models: CustomModel[]; keyHosts: Record<string, string>; stored: Set<string> }> {
    const doc = await store.getDoc<ModelsDoc>(ws, MODELS_DOC);
    const models = modelsOf(doc);
    const keyHosts = keyHostsOf(doc);
    const stored = new Set<string>();
    for (const v of new Set([...models.flatMap((m) => [m.api_key_env, ...m.extra_env_vars]), ...Object.keys(keyHosts)])) if (await keys.has(ws, v)) stored.add(v);
    return { models, keyHosts, stored };
  }

  async function keyStored(ws: string, envVars: string[]): Promise<boolean> {
    for (const v of envVars) if (!(await keys.has(ws, v))) return false;
    return true;
  }

  function notFound(ws: string, query: string, models: CustomModel[]): Fail {
    const live = models.filter((m) => m.status !== 'removed');
    const removed = models.find((m) => m.id === query && m.status === 'removed');
    if (removed) {
      return fail('not_found', `${selectorOf(removed)} (${removed.name}) was removed; add it again to reactivate it`, { suggestions: [], reason: 'removed', id: removed.id });
    }
    const shown = looksLikeKey(query) ? '…' : query.slice(0, 64);
    if (!live.length) {
      return fail('not_found', `no custom model "${shown}" in workspace ${ws}: none registered yet (add one with add_template or add)`, { suggestions: [], reason: 'none_registered' });
    }
    const q = query.toLowerCase();
    const scored = live
      .map((m) => {
        const base = m.id.replace(/-[0-9a-f]{4,12}$/, '');
        const contains = m.id.includes(q) || m.name.toLowerCase().includes(q) || (q.length >= 3 && q.includes(base));
        const d = contains ? 0 : Math.min(editDistance(q, m.id), editDistance(q, base), editDistance(q, m.name.toLowerCase()));
        return { m, d };
      })
      .sort((a, b) => a.d - b.d)
      .slice(0, 3);
    const suggestions = scored.map((s) => selectorOf(s.m));
    const names = scored.map((s) => `${selectorOf(s.m)} (${s.m.name})`).join(', ');
    return fail('not_found', `no custom model "${shown}" in workspace ${ws}. Closest: ${names}`, { suggestions, reason: 'no_match' });
  }

  /**
   * Refuses sending one stored key to two different hosts in one workspace (the last check,
   * under the lock: key names are chosen by keyNamesAt before it, so this fires only on a race).
   */
  function checkKeyHost(models: CustomModel[], keyHosts: Record<string, string>, stored: ReadonlySet<string>, envVar: string, baseUrl: string, selfId?: string): void {
    const host = keyHostOf(baseUrl);
    const other = bindingsOf(models, keyHosts, stored, selfId).find((b) => b.name === envVar && b.host !== host);
    if (other) {
      throw new ByokError(
        'conflict',
        `${envVar} became the key for ${other.host} meanwhile, and a stored key is only sent to one host; send the same command again and ${hostOf(baseUrl)} gets a key name of its own.`,
        { field: 'base_url', reason: 'changed_meanwhile' },
      );
    }
  }

  function needEnv(model: CustomModel, opts: RegisterOptions): NeedEnvInput {
    const env_vars = [model.api_key_env, ...model.extra_env_vars];
    // An OAuth file is not created at a key page: its CLI writes it at login.
    const file = model.credential_kind === 'oauth_json';
    const where = opts.homepage && !file ? ` Create one at ${opts.homepage}.` : '';
    const what = file
      ? `${opts.vendorLabel} OAuth credentials file (${model.api_key_env}, the file its CLI writes when you log in)`
      : env_vars.length > 1
        ? `${opts.vendorLabel} credentials (${env_vars.join(', ')})`
        : `${opts.vendorLabel} API key (${model.api_key_env})`;
    return {
      env_vars,
      reason: `Enter your ${what} for ${selectorOf(model)} (${model.upstream_model}) through the secure form.${where} One ${file ? 'login' : 'key'} serves every ${opts.vendorLabel} model in this workspace.`,
    };
  }

  async function register(ws: string, input: Draft, opts: RegisterOptions, warnings: string[]): Promise<Result<AddResult>> {
    // The key names for this host (a vendor key on another host gets a name of its own).
    const ks = await keyState(ws);
    const draft: Draft = { ...input, ...keyNamesAt(bindingsOf(ks.models, ks.keyHosts, ks.stored), input, input.base_url) };
    const envVars = [draft.api_key_env, ...draft.extra_env_vars];
    const stored = draft.key_optional || (await keyStored(ws, envVars));
    const at = now().toISOString();
    const { model, reactivated } = await mutateModels(ws, (models, keyHosts) => {
      checkKeyHost(models, keyHosts, ks.stored, draft.api_key_env, draft.base_url);
      recordKeyHost(keyHosts, draft);
      let name = draft.name;
      let target: CustomModel | undefined;
      const live = (n: string) => models.find((m) => m.status !== 'removed' && nameKey(m.name) === nameKey(n) && m.id !== target?.id);
      if (opts.explicitId) {
        const existing = models.find((m) => m.id === opts.explicitId);
        if (existing && existing.status !== 'removed') {
          throw new ByokError('conflict', `${selectorOf(existing)} already exists (${existing.name}); pick another id, or update/remove it`, {
            field: 'id',
            reason: 'id_taken',
            existing: selectorOf(existing),
          });
        }
        if (existing && existing.vendor !== draft.vendor) {
          throw new ByokError(
            'conflict',
            `${selectorOf(existing)} was a ${existing.vendor} model; a removed id can only be reactivated with the same vendor. Pick another id.`,
            { field: 'id', reason: 'id_other_vendor' },
          );
        }
        target = existing;
      }
      let clash = live(name);
      if (clash && !opts.nameGiven && opts.altName && clash.vendor !== draft.vendor) {
        name = opts.altName;
        clash = live(name);
      }
      if (clash) {
        throw new ByokError(
          'conflict',
          `a model named "${clash.name}" already exists in this workspace (${selectorOf(clash)}, vendor ${clash.vendor}); give this one another name, or update/remove that one`,
          { field: 'name', existing: selectorOf(clash), name: clash.name, reason: 'name_taken' },
        );
      }
      if (!opts.explicitId) {
        const gone = models
          .filter((m) => m.status === 'removed' && nameKey(m.name) === nameKey(name))
          .sort((a, b) => b.updated_at.localeCompare(a.updated_at))[0];
        if (gone && gone.vendor !== draft.vendor) {
          throw new ByokError(
            'conflict',
            `the name "${name}" belongs to the removed ${gone.vendor} model ${selectorOf(gone)}; it can only be reactivated with the same vendor. Choose another name.`,
            { field: 'name', existing: selectorOf(gone), name, reason: 'name_removed_other_vendor' },
          );
        }
        target = gone;
      }
      const status: ModelStatus = stored ? 'active' : 'pending_key';
      if (target) {
        const idx = models.indexOf(target);
        const m: CustomModel = structuredClone(clean({ id: target.id, ...draft, name, status, created_at: target.created_at, updated_at: at }));
        models[idx] = m;
        return { model: m, reactivated: true };
      }
      const id =
        opts.explicitId ??
        newModelId(idBase(opts.nameGiven ? name : undefined, draft.upstream_model), (c) => models.some((m) => m.id === c));
      // A deep copy: nothing in the document may share objects with the cached templates.
      const m: CustomModel = structuredClone(clean({ id, ...draft, name, status, created_at: at, updated_at: at }));
      models.push(m);
      // A stored key serves every model that uses it: siblings still waiting for it are ready too.
      if (stored && !draft.key_optional) {
        for (const s of models) if (s.status === 'pending_key' && s.api_key_env === draft.api_key_env) Object.assign(s, { status: 'active', updated_at: at });
      }
      return { model: m, reactivated: false };
    });
    const out: AddResult = { model, selector: selectorOf(model) };
    if (!stored) out.need_env_input = needEnv(model, opts);
    if (warnings.length) out.warnings = warnings;
    if (reactivated) out.reactivated = true;
    return ok(out);
  }

  function curatedOf(t: Template): VendorModel[] {
    return structuredClone(t.models).map((m) =>
      clean({ id: m.id, name: m.name, capabilities: m.capabilities, pricing: m.pricing, tee: m.tee, context_window: m.context_window, curated: true }),
    );
  }

  function teeWarning(t: Template, upstream: string, curated: TemplateModel | undefined): string | undefined {
    if (!t.models.some((m) => m.tee)) return undefined;
    if (curated?.tee) return undefined;
    return `${upstream} is not one of ${t.name}'s TEE-protected models: prompts and answers are not protected by the enclave. Registered anyway; for a third-party model prefer that vendor's own template.`;
  }

  async function discover(ws: string, t: Template, baseUrl: string, keyAllowed: boolean, envVar = t.env_var): Promise<{ models?: VendorModel[]; note?: string }> {
    const url = baseUrl.replace(/\/+$/, '') + (t.discovery_path.startsWith('/') ? t.discovery_path : `/${t.discovery_path}`);
    const host = hostOf(url) ?? 'the vendor';
    const call = async (key?: Uint8Array): Promise<{ models?: VendorModel[]; note?: string }> => {
      const headers: Record<string, string> = { accept: 'application/json', ...t.default_headers };
      if (key && key.length) {
        const k = Buffer.from(key).toString('utf8');
        if (t.auth.scheme === 'bearer') headers.authorization = `Bearer ${k}`;
        else if (t.auth.scheme === 'header') headers[(t.auth.header ?? 'x-api-key').toLowerCase()] = k;
      }
      if (t.wire === 'anthropic' && !headers['anthropic-version']) headers['anthropic-version'] = '2023-06-01';
      let res: Response;
      try {
        res = await doFetch(url, { method: 'GET', headers, redirect: 'error', signal: AbortSignal.timeout(discoveryTimeout) });
      } catch (e) {
        const name = (e as { name?: string })?.name;
        if (name === 'TimeoutError' || name === 'AbortError') return { note: `${host} did not answer within ${Math.round(discoveryTimeout / 1000)} s` };
        return { note: `could not reach ${host}` };
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel().catch(() => undefined);
        return { note: `${host} answered ${res.status}: the stored key was refused (enter a new one with the secure form)` };
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return { note: `${host} answered HTTP ${res.status} to ${t.discovery_path}` };
      }
      const text = await readCapped(res, DISCOVERY_MAX_BYTES);
      if (text === undefined) return { note: `${host} sent a model list larger than ${DISCOVERY_MAX_BYTES / 1024 / 1024} MB` };
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return { note: `${host} answered ${t.discovery_path} with something other than JSON` };
      }
      const items = extractModels(body);
      if (!items) return { note: `${host} answered ${t.discovery_path} in an unexpected shape` };
      const curated = new Map(t.models.map((m) => [m.id, m]));
      const seen = new Set<string>();
      const models: VendorModel[] = [];
      for (const it of items) {
        if (models.length >= DISCOVERY_MAX_MODELS) break;
        const id = it.id.replace(/^models\//, '');
        if (!id || id.length > 200 || seen.has(id) || BAD_CHARS.test(id)) continue;
        seen.add(id);
        const c = curated.get(id);
        models.push(
          c
            ? clean({ id, name: c.name, capabilities: c.capabilities, pricing: c.pricing, tee: c.tee, context_window: c.context_window, curated: true })
            : clean({ id, name: it.name && it.name.length <= 200 ? it.name : id, curated: false }),
        );
      }
      return { models };
    };
    if (t.auth.scheme === 'none' || !keyAllowed) return call();
    const envVars = [envVar];
    if (!(await keyStored(ws, envVars))) {
      if (t.auth.optional) return call();
      return {
        note: `no ${t.name} key stored in this workspace yet (${t.env_var}); add a ${t.name} model and enter its key through the secure form to see the live list`,
      };
    }
    const r = await keys.withKey(ws, envVar, (key) => call(key));
    return r ?? { note: `the ${envVar} key could not be read` };
  }

  const api: Registry = {
    templates() {
      try {
        const list = catalog.all().map<TemplateSummary>((t) =>
          clean({
            id: t.id,
            name: t.name,
            aliases: t.aliases,
            homepage: t.homepage,
            docs: t.docs,
            wire: t.wire,
            base_url: t.base_url,
            base_url_hint: t.base_url_hint,
            base_url_required: t.base_url === null,
            env_var: t.env_var,
            key_optional: t.auth.optional || t.auth.scheme === 'none',
            credential_kind: t.credential.kind,
            default_model: t.default_model,
            models: curatedOf(t),
            model_discovery: t.model_discovery,
            notes: t.notes,
            notes_zh: t.notes_zh,
          }),
        );
        return ok({ templates: structuredClone(list) });
      } catch (e) {
        if (e instanceof ByokError) return fail(e.code, e.message, e.details ?? {});
        return fail('internal', 'internal error (see the server log)');
      }
    },

    list_vendor_models(ws, vendor, opts = {}) {
      return guarded<VendorModels>(async () => {
        checkWorkspace(ws);
        const t = templateOrFail(vendor);
        const curated = curatedOf(t);
        const fallback = (note: string) => ok<VendorModels>({ vendor: t.id, source: 'curated', models: curated, note });
        if (!t.model_discovery) return fallback(`${t.name} has no model discovery (/models); showing the curated list`);
        const mine = (await readModels(ws)).filter((m) => m.status !== 'removed' && keyFamily(m.api_key_env) === t.env_var);
        let baseUrl = t.base_url;
        if (opts.base_url !== undefined && opts.base_url !== '') baseUrl = checkBaseUrl(opts.base_url, []);
        if (!baseUrl) baseUrl = mine.find((m) => m.vendor === t.id)?.base_url ?? null;
        if (!baseUrl) return fallback(`${t.name} needs your endpoint URL (base_url) before its models can be listed; showing the curated list`);
        // The stored key only goes to the template's host or a host a model of this workspace uses it with.
        const bound = new Set([keyHostOf(t.base_url), ...mine.map((m) => keyHostOf(m.base_url))].filter(Boolean));
        const keyAllowed = bound.has(keyHostOf(baseUrl));
        if (!keyAllowed && !(t.auth.optional || t.auth.scheme === 'none')) {
          return fallback(`the ${t.env_var} key is only sent to hosts your registered ${t.name} models use, and ${hostOf(baseUrl)} is not one; showing the curated list`);
        }
        // The key of that host (a model on another host of the vendor has a key of its own).
        const plainElsewhere = mine.some((m) => m.api_key_env === t.env_var && keyHostOf(m.base_url) !== keyHostOf(baseUrl));
        const envVar = mine.find((m) => keyHostOf(m.base_url) === keyHostOf(baseUrl))?.api_key_env ?? (plainElsewhere ? hostKeyName(t.env_var, keyHostOf(baseUrl) ?? 'host') : t.env_var);
        const r = await discover(ws, t, baseUrl, keyAllowed, envVar);
        if (!r.models) return fallback(`${r.note}; showing the curated list`);
        if (!r.models.length) return fallback(`${hostOf(baseUrl)} listed no models; showing the curated list`);
        return ok<VendorModels>({ vendor: t.id, source: 'live', models: structuredClone(r.models) });
      });
    },

    add_template(ws, vendor, opts = {}) {
      return guarded(async () => {
        checkWorkspace(ws);
        if (typeof opts !== 'object' || opts === null) throw invalid('options must be an object');
        const t = templateOrFail(vendor);
        const warnings: string[] = [];
        const placeholder = t.models.find((m) => m.id === t.default_model)?.notes?.some((n) => /placeholder/i.test(n));
        if (opts.upstream_model === undefined && placeholder && t.id === 'openai-compatible') {
          throw invalid(`${t.name} needs upstream_model: the exact model name your server serves (e.g. llama3.1:8b for Ollama)`, {
            field: 'upstream_model',
          });
        }
        const upstream = opts.upstream_model !== undefined ? checkUpstreamModel(opts.upstream_model) : t.default_model;
        let baseUrl: string;
        // Your other models of this vendor all on one other host (the mainland endpoint, an
        // edited base URL): a new one goes there too, with the key you already use there.
        const siblingHosts = new Map((await readModels(ws)).filter((m) => m.status !== 'removed' && m.vendor === t.id).map((m) => [keyHostOf(m.base_url), m.base_url]));
        const sibling = siblingHosts.size === 1 ? [...siblingHosts.values()][0] : undefined;
        if (opts.base_url !== undefined && opts.base_url !== null && opts.base_url !== '') baseUrl = checkBaseUrl(opts.base_url, warnings);
        else if (t.base_url && sibling && keyHostOf(sibling) !== keyHostOf(t.base_url)) {
          baseUrl = sibling;
          warnings.push(`uses ${hostOf(sibling)} like your other ${t.name} models; pass base_url for another endpoint`);
        } else if (t.base_url) baseUrl = t.base_url;
        else if (sibling) baseUrl = sibling;
        else {
          throw invalid(`${t.name} needs a base_url: ${t.base_url_hint ?? 'the endpoint root URL'}`, { field: 'base_url' });
        }
        const curated = t.models.find((m) => m.id === upstream);
        if (!curated) {
          warnings.push(
            `${upstream} is not in ${t.name}'s curated list: capabilities default to json+tools (no vision, no reasoning) and no pricing; adjust them with /byok set <id> <field> <value> in chat or byok update in the CLI`,
          );
        }
        const tee = teeWarning(t, upstream, curated);
        if (tee) warnings.push(tee);
        const settings = { ...t.settings };
        if (opts.settings !== undefined) {
          if (typeof opts.settings !== 'object' || opts.settings === null) throw invalid('settings must be an object', { field: 'settings' });
          for (const [k, v] of Object.entries(opts.settings)) {
            if (!(k in t.settings)) throw invalid(`${t.name} has no setting "${k.slice(0, 40)}" (known: ${Object.keys(t.settings).join(', ') || 'none'})`, { field: 'settings' });
            if (typeof v !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(v)) throw invalid(`settings.${k} must be a short plain value`, { field: 'settings' });
            settings[k] = v;
          }
        }
        if ('region' in settings && opts.settings?.region === undefined) {
          const region = hostOf(baseUrl)?.match(/^bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com$/)?.[1];
          if (region) settings.region = region;
        }
        const query = { ...t.default_query };
        if (opts.query !== undefined) {
          if (typeof opts.query !== 'object' || opts.query === null) throw invalid('query must be an object', { field: 'query' });
          for (const [k, v] of Object.entries(checkQuery(opts.query))) {
            if (!(k in t.default_query)) throw invalid(`${t.name} has no query parameter "${k.slice(0, 40)}" (known: ${Object.keys(t.default_query).join(', ') || 'none'})`, { field: 'query' });
            query[k] = v;
          }
        }
        let tokenUrl: string | undefined;
        if (opts.token_url !== undefined && opts.token_url !== '') {
          if (!t.credential.oauth) throw invalid(`${t.name} has no token endpoint (token_url is for OAuth credential files)`, { field: 'token_url' });
          tokenUrl = checkBaseUrl(opts.token_url, warnings);
        }
        const nameGiven = opts.name !== undefined;
        const name = nameGiven ? checkName(opts.name) : checkName(curated?.name ?? upstream);
        const altName = nameGiven ? undefined : checkName(`${name} (${t.id})`.slice(0, 64));
        const maxTokens =
          opts.max_tokens !== undefined
            ? checkMaxTokens(opts.max_tokens)
            : Math.min(t.default_max_tokens ?? DEFAULT_MAX_TOKENS, curated?.max_output_tokens ?? Number.MAX_SAFE_INTEGER);
        const draft: Draft = {
          name,
          vendor: t.id,
          wire: t.wire,
          upstream_model: upstream,
          base_url: baseUrl,
          api_key_env: t.env_var,
          extra_env_vars: [...t.extra_env_vars],
          key_optional: t.auth.optional || t.auth.scheme === 'none',
          credential_kind: t.credential.kind,
          ...(t.credential.oauth && { oauth: { ...t.credential.oauth, ...(tokenUrl && { token_url: tokenUrl }) } }),
          headers: { ...t.default_headers },
          query,
          settings,
          request_fields: {},
          thinking: curated?.thinking ?? t.thinking,
          max_tokens: maxTokens,
          capabilities: curated ? { ...curated.capabilities } : { ...DEFAULT_CAPABILITIES },
          pricing: curated?.pricing,
        };
        return register(
          ws,
          draft,
          { explicitId: opts.id !== undefined ? checkModelId(opts.id) : undefined, nameGiven, altName, vendorLabel: t.name, homepage: t.homepage },
          warnings,
        );
      });
    },

    parse_example(text) {
      try {
        if (typeof text !== 'string') return fail('invalid_input', 'api_example must be text (a curl / Python / JavaScript example)', { reason: 'example_not_text' });
        return parseExample(text);
      } catch (e) {
        if (e instanceof ByokError) return fail(e.code, e.message, e.details ?? {});
        return fail('internal', 'internal error (see the server log)');
      }
    },

    add(ws, args) {
      return guarded(async () => {
        checkWorkspace(ws);
        if (typeof args !== 'object' || args === null) throw invalid('add needs {upstream_model, base_url, ...}');
        const warnings: string[] = [];
        const upstream = checkUpstreamModel(args.upstream_model);
        const baseUrl = checkBaseUrl(args.base_url, warnings);
        const wire = args.wire ?? 'openai';
        if (!WireId.safeParse(wire).success) throw invalid('wire must be openai, anthropic or azure-openai', { field: 'wire' });
        if (wire === 'bedrock') {
          throw invalid('Bedrock needs AWS credentials and a region: use add_template("bedrock", {upstream_model, base_url})', { field: 'wire' });
        }
        if (wire === 'gemini-code-assist') {
          // Code Assist takes only a Gemini CLI login file, never a plain key.
          throw invalid('the Code Assist API needs a Gemini CLI login: use add_template("gemini-cli")', { field: 'wire' });
        }
        const host = hostOf(baseUrl)!;
        const sameHost = catalog.any().find((t) => t.base_url && hostOf(t.base_url) === host);
        const ownerOf = (v: string) => catalog.any().find((t) => t.env_var === v && t.base_url && hostOf(t.base_url) !== host && !(sameHost && sameHost.env_var === v));
        // A stored key is bound to one host: pick a key name no other host uses. An explicit name
        // that belongs to another host (a curated vendor's key, or another endpoint's) is
        // replaced by a host-specific one, with a warning, so a key never leaks to this host.
        const requested = args.api_key_env !== undefined ? checkEnvVar(args.api_key_env) : undefined;
        const ks = await keyState(ws);
        const bound = bindingsOf(ks.models, ks.keyHosts, ks.stored);
        const usedElsewhere = (v: string) => !!ownerOf(v) || bound.some((b) => b.name === v && b.host !== keyHostOf(baseUrl));
        const long = host.replace(/\.[a-z]+(:\d+)?$/, '').toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 48);
        const candidates = [requested, sameHost?.env_var, envVarFromHost(host), /^[A-Z]/.test(long) ? `${long}_API_KEY` : undefined].filter(
          (v): v is string => !!v,
        );
        const last = candidates[candidates.length - 1]!;
        for (let i = 2; i < 10; i++) candidates.push(`${last}_${i}`);
        const apiKeyEnv = candidates.find((v) => !usedElsewhere(v));
        if (!apiKeyEnv) throw new ByokError('conflict', `no free key name for ${host}; pass api_key_env with a name of your own`, { field: 'api_key_env', reason: 'no_key_name' });
        if (requested && apiKeyEnv !== requested) {
          const owner = ownerOf(requested);
          warnings.push(
            `${requested} is ${owner ? `the ${owner.name} key` : 'already the key of another endpoint'} and is only sent to its own host; this endpoint's key is stored as ${apiKeyEnv}`,
          );
        }
        if (sameHost) warnings.push(`${host} is the curated vendor ${sameHost.id}: add_template("${sameHost.id}") pre-fills thinking, capabilities and pricing`);
        const nameGiven = args.name !== undefined;
        const name = nameGiven ? checkName(args.name) : checkName(upstream.length <= 64 ? upstream : upstream.split('/').pop()!.slice(0, 64));
        const thinking = args.thinking !== undefined ? checkThinking(args.thinking) : { style: 'none' as const };
        const draft: Draft = {
          name,
          vendor: 'custom',
          wire,
          upstream_model: upstream,
          base_url: baseUrl,
          api_key_env: apiKeyEnv,
          extra_env_vars: [],
          key_optional: args.key_optional === true,
          headers: checkHeaders(args.headers),
          query: checkQuery(args.query),
          settings: {},
          request_fields: checkRequestFields(args.request_fields, warnings),
          thinking,
          max_tokens: args.max_tokens !== undefined ? checkMaxTokens(args.max_tokens) : DEFAULT_MAX_TOKENS,
          capabilities: checkCapabilities(args.capabilities, { ...DEFAULT_CAPABILITIES, reasoning: thinking.style !== 'none' }),
          pricing: args.pricing !== undefined ? checkPricing(args.pricing) : undefined,
        };
        return register(
          ws,
          draft,
          { explicitId: args.id !== undefined ? checkModelId(args.id) : undefined, nameGiven, vendorLabel: host },
          warnings,
        );
      });
    },

    list_models(ws, opts = {}) {
      return guarded(async () => {
        checkWorkspace(ws);
        const models = await readModels(ws);
        return ok({ models: opts.include_removed ? models : models.filter((m) => m.status !== 'removed') });
      });
    },

    get(ws, modelId) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const models = await readModels(ws);
        const model = models.find((m) => m.id === id);
        if (!model) {
          const nf = notFound(ws, id, models);
          return nf;
        }
        return ok({ model });
      });
    },

    remove(ws, modelId) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel; already_removed?: boolean }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return ok({ model: m, already_removed: true });
          m.status = 'removed';
          m.updated_at = at;
          return ok({ model: m });
        });
      });
    },

    update(ws, modelId, changes) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) throw invalid('changes must be an object');
        const allowed = new Set(['name', 'upstream_model', 'base_url', 'max_tokens', 'capabilities', 'pricing', 'reasoning_param']);
        const immutable = new Set(['id', 'vendor', 'wire', 'api_key_env', 'extra_env_vars', 'key_optional', 'created_at']);
        const current = (await readModels(ws)).find((m) => m.id === id);
        for (const [k, v] of Object.entries(changes)) {
          if (v === undefined) continue;
          if (immutable.has(k)) {
            if (current && JSON.stringify((current as unknown as Record<string, unknown>)[k]) === JSON.stringify(v)) continue;
            throw new ByokError(
              'immutable',
              `${k} is permanent once a model is registered; remove ${current ? selectorOf(current) : 'the model'} and add a new one instead`,
              { field: k },
            );
          }
          if (!allowed.has(k)) throw invalid(`cannot change "${k.slice(0, 40)}"; updatable: ${[...allowed].join(', ')}`, { field: k });
        }
        const warnings: string[] = [];
        const c = changes as Record<string, unknown>;
        const name = c.name !== undefined ? checkName(c.name) : undefined;
        const upstream = c.upstream_model !== undefined ? checkUpstreamModel(c.upstream_model) : undefined;
        let baseUrl: string | undefined;
        if (c.base_url !== undefined) {
          if (c.base_url === null || c.base_url === '') throw invalid('base_url cannot be cleared; give the endpoint root URL', { field: 'base_url' });
          baseUrl = checkBaseUrl(c.base_url, warnings);
        }
        // Another host: the model takes the key names of that host (its own key, asked for through
        // the form when not stored); the key stored for the old host is never sent to the new one.
        let rebind: { names: KeyNames; stored: boolean; keyStoredSet: Set<string> } | undefined;
        if (baseUrl !== undefined && current && current.status !== 'removed' && keyHostOf(baseUrl) !== keyHostOf(current.base_url)) {
          const ks = await keyState(ws);
          const plain = { api_key_env: keyFamily(current.api_key_env), extra_env_vars: current.extra_env_vars.map(keyFamily) };
          // The model's own stored key stays bound to the host it leaves.
          const bindings = bindingsOf(ks.models, { ...ks.keyHosts, ...oldHostOf(current, ks.stored) }, ks.stored, current.id);
          const names = keyNamesAt(bindings, plain, baseUrl);
          const stored = current.key_optional || (await keyStored(ws, [names.api_key_env, ...names.extra_env_vars]));
          rebind = { names, stored, keyStoredSet: ks.stored };
        }
        const maxTokens = c.max_tokens !== undefined ? checkMaxTokens(c.max_tokens) : undefined;
        if (c.capabilities !== undefined) checkCapabilities(c.capabilities, DEFAULT_CAPABILITIES);
        const pricing = c.pricing === undefined ? undefined : c.pricing === null ? null : checkPricing(c.pricing);
        const at = now().toISOString();
        const r = await mutateModels(ws, (models, keyHosts): Result<{ model: CustomModel; need_env_input?: NeedEnvInput }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return fail('not_found', `${selectorOf(m)} was removed; add it again to reactivate it, then update`);
          let need: NeedEnvInput | undefined;
          if (name !== undefined) {
            const clash = models.find((x) => x.id !== m.id && x.status !== 'removed' && nameKey(x.name) === nameKey(name));
            if (clash) throw new ByokError('conflict', `a model named "${clash.name}" already exists (${selectorOf(clash)}); choose another name`, { field: 'name', existing: selectorOf(clash), name: clash.name, reason: 'name_taken' });
            m.name = name;
          }
          if (baseUrl !== undefined) {
            if (rebind && keyHostOf(baseUrl) !== keyHostOf(m.base_url)) {
              const { names } = rebind;
              // The key stored for the old host stays bound there, used by a model or not.
              Object.assign(keyHosts, oldHostOf(m, rebind.keyStoredSet));
              checkKeyHost(models, keyHosts, rebind.keyStoredSet, names.api_key_env, baseUrl, m.id);
              if (names.api_key_env !== m.api_key_env) {
                warnings.push(`${hostOf(baseUrl)} uses its own key, ${names.api_key_env}${rebind.stored ? ', already stored' : ': enter it through the secure form'}; ${m.api_key_env} stays with ${hostOf(m.base_url)}`);
              }
              m.api_key_env = names.api_key_env;
              m.extra_env_vars = [...names.extra_env_vars];
              recordKeyHost(keyHosts, { ...m, base_url: baseUrl });
              if (!rebind.stored) {
                applyStatus(m, 'pending_key', undefined, at);
                const t = templateById(m.vendor);
                need = needEnv({ ...m, base_url: baseUrl }, { nameGiven: true, vendorLabel: t?.name ?? hostOf(baseUrl) ?? m.vendor, homepage: t?.homepage });
              } else if (m.status !== 'validating') applyStatus(m, 'active', undefined, at);
            } else if (rebind === undefined && keyHostOf(baseUrl) !== keyHostOf(m.base_url)) {
              throw new ByokError('conflict', `${selectorOf(m)} changed meanwhile; send the update again`, { field: 'base_url', reason: 'changed_meanwhile' });
            }
            m.base_url = baseUrl;
          }
          // A model the vendor did not know, now pointing elsewhere: to be proven again, not kept broken.
          if (m.status === 'model_problem' && (upstream !== undefined || baseUrl !== undefined)) applyStatus(m, 'active', undefined, at);
          if (upstream !== undefined && upstream !== m.upstream_model) {
            m.upstream_model = upstream;
            const t = templateById(m.vendor);
            if (t) {
              const curated = t.models.find((x) => x.id === upstream);
              m.thinking = structuredClone(curated?.thinking ?? t.thinking);
              if (curated && c.capabilities === undefined) m.capabilities = { ...curated.capabilities };
              if (c.pricing === undefined) {
                if (curated?.pricing) m.pricing = { ...curated.pricing };
                else delete m.pricing;
              }
              if (!curated) warnings.push(`${upstream} is not in ${t.name}'s curated list; check capabilities and pricing`);
              const tee = teeWarning(t, upstream, curated);
              if (tee) warnings.push(tee);
            }
          }
          if (maxTokens !== undefined) m.max_tokens = maxTokens;
          if (c.capabilities !== undefined) m.capabilities = checkCapabilities(c.capabilities, m.capabilities);
          if (pricing === null) delete m.pricing;
          else if (pricing !== undefined) m.pricing = pricing;
          if (c.reasoning_param !== undefined) applyReasoningParam(m, c.reasoning_param, (c.capabilities as Partial<Capabilities> | undefined)?.reasoning === undefined, templateById(m.vendor));
          m.updated_at = at;
          return ok({ model: m, ...(need && { need_env_input: need }) });
        });
        if (r.ok && warnings.length) return ok({ ...r, warnings });
        return r;
      });
    },

    set_status(ws, modelId, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        if (!STATUSES.includes(status)) throw invalid(`status must be one of ${STATUSES.join(', ')}`, { field: 'status' });
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed' && status !== 'removed') {
            return fail('conflict', `${selectorOf(m)} was removed meanwhile; its status is left as is`, { reason: 'removed_meanwhile' });
          }
          applyStatus(m, status, err, at);
          return ok({ model: m });
        });
      });
    },

    set_key_status(ws, envVar, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const v = checkEnvVar(envVar);
        if (!STATUSES.includes(status) || status === 'removed') throw invalid('status must be pending_key, validating, active, key_error or model_problem', { field: 'status' });
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models) => {
          const hit = models.filter((m) => m.status !== 'removed' && (m.api_key_env === v || m.extra_env_vars.includes(v)) && !keepsModelProblem(m, status));
          for (const m of hit) applyStatus(m, status, err, at);
          return ok({ models: hit });
        });
      });
    },

    set_status_and_key(ws, modelId, envVar, status, lastError) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const v = checkEnvVar(envVar);
        if (!STATUSES.includes(status) || status === 'removed') throw invalid('status must be pending_key, validating, active, key_error or model_problem', { field: 'status' });
        const err = lastError !== undefined ? checkLastError(lastError) : undefined;
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel; models: CustomModel[] }> => {
          const m = models.find((x) => x.id === id);
          let modelPart: Fail | undefined;
          if (!m) modelPart = notFound(ws, id, models);
          else if (m.status === 'removed') modelPart = fail('conflict', `${selectorOf(m)} was removed meanwhile; its status is left as is`, { reason: 'removed_meanwhile' });
          else applyStatus(m, status, err, at);
          const hit = models.filter((x) => x.status !== 'removed' && (x.api_key_env === v || x.extra_env_vars.includes(v)) && (x === m || !keepsModelProblem(x, status)));
          for (const x of hit) applyStatus(x, status, err, at);
          return modelPart ?? ok({ model: m!, models: hit });
        });
      });
    },

    record_key_attempt(ws, modelId, attempt) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        if (typeof attempt?.outcome !== 'string' || !/^[a-z_]{1,40}$/.test(attempt.outcome)) throw invalid('attempt.outcome must be a short snake_case code', { field: 'last_key_attempt' });
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          m.last_key_attempt = { outcome: attempt.outcome, at };
          return ok({ model: m });
        });
      });
    },

    use_credential(ws, modelId, credential) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const kind = credential?.kind;
        if (!(['api_key', 'aws_keypair', 'bearer', 'oauth_json'] as const).includes(kind)) throw invalid('credential.kind must be api_key, aws_keypair, bearer or oauth_json', { field: 'credential_kind' });
        const env = checkEnvVar(credential.api_key_env);
        if (!Array.isArray(credential.extra_env_vars) || credential.extra_env_vars.length > 7) throw invalid('extra_env_vars must be a list of env var names', { field: 'extra_env_vars' });
        const extra = credential.extra_env_vars.map(checkEnvVar);
        const at = now().toISOString();
        const ks = await keyState(ws);
        return mutateModels(ws, (models): Result<{ model: CustomModel; models: CustomModel[] }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return fail('conflict', `${selectorOf(m)} was removed meanwhile; its credential is left as is`, { reason: 'removed_meanwhile' });
          // The models that shared the old key follow it: one key per vendor in a workspace.
          const hit = models.filter((x) => x.id === m.id || (x.status !== 'removed' && x.vendor === m.vendor && x.api_key_env === m.api_key_env));
          for (const x of hit) checkKeyHost(models.filter((y) => !hit.includes(y)), {}, ks.stored, env, x.base_url);
          for (const x of hit) {
            x.credential_kind = kind;
            x.api_key_env = env;
            x.extra_env_vars = [...extra];
            x.updated_at = at;
          }
          return ok({ model: m, models: hit });
        });
      });
    },

    resolve(ws, selector) {
      return guarded(async () => {
        checkWorkspace(ws);
        const q = stripSelector(selector, 'selector');
        const models = await readModels(ws);
        const live = models.filter((m) => m.status !== 'removed');
        const model =
          live.find((m) => m.id === q) ??
          live.find((m) => m.name.toLowerCase() === q.toLowerCase()) ??
          live.find((m) => nameKey(m.name) === nameKey(q));
        if (!model) return notFound(ws, q, models);
        return ok({ model });
      });
    },
  };
  return api;
}

function checkLastError(e: unknown): { code: string; message: string } {
  if (typeof e !== 'object' || e === null) throw invalid('last_error must be {code, message}', { field: 'last_error' });
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== 'string' || !/^[a-z_]{1,40}$/.test(code)) throw invalid('last_error.code must be a short snake_case code', { field: 'last_error' });
  let msg = typeof message === 'string' ? message.replace(BAD_CHARS, ' ').slice(0, 300) : '';
  // Vendors sometimes quote (part of) the key back; never keep anything key-like.
  msg = msg.replace(/\S+/g, (w) => (looksLikeKey(w) ? '[redacted]' : w));
  return { code, message: msg };
}

/** A good key does not make a model the vendor does not serve ready: only a probe of that model does. */
function keepsModelProblem(m: CustomModel, status: ModelStatus): boolean {
  return m.status === 'model_problem' && status === 'active';
}

function applyStatus(m: CustomModel, status: ModelStatus, err: { code: string; message: string } | undefined, at: string): void {
  m.status = status;
  if (err) m.last_error = { ...err, at };
  else if (status === 'active') delete m.last_error;
  m.updated_at = at;
}

async function readCapped(res: Response, max: number): Promise<string | undefined> {
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > max) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** OpenAI/Anthropic `{data: [...]}`, Ollama-style `{models: [...]}`, or a bare array. */
function extractModels(body: unknown): Array<{ id: string; name?: string }> | undefined {
  const arr = Array.isArray(body)
    ? body
    : body && typeof body === 'object'
      ? (Array.isArray((body as { data?: unknown }).data) ? (body as { data: unknown[] }).data : (body as { models?: unknown }).models)
      : undefined;
  if (!Array.isArray(arr)) return undefined;
  const out: Array<{ id: string; name?: string }> = [];
  for (const it of arr) {
    if (typeof it === 'string') out.push({ id: it });
    else if (it && typeof it === 'object') {
      const o = it as Record<string, unknown>;
      const id = typeof o.id === 'string' ? o.id : typeof o.name === 'string' ? o.name : typeof o.model === 'string' ? o.model : undefined;
      if (!id) continue;
      const name = typeof o.display_name === 'string' ? o.display_name : typeof o.name === 'string' && o.name !== id ? o.name : undefined;
      out.push(name ? { id, name } : { id });
    }
  }
  return out;
}
