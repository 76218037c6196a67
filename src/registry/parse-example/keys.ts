/**
 * Key handling: keys and placeholders found in an example, the env var name the key is kept
 * under, and the scrub that keeps any key material out of the draft.
 */
import { keyShapeRe } from '../../secrets/key-kinds.ts';
import { Expr, isObj, MAX_DEPTH, MAX_LOOSE_SECRETS, Tpl, type Val } from './literal.ts';
import type { Ctx } from './types.ts';

/** Keys by shape: every kind of the shared key-kinds table (secrets/key-kinds.ts). */
export const keyPrefixRe = (): RegExp => keyShapeRe({ flags: 'g' });

const ENV_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

export function isGoodEnvName(n: string | undefined): n is string {
  if (!n || !ENV_NAME_RE.test(n) || n.length > 64) return false;
  if (!/(KEY|TOKEN)$/.test(n)) return false;
  if (/^(YOUR|MY)_/.test(n)) return false;
  return !['API_KEY', 'KEY', 'TOKEN', 'APIKEY', 'ACCESS_TOKEN', 'AUTH_TOKEN'].includes(n);
}

/** Env var names that a key reference points at, best first. */
function envNamesIn(text: string): string[] {
  const out: string[] = [];
  const add = (n: string | undefined) => {
    if (isGoodEnvName(n) && !out.includes(n)) out.push(n);
  };
  const t = text.length > 400 ? text.slice(0, 400) : text;
  for (const m of t.matchAll(/process\.env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["'`]([A-Za-z_][A-Za-z0-9_]*)["'`]\s*\])/g)) add(m[1] ?? m[2]);
  for (const m of t.matchAll(/(?:environ(?:\.get)?|getenv|env\.get|Getenv|env::var)\s*[[(]\s*["'`]([A-Za-z_][A-Za-z0-9_]*)["'`]/g)) add(m[1]);
  for (const m of t.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) add(m[1]);
  for (const m of t.matchAll(/<\s*([A-Z][A-Z0-9_]*)\s*>/g)) add(m[1]);
  const bare = t.trim().replace(/^Bearer\s+/i, '');
  add(bare);
  return out;
}

/** True when a literal key value is clearly not a real key. */
export function isPlaceholderKey(value: string): boolean {
  const v = value.trim().replace(/^(Bearer|Basic|Token)\s+/i, '').trim();
  if (v.length < 12) return true;
  if (/[$<>{}\s]/.test(v)) return true;
  if (/x{3,}|X{3,}|\*{3,}|\.{3}|…|0{6,}|1234567/.test(v)) return true;
  if (/your|api[_-]?key|token|replace|insert|placeholder|example|dummy|changeme|redacted|secret_key/i.test(v)) return true;
  if (ENV_NAME_RE.test(v)) return true;
  if (/^(.)\1+$/.test(v)) return true;
  return false;
}

export function noteKey(ctx: Ctx, v: Val): void {
  ctx.keyValues.push(v);
  if (typeof v === 'string') {
    const bare = v.trim().replace(/^(Bearer|Basic|Token)\s+/i, '').trim();
    if (bare.length >= 6) ctx.secrets.add(bare);
    if (v.length >= 6) ctx.secrets.add(v);
    if (!isPlaceholderKey(v)) ctx.realKeySeen = true;
    for (const n of envNamesIn(v)) if (!ctx.envFromKey.includes(n)) ctx.envFromKey.push(n);
  } else if (v instanceof Expr || v instanceof Tpl) {
    for (const n of envNamesIn(v.text)) if (!ctx.envFromKey.includes(n)) ctx.envFromKey.push(n);
  }
}

export const AUTH_HEADER_RE = /^(authorization|proxy-authorization|x-api-key|api-key|apikey|x-goog-api-key|cookie|set-cookie)$|key|token|secret|auth|cookie|session|password|signature/i;
export const BOILERPLATE_HEADERS = new Set([
  'content-type', 'accept', 'content-length', 'host', 'accept-encoding', 'connection', 'user-agent',
]);

/** Scans the whole text for keys outside the structured places (exports, assignments). */
export function scanLooseKeys(ctx: Ctx): void {
  const t = ctx.text;
  const cap = ctx.secrets.size + MAX_LOOSE_SECRETS;
  for (const m of t.matchAll(keyPrefixRe())) {
    if (ctx.secrets.size >= cap) break;
    ctx.secrets.add(m[0]);
    if (!isPlaceholderKey(m[0])) ctx.realKeySeen = true;
  }
  // NAME=value / NAME = "value" / name: "value" where the name says key/token/secret.
  const assign = /\b([A-Za-z_][A-Za-z0-9_]{0,63})["']?\s*[:=]\s*["']?([A-Za-z0-9_\-.+/=]{8,256})/g;
  for (const m of t.matchAll(assign)) {
    const name = m[1]!;
    const value = m[2]!;
    if (!/key|token|secret|password/i.test(name)) continue;
    if (/^(os|process|environ|getenv)\b/.test(value) || /^\d+$/.test(value)) continue;
    if (ENV_NAME_RE.test(value) && isGoodEnvName(value)) continue;
    if (ctx.secrets.size >= cap) {
      ctx.realKeySeen ||= !isPlaceholderKey(value);
      continue;
    }
    ctx.secrets.add(value);
    if (!isPlaceholderKey(value)) ctx.realKeySeen = true;
  }
}

const HOST_ENV: Array<[RegExp, string]> = [
  [/(^|\.)openai\.azure\.com$|(^|\.)cognitiveservices\.azure\.com$/, 'AZURE_OPENAI_API_KEY'],
  [/(^|\.)openai\.com$/, 'OPENAI_API_KEY'],
  [/(^|\.)anthropic\.com$/, 'ANTHROPIC_API_KEY'],
  [/(^|\.)aliyuncs\.com$/, 'DASHSCOPE_API_KEY'],
  [/(^|\.)moonshot\.(ai|cn)$/, 'MOONSHOT_API_KEY'],
  [/(^|\.)z\.ai$|(^|\.)bigmodel\.cn$/, 'ZAI_API_KEY'],
  [/(^|\.)x\.ai$/, 'XAI_API_KEY'],
  [/(^|\.)minimaxi?\.(io|com|chat)$/, 'MINIMAX_API_KEY'],
  [/(^|\.)near\.ai$/, 'NEARAI_API_KEY'],
  [/(^|\.)generativelanguage\.googleapis\.com$/, 'GEMINI_API_KEY'],
  [/(^|\.)huggingface\.(co|cloud)$|(^|\.)hf\.space$/, 'HF_TOKEN'],
  [/(^|\.)xiaomimimo\.com$/, 'MIMO_API_KEY'],
];

export function envFromHost(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  for (const [re, env] of HOST_ENV) if (re.test(h)) return env;
  if (/^[\d.]+$/.test(h) || h.includes(':') || h === 'localhost') return 'LOCAL_API_KEY';
  const labels = h.split('.').filter(Boolean);
  let label = labels.length >= 2 ? labels[labels.length - 2]! : (labels[0] ?? 'custom');
  if (labels.length >= 3 && /^(com|co|net|org|ac|gov|edu)$/.test(label) && labels[labels.length - 1]!.length === 2) {
    label = labels[labels.length - 3]!;
  }
  const name = label.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return `${/^[A-Z]/.test(name) ? name : 'CUSTOM_' + name}_API_KEY`;
}

export function looksLikeKey(s: string, secrets: Set<string>): boolean {
  const re = keyPrefixRe();
  re.lastIndex = 0;
  if (re.test(s)) return true;
  for (const k of secrets) if (k.length >= 8 && s.includes(k)) return true;
  return false;
}

export function envHintsInText(text: string): string[] {
  const out: string[] = [];
  const re = /(?:export\s+|\$\{?|environ(?:\.get)?\s*[[(]\s*["']|getenv\s*\(\s*["']|process\.env\.)([A-Z][A-Z0-9_]*)/g;
  for (const m of text.matchAll(re)) {
    const n = m[1]!;
    if (isGoodEnvName(n) && !out.includes(n)) out.push(n);
    if (out.length >= 4) break;
  }
  return out;
}

export function scrubFields(o: Record<string, unknown>, ctx: Ctx, depth = 0): void {
  for (const [k, v] of Object.entries(o)) {
    if (looksLikeKey(k, ctx.secrets)) {
      delete o[k];
      ctx.realKeySeen = true;
    } else if (typeof v === 'string') {
      if (looksLikeKey(v, ctx.secrets)) {
        delete o[k];
        ctx.realKeySeen = true;
      }
    } else if (Array.isArray(v)) {
      const kept = v.filter((x) => !(typeof x === 'string' && looksLikeKey(x, ctx.secrets)));
      if (kept.length !== v.length) ctx.realKeySeen = true;
      for (const x of kept) if (isObj(x) && depth < MAX_DEPTH) scrubFields(x as Record<string, unknown>, ctx, depth + 1);
      o[k] = kept;
    } else if (isObj(v) && depth < MAX_DEPTH) scrubFields(v as Record<string, unknown>, ctx, depth + 1);
  }
}

export function leaks(out: unknown, secrets: Set<string>): boolean {
  const json = JSON.stringify(out);
  for (const s of secrets) {
    if (s.length < 8) continue;
    if (isPlaceholderKey(s)) continue;
    if (json.includes(s) || json.includes(JSON.stringify(s).slice(1, -1))) return true;
  }
  return false;
}
