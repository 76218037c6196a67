/**
 * Masked display of keys: `****` + the last 4 characters, or `****` alone when the key is
 * shorter than 12 characters (showing 4 of fewer than 12 characters would give away too
 * much of it). Used by the vault's list and by chat replies.
 */
export const MASK = '****';
/** Keys shorter than this show no characters at all. */
export const MIN_LENGTH_FOR_LAST4 = 12;

function isPrintableAscii(b: number): boolean {
  return b >= 0x21 && b <= 0x7e;
}

/**
 * The last 4 bytes of a key as a fresh array, or undefined when the key is short or they are
 * not printable ASCII (API keys are ASCII; anything else is not shown). Caller wipes.
 */
export function last4Bytes(key: Uint8Array): Uint8Array | undefined {
  if (key.length < MIN_LENGTH_FOR_LAST4) return undefined;
  const tail = key.slice(key.length - 4);
  if (!tail.every(isPrintableAscii)) {
    tail.fill(0);
    return undefined;
  }
  return tail;
}

/** Masked form from a stored hint (the last 4 characters) or nothing. */
export function maskLast4(last4: string | undefined | null): string {
  if (!last4 || last4.length !== 4 || ![...last4].every((c) => isPrintableAscii(c.charCodeAt(0)))) return MASK;
  return MASK + last4;
}

/**
 * Masked form of a whole key (a pasted key the detector caught, a key the caller holds as
 * bytes). Never returns more than the last 4 characters.
 */
export function maskKey(key: string | Uint8Array | undefined | null): string {
  if (key === undefined || key === null) return MASK;
  if (typeof key === 'string') {
    const chars = [...key.trim()];
    if (chars.length < MIN_LENGTH_FOR_LAST4) return MASK;
    return maskLast4(chars.slice(-4).join(''));
  }
  const tail = last4Bytes(key);
  if (!tail) return MASK;
  const out = MASK + String.fromCharCode(...tail);
  tail.fill(0);
  return out;
}
