import type { ProbeResult, Secrets } from '../vendors/types.ts';

/**
 * Vendors echo keys back in error messages, and not always whole: a prefix, the key minus its
 * last characters, URL-encoded (a key in a query string), base64 (Basic auth). Anything a
 * vendor says passes through here, with the secrets of the call, before it is stored or shown.
 */

/** The shortest run of a key's characters that counts as leaked. */
export const SCRUB_WINDOW = 8;
const REDACTED = '[redacted]';

/** The forms a key may take in a vendor's text. */
function formsOf(key: string): string[] {
  const forms = new Set<string>([key]);
  const url = encodeURIComponent(key);
  forms.add(url);
  forms.add(url.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  forms.add(encodeURIComponent(key).replace(/%20/g, '+'));
  // base64 of the key inside a longer value ("user:key"): the key's bytes start at any of
  // the three positions of a base64 group, so encode it from each.
  for (let shift = 0; shift < 3 && shift < key.length; shift++) {
    const b64 = Buffer.from(key.slice(shift), 'utf8').toString('base64').replace(/=+$/, '');
    // The last group also depends on what follows the key: drop it.
    const stable = b64.slice(0, b64.length - (b64.length % 4 === 0 ? 0 : b64.length % 4));
    forms.add(stable);
    forms.add(stable.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms];
}

/**
 * Replaces every run of 8 or more characters of any secret (raw, URL-encoded, base64) in
 * `text` with `[redacted]`. A secret shorter than 8 characters is removed where it occurs
 * whole (when at least 4 long). Windows of 8 characters of each form go in a set; every
 * position of `text` is looked up once; the covered ranges are merged and replaced.
 */
export function scrubSecret(text: string, secrets: Uint8Array[]): string {
  if (!text || secrets.length === 0) return text;
  const windows = new Set<string>();
  const shortOnes: string[] = [];
  for (const bytes of secrets) {
    if (!bytes || bytes.length === 0) continue;
    const key = Buffer.from(bytes).toString('utf8').trim();
    for (const form of formsOf(key)) {
      if (form.length >= SCRUB_WINDOW) for (let i = 0; i + SCRUB_WINDOW <= form.length; i++) windows.add(form.slice(i, i + SCRUB_WINDOW));
      else if (form.length >= 4) shortOnes.push(form);
    }
  }
  let out = text;
  if (windows.size > 0 && out.length >= SCRUB_WINDOW) {
    const covered = new Uint8Array(out.length);
    let any = false;
    for (let i = 0; i + SCRUB_WINDOW <= out.length; i++) {
      if (windows.has(out.slice(i, i + SCRUB_WINDOW))) {
        covered.fill(1, i, i + SCRUB_WINDOW);
        any = true;
      }
    }
    if (any) {
      let s = '';
      for (let i = 0; i < out.length; ) {
        if (!covered[i]) {
          s += out[i];
          i++;
          continue;
        }
        while (i < out.length && covered[i]) i++;
        s += REDACTED;
      }
      out = s;
    }
  }
  for (const k of shortOnes) out = out.split(k).join(REDACTED);
  return out;
}

/** scrubSecret over every secret of a call. */
export function scrubWith(text: string, secrets: Secrets): string {
  return scrubSecret(text, Object.values(secrets));
}

/** A probe result whose vendor message carries none of the call's secrets. */
export function scrubProbe(r: ProbeResult, secrets: Secrets): ProbeResult {
  return r.message ? { ...r, message: scrubWith(r.message, secrets) } : r;
}
