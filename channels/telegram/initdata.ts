import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Telegram Mini App launch data (`initData`, the `tgWebAppData` fragment) verification, as
 * Telegram documents it: data-check-string = every field except `hash`, sorted by key,
 * `key=value` joined by "\n"; secret = HMAC_SHA256(key "WebAppData", bot token);
 * hash = hex HMAC_SHA256(key secret, data-check-string). Constant-time compare, fresh
 * `auth_date`.
 */

export interface InitDataUser {
  id: number;
  first_name?: string;
  last_name?: string;
  username?: string;
  language_code?: string;
}

export type InitDataResult =
  | { ok: true; user?: InitDataUser; authDate: number; fields: Record<string, string> }
  | { ok: false; reason: 'malformed' | 'bad_hash' | 'expired' | 'future' };

function secretKey(botToken: string): Buffer {
  return createHmac('sha256', 'WebAppData').update(botToken).digest();
}

function dataCheckString(fields: Record<string, string>): string {
  return Object.keys(fields)
    .filter((k) => k !== 'hash')
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join('\n');
}

export function verifyInitData(initData: string, botToken: string, opts: { maxAgeSec?: number; nowSec?: number } = {}): InitDataResult {
  if (typeof initData !== 'string' || initData.length === 0 || initData.length > 8192) return { ok: false, reason: 'malformed' };
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(initData);
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const fields: Record<string, string> = {};
  for (const [k, v] of params) {
    if (k in fields) return { ok: false, reason: 'malformed' }; // duplicate keys: ambiguous
    fields[k] = v;
  }
  const hash = fields.hash;
  if (!hash || !/^[0-9a-f]{64}$/i.test(hash)) return { ok: false, reason: 'malformed' };
  const expected = createHmac('sha256', secretKey(botToken)).update(dataCheckString(fields)).digest();
  const given = Buffer.from(hash, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad_hash' };
  const authDate = Number(fields.auth_date);
  if (!Number.isInteger(authDate) || authDate <= 0) return { ok: false, reason: 'malformed' };
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  if (authDate > now + 60) return { ok: false, reason: 'future' };
  if (now - authDate > (opts.maxAgeSec ?? 3600)) return { ok: false, reason: 'expired' };
  let user: InitDataUser | undefined;
  if (fields.user !== undefined) {
    try {
      const u = JSON.parse(fields.user) as InitDataUser;
      if (!u || typeof u.id !== 'number') return { ok: false, reason: 'malformed' };
      user = u;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
  }
  return { ok: true, user, authDate, fields };
}

/** Builds signed initData as Telegram would (tests, benchmarks, local tooling). */
export function signInitData(fields: Record<string, string>, botToken: string): string {
  const hash = createHmac('sha256', secretKey(botToken)).update(dataCheckString(fields)).digest('hex');
  const p = new URLSearchParams({ ...fields, hash });
  return p.toString();
}
