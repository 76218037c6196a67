/** Python and JavaScript: SDK constructors and create calls, requests/httpx, fetch/axios. */
import { noteKey } from './keys.ts';
import { Expr, isObj, MAX_CALL_SITES, parseArgsAt, parseBodyText, parseValueAt, Tpl, type Mode, type Obj, type Val } from './literal.ts';
import type { Ctx } from './types.ts';

/** Resolves `NAME = <value>` / `const NAME = <value>` in the text. */
export function resolveVar(text: string, name: string, mode: Mode, seen = 0): Val | undefined {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) || seen > 3) return undefined;
  const esc = name.replace(/\$/g, '\\$');
  const re = new RegExp(`(?:^|[\\s;(])(?:const\\s+|let\\s+|var\\s+)?${esc}\\s*(?::\\s*[A-Za-z_][\\w.<>\\[\\]]*\\s*)?=(?!=)`, 'm');
  const m = re.exec(text);
  if (!m) return undefined;
  const v = parseValueAt(text, m.index + m[0].length, mode, true);
  if (v instanceof Expr && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(v.text)) return resolveVar(text, v.text, mode, seen + 1) ?? v;
  return v;
}

function resolve(ctx: Ctx, v: Val | undefined, mode: Mode): Val | undefined {
  if (v instanceof Expr) {
    const t = v.text;
    if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(t)) return resolveVar(ctx.text, t, mode) ?? v;
    const dumps = /^(?:json\.dumps|JSON\.stringify)\s*\(/.exec(t);
    if (dumps) {
      const inner = parseValueAt(t, dumps[0].length, mode);
      return resolve(ctx, inner, mode);
    }
  }
  return v;
}

function callSites(text: string, re: RegExp): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(re)) {
    out.push(m.index + m[0].length - 1); // position of `(`
    if (out.length >= MAX_CALL_SITES) break;
  }
  return out;
}

export function strOf(v: Val | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Tpl) return v.text;
  return undefined;
}

function headersFrom(ctx: Ctx, v: Val | undefined, mode: Mode): void {
  const h = resolve(ctx, v, mode);
  if (!isObj(h)) return;
  for (const [k, val] of Object.entries(h)) ctx.headers.push([k, val]);
}

function mergeBody(ctx: Ctx, fields: Obj): void {
  ctx.body ??= {};
  for (const [k, v] of Object.entries(fields)) ctx.body[k] = v;
}

const SDK_CTOR_RE = /\b(?:openai\.|anthropic\.)?(Async)?(OpenAI|AzureOpenAI|Anthropic|AnthropicVertex|AnthropicBedrock)\s*\(/g;
const CREATE_RE = /\.(chat\.completions|messages|completions|responses)\.(?:create|stream|parse)\s*\(/g;

export function parseCode(ctx: Ctx, mode: Mode): void {
  const t = ctx.text;
  const newCtor = mode === 'js' ? /\bnew\s+(?:openai\.)?(OpenAI|AzureOpenAI|Anthropic)\s*\(/g : SDK_CTOR_RE;

  // SDK client constructors.
  let tries = 0;
  for (const m of t.matchAll(newCtor)) {
    if (++tries > MAX_CALL_SITES) break;
    const kind = mode === 'js' ? m[1]! : m[2]!;
    ctx.sdk = kind.startsWith('Anthropic') ? 'anthropic' : kind === 'AzureOpenAI' ? 'azure' : 'openai';
    const a = parseArgsAt(t, m.index + m[0].length - 1, mode);
    if (!a) continue;
    const opts: Obj = mode === 'js' ? (isObj(a.pos[0]) ? (a.pos[0] as Obj) : {}) : a.kw;
    const base = resolve(ctx, opts.base_url ?? opts.baseURL ?? opts.azure_endpoint ?? opts.endpoint, mode);
    const bs = strOf(base);
    if (bs !== undefined) ctx.url = bs;
    else if (base instanceof Expr) {
      const u = firstUrl(base.text);
      if (u) ctx.url = u;
    }
    const key = opts.api_key ?? opts.apiKey;
    if (key !== undefined) noteKey(ctx, resolveKey(ctx, key, mode));
    headersFrom(ctx, opts.default_headers ?? opts.defaultHeaders, mode);
    const apiVersion = strOf(resolve(ctx, opts.api_version ?? opts.apiVersion, mode));
    if (apiVersion) ctx.azureApiVersion = apiVersion;
    const dep = strOf(resolve(ctx, opts.azure_deployment ?? opts.deployment, mode));
    if (dep) ctx.azureDeployment = dep;
    break;
  }

  // SDK create calls.
  tries = 0;
  for (const m of t.matchAll(CREATE_RE)) {
    if (++tries > MAX_CALL_SITES) break;
    const kind = m[1]!;
    ctx.endpoint = kind === 'chat.completions' ? 'chat' : (kind as Ctx['endpoint']);
    const a = parseArgsAt(t, m.index + m[0].length - 1, mode);
    if (!a) continue;
    let fields: Obj;
    if (mode === 'js') {
      const first = resolve(ctx, a.pos[0], mode);
      fields = isObj(first) ? { ...first } : {};
    } else fields = { ...a.kw };
    const extraBody = resolve(ctx, fields.extra_body, mode);
    const extraHeaders = fields.extra_headers;
    delete fields.extra_body;
    delete fields.extra_headers;
    delete fields.extra_query;
    delete fields.timeout;
    mergeBody(ctx, fields);
    if (isObj(extraBody)) mergeBody(ctx, extraBody);
    headersFrom(ctx, extraHeaders, mode);
    break;
  }

  // HTTP calls: requests/httpx (Python), fetch/axios (JS).
  const httpRe =
    mode === 'python'
      ? /\b(?:requests|httpx|session|client|s)\.(post|request)\s*\(/g
      : /\b(?:fetch|axios\.post|axios)\s*\(/g;
  for (const at of callSites(t, httpRe)) {
    const a = parseArgsAt(t, at, mode);
    if (!a) continue;
    let urlV: Val | undefined;
    let headers: Val | undefined;
    let body: Val | undefined;
    if (mode === 'python') {
      const isRequest = /request\s*\($/.test(t.slice(Math.max(0, at - 8), at + 1));
      const pos = isRequest ? a.pos.slice(1) : a.pos;
      urlV = a.kw.url ?? pos[0];
      headers = a.kw.headers;
      body = a.kw.json ?? a.kw.data ?? a.kw.content;
    } else {
      urlV = a.pos[0];
      const opts = resolve(ctx, a.pos[1], mode);
      const isAxios = /axios/.test(t.slice(Math.max(0, at - 12), at));
      if (isAxios) {
        body = a.pos[1];
        const cfg = resolve(ctx, a.pos[2], mode);
        if (isObj(cfg)) headers = cfg.headers;
      } else if (isObj(opts)) {
        headers = opts.headers;
        body = opts.body;
      }
    }
    const u = resolve(ctx, urlV, mode);
    const us = strOf(u);
    if (us === undefined || !/https?:\/\/|\$\{|\{/.test(us)) continue;
    ctx.url = us;
    ctx.sdk = undefined;
    headersFrom(ctx, headers, mode);
    let b = resolve(ctx, body, mode);
    if (typeof b === 'string' || b instanceof Tpl) b = parseBodyText(strOf(b)!);
    if (isObj(b)) {
      ctx.body = undefined;
      mergeBody(ctx, b);
    } else if (body !== undefined) ctx.bodyUnreadable = true;
    break;
  }
}

/** For an `api_key=` value that is a variable, look through to its assignment. */
export function resolveKey(ctx: Ctx, v: Val, mode: Mode): Val {
  if (v instanceof Expr && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(v.text)) {
    const r = resolveVar(ctx.text, v.text, mode);
    if (r !== undefined) return r;
  }
  return v;
}

const URL_RE = /https?:\/\/[^\s"'`<>()[\]{},;\\]+/;

export function firstUrl(text: string): string | undefined {
  return URL_RE.exec(text)?.[0];
}
