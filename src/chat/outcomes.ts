import { t, type Lang, type MessageKey } from '../i18n/index.ts';

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
  p: { model: { id: string; name: string }; masked?: string; message?: string; retryAfterMs?: number; reason?: string; status?: number },
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
          : (OUTCOMES as readonly string[]).includes(outcome)
            ? (`outcome.${outcome}` as MessageKey)
            : 'outcome.rejected';
  const wait = p.retryAfterMs ? t(lang, 'wait.seconds', { n: Math.max(1, Math.ceil(p.retryAfterMs / 1000)) }) : t(lang, 'wait.moment');
  return t(lang, key, {
    model: p.model.name,
    id: p.model.id,
    masked: p.masked ?? '****',
    message: (p.message ?? outcome).slice(0, 300),
    wait,
    status: p.status ?? '5xx',
  });
}
