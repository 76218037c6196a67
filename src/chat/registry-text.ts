import type { ErrorCode } from '../errors.ts';
import { catalogue, t, type Lang, type MessageKey } from '../i18n/index.ts';

/**
 * Chat texts for the registry's `{ ok: false, code, error, field?, reason? }` results. The
 * registry answers in English for the API and the CLI (and may name the workspace); a chat
 * user gets the catalogue's text for the code, made precise by the result's `reason` or
 * `field` (`err.<code>.<reason>`, `err.<code>.<field>`), in their language, never a
 * workspace id. English without a precise entry keeps the registry's own sentence, which
 * says the same and more.
 */
export interface RegistryFail {
  code: string;
  error: string;
  field?: unknown;
  reason?: unknown;
  suggestions?: unknown;
  [detail: string]: unknown;
}

/** Details that may fill a catalogue text's `{placeholders}` (names, never secrets). */
const PARAM_DETAILS = ['field', 'existing', 'name', 'vendor', 'host', 'id'] as const;

function has(lang: Lang, key: string): key is MessageKey {
  return Object.hasOwn(catalogue(lang), key);
}

/**
 * The catalogue text for a failed result: `err.<code>.<reason>`, then `err.<code>.<field>`,
 * then `err.<code>` (in English the registry's own sentence beats the generic one). Unknown
 * codes read as `internal` in Chinese.
 */
export function errorText(lang: Lang, res: RegistryFail, params: Record<string, string | number> = {}): string {
  const code = res.code;
  const reason = typeof res.reason === 'string' ? res.reason : undefined;
  const field = typeof res.field === 'string' ? res.field : undefined;
  const p: Record<string, string | number> = {};
  for (const k of PARAM_DETAILS) {
    const v = res[k];
    if (typeof v === 'string' || typeof v === 'number') p[k] = typeof v === 'string' ? withoutWorkspace(v).slice(0, 120) : v;
  }
  Object.assign(p, params);
  for (const key of [reason && `err.${code}.${reason}`, field && `err.${code}.${field}`]) {
    if (key && has(lang, key)) return t(lang, key, p);
  }
  if (lang === 'en' && res.error && code !== 'internal') return withoutWorkspace(res.error);
  if (field && code === 'invalid_input') return t(lang, 'err.invalid_input.field', p);
  const generic = `err.${code}`;
  return has(lang, generic) ? t(lang, generic, p) : t(lang, 'err.internal');
}

/** Every catalogue key the error texts may use for a code (the unit test checks both catalogues). */
export function errorKeys(code: ErrorCode, reasons: readonly string[] = []): string[] {
  return [`err.${code}`, ...reasons.map((r) => `err.${code}.${r}`)];
}

export function registryErrorText(lang: Lang, res: RegistryFail, query?: string): string {
  const text = baseText(lang, res, query);
  const suggestions = suggestionsOf(res);
  if (res.code === 'not_found' || !suggestions.length) return text;
  return `${text}\n${t(lang, 'model.did_you_mean', { list: suggestions.join(', ') })}`;
}

function suggestionsOf(res: RegistryFail): string[] {
  return Array.isArray(res.suggestions) ? (res.suggestions as unknown[]).filter((s): s is string => typeof s === 'string') : [];
}

function baseText(lang: Lang, res: RegistryFail, query?: string): string {
  const suggestions = suggestionsOf(res);
  if (res.code === 'not_found') {
    // Older results carry no reason: recognise them by their English.
    const reason = typeof res.reason === 'string' ? res.reason : / was removed/.test(res.error) ? 'removed' : !suggestions.length && /none registered/.test(res.error) ? 'none_registered' : 'no_match';
    if (reason === 'removed') return t(lang, 'err.not_found.removed', { id: (query ?? String(res.id ?? '')).replace(/^custom\//, '').slice(0, 64) });
    if (reason === 'none_registered') return t(lang, 'err.not_found.none_registered');
    const lines = [t(lang, 'err.not_found.no_match', { query: (query ?? '').slice(0, 64) })];
    if (suggestions.length) lines.push(t(lang, 'model.did_you_mean', { list: suggestions.join(', ') }));
    return lines.join('\n');
  }
  return errorText(lang, res);
}

/** The registry's English sometimes names the workspace ("in workspace wx:wxid_…"): internal. */
export function withoutWorkspace(text: string): string {
  return text.replace(/\s+in (?:this )?workspace\s+\S+?(?=[:.,;]?(?:\s|$))/g, '').replace(/\bworkspace\s+(?:wx|tg|local)[:\w@.-]*/g, 'your account');
}

/** A failed parse of an API example, in the user's language, always with the way out. */
export function exampleErrorText(lang: Lang, res: RegistryFail): string {
  return t(lang, 'byok.example_error', { error: errorText(lang, { ...res, field: undefined }).replace(/\.\s*$/, '') });
}

/**
 * Whether a message could be an API example at all. An example step ends on the first
 * message that plainly is not one (a greeting, a question), which is then answered as usual
 * instead of getting a parse error; anything code-like stays in the step.
 */
export function looksLikeExample(text: string): boolean {
  const s = text.trim();
  if (!s) return false;
  if (/https?:\/\/|\bcurl\b|\bwget\b|\bfetch\s*\(|\brequire\s*\(|\bimport\s|\bfrom\s+\w+\s+import\b|\bOpenAI\s*\(|\bAnthropic\s*\(|\bclient\.|\bcompletions\b|\brequests\.|\baxios\b|\bapi[_-]?key\b|\bbase_?url\b|\bAuthorization\b|\bBearer\b|\$[A-Z_]{3,}|(?:^|\s)--?[A-Za-z]|[{}[\]]|=>|\bmodel\s*[:=]|"model"/i.test(s)) return true;
  // Several lines with code punctuation (assignments, calls, quotes).
  const codeLines = s.split('\n').filter((l) => /[=();"'`]/.test(l)).length;
  return codeLines >= 2;
}
