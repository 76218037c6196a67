import { catalogue, t, type Lang, type MessageKey } from '../i18n/index.ts';
import { WHAT_TO_DO } from '../vendors/classify.ts';
import type { VendorOutcome } from '../vendors/types.ts';

/** Outcomes the user can be told about: the vendor classes plus "pending_retry". */
export const OUTCOMES = [
  'ok',
  'invalid_key',
  'invalid_model',
  'quota_exceeded',
  'rate_limited',
  'vendor_unavailable',
  'unreachable',
  'rejected',
  'pending_retry',
  'form_error',
] as const;

/**
 * A pending_retry says what the vendor said last: a 429 (with its Retry-After) and a 5xx are
 * answers, not "could not be reached"; only timeouts and network errors are.
 */
function pendingKey(reason: string | undefined): MessageKey {
  if (reason === 'rate_limited') return 'outcome.pending_rate_limited';
  if (reason === 'vendor_unavailable') return 'outcome.pending_vendor_unavailable';
  return 'outcome.pending_retry';
}

export function outcomeText(
  lang: Lang,
  outcome: string,
  p: { model: { id: string; name: string; credential_kind?: string }; masked?: string; message?: string; retryAfterMs?: number; reason?: string; status?: number },
): string {
  // kept_previous: a replacement key was not stored; the model still runs on the previous one.
  const kept = p.reason === 'kept_previous';
  const key =
    outcome === 'pending_retry'
      ? pendingKey(p.reason)
      : outcome === 'form_error'
        ? kept
          ? 'outcome.form_error_kept'
          : 'outcome.form_error'
        : kept && outcome !== 'ok'
          ? 'outcome.kept_previous'
          : outcome === 'quota_exceeded' && p.reason === 'not_kept'
            ? 'outcome.quota_not_kept'
          : outcome === 'ok' && p.model.credential_kind === 'oauth_json'
            ? 'outcome.ok_file'
          : (OUTCOMES as readonly string[]).includes(outcome)
            ? (`outcome.${outcome}` as MessageKey)
            : 'outcome.rejected';
  const wait = p.retryAfterMs ? t(lang, 'wait.seconds', { n: Math.max(1, Math.ceil(p.retryAfterMs / 1000)) }) : t(lang, 'wait.moment');
  const text = t(lang, key, {
    model: p.model.name,
    id: p.model.id,
    masked: p.masked ?? '****',
    message: detail(lang, outcome, p.message).slice(0, 300),
    wait,
    status: p.status ?? '5xx',
  });
  // Texts that carry the vendor's words get the what-to-do hint in the user's language.
  const todo = (key === 'outcome.rejected' || key === 'outcome.kept_previous') && Object.hasOwn(WHAT_TO_DO, outcome) ? WHAT_TO_DO[outcome as VendorOutcome] : undefined;
  return todo && todo !== 'none' ? `${text}\n${t(lang, 'todo.label', { todo: t(lang, `todo.${todo}` as MessageKey) })}` : text;
}

/**
 * The `{message}` of a notice. English keeps the vendor's (or the worker's) own words. In
 * another language: a vendor's refusal (`rejected`) is quoted as it is, since only it says
 * what was refused; other outcomes use the catalogue's text for the code; a form error's
 * detail is already in the user's language (credential-file checks) or is one of the
 * worker's two English reasons, translated here.
 */
function detail(lang: Lang, outcome: string, message: string | undefined): string {
  const said = message ?? outcome;
  if (lang === 'en') return said;
  if (outcome === 'form_error') {
    if (/[^\x00-\x7f]/.test(said)) return said;
    return t(lang, /out of date/i.test(said) ? 'err.form_error.stale' : 'err.form_error.unreadable');
  }
  if (outcome === 'rejected') return t(lang, 'err.rejected.vendor_said', { message: said.slice(0, 200) });
  const key = `err.${outcome}`;
  return Object.hasOwn(catalogue(lang), key) ? t(lang, key as MessageKey).replace(/[。.]\s*$/, '') : said;
}
