/**
 * AWS Signature Version 4, hand-signed on purpose: the secret access key stays a Uint8Array
 * the caller wipes, and every derived HMAC key is zeroed after use. @smithy/signature-v4
 * takes the secret as a JS string (unwipeable) and caches signing keys, so it is used only
 * by the tests (the fake Bedrock verifies our signatures with it). The steps are exported so
 * test/unit/sigv4.test.ts can check each against AWS's published SigV4 test suite.
 */
import crypto from 'node:crypto';

/** AWS's URI escaping (RFC 3986 unreserved characters kept). */
export function awsEscape(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function sha256Hex(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export interface CanonicalRequestInput {
  method: string;
  /** The path as it goes on the wire; each segment is escaped (again) as non-S3 services want. */
  path: string;
  /** Decoded query pairs. */
  query: Iterable<[string, string]>;
  /** Lowercase names; a repeated header's values are joined with commas in the given order. */
  headers: Record<string, string | string[]>;
  /** Lowercase names of the headers to sign. */
  signedHeaders: string[];
  payloadHash: string;
}

/**
 * Path normalisation as AWS does it for every service but S3: empty and `.` segments are
 * dropped, `..` removes the one before; a leading and a trailing slash are kept.
 */
export function normalizePath(path: string): string {
  const out: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  return `${path.startsWith('/') ? '/' : ''}${out.join('/')}${out.length && path.endsWith('/') ? '/' : ''}`;
}

/** Step 1: the canonical request. */
export function canonicalRequest(r: CanonicalRequestInput): string {
  const names = [...r.signedHeaders].sort();
  const value = (v: string | string[]) => (Array.isArray(v) ? v : [v]).map((x) => x.trim().replace(/\s+/g, ' ')).join(',');
  const canonicalHeaders = names.map((k) => `${k}:${value(r.headers[k] ?? '')}\n`).join('');
  const canonicalPath = r.path.split('/').map((seg) => awsEscape(seg)).join('/') || '/';
  const canonicalQuery = [...r.query]
    .map(([k, v]) => [awsEscape(k), awsEscape(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  return [r.method, canonicalPath, canonicalQuery, canonicalHeaders, names.join(';'), r.payloadHash].join('\n');
}

/** Step 2: the string to sign, for an `x-amz-date` (YYYYMMDDTHHMMSSZ) and a credential scope. */
export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
}

export function credentialScope(day: string, region: string, service: string): string {
  return `${day}/${region}/${service}/aws4_request`;
}

function hmac(key: Uint8Array, data: string): Buffer {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

/**
 * Step 3: the hex signature. The signing key chain starts from "AWS4" + the secret's bytes;
 * every intermediate key is zeroed once used. The caller's secret bytes are left intact.
 */
export function signature(secretAccessKey: Uint8Array, day: string, region: string, service: string, toSign: string): string {
  const k0 = new Uint8Array(4 + secretAccessKey.length);
  k0.set([0x41, 0x57, 0x53, 0x34]); // "AWS4"
  k0.set(secretAccessKey, 4);
  let k = hmac(k0, day);
  k0.fill(0);
  for (const part of [region, service, 'aws4_request']) {
    const next = hmac(k, part);
    k.fill(0);
    k = next;
  }
  const sig = crypto.createHmac('sha256', k).update(toSign, 'utf8').digest('hex');
  k.fill(0);
  return sig;
}

export function amzDateOf(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export interface SigV4Input {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: string;
  region: string;
  service: string;
  accessKeyId: string;
  secretAccessKey: Uint8Array;
  sessionToken?: string;
  date?: Date;
}

/**
 * Signs a request: returns the headers to add (x-amz-date, x-amz-content-sha256,
 * x-amz-security-token when given, authorization). Signs host, content-type and x-amz-*.
 */
export function signV4(i: SigV4Input): Record<string, string> {
  const amzDate = amzDateOf(i.date ?? new Date());
  const day = amzDate.slice(0, 8);
  const payloadHash = sha256Hex(i.body);
  const add: Record<string, string> = { 'x-amz-date': amzDate, 'x-amz-content-sha256': payloadHash };
  if (i.sessionToken) add['x-amz-security-token'] = i.sessionToken;
  const all: Record<string, string> = { host: i.url.host, ...lower(i.headers), ...add };
  const signedHeaders = Object.keys(all)
    .filter((k) => k === 'host' || k === 'content-type' || k.startsWith('x-amz-'))
    .sort();
  const canonical = canonicalRequest({ method: i.method, path: normalizePath(i.url.pathname), query: i.url.searchParams, headers: all, signedHeaders, payloadHash });
  const scope = credentialScope(day, i.region, i.service);
  const sig = signature(i.secretAccessKey, day, i.region, i.service, stringToSign(amzDate, scope, canonical));
  add.authorization = `AWS4-HMAC-SHA256 Credential=${i.accessKeyId}/${scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${sig}`;
  return add;
}

function lower(h: Record<string, string>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) o[k.toLowerCase()] = v;
  return o;
}
