import { t, type Lang, type MessageKey } from '../i18n/index.ts';

/**
 * Chat texts for the registry's `{ ok: false }` results. The registry answers in English
 * for the API and the CLI (and may name the workspace); a chat user gets the catalogue's
 * text for the error code and field, in their language, never a workspace id.
 */
export interface RegistryFail {
  code: string;
  error: string;
  field?: unknown;
  suggestions?: unknown;
}

const FIELD_KEYS: Record<string, MessageKey> = {
  max_tokens: 'registry.invalid_max_tokens',
  name: 'registry.invalid_name',
  upstream_model: 'registry.invalid_upstream_model',
  base_url: 'registry.invalid_base_url',
};

export function registryErrorText(lang: Lang, res: RegistryFail, query?: string): string {
  const text = baseText(lang, res, query);
  const suggestions = Array.isArray(res.suggestions) ? (res.suggestions as string[]).filter((s) => typeof s === 'string') : [];
  if (res.code === 'not_found' || !suggestions.length) return text;
  return `${text}\n${t(lang, 'model.did_you_mean', { list: suggestions.join(', ') })}`;
}

function baseText(lang: Lang, res: RegistryFail, query?: string): string {
  const suggestions = Array.isArray(res.suggestions) ? (res.suggestions as string[]).filter((s) => typeof s === 'string') : [];
  switch (res.code) {
    case 'not_found': {
      if (/ was removed/.test(res.error) && query) return t(lang, 'model.removed', { id: query.replace(/^custom\//, '').slice(0, 64) });
      if (!suggestions.length && /none registered/.test(res.error)) return t(lang, 'registry.none');
      const lines = [t(lang, 'model.unknown', { query: (query ?? '').slice(0, 64) })];
      if (suggestions.length) lines.push(t(lang, 'model.did_you_mean', { list: suggestions.join(', ') }));
      return lines.join('\n');
    }
    case 'invalid_input': {
      const field = typeof res.field === 'string' ? res.field : undefined;
      if (field && FIELD_KEYS[field]) return t(lang, FIELD_KEYS[field]);
      if (lang === 'en') return withoutWorkspace(res.error);
      return field ? t(lang, 'registry.invalid_field', { field }) : t(lang, 'registry.failed');
    }
    case 'unsafe_url':
      return t(lang, 'registry.unsafe_url');
    case 'conflict':
    case 'immutable':
      return lang === 'en' ? withoutWorkspace(res.error) : t(lang, 'registry.conflict');
    case 'internal':
      return t(lang, 'error.generic');
    default:
      return lang === 'en' ? withoutWorkspace(res.error) : t(lang, 'registry.failed');
  }
}

/** The registry's English sometimes names the workspace ("in workspace wx:wxid_…"): internal. */
export function withoutWorkspace(text: string): string {
  return text.replace(/\s+in (?:this )?workspace\s+\S+?(?=[:.,;]?(?:\s|$))/g, '').replace(/\bworkspace\s+(?:wx|tg|local)[:\w@.-]*/g, 'your account');
}

/** A failed parse of an API example, in the user's language, always with the way out. */
export function exampleErrorText(lang: Lang, res: RegistryFail): string {
  let reason: string;
  if (lang === 'en') reason = res.error.replace(/\.\s*$/, '');
  else if (res.code === 'too_large') reason = t(lang, 'example.too_large');
  else if (/is empty/.test(res.error)) reason = t(lang, 'example.empty');
  else if (/not recognised/.test(res.error)) reason = t(lang, 'example.unrecognised');
  else if (/could not be read|unterminated|unbalanced/.test(res.error)) reason = t(lang, 'example.unreadable');
  else reason = t(lang, 'example.incomplete');
  return t(lang, 'byok.example_error', { error: reason });
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
