/**
 * SSRF-safe networking for everything that talks to a vendor (the probe and the relay).
 *
 * Two gates:
 *  1. `validateBaseUrl` before a request: only http(s), no credentials in the URL, no
 *     `localhost`/`*.localhost`, and literal IPs in every spelling (WHATWG URL parsing turns
 *     `http://2852039166/`, `http://0x7f.1/`, `http://0177.0.0.1/` into dotted quads; IPv6
 *     literals are decoded here, including IPv4-mapped/compatible, NAT64 and 6to4 forms)
 *     refused when they fall in a blocked range.
 *  2. The dispatcher's connector at connect time: every address the name resolves to is
 *     checked before the socket is opened (so DNS rebinding cannot pass: the address checked
 *     is the address connected to), and the connected socket's remote address is checked
 *     again (defence in depth).
 *
 * Redirects are never followed (undici's `request` does not follow them; `vendorFetch`
 * passes `redirect: 'manual'`): vendors do not redirect API POSTs, and a 3xx is classified
 * as `rejected` with "set base_url to the final address".
 *
 * The operator's switch: `BYOK_ALLOW_PRIVATE_BASE_URLS=1` (config.allowPrivateBaseUrls) lets
 * every address through; `BYOK_BASE_URL_ALLOWLIST` (host or host:port) lets named hosts
 * through even when they resolve to private addresses. Tests use them for 127.0.0.1 fakes.
 */
import dns from 'node:dns';
import net from 'node:net';
import type { Socket } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector, fetch as undiciFetch, request as undiciRequest, type Dispatcher } from 'undici';
import { ByokError } from '../errors.ts';
import { fail, ok, type Result } from '../result.ts';

export type ResolvedAddress = { address: string; family: 4 | 6 };
/** Name resolution used at connect time (tests stub it to simulate DNS rebinding). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export interface NetOptions {
  /** Let private/loopback/link-local/metadata addresses through (BYOK_ALLOW_PRIVATE_BASE_URLS=1). */
  allowPrivate: boolean;
  /** Hosts (`host` or `host:port`, lowercase) allowed even when they resolve to private addresses. */
  allowlist: string[];
  /** Replaces dns.lookup (tests). */
  resolve?: Resolver;
  /** Connect timeout, default 10 s. */
  connectTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------
// Address classification (parsing and prefix matching by ipaddr.js; the tables are ours)

/** Blocked IPv4 ranges, first match wins (the metadata /32 before link-local names it). */
export const BLOCKED_V4: readonly (readonly [cidr: string, why: string])[] = [
  ['0.0.0.0/8', 'the "this network" range'],
  ['10.0.0.0/8', 'a private address'],
  ['100.64.0.0/10', 'a carrier-grade NAT address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.169.254/32', 'the cloud metadata address'],
  ['169.254.0.0/16', 'a link-local address'],
  ['172.16.0.0/12', 'a private address'],
  ['192.0.0.0/24', 'an IETF protocol address'],
  ['192.0.2.0/24', 'a documentation address'],
  ['192.88.99.0/24', 'a 6to4 relay address'],
  ['192.168.0.0/16', 'a private address'],
  ['198.18.0.0/15', 'a benchmarking address'],
  ['198.51.100.0/24', 'a documentation address'],
  ['203.0.113.0/24', 'a documentation address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['255.255.255.255/32', 'the broadcast address'],
  ['240.0.0.0/4', 'a reserved address'],
];

/**
 * IPv6 ranges, first match wins. `why` blocks outright; `embeds` names a form that carries
 * an IPv4 address (in the last 32 bits, or bits 16–47 for 6to4), judged by BLOCKED_V4.
 */
export const BLOCKED_V6: readonly { cidr: string; why?: string; embeds?: string }[] = [
  { cidr: '::/128', why: 'the unspecified address' },
  { cidr: '::1/128', why: 'a loopback address' },
  { cidr: '::ffff:0:0/96', embeds: 'IPv4-mapped' },
  { cidr: '::ffff:0:0:0/96', embeds: 'IPv4-translated' },
  { cidr: '::/96', embeds: 'IPv4-compatible' }, // deprecated ::a.b.c.d
  { cidr: '64:ff9b::/96', embeds: 'NAT64' }, // well-known prefix
  { cidr: '64:ff9b:1::/48', why: 'a local-use NAT64 address' },
  { cidr: '2002::/16', embeds: '6to4' },
  { cidr: '2001::/32', why: 'a Teredo address' }, // carries an obfuscated client address: refused outright
  { cidr: '2001:db8::/32', why: 'a documentation address' },
  { cidr: '100::/64', why: 'a discard-only address' },
  { cidr: 'fd00:ec2::/32', why: 'the cloud metadata address' },
  { cidr: 'fc00::/7', why: 'a private (unique local) address' },
  { cidr: 'fe80::/10', why: 'a link-local address' },
  { cidr: 'fec0::/10', why: 'a site-local address' },
  { cidr: 'ff00::/8', why: 'a multicast address' },
];

const V4_RULES = BLOCKED_V4.map(([cidr, why]) => ({ range: ipaddr.IPv4.parseCIDR(cidr), why }));
const V6_RULES = BLOCKED_V6.map((r) => ({ ...r, range: ipaddr.IPv6.parseCIDR(r.cidr) }));

/** Strict dotted-quad IPv4 (URL parsing has already normalised other spellings), as a number. */
export function parseIPv4(s: string): number | undefined {
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return undefined;
  const [a, b, c, d] = ipaddr.IPv4.parse(s).octets as [number, number, number, number];
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/**
 * An IPv6 literal (brackets and zone id allowed), or undefined. Node's validator decides what
 * is an address (ipaddr.js would also take hex/octal embedded IPv4 such as ::ffff:0x7f.1), and
 * the deprecated IPv4-compatible form ::a.b.c.d is spelt ::0:a.b.c.d because ipaddr.js reads
 * it as IPv4-mapped (::ffff:a.b.c.d).
 */
function toIPv6(input: string): ipaddr.IPv6 | undefined {
  const s = input.replace(/^\[|\]$/g, '');
  if (!net.isIPv6(s)) return undefined;
  return ipaddr.IPv6.parse(s.replace(/^::(?=\d+\.\d+\.\d+\.\d+(?:%.*)?$)/, '::0:'));
}

/** Parses an IPv6 literal (brackets and zone id allowed) into 8 16-bit groups. */
export function parseIPv6(input: string): number[] | undefined {
  const ip = toIPv6(input);
  return ip ? [...ip.parts] : undefined;
}

/** Why an IPv4 address is blocked, or undefined. */
function blocked4(ip: ipaddr.IPv4): string | undefined {
  for (const r of V4_RULES) if (ip.match(r.range)) return r.why;
  return undefined;
}

/** Why an IPv6 address is blocked, or undefined. */
function blocked6(ip: ipaddr.IPv6): string | undefined {
  for (const r of V6_RULES) {
    if (!ip.match(r.range)) continue;
    if (r.why) return r.why;
    const g = ip.parts;
    const [hi, lo] = r.embeds === '6to4' ? [g[1]!, g[2]!] : [g[6]!, g[7]!];
    const inner = new ipaddr.IPv4([hi >> 8, hi & 255, lo >> 8, lo & 255]);
    const why = blocked4(inner);
    return why ? `${why} (${r.embeds} ${inner.toString()})` : undefined;
  }
  return undefined;
}

/**
 * Why an IP address literal must not be reached, or undefined when it is a public address.
 * Accepts dotted IPv4 and IPv6 in any textual form (brackets and zone ids allowed).
 * Anything that is not an IP literal returns undefined.
 */
export function blockedAddressReason(ip: string): string | undefined {
  if (ipaddr.IPv4.isValidFourPartDecimal(ip)) return blocked4(ipaddr.IPv4.parse(ip));
  const v6 = toIPv6(ip);
  return v6 ? blocked6(v6) : undefined;
}

export function isBlockedAddress(ip: string): boolean {
  return blockedAddressReason(ip) !== undefined;
}

// ---------------------------------------------------------------------------------------
// Base URL validation

function isAllowlisted(hostname: string, port: string, allowlist: string[]): boolean {
  if (allowlist.length === 0) return false;
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  for (const raw of allowlist) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    // host:port (IPv6 entries in brackets: [::1]:8080)
    const m = /^\[?([^\]]*?)\]?(?::(\d+))?$/.exec(entry.includes(']') || (entry.match(/:/g) ?? []).length <= 1 ? entry : `[${entry}]`);
    if (!m) continue;
    const eh = m[1]!.replace(/\.$/, '');
    if (eh !== h) continue;
    if (m[2] === undefined || m[2] === port) return true;
  }
  return false;
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

export interface UrlPolicy {
  allowPrivate: boolean;
  allowlist: string[];
}

/**
 * Checks a vendor base URL (or any URL we are about to call). Returns the normalised URL
 * string or `{ ok: false, code: 'unsafe_url', error }` with a message fit for the user.
 */
export function validateBaseUrl(input: string, opts: UrlPolicy): Result<{ url: string }> {
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    return fail('unsafe_url', 'base_url is not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return fail('unsafe_url', `base_url must use http or https, not ${u.protocol.replace(/:$/, '')}`);
  }
  if (u.username || u.password) {
    return fail('unsafe_url', 'base_url must not contain a user name or password; keys go through the secure form');
  }
  const host = u.hostname.toLowerCase();
  const port = u.port || defaultPort(u.protocol);
  if (opts.allowPrivate || isAllowlisted(host, port, opts.allowlist)) return ok({ url: u.toString() });
  const bare = host.replace(/\.$/, '');
  if (bare === 'localhost' || bare.endsWith('.localhost')) {
    return fail('unsafe_url', `base_url host "${host}" is this machine; only public vendor addresses are allowed`);
  }
  const literal = host.startsWith('[') ? host.slice(1, -1) : host;
  if (net.isIP(literal)) {
    const why = blockedAddressReason(literal);
    if (why) return fail('unsafe_url', `base_url points to ${why} (${literal}); only public vendor addresses are allowed`);
  } else if (/^[0-9.]+$/.test(host) || /^0x/i.test(host)) {
    // WHATWG parsing normalises numeric hosts; anything numeric left over is malformed.
    return fail('unsafe_url', `base_url host "${host}" is not a valid address`);
  }
  return ok({ url: u.toString() });
}

/** Like validateBaseUrl but throws ByokError('unsafe_url'). */
export function assertSafeUrl(input: string, opts: UrlPolicy): URL {
  const r = validateBaseUrl(input, opts);
  if (!r.ok) throw new ByokError('unsafe_url', r.error);
  return new URL(r.url);
}

// ---------------------------------------------------------------------------------------
// The dispatcher

const defaultResolve: Resolver = async (hostname) => {
  const all = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

type LookupCb = (err: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

function unsafe(hostname: string, address: string, why: string): ByokError {
  return new ByokError('unsafe_url', `base_url host "${hostname}" resolves to ${why} (${address}); only public vendor addresses are allowed`);
}

/**
 * An undici Agent whose connector refuses blocked addresses at connect time: literal IP
 * hosts are checked directly; names are resolved by `resolve` (default dns.lookup, all
 * addresses) and refused when ANY resolved address is blocked; the connected socket's
 * remote address is checked again before the first byte is written.
 */
export function createVendorDispatcher(opts: NetOptions & { headersTimeoutMs?: number; bodyTimeoutMs?: number }): Agent {
  const resolve = opts.resolve ?? defaultResolve;
  const allowlist = opts.allowlist.map((s) => s.toLowerCase());
  const safeLookup = (hostname: string, options: dns.LookupOptions, cb: LookupCb): void => {
    resolve(hostname).then(
      (addrs) => {
        if (addrs.length === 0) {
          const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }) as NodeJS.ErrnoException;
          return cb(e, options.all ? [] : '', 0);
        }
        for (const a of addrs) {
          const why = blockedAddressReason(a.address);
          if (why) return cb(unsafe(hostname, a.address, why) as unknown as NodeJS.ErrnoException, options.all ? [] : '', 0);
        }
        const wanted = options.family === 4 || options.family === 6 ? addrs.filter((a) => a.family === options.family) : addrs;
        const list = wanted.length ? wanted : addrs;
        if (options.all) cb(null, list.map((a) => ({ address: a.address, family: a.family })));
        else cb(null, list[0]!.address, list[0]!.family);
      },
      (err: NodeJS.ErrnoException) => cb(err, options.all ? [] : '', 0),
    );
  };
  const unchecked = buildConnector({ timeout: opts.connectTimeoutMs ?? 10_000 });
  const checked = buildConnector({ timeout: opts.connectTimeoutMs ?? 10_000, lookup: safeLookup } as buildConnector.BuildOptions);
  const connect: buildConnector.connector = (o, cb) => {
    const hostname = o.hostname.replace(/^\[|\]$/g, '');
    const port = o.port || (o.protocol === 'https:' ? '443' : '80');
    if (opts.allowPrivate || isAllowlisted(hostname, String(port), allowlist)) return unchecked(o, cb);
    if (net.isIP(hostname)) {
      const why = blockedAddressReason(hostname);
      if (why) {
        queueMicrotask(() => cb(new ByokError('unsafe_url', `base_url points to ${why} (${hostname}); only public vendor addresses are allowed`), null));
        return;
      }
    }
    return checked(o, (err, socket) => {
      if (err || !socket) return cb(err, null);
      const remote = (socket as Socket).remoteAddress;
      const why = remote ? blockedAddressReason(remote) : undefined;
      if (why) {
        socket.destroy();
        return cb(unsafe(hostname, remote!, why), null);
      }
      cb(null, socket);
    });
  };
  return new Agent({
    connect,
    headersTimeout: opts.headersTimeoutMs ?? 60_000,
    bodyTimeout: opts.bodyTimeoutMs ?? 120_000,
    keepAliveTimeout: 30_000,
  });
}

// One dispatcher per policy, shared by every call (keeps connection pools warm).
const dispatchers = new Map<string, Agent>();
let defaultNet: NetOptions = {
  allowPrivate: process.env.BYOK_ALLOW_PRIVATE_BASE_URLS === '1',
  allowlist: (process.env.BYOK_BASE_URL_ALLOWLIST || '').split(',').map((s) => s.trim()).filter(Boolean),
};

/** Sets the process-wide default network policy (app start-up: from config). */
export function configureVendorNet(opts: NetOptions): void {
  defaultNet = { ...opts };
}

export function getDefaultNetOptions(): NetOptions {
  return defaultNet;
}

export function getVendorDispatcher(opts: NetOptions = defaultNet): Agent {
  if (opts.resolve) {
    // A custom resolver is a test seam: cache on the function identity.
    const k = `${opts.allowPrivate}|${opts.allowlist.join(',')}|${opts.connectTimeoutMs ?? ''}`;
    const m = (opts.resolve as unknown as { __dispatchers?: Map<string, Agent> }).__dispatchers ?? new Map<string, Agent>();
    (opts.resolve as unknown as { __dispatchers?: Map<string, Agent> }).__dispatchers = m;
    let d = m.get(k);
    if (!d) m.set(k, (d = createVendorDispatcher(opts)));
    return d;
  }
  const key = `${opts.allowPrivate}|${opts.allowlist.join(',')}|${opts.connectTimeoutMs ?? ''}`;
  let d = dispatchers.get(key);
  if (!d) dispatchers.set(key, (d = createVendorDispatcher(opts)));
  return d;
}

/** Closes the shared dispatchers (tests, shutdown). */
export async function closeVendorDispatchers(): Promise<void> {
  const all = [...dispatchers.values()];
  dispatchers.clear();
  await Promise.all(all.map((d) => d.close().catch(() => undefined)));
}

export interface VendorRequestInit {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
  /** Time to the response headers (probe: 30 s; relay: 60 s). */
  headersTimeoutMs?: number;
  /** Max idle time between body chunks. */
  bodyTimeoutMs?: number;
}

/**
 * One HTTP request to a vendor through the SSRF-safe dispatcher, with no retries and no
 * redirects followed. Returns undici's response (statusCode, headers, body stream).
 */
export async function vendorRequest(url: string, init: VendorRequestInit, netOpts: NetOptions = defaultNet): Promise<Dispatcher.ResponseData> {
  const u = assertSafeUrl(url, netOpts);
  return undiciRequest(u, {
    method: init.method ?? 'POST',
    headers: init.headers,
    body: init.body,
    signal: init.signal,
    dispatcher: getVendorDispatcher(netOpts),
    headersTimeout: init.headersTimeoutMs ?? 60_000,
    bodyTimeout: init.bodyTimeoutMs ?? 120_000,
  });
}

/**
 * `fetch` through the SSRF-safe dispatcher (for SDK clients that take a custom fetch):
 * validates the URL, never follows redirects, headers timeout via the dispatcher.
 */
export function vendorFetch(url: string | URL, init: RequestInit = {}, netOpts: NetOptions = defaultNet): Promise<Response> {
  const u = assertSafeUrl(String(url), netOpts);
  return undiciFetch(u, {
    ...(init as Parameters<typeof undiciFetch>[1]),
    redirect: 'manual',
    dispatcher: getVendorDispatcher(netOpts),
  }) as unknown as Promise<Response>;
}

// ---------------------------------------------------------------------------------------
// Secrets → header strings

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Turns a secret's bytes into the string a header needs, at the last moment before the
 * request. JS strings cannot be wiped: the string lives until GC; the caller's Uint8Array
 * is left intact for the caller to wipe. Surrounding whitespace (a pasted newline) is cut.
 * Returns '' when the secret is absent.
 */
export function secretString(secrets: Record<string, Uint8Array>, name: string): string {
  const b = secrets[name];
  if (!b || b.length === 0) return '';
  return utf8.decode(b).trim();
}

export const USER_AGENT = 'byok-bot/0.1';

/** Joins a base URL and a path without doubling or losing slashes; appends a query. */
export function joinUrl(base: string, path: string, query?: Record<string, string>): string {
  const u = new URL(base);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
  if (query) for (const [k, v] of Object.entries(query)) u.searchParams.set(k, v);
  return u.toString();
}
