import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clientKey } from '../../src/secure-input/server.ts';
import { scrubProbe, scrubSecret } from '../../src/secrets/scrub.ts';

const enc = (s: string) => new TextEncoder().encode(s);

/** Every run of 8 characters of `key` (raw and URL-encoded) that occurs in `text`. */
function leaks(text: string, key: string): string[] {
  const out: string[] = [];
  for (const form of [key, encodeURIComponent(key)]) {
    for (let i = 0; i + 8 <= form.length; i++) if (text.includes(form.slice(i, i + 8))) out.push(form.slice(i, i + 8));
  }
  return out;
}

describe('scrubSecret', () => {
  const key = 'sk-proj-' + 'Ab3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7s';

  it('removes the key whole, cut short, from the middle, URL-encoded and in base64', () => {
    const url = 'kq7/tr+vx2/mn+pl8/ws+yz3/ab+cd4';
    const texts = [
      `Incorrect API key provided: ${key}.`,
      `Incorrect API key provided: ${key.slice(0, -4)}.`,
      `key ${key.slice(5, 20)} is unknown`,
      `GET /v1?key=${encodeURIComponent(url)} failed`,
      `Authorization: Basic ${Buffer.from(`user:${key}`).toString('base64')}`,
      `token ${Buffer.from(key).toString('base64url')}`,
    ];
    for (const t of texts) {
      const out = scrubSecret(t, [enc(key), enc(url)]);
      expect(out).toContain('[redacted]');
      expect(leaks(out, key), out).toEqual([]);
      expect(leaks(out, url), out).toEqual([]);
      // Base64 of the key, from any alignment, leaves no 8-character run behind.
      for (let s = 0; s < 3; s++) {
        const b = Buffer.from(key.slice(s)).toString('base64');
        for (let i = 0; i + 8 <= b.length - 4; i++) expect(out.includes(b.slice(i, i + 8)), out).toBe(false);
      }
    }
  });

  it('keeps the rest of the text, and text with no part of the key, as is', () => {
    expect(scrubSecret('The key sk-proj-Ab3dE5 is not valid.', [enc(key)])).toBe('The key [redacted] is not valid.');
    expect(scrubSecret('Rate limit reached for gpt-4o in organization org-123.', [enc(key)])).toBe('Rate limit reached for gpt-4o in organization org-123.');
    // Seven characters of the key are not a leak.
    expect(scrubSecret(`x ${key.slice(3, 10)} y`, [enc(key)])).toBe(`x ${key.slice(3, 10)} y`);
    expect(scrubSecret('', [enc(key)])).toBe('');
    expect(scrubSecret('no secrets given', [])).toBe('no secrets given');
  });

  it('leaves no 8-character run of random keys in random echoes', () => {
    for (let n = 0; n < 200; n++) {
      const k = randomBytes(12 + (n % 40)).toString(n % 2 ? 'base64' : 'base64url');
      const a = n % k.length;
      const b = Math.min(k.length, a + 8 + (n % 20));
      const text = `vendor says: ${k.slice(a, b)} / ${encodeURIComponent(k).slice(0, -3)} end`;
      const out = scrubSecret(text, [enc(k)]);
      expect(leaks(out, k), `${k} → ${out}`).toEqual([]);
    }
  });

  it('removes a short secret where it occurs whole', () => {
    expect(scrubSecret('bad key abc123x!', [enc('abc123x')])).toBe('bad key [redacted]!');
  });

  it('scrubProbe scrubs the message of a probe result with every secret of the call', () => {
    const r = scrubProbe({ outcome: 'invalid_key', message: `bad ${key.slice(0, -4)}`, status: 401 }, { A: enc(key) });
    expect(r).toEqual({ outcome: 'invalid_key', message: 'bad [redacted]', status: 401 });
  });
});

describe('clientKey (per-IP rate limits)', () => {
  it('counts IPv6 clients per /64 and IPv4-mapped IPv6 as IPv4', () => {
    expect(clientKey('203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(clientKey('::FFFF:cb00:7109')).toBe('203.0.113.9');
    const a = clientKey('2001:db8:1:2::1');
    expect(a).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:fffe')).toBe(a);
    expect(clientKey('2001:db8:1:2:abcd::9')).toBe(a);
    expect(clientKey('[2001:db8:1:2::7]')).toBe(a);
    expect(clientKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientKey('2001:db8:1:3::1')).not.toBe(a);
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey(undefined)).toBe('unknown');
  });
});
