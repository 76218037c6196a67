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
] as const;

export function outcomeText(
  lang: Lang,
  outcome: string,
  p: { model: { id: string; name: string }; masked?: string; message?: string; retryAfterMs?: number },
): string {
  const key = (OUTCOMES as readonly string[]).includes(outcome) ? (`outcome.${outcome}` as MessageKey) : 'outcome.rejected';
  const wait = p.retryAfterMs ? t(lang, 'wait.seconds', { n: Math.max(1, Math.ceil(p.retryAfterMs / 1000)) }) : t(lang, 'wait.moment');
  return t(lang, key, {
    model: p.model.name,
    id: p.model.id,
    masked: p.masked ?? '****',
    message: (p.message ?? outcome).slice(0, 300),
    wait,
  });
}
