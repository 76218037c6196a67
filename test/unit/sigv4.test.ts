import fs from 'node:fs';
import crypto from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { amzDateOf, canonicalRequest, credentialScope, normalizePath, sha256Hex, signature, signV4, stringToSign } from '../../src/vendors/sigv4.ts';

// AWS's published SigV4 test suite; where it comes from is written in the file itself.
interface Vector {
  name: string;
  context: { normalize: boolean; sign_body: boolean; region: string; service: string; timestamp: string; session_token?: string };
  request: string;
  canonical_request: string;
  string_to_sign: string;
  signature: string;
}
const suite = JSON.parse(fs.readFileSync(new URL('../fixtures/sigv4/aws-sig-v4-test-suite.json', import.meta.url), 'utf8')) as {
  credentials: { access_key_id: string; secret_access_key: string };
  vectors: Vector[];
};

/** The vector's raw HTTP request: method, path and query as written, headers (lowercased; folded lines joined), body. */
function parseRequest(raw: string) {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut < 0 ? raw : raw.slice(0, cut);
  const body = cut < 0 ? '' : raw.slice(cut).replace(/^\r?\n\r?\n/, '');
  const [first, ...lines] = head.split(/\r?\n/);
  const method = first!.slice(0, first!.indexOf(' '));
  const target = first!.slice(method.length + 1, first!.lastIndexOf(' HTTP/'));
  const headers: Record<string, string[]> = {};
  let last = '';
  for (const l of lines) {
    if (l === '') continue;
    if (/^\s/.test(l)) {
      const vals = headers[last]!;
      vals[vals.length - 1] += ` ${l.trim()}`;
      continue;
    }
    last = l.slice(0, l.indexOf(':')).toLowerCase();
    (headers[last] ??= []).push(l.slice(l.indexOf(':') + 1));
  }
  const q = target.indexOf('?');
  return { method, path: q < 0 ? target : target.slice(0, q), query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)), headers, body };
}

describe('SigV4 against the AWS test suite', () => {
  const secret = new TextEncoder().encode(suite.credentials.secret_access_key);
  it('has the vectors the brief names', () => {
    const names = suite.vectors.map((v) => v.name);
    for (const n of ['get-vanilla', 'post-vanilla', 'get-vanilla-query-order-key-case', 'post-x-www-form-urlencoded', 'get-vanilla-with-session-token']) expect(names).toContain(n);
    expect(names.length).toBeGreaterThanOrEqual(30);
  });
  for (const v of suite.vectors) {
    it(v.name, () => {
      const r = parseRequest(v.request);
      const amzDate = amzDateOf(new Date(v.context.timestamp));
      const day = amzDate.slice(0, 8);
      const payloadHash = sha256Hex(r.body);
      // Header signing as the suite does it: every request header, plus x-amz-date, the body hash when signed, the session token.
      const headers: Record<string, string | string[]> = { ...r.headers, 'x-amz-date': amzDate };
      if (v.context.sign_body) headers['x-amz-content-sha256'] = payloadHash;
      if (v.context.session_token) headers['x-amz-security-token'] = v.context.session_token;
      const creq = canonicalRequest({
        method: r.method,
        path: v.context.normalize ? normalizePath(r.path) : r.path,
        query: r.query,
        headers,
        signedHeaders: Object.keys(headers),
        payloadHash,
      });
      expect(creq).toBe(v.canonical_request);
      const sts = stringToSign(amzDate, credentialScope(day, v.context.region, v.context.service), creq);
      expect(sts).toBe(v.string_to_sign);
      expect(signature(secret, day, v.context.region, v.context.service, sts)).toBe(v.signature);
    });
  }
  it('leaves the caller’s secret bytes intact (the caller wipes them)', () => {
    expect(new TextDecoder().decode(secret)).toBe(suite.credentials.secret_access_key);
  });
});

describe('signV4 (the whole request, as the Bedrock wire uses it)', () => {
  class NodeSha256 {
    private h: crypto.Hash | crypto.Hmac;
    constructor(secret?: string | Uint8Array) {
      this.h = secret ? crypto.createHmac('sha256', secret) : crypto.createHash('sha256');
    }
    update(d: string | Uint8Array): void {
      this.h.update(d);
    }
    digest(): Promise<Uint8Array> {
      return Promise.resolve(new Uint8Array(this.h.digest()));
    }
  }

  it('matches the AWS SDK signer (@smithy/signature-v4) on a Bedrock Converse request, session token and odd path included', async () => {
    const url = new URL('https://bedrock-runtime.eu-west-1.amazonaws.com//x/./model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse?b=2&a=1');
    const body = JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] });
    const date = new Date('2025-01-02T03:04:05Z');
    const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', sessionToken: 'tok/en+=' };
    const ours = signV4({
      method: 'POST', url, headers: { 'Content-Type': 'application/json' }, body, region: 'eu-west-1', service: 'bedrock',
      accessKeyId: creds.accessKeyId, secretAccessKey: new TextEncoder().encode(creds.secretAccessKey), sessionToken: creds.sessionToken, date,
    });
    const signer = new SignatureV4({ credentials: creds, region: 'eu-west-1', service: 'bedrock', sha256: NodeSha256 as never });
    const theirs = (await signer.sign(
      {
        method: 'POST', protocol: 'https:', hostname: url.hostname, path: url.pathname, query: { b: '2', a: '1' },
        headers: { host: url.host, 'content-type': 'application/json', 'x-amz-content-sha256': ours['x-amz-content-sha256']!, 'x-amz-security-token': creds.sessionToken },
        body,
      } as never,
      { signingDate: date },
    )) as unknown as { headers: Record<string, string> };
    expect(ours.authorization).toBe(theirs.headers.authorization);
    expect(ours['x-amz-date']).toBe('20250102T030405Z');
  });
});
