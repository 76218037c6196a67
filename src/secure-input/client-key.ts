import { isIPv4, isIPv6 } from 'node:net';

/**
 * The rate-limit identity of a client: an IPv4 address (IPv4-mapped IPv6 included) as is, an
 * IPv6 address by its /64 (a client rotating addresses within its own prefix is one client).
 */
export function clientKey(ip: string | undefined): string {
  const a = (ip ?? '').trim().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return a ? `other:${a.slice(0, 64)}` : 'unknown';
  const h = ipv6Hextets(a);
  if (h.slice(0, 5).every((x) => x === '0') && h[5] === 'ffff') {
    const [hi, lo] = [parseInt(h[6]!, 16), parseInt(h[7]!, 16)];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${h.slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of an IPv6 address (lower case, no leading zeros), `::` expanded. */
function ipv6Hextets(a: string): string[] {
  let s = a.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) becomes two hextets.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0');
  return [...h, ...fill, ...t].map((x) => (parseInt(x || '0', 16) || 0).toString(16));
}
