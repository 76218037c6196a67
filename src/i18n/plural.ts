import { t, type Lang, type MessageKey } from './index.ts';

/** Nouns counted in messages; each has `count.<noun>_one` and `count.<noun>_other` in every catalogue. */
export type Counted = 'requests' | 'tokens';

/** "1 request" / "3 requests" (Chinese has one form; the catalogue repeats it). */
export function countOf(lang: Lang, noun: Counted, n: number): string {
  return t(lang, `count.${noun}_${n === 1 ? 'one' : 'other'}` as MessageKey, { n });
}
