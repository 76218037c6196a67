/** Whether text looks like an API key (names, model ids, URLs, headers must never carry one). */
import { detectKeys } from '../secrets/detector.ts';
import { keyShapeRe } from '../secrets/key-kinds.ts';

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
