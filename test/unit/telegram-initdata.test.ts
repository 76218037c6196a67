import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signInitData, verifyInitData } from '../../channels/telegram/initdata.ts';

const TOKEN = '123456:TEST-token';
const now = Math.floor(Date.now() / 1000);

function fields(userId: number, authDate = now): Record<string, string> {
  return { auth_date: String(authDate), query_id: 'AAHdF6IQAAAAAN0XohDhrOrc', user: JSON.stringify({ id: userId, first_name: 'A', language_code: 'en' }) };
}

describe('Telegram Mini App initData', () => {
  it('accepts data signed with the bot token and returns the user', () => {
    const r = verifyInitData(signInitData(fields(42), TOKEN), TOKEN);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.user?.id).toBe(42);
  });

  it('matches the algorithm Telegram documents (independent computation)', () => {
    const f = fields(7);
    const dcs = Object.keys(f).sort().map((k) => `${k}=${f[k]}`).join('\n');
    const secret = createHmac('sha256', 'WebAppData').update(TOKEN).digest();
    const hash = createHmac('sha256', secret).update(dcs).digest('hex');
    const init = new URLSearchParams({ ...f, hash }).toString();
    expect(verifyInitData(init, TOKEN).ok).toBe(true);
  });

  it('refuses another bot token, tampered fields, stale and future auth_date, junk', () => {
    expect(verifyInitData(signInitData(fields(42), 'other:token'), TOKEN)).toEqual({ ok: false, reason: 'bad_hash' });
    const tampered = signInitData(fields(42), TOKEN).replace(encodeURIComponent('"id":42'), encodeURIComponent('"id":43'));
    expect(verifyInitData(tampered, TOKEN)).toMatchObject({ ok: false, reason: 'bad_hash' });
    expect(verifyInitData(signInitData(fields(42, now - 7200), TOKEN), TOKEN)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyInitData(signInitData(fields(42, now - 7200), TOKEN), TOKEN, { maxAgeSec: 86400 }).ok).toBe(true);
    expect(verifyInitData(signInitData(fields(42, now + 3600), TOKEN), TOKEN)).toEqual({ ok: false, reason: 'future' });
    expect(verifyInitData('', TOKEN)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyInitData('user=x&hash=zz', TOKEN)).toEqual({ ok: false, reason: 'malformed' });
    const dup = signInitData(fields(42), TOKEN) + '&auth_date=1';
    expect(verifyInitData(dup, TOKEN)).toEqual({ ok: false, reason: 'malformed' });
  });
});
