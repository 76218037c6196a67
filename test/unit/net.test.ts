import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ipaddr from 'ipaddr.js';
import { request } from 'undici';
import { blockedAddressReason, createVendorDispatcher, parseIPv6, validateBaseUrl, vendorRequest } from '../../src/vendors/net.ts';
import { classifyError, classifyHttp, parseRetryAfter, scrubVendorMessage } from '../../src/vendors/classify.ts';

const strict = { allowPrivate: false, allowlist: [] as string[] };

describe('validateBaseUrl', () => {
  const refused = [
    'http://127.0.0.1/',
    'http://127.1/',
    'http://2852039166/', // 169.254.169.254
    'http://0xa9fea9fe/',
    'http://0x7f.1/',
    'http://0177.0.0.1/',
    'http://017700000001/',
    'http://0x7f000001/',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.5/',
    'http://172.16.3.4/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://100.64.0.1/',
    'http://0.0.0.0/',
    'http://224.0.0.1/',
    'http://255.255.255.255/',
    'http://[::1]/',
    'http://[::]/',
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[0:0:0:0:0:ffff:7f00:1]/',
    'http://[::127.0.0.1]/',
    'http://[64:ff9b::a9fe:a9fe]/',
    'http://[64:ff9b::10.0.0.1]/',
    'http://[2002:7f00:1::]/',
    'http://[fd00:ec2::254]/',
    'http://[fc00::1]/',
    'http://[fe80::1]/',
    'http://[ff02::1]/',
    'http://localhost:8080/',
    'http://LOCALHOST./',
    'http://api.localhost/',
    'ftp://api.openai.com/',
    'file:///etc/passwd',
    'http://user:pass@api.openai.com/',
    'https://sk-abc@api.openai.com/',
    'not a url',
  ];
  for (const u of refused) {
    it(`refuses ${u}`, () => {
      const r = validateBaseUrl(u, strict);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.code).toBe('unsafe_url');
        expect(r.error.length).toBeGreaterThan(10);
      }
    });
  }
  const accepted = ['https://api.openai.com/v1', 'https://api.anthropic.com', 'http://8.8.8.8/', 'http://[2606:4700::1111]/', 'https://bedrock-runtime.us-east-1.amazonaws.com', 'http://[64:ff9b::808:808]/'];
  for (const u of accepted) {
    it(`accepts ${u}`, () => expect(validateBaseUrl(u, strict).ok).toBe(true));
  }
  it('names the range in the message', () => {
    const r = validateBaseUrl('http://2852039166/', strict);
    expect(!r.ok && r.error).toMatch(/metadata/);
    const r2 = validateBaseUrl('http://[::ffff:a9fe:a9fe]/', strict);
    expect(!r2.ok && r2.error).toMatch(/metadata.*IPv4-mapped/);
  });
  it('operator switch and allowlist', () => {
    expect(validateBaseUrl('http://127.0.0.1:9/', { allowPrivate: true, allowlist: [] }).ok).toBe(true);
    expect(validateBaseUrl('http://127.0.0.1:9/', { allowPrivate: false, allowlist: ['127.0.0.1:9'] }).ok).toBe(true);
    expect(validateBaseUrl('http://127.0.0.1:10/', { allowPrivate: false, allowlist: ['127.0.0.1:9'] }).ok).toBe(false);
    expect(validateBaseUrl('http://vllm.internal:8000/v1', { allowPrivate: false, allowlist: ['vllm.internal'] }).ok).toBe(true);
    // credentials stay refused even when private addresses are allowed
    expect(validateBaseUrl('http://u:p@127.0.0.1/', { allowPrivate: true, allowlist: [] }).ok).toBe(false);
  });
});

describe('address classification', () => {
  it('parses IPv6 forms', () => {
    expect(parseIPv6('::ffff:1.2.3.4')).toEqual([0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
    expect(parseIPv6('2001:db8::1')).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    expect(parseIPv6('fe80::1%eth0')).toEqual([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    expect(parseIPv6('1::2::3')).toBeUndefined();
  });
  it('blocks and passes', () => {
    expect(blockedAddressReason('169.254.169.254')).toMatch(/metadata/);
    expect(blockedAddressReason('fd00:ec2::254')).toMatch(/metadata/);
    expect(blockedAddressReason('::ffff:10.1.2.3')).toMatch(/private/);
    expect(blockedAddressReason('100.127.255.255')).toMatch(/carrier/);
    expect(blockedAddressReason('100.128.0.1')).toBeUndefined();
    expect(blockedAddressReason('172.32.0.1')).toBeUndefined();
    expect(blockedAddressReason('1.1.1.1')).toBeUndefined();
    expect(blockedAddressReason('2606:4700:4700::1111')).toBeUndefined();
  });
});

describe('connect-time checks (DNS rebinding)', () => {
  let server: http.Server;
  let port = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('secret internal data'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('refuses a public-looking name that resolves to 127.0.0.1 at connect time', async () => {
    let calls = 0;
    const resolve = async () => {
      calls++;
      return [{ address: '127.0.0.1', family: 4 as const }];
    };
    // The name passes URL validation (it is not an IP literal) ...
    expect(validateBaseUrl(`http://api.vendor-example.com:${port}/`, strict).ok).toBe(true);
    // ... but the connector refuses the resolved address.
    const d = createVendorDispatcher({ ...strict, resolve });
    const err = await request(`http://api.vendor-example.com:${port}/`, { dispatcher: d }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(calls).toBe(1);
    expect(err).toBeTruthy();
    const c = classifyError(err);
    expect(c.outcome).toBe('rejected');
    expect(c.whatToDo).toBe('check_base_url');
    expect(c.message).toMatch(/loopback/);
    await d.close();
  });

  it('refuses when any one of several resolved addresses is private', async () => {
    const resolve = async () => [
      { address: '93.184.216.34', family: 4 as const },
      { address: '::ffff:169.254.169.254', family: 6 as const },
    ];
    const d = createVendorDispatcher({ ...strict, resolve });
    await expect(request(`http://rebind.example:${port}/`, { dispatcher: d })).rejects.toThrow(/metadata/);
    await d.close();
  });

  it('refuses a literal private IP at connect time too (vendorRequest validates first)', async () => {
    await expect(vendorRequest(`http://127.0.0.1:${port}/`, { method: 'GET' }, strict)).rejects.toThrow(/loopback/);
    const d = createVendorDispatcher(strict);
    await expect(request(`http://127.0.0.1:${port}/`, { dispatcher: d })).rejects.toThrow(/loopback/);
    await d.close();
  });

  it('lets the same resolution through when the operator allows private addresses or allowlists the host', async () => {
    const resolve = async () => [{ address: '127.0.0.1', family: 4 as const }];
    const d = createVendorDispatcher({ allowPrivate: true, allowlist: [] });
    const r = await request(`http://127.0.0.1:${port}/`, { dispatcher: d });
    expect(await r.body.text()).toBe('secret internal data');
    await d.close();
    const d2 = createVendorDispatcher({ allowPrivate: false, allowlist: ['localhost'], resolve });
    const r2 = await request(`http://localhost:${port}/`, { dispatcher: d2 });
    expect(r2.statusCode).toBe(200);
    await r2.body.text();
    await d2.close();
  });

  it('does not follow redirects', async () => {
    const s = http.createServer((_req, res) => {
      res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' });
      res.end();
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const p = (s.address() as AddressInfo).port;
    const r = await vendorRequest(`http://127.0.0.1:${p}/v1/chat/completions`, { method: 'POST', body: '{}' }, { allowPrivate: false, allowlist: [`127.0.0.1:${p}`] });
    expect(r.statusCode).toBe(307);
    await r.body.text();
    const c = classifyHttp(307, r.headers, '');
    expect(c.outcome).toBe('rejected');
    expect(c.whatToDo).toBe('check_base_url');
    await new Promise<void>((res) => s.close(() => res()));
  });

  it('classifies connection refused and DNS failure as unreachable', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const p = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const e1 = await vendorRequest(`http://127.0.0.1:${p}/`, { method: 'GET' }, { allowPrivate: true, allowlist: [] }).catch((e: unknown) => e);
    expect(classifyError(e1).outcome).toBe('unreachable');
    const e2 = await vendorRequest('http://no-such-host.invalid/', { method: 'GET' }, strict).catch((e: unknown) => e);
    expect(classifyError(e2).outcome).toBe('unreachable');
  });
});

describe('classification', () => {
  const oa = (code: string | null, message: string, type = 'invalid_request_error') => JSON.stringify({ error: { message, type, param: null, code } });
  it('OpenAI bodies', () => {
    const k = classifyHttp(401, {}, oa('invalid_api_key', 'Incorrect API key provided: sk-abc***wxyz. You can find your API key at https://platform.openai.com/account/api-keys.'));
    expect(k.outcome).toBe('invalid_key');
    expect(k.whatToDo).toBe('resubmit_key');
    expect(k.message).not.toMatch(/sk-abc|wxyz|\*\*\*/);
    expect(classifyHttp(404, {}, oa('model_not_found', 'The model `gpt-9` does not exist or you do not have access to it.')).outcome).toBe('invalid_model');
    expect(classifyHttp(400, {}, oa(null, 'The model `foo` does not exist')).outcome).toBe('invalid_model');
    expect(classifyHttp(400, {}, oa(null, "Invalid 'max_tokens': integer below minimum value.")).outcome).toBe('rejected');
    const q = classifyHttp(429, {}, oa('insufficient_quota', 'You exceeded your current quota, please check your plan and billing details.', 'insufficient_quota'));
    expect(q.outcome).toBe('quota_exceeded');
    expect(q.whatToDo).toBe('check_billing');
    const rl = classifyHttp(429, { 'retry-after': '20' }, oa('rate_limit_exceeded', 'Rate limit reached', 'requests'));
    expect(rl).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 20_000, whatToDo: 'wait' });
    expect(classifyHttp(429, { 'retry-after-ms': '1500', 'retry-after': '2' }, oa('rate_limit_exceeded', 'x')).retryAfterMs).toBe(1500);
    expect(classifyHttp(500, {}, oa(null, 'The server had an error', 'server_error')).outcome).toBe('vendor_unavailable');
    expect(classifyHttp(503, {}, 'upstream connect error').outcome).toBe('vendor_unavailable');
    expect(classifyHttp(403, {}, oa(null, 'You have insufficient permissions for this operation. Missing scopes: model.request.')).outcome).toBe('invalid_key');
    expect(classifyHttp(403, {}, oa('unsupported_country_region_territory', 'Country, region, or territory not supported')).outcome).toBe('rejected');
    expect(classifyHttp(402, {}, JSON.stringify({ error: { message: 'Insufficient Balance', type: 'unknown_error' } })).outcome).toBe('quota_exceeded');
    expect(classifyHttp(404, {}, '<html>404 page not found</html>')).toMatchObject({ outcome: 'rejected', whatToDo: 'check_base_url' });
    expect(classifyHttp(404, {}, JSON.stringify({ error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist.' } })).outcome).toBe('invalid_model');
  });
  it('Anthropic bodies', () => {
    const a = (type: string, message: string) => JSON.stringify({ type: 'error', error: { type, message } });
    expect(classifyHttp(401, {}, a('authentication_error', 'invalid x-api-key')).outcome).toBe('invalid_key');
    expect(classifyHttp(403, {}, a('permission_error', 'no')).outcome).toBe('invalid_key');
    expect(classifyHttp(404, {}, a('not_found_error', 'model: claude-x')).outcome).toBe('invalid_model');
    expect(classifyHttp(429, { 'retry-after': '7' }, a('rate_limit_error', 'slow down'))).toMatchObject({ outcome: 'rate_limited', retryAfterMs: 7000 });
    expect(classifyHttp(400, {}, a('invalid_request_error', 'Your credit balance is too low to access the Anthropic API.')).outcome).toBe('quota_exceeded');
    expect(classifyHttp(402, {}, a('billing_error', 'billing')).outcome).toBe('quota_exceeded');
    expect(classifyHttp(529, {}, a('overloaded_error', 'Overloaded')).outcome).toBe('vendor_unavailable');
    expect(classifyHttp(500, {}, a('api_error', 'Internal server error')).outcome).toBe('vendor_unavailable');
  });
  it('Bedrock errors', () => {
    const h = (t: string) => ({ 'x-amzn-errortype': `${t}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
    const b = (m: string) => JSON.stringify({ message: m });
    expect(classifyHttp(403, h('UnrecognizedClientException'), b('The security token included in the request is invalid.')).outcome).toBe('invalid_key');
    expect(classifyHttp(403, h('InvalidSignatureException'), b('The request signature we calculated does not match')).outcome).toBe('invalid_key');
    expect(classifyHttp(403, h('AccessDeniedException'), b('User: arn:aws:iam::123:user/x is not authorized to perform: bedrock:InvokeModel')).outcome).toBe('invalid_key');
    expect(classifyHttp(403, h('AccessDeniedException'), b("You don't have access to the model with the specified model ID.")).outcome).toBe('invalid_model');
    expect(classifyHttp(400, h('ValidationException'), b('The provided model identifier is invalid.')).outcome).toBe('invalid_model');
    expect(classifyHttp(400, h('ValidationException'), b('maxTokens must be positive')).outcome).toBe('rejected');
    expect(classifyHttp(404, h('ResourceNotFoundException'), b('Model not found')).outcome).toBe('invalid_model');
    expect(classifyHttp(429, h('ThrottlingException'), b('Too many requests, please wait before trying again.')).outcome).toBe('rate_limited');
    expect(classifyHttp(503, h('ServiceUnavailableException'), b('Bedrock is unable to process your request.')).outcome).toBe('vendor_unavailable');
    expect(classifyHttp(400, {}, JSON.stringify({ __type: 'com.amazon.coral.validate#ValidationException', message: 'The provided model identifier is invalid.' })).outcome).toBe('invalid_model');
  });
  it('Retry-After as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter({ 'retry-after': 'Thu, 01 Jan 2026 00:00:30 GMT' }, now)).toBe(30_000);
  });
  it('scrubs key material from vendor messages', () => {
    const s = scrubVendorMessage('Incorrect API key provided: sk-proj-AbCdEf1234567890XYZabcdef. Also AKIAIOSFODNN7EXAMPL2 and Bearer abc.def and 0123456789abcdef0123456789abcdef', ['my-exact-secret']);
    expect(s).not.toMatch(/sk-proj|AKIA|abc\.def|0123456789abcdef/);
    expect(scrubVendorMessage('echo my-exact-secret here', ['my-exact-secret'])).toBe('echo [redacted] here');
    expect(scrubVendorMessage('The model `gpt-4o-mini-2024-07-18` does not exist')).toContain('gpt-4o-mini-2024-07-18');
  });
});

// Every blocked range, written out here as the spec (first match wins, as in src/vendors/net.ts).
// Forms that embed an IPv4 address are judged by the IPv4 table and named in the reason.
const SPEC_V4: [string, string][] = [
  ['0.0.0.0/8', 'the "this network" range'], ['10.0.0.0/8', 'a private address'], ['100.64.0.0/10', 'a carrier-grade NAT address'],
  ['127.0.0.0/8', 'a loopback address'], ['169.254.169.254/32', 'the cloud metadata address'], ['169.254.0.0/16', 'a link-local address'],
  ['172.16.0.0/12', 'a private address'], ['192.0.0.0/24', 'an IETF protocol address'], ['192.0.2.0/24', 'a documentation address'],
  ['192.88.99.0/24', 'a 6to4 relay address'], ['192.168.0.0/16', 'a private address'], ['198.18.0.0/15', 'a benchmarking address'],
  ['198.51.100.0/24', 'a documentation address'], ['203.0.113.0/24', 'a documentation address'], ['224.0.0.0/4', 'a multicast address'],
  ['255.255.255.255/32', 'the broadcast address'], ['240.0.0.0/4', 'a reserved address'],
];
const SPEC_V6: [string, string | { embeds: string; at: 'low32' | '6to4' }][] = [
  ['::/128', 'the unspecified address'], ['::1/128', 'a loopback address'],
  ['::ffff:0:0/96', { embeds: 'IPv4-mapped', at: 'low32' }], ['::ffff:0:0:0/96', { embeds: 'IPv4-translated', at: 'low32' }],
  ['::/96', { embeds: 'IPv4-compatible', at: 'low32' }], ['64:ff9b::/96', { embeds: 'NAT64', at: 'low32' }],
  ['64:ff9b:1::/48', 'a local-use NAT64 address'], ['2002::/16', { embeds: '6to4', at: '6to4' }],
  ['2001::/32', 'a Teredo address'], ['2001:db8::/32', 'a documentation address'], ['100::/64', 'a discard-only address'],
  ['fd00:ec2::/32', 'the cloud metadata address'], ['fc00::/7', 'a private (unique local) address'], ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local address'], ['ff00::/8', 'a multicast address'],
];

describe('every blocked range, first and last address (and the addresses just outside)', () => {
  const v4Num = (ip: ipaddr.IPv4) => ip.octets.reduce((n, o) => n * 256 + o, 0);
  const v4Of = (n: number) => new ipaddr.IPv4([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const v6Num = (ip: ipaddr.IPv6) => ip.parts.reduce((n, p) => (n << 16n) | BigInt(p), 0n);
  const v6Of = (n: bigint) => new ipaddr.IPv6(Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(16 * (7 - i))) & 0xffffn)));
  const spec4 = (ip: ipaddr.IPv4) => SPEC_V4.find(([c]) => ip.match(ipaddr.IPv4.parseCIDR(c)))?.[1];
  const spec6 = (ip: ipaddr.IPv6) => {
    const hit = SPEC_V6.find(([c]) => ip.match(ipaddr.IPv6.parseCIDR(c)));
    if (!hit) return undefined;
    if (typeof hit[1] === 'string') return hit[1];
    const g = ip.parts;
    const [hi, lo] = hit[1].at === '6to4' ? [g[1]!, g[2]!] : [g[6]!, g[7]!];
    const inner = v4Of(((hi << 16) | lo) >>> 0);
    const why = spec4(inner);
    return why && `${why} (${hit[1].embeds} ${inner.toString()})`;
  };
  for (const [cidr] of SPEC_V4) {
    it(cidr, () => {
      const first = v4Num(ipaddr.IPv4.networkAddressFromCIDR(cidr));
      const last = v4Num(ipaddr.IPv4.broadcastAddressFromCIDR(cidr));
      for (const n of [first, last]) expect(blockedAddressReason(v4Of(n).toString())).toBeDefined();
      for (const n of [first - 1, first, last, last + 1].filter((x) => x >= 0 && x <= 0xffffffff)) {
        const ip = v4Of(n);
        expect(blockedAddressReason(ip.toString()), ip.toString()).toBe(spec4(ip));
        // The same address inside each IPv6 form that embeds one.
        expect(blockedAddressReason(`::ffff:${ip}`)).toBe(spec6(ipaddr.IPv6.parse(`::ffff:${ip}`)));
      }
    });
  }
  for (const [cidr] of SPEC_V6) {
    it(cidr, () => {
      const first = v6Num(ipaddr.IPv6.networkAddressFromCIDR(cidr));
      const last = v6Num(ipaddr.IPv6.broadcastAddressFromCIDR(cidr));
      for (const n of [first, last]) expect(blockedAddressReason(v6Of(n).toString())).toBeDefined();
      for (const n of [first - 1n, first, last, last + 1n].filter((x) => x >= 0n && x < 1n << 128n)) {
        const ip = v6Of(n);
        expect(blockedAddressReason(ip.toString()), ip.toString()).toBe(spec6(ip));
        expect(blockedAddressReason(`[${ip.toNormalizedString()}]`)).toBe(spec6(ip));
      }
    });
  }
  it('names the embedded address and the form it came in', () => {
    expect(blockedAddressReason('::ffff:0:0')).toBe('the "this network" range (IPv4-mapped 0.0.0.0)');
    expect(blockedAddressReason('2002:ffff:ffff::')).toBe('the broadcast address (6to4 255.255.255.255)');
    expect(blockedAddressReason('::7f00:1')).toBe('a loopback address (IPv4-compatible 127.0.0.1)');
    expect(blockedAddressReason('::127.0.0.1')).toBe('a loopback address (IPv4-compatible 127.0.0.1)');
    expect(blockedAddressReason('64:ff9b::808:808')).toBeUndefined();
  });
});
