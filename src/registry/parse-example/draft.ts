/** Draft assembly: URL, wire, headers, model, thinking and request fields from what was read. */
import { fail, ok, type Result } from '../../result.ts';
import type { ThinkingRule } from '../../vendors/template-schema.ts';
import { firstUrl, resolveKey, resolveVar, strOf } from './code.ts';
import {
  AUTH_HEADER_RE,
  BOILERPLATE_HEADERS,
  envFromHost,
  envHintsInText,
  looksLikeKey,
  leaks,
  noteKey,
  scanLooseKeys,
  scrubFields,
} from './keys.ts';
import { Expr, isObj, MAX_DEPTH, ParseError, Tpl, UNSAFE_KEYS, type Obj, type Val } from './literal.ts';
import { KEY_DROPPED_WARNING, type Ctx, type ExampleDraft } from './types.ts';

const OPENAI_STANDARD = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'stream', 'stream_options', 'temperature', 'top_p', 'n',
  'stop', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'top_logprobs', 'user', 'seed', 'tools',
  'tool_choice', 'parallel_tool_calls', 'response_format', 'functions', 'function_call', 'store', 'metadata',
  'modalities', 'audio', 'prediction', 'service_tier', 'reasoning_effort', 'verbosity', 'web_search_options', 'prompt',
  'input', 'instructions', 'max_output_tokens', 'safety_identifier', 'prompt_cache_key', 'suffix', 'echo', 'best_of',
]);
const ANTHROPIC_STANDARD = new Set([
  'model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'stream', 'temperature', 'top_p', 'top_k', 'metadata',
  'tools', 'tool_choice', 'thinking', 'service_tier', 'container', 'mcp_servers',
]);

const EFFORTS = ['minimal', 'low', 'medium', 'high'] as const;
type Effort = (typeof EFFORTS)[number];
function effortOf(v: unknown): Effort | undefined {
  return typeof v === 'string' && (EFFORTS as readonly string[]).includes(v) ? (v as Effort) : undefined;
}
function posInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

function detectThinking(body: Obj, wire: ExampleDraft['wire'], endpoint: Ctx['endpoint']): ThinkingRule | undefined {
  const th = body.thinking;
  if (isObj(th)) {
    const type = typeof th.type === 'string' ? th.type : undefined;
    const budget = posInt(th.budget_tokens);
    if (type === 'adaptive') {
      // Claude 4.6+: `{type: adaptive}` + `output_config.effort`, no budget (Opus 4.7+ refuse
      // `enabled`). Elsewhere (a proxy's own dialect) the field is kept verbatim, not rewritten.
      if (wire !== 'anthropic') return undefined;
      const oc = body.output_config;
      const eff = isObj(oc) ? effortOf(oc.effort) : undefined;
      return { style: 'anthropic_budget', adaptive: true, default_on: true, ...(eff ? { default_effort: eff } : {}) };
    }
    if (budget !== undefined) {
      return { style: 'anthropic_budget', budget_tokens: budget, ...(type ? { default_on: type === 'enabled' } : {}) };
    }
    // Anthropic requires budget_tokens with `enabled`: without one in the example the rule
    // has none, and the request gets one sized from max_tokens (see vendors/thinking.ts).
    if (wire === 'anthropic' && (type === 'enabled' || type === 'disabled')) return { style: 'anthropic_budget', default_on: type === 'enabled' };
    if (type) return { style: 'thinking_type', default_on: type !== 'disabled' };
  }
  if (typeof body.enable_thinking === 'boolean') {
    return { style: 'enable_thinking', param: 'enable_thinking', default_on: body.enable_thinking };
  }
  const ctk = body.chat_template_kwargs;
  if (isObj(ctk)) {
    const keys = Object.keys(ctk).filter((k) => typeof ctk[k] === 'boolean');
    const p = keys.find((k) => /think|reason/i.test(k)) ?? keys[0];
    if (p) return { style: 'nearai_chat_template', param: p, default_on: ctk[p] as boolean };
  }
  const r = body.reasoning;
  if (isObj(r)) {
    const eff = effortOf(r.effort);
    if (endpoint === 'responses' && wire !== 'anthropic') {
      return { style: 'reasoning_effort', ...(eff ? { default_effort: eff } : {}) };
    }
    const mt = posInt(r.max_tokens);
    return {
      style: 'openrouter_reasoning',
      ...(eff ? { default_effort: eff } : {}),
      ...(mt ? { budget_tokens: mt } : {}),
      ...(typeof r.enabled === 'boolean' ? { default_on: r.enabled } : {}),
    };
  }
  if (body.reasoning_effort !== undefined) {
    const eff = effortOf(body.reasoning_effort);
    return { style: 'reasoning_effort', ...(eff ? { default_effort: eff } : {}) };
  }
  return undefined;
}

/** Val -> JSON value; expressions are dropped (undefined). */
function toJson(v: Val, dropped: string[], path: string, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new ParseError('too deep');
  if (v instanceof Expr) {
    dropped.push(path);
    return undefined;
  }
  if (v instanceof Tpl) return v.text;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const x of v) {
      const j = toJson(x, dropped, path, depth + 1);
      if (j !== undefined) out.push(j);
    }
    return out;
  }
  if (isObj(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const j = toJson(x, dropped, `${path}.${k}`, depth + 1);
      if (j !== undefined) out[k] = j;
    }
    return out;
  }
  return v;
}

const ENDPOINT_SUFFIX_RE = /\/(?:chat\/completions|messages|completions|responses|text\/chatcompletion_v2)$/;

export function build(ctx: Ctx): Result<{ draft: ExampleDraft; warnings: string[] }> {
  const warnings = ctx.warnings;
  const body: Obj = ctx.body ?? {};

  // --- URL
  let rawUrl = ctx.url;
  if (rawUrl === undefined) {
    const env = /\b[A-Z_]*BASE_URL\s*=\s*["']?(https?:\/\/[^\s"']+)/.exec(ctx.text);
    if (env) rawUrl = env[1];
    else if (ctx.sdk === 'openai') rawUrl = 'https://api.openai.com/v1';
    else if (ctx.sdk === 'anthropic') rawUrl = 'https://api.anthropic.com';
    else rawUrl = firstUrl(ctx.text);
  }
  if (rawUrl === undefined || rawUrl.trim() === '') {
    return fail(
      'invalid_input',
      'No endpoint URL was found in the example. Paste a curl, Python or JavaScript example that contains the full https:// URL of the API (or the SDK base_url).',
      { reason: 'example_no_url' },
    );
  }
  rawUrl = rawUrl.trim();
  if (/^[$%<{]/.test(rawUrl)) {
    return fail(
      'invalid_input',
      'The endpoint URL in the example starts with a placeholder or environment variable. Replace it with the real https:// address of the endpoint and paste the example again.',
      { reason: 'example_url_placeholder' },
    );
  }
  if (!/^https?:\/\//i.test(rawUrl) && /^[a-z0-9.-]+\.[a-z]{2,}(?::\d+)?(\/|$)/i.test(rawUrl)) rawUrl = 'https://' + rawUrl;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return fail(
      'invalid_input',
      'The endpoint URL in the example is not a valid http(s) URL (a placeholder in the host name?). Put the real address in and paste the example again.',
      { reason: 'example_url_invalid' },
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail('invalid_input', 'The endpoint URL in the example must start with https://.', { reason: 'example_url_scheme' });
  }
  if (/[{}<>$]|%7B|%7D|%3C|%3E|%24/i.test(url.hostname)) {
    return fail(
      'invalid_input',
      'The endpoint host in the example is a placeholder. Replace it with the real host name (for Azure, your resource name) and paste the example again.',
      { reason: 'example_host_placeholder' },
    );
  }
  // Query parameters: keep Azure's api-version; anything key-like counts as a key.
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (/^api-version$/i.test(k)) query['api-version'] = v;
    else if (/key|token|secret|sig/i.test(k)) noteKey(ctx, v);
  }
  if (ctx.azureApiVersion && !query['api-version']) query['api-version'] = ctx.azureApiVersion;
  let path = url.pathname.replace(/\/+$/, '');
  let suffix = '';
  const sm = ENDPOINT_SUFFIX_RE.exec(path);
  if (sm) {
    suffix = sm[0];
    path = path.slice(0, sm.index);
  }
  if (url.username || url.password) noteKey(ctx, decodeURIComponent(url.password || url.username));
  const host = url.hostname.toLowerCase();
  const isAzureHost = /(^|\.)openai\.azure\.com$|(^|\.)cognitiveservices\.azure\.com$/.test(host);
  if (ctx.sdk === 'anthropic' && !suffix && !/\/v1$/.test(path)) path += '/v1';
  // Azure (matches the azure-openai wire): a deployments URL becomes the resource root plus
  // upstream_model = deployment name; the v1 API keeps `<resource>/openai/v1`. The AzureOpenAI
  // SDK without api_version talks to v1.
  let azureDeployment: string | undefined;
  if (isAzureHost || ctx.sdk === 'azure') {
    const dm = /^(.*?)\/openai\/deployments\/([^/]+)/.exec(path);
    if (dm) {
      azureDeployment = safeDecode(dm[2]!);
      path = dm[1]!;
    } else if (ctx.sdk === 'azure' && !/\/openai(\/|$)/.test(path)) {
      if (ctx.azureDeployment) azureDeployment = ctx.azureDeployment;
      else if (Object.keys(query).length === 0) path += '/openai/v1';
    }
  }
  const base_url = `${url.protocol}//${url.host}${path}`;

  // --- wire
  const headerNames = ctx.headers.map(([k]) => k.toLowerCase());
  let wire: ExampleDraft['wire'];
  if (isAzureHost || ctx.sdk === 'azure') wire = 'azure-openai';
  else if (
    suffix === '/messages' ||
    ctx.sdk === 'anthropic' ||
    ctx.endpoint === 'messages' ||
    headerNames.includes('x-api-key') ||
    headerNames.includes('anthropic-version')
  )
    wire = 'anthropic';
  else wire = 'openai';

  // --- headers (auth dropped, boilerplate dropped)
  const headers: Record<string, string> = {};
  let placeholderHeader = false;
  for (const [name, v] of ctx.headers) {
    const lower = name.toLowerCase();
    if (AUTH_HEADER_RE.test(name)) {
      noteKey(ctx, ctx.source === 'curl' ? v : resolveKey(ctx, v, ctx.source === 'python' ? 'python' : 'js'));
      continue;
    }
    if (BOILERPLATE_HEADERS.has(lower)) continue;
    const s = strOf(v);
    if (s === undefined) {
      if (v instanceof Expr) placeholderHeader = true;
      continue;
    }
    if (UNSAFE_KEYS.has(name) || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
    headers[name] = s;
    if (/[$<>{}]/.test(s)) placeholderHeader = true;
  }
  if (placeholderHeader) {
    warnings.push('Some header values in the example are placeholders (e.g. your site URL or app name); edit them before use.');
  }

  // --- model
  let model: string | undefined;
  const mv = body.model;
  if (typeof mv === 'string') model = mv;
  else if (mv instanceof Expr && /^[A-Za-z_$][\w$]*$/.test(mv.text)) {
    const r = strOf(resolveVar(ctx.text, mv.text, ctx.source === 'python' ? 'python' : 'js'));
    if (r !== undefined) model = r;
  }
  if (azureDeployment !== undefined) {
    if (model !== undefined && model !== azureDeployment) {
      warnings.push('On Azure the deployment name in the URL selects the model; it was used as the model instead of the "model" field.');
    }
    model = azureDeployment;
  }
  model = model?.trim();
  if (!model) {
    return fail(
      'invalid_input',
      ctx.bodyUnreadable
        ? 'No model name was found: the request body in the example could not be read (is it in a separate file, e.g. -d @body.json?). Paste the example with the JSON body inline, including "model".'
        : 'No model name was found in the example: expected a "model" field in the request body (curl -d / json= / body:) or model=... in the SDK call. Add the model id and paste the example again.',
      { reason: ctx.bodyUnreadable ? 'example_body_unreadable' : 'example_no_model' },
    );
  }
  if (/^[$<{]|\$\{|<[^>]*>|\{\{/.test(model)) {
    return fail(
      'invalid_input',
      'The model name in the example is a placeholder. Replace it with the model id from the vendor (the "model" field of the request) and paste the example again.',
      { reason: 'example_model_placeholder' },
    );
  }
  if (model.length > 200) return fail('invalid_input', 'The model name in the example is too long to be a model id.', { reason: 'example_model_too_long' });

  // --- thinking, request fields, max_tokens
  const thinking = detectThinking(body, wire, ctx.endpoint ?? (suffix === '/responses' ? 'responses' : undefined));
  const standard = wire === 'anthropic' ? ANTHROPIC_STANDARD : OPENAI_STANDARD;
  const request_fields: Record<string, unknown> = {};
  const droppedVars: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (standard.has(k) && !(k === 'thinking' && wire === 'anthropic' && thinking?.style !== 'anthropic_budget')) continue;
    if (ctx.endpoint === 'responses' && k === 'reasoning' && thinking?.style === 'reasoning_effort') continue;
    const j = toJson(v, droppedVars, k);
    if (j !== undefined) request_fields[k] = j;
  }
  // Adaptive thinking's effort lives in the rule (sent only while thinking is on).
  const oc = request_fields.output_config;
  if (thinking?.adaptive && thinking.default_effort && oc && typeof oc === 'object' && !Array.isArray(oc)) {
    const { effort: _effort, ...rest } = oc as Record<string, unknown>;
    if (Object.keys(rest).length) request_fields.output_config = rest;
    else delete request_fields.output_config;
  }
  if (droppedVars.length > 0) {
    warnings.push(
      `Some request fields refer to variables in the example and were not kept (${droppedVars.slice(0, 5).join(', ')}); set them by hand if you need them.`,
    );
  }
  const max_tokens =
    posInt(body.max_tokens) ?? posInt(body.max_completion_tokens) ?? posInt(body.max_output_tokens);

  // --- env var
  let api_key_env: string;
  const hostEnv = envFromHost(host);
  const named = ctx.envFromKey[0] ?? envHintsInText(ctx.text)[0];
  api_key_env = named ?? hostEnv;
  const otherVendor =
    (api_key_env === 'OPENAI_API_KEY' && hostEnv !== 'OPENAI_API_KEY') ||
    (api_key_env === 'ANTHROPIC_API_KEY' && hostEnv !== 'ANTHROPIC_API_KEY');
  if (otherVendor) {
    warnings.push(
      `The example reads the key from ${api_key_env}, but the endpoint is not that vendor's; the key will be kept as ${hostEnv} so it does not mix with another vendor's key.`,
    );
    api_key_env = hostEnv;
  }

  // --- keys: loose scan, then scrub anything key-like from the draft
  scanLooseKeys(ctx);
  for (const [k, v] of Object.entries(headers)) {
    if (looksLikeKey(v, ctx.secrets) || looksLikeKey(k, ctx.secrets)) {
      delete headers[k];
      ctx.realKeySeen = true;
    }
  }
  scrubFields(request_fields, ctx);

  const draft: ExampleDraft = {
    upstream_model: model,
    base_url,
    wire,
    api_key_env,
    headers,
    request_fields,
    ...(thinking ? { thinking } : {}),
    ...(max_tokens !== undefined ? { max_tokens } : {}),
    ...(Object.keys(query).length > 0 ? { query } : {}),
    source: ctx.source,
  };
  if (ctx.realKeySeen) warnings.unshift(KEY_DROPPED_WARNING);

  // Last line of defence: no collected secret may appear anywhere in the answer.
  const out = { draft, warnings };
  if (leaks(out, ctx.secrets)) {
    draft.headers = {};
    draft.request_fields = {};
    warnings.length = 0;
    warnings.push(KEY_DROPPED_WARNING, 'Headers and request fields were left out because they contained key material.');
    if (leaks(out, ctx.secrets)) {
      return fail('invalid_input', 'The example could not be turned into a draft without including key material. Remove the key from the example and paste it again.', { reason: 'example_key_material' });
    }
  }
  return ok(out);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
