/**
 * Fake token endpoints of the three CLIs' OAuth providers on 127.0.0.1, speaking their
 * request shapes and their real error bodies:
 *
 *   POST /qwen/api/v1/oauth2/token       Qwen Code (chat.qwen.ai): form grant_type, refresh_token,
 *                                        client_id → {access_token, token_type, expires_in,
 *                                        refresh_token (rotated), resource_url}
 *   POST /google/token                   Google (Gemini CLI): form client_id, client_secret,
 *                                        refresh_token, grant_type → {access_token, expires_in,
 *                                        scope, token_type, id_token}; no new refresh token
 *   POST /anthropic/v1/oauth/token       Claude Code: JSON {grant_type, refresh_token, client_id}
 *                                        → {token_type, access_token, refresh_token (rotated),
 *                                        expires_in, scope}
 *
 * A used refresh token of a rotating provider (Qwen, Anthropic) is revoked when its
 * successor is issued, as the real ones do: reusing it answers 400 invalid_grant. Every
 * refresh is counted and recorded (content type, parsed body) for shape assertions.
 *
 *   const oauth = await startFakeOAuth();
 *   const first = oauth.issue('qwen-code', { expiresInS: -10 }); // an already expired set
 *   oauth.isValidAccess(token); oauth.refreshes('qwen-code'); oauth.revoke(refreshToken);
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import crypto from 'node:crypto';
import { getTemplate } from '../../src/vendors/templates.ts';

export type FakeProvider = 'qwen-code' | 'gemini-cli' | 'claude-code';

/** The CLIs' public OAuth clients, as the templates declare them: the fake accepts only these, as the real endpoints do. */
export const FAKE_CLIENT: Record<FakeProvider, { client_id: string; client_secret?: string }> = Object.fromEntries(
  (['qwen-code', 'gemini-cli', 'claude-code'] as const).map((p) => {
    const o = getTemplate(p)?.credential.oauth;
    if (!o) throw new Error(`template ${p} declares no OAuth client`);
    return [p, { client_id: o.client_id, ...(o.client_secret !== undefined && { client_secret: o.client_secret }) }];
  }),
) as Record<FakeProvider, { client_id: string; client_secret?: string }>;

const PATHS: Record<FakeProvider, string> = {
  'qwen-code': '/qwen/api/v1/oauth2/token',
  'gemini-cli': '/google/token',
  'claude-code': '/anthropic/v1/oauth/token',
};

export interface IssuedSet {
  access_token: string;
  refresh_token: string;
  /** ms since the epoch. */
  expiry_ms: number;
}

export interface RecordedRefresh {
  provider: FakeProvider;
  contentType: string;
  body: Record<string, string>;
  status: number;
}

export type FakeOAuthFault = 'server_error' | 'rate_limited' | 'hang';

export interface FakeOAuth {
  url: string;
  port: number;
  tokenUrl(p: FakeProvider): string;
  /** A fresh login: a registered refresh token and an access token expiring in `expiresInS` (default 3600). */
  issue(p: FakeProvider, opts?: { expiresInS?: number }): IssuedSet;
  isValidAccess(token: string): boolean;
  /** Successful refreshes so far (one provider, or all). */
  refreshes(p?: FakeProvider): number;
  requests: RecordedRefresh[];
  revoke(refreshToken: string): void;
  /** Revokes an access token before it expires (a forced 401). */
  revokeAccess(token: string): void;
  /** The refresh tokens that would work now. */
  liveRefreshTokens(p: FakeProvider): string[];
  /** Lifetime of access tokens issued by refreshes (seconds, default 3600). */
  setExpiresIn(s: number): void;
  /** Holds each token response this long (widens race windows). */
  setDelay(ms: number): void;
  /** The next `times` refreshes fail this way. */
  fail(f: FakeOAuthFault, times?: number): void;
  /** What Qwen's token responses give as resource_url (default http://127.0.0.1:<port>/qwen-api). */
  setResourceUrl(url: string): void;
  /** Called with every access token issued (to keep a fake vendor's key list in step). */
  onIssue(cb: (accessToken: string) => void): void;
  close(): Promise<void>;
}

function token(prefix: string): string {
  return prefix + crypto.randomBytes(24).toString('base64url');
}

export async function startFakeOAuth(): Promise<FakeOAuth> {
  const refreshOwners = new Map<string, FakeProvider>(); // live refresh tokens
  const access = new Map<string, number>(); // access token → expiry ms
  const counts: Record<FakeProvider, number> = { 'qwen-code': 0, 'gemini-cli': 0, 'claude-code': 0 };
  const requests: RecordedRefresh[] = [];
  const listeners: Array<(t: string) => void> = [];
  let expiresIn = 3600;
  let delayMs = 0;
  let fault: { f: FakeOAuthFault; left: number } | undefined;
  let port = 0;
  let resourceUrl: string | undefined;

  const newAccess = (p: FakeProvider, expiresInS: number): { token: string; expiry: number } => {
    const t = token(p === 'gemini-cli' ? 'ya29.a0' : p === 'claude-code' ? 'sk-ant-oat01-' : 'qat-');
    const expiry = Date.now() + expiresInS * 1000;
    access.set(t, expiry);
    for (const cb of listeners) cb(t);
    return { token: t, expiry };
  };
  const newRefresh = (p: FakeProvider): string => {
    const t = token(p === 'gemini-cli' ? '1//0g' : p === 'claude-code' ? 'sk-ant-ort01-' : 'qrt-');
    refreshOwners.set(t, p);
    return t;
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const provider = (Object.keys(PATHS) as FakeProvider[]).find((p) => PATHS[p] === req.url);
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        if (provider) requests.push({ provider, contentType: String(req.headers['content-type'] ?? ''), body: parsed, status });
        setTimeout(() => {
          if (res.destroyed) return;
          res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
        }, delayMs);
      };
      const raw = Buffer.concat(chunks).toString('utf8');
      let parsed: Record<string, string> = {};
      if (!provider || req.method !== 'POST') return void json(404, { error: 'not_found' });
      const ct = String(req.headers['content-type'] ?? '');
      try {
        parsed = ct.startsWith('application/json') ? (JSON.parse(raw) as Record<string, string>) : Object.fromEntries(new URLSearchParams(raw));
      } catch {
        return void json(400, { error: 'invalid_request', error_description: 'Invalid request format' });
      }
      if (fault && fault.left > 0) {
        fault.left--;
        if (fault.f === 'hang') return; // never answers
        if (fault.f === 'rate_limited') return void json(429, { error: 'rate_limit_exceeded' }, { 'retry-after': '2' });
        return void json(503, { error: 'temporarily_unavailable' });
      }
      const client = FAKE_CLIENT[provider];
      // The content type each CLI uses is the one each endpoint accepts.
      const wantJson = provider === 'claude-code';
      if (wantJson !== ct.startsWith('application/json')) return void json(400, { error: 'invalid_request', error_description: 'Invalid request format' });
      if (parsed.grant_type !== 'refresh_token' || !parsed.refresh_token) return void json(400, { error: 'invalid_request', error_description: 'Missing required parameter: refresh_token' });
      if (parsed.client_id !== client.client_id || (client.client_secret && parsed.client_secret !== client.client_secret)) {
        return void json(401, { error: 'invalid_client', error_description: 'The OAuth client was not found.' });
      }
      if (provider === 'claude-code' && 'scope' in parsed) return void json(400, { error: 'invalid_scope', error_description: 'The requested scope is invalid, unknown, or malformed.' });
      if (refreshOwners.get(parsed.refresh_token) !== provider) {
        const bodies: Record<FakeProvider, unknown> = {
          'qwen-code': { error: 'invalid_grant', error_description: 'Invalid refresh token or client_id' },
          'gemini-cli': { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' },
          'claude-code': { error: 'invalid_grant', error_description: 'Refresh token not found or invalid' },
        };
        return void json(400, bodies[provider]);
      }
      counts[provider]++;
      const a = newAccess(provider, expiresIn);
      if (provider === 'gemini-cli') {
        return void json(200, { access_token: a.token, expires_in: expiresIn, scope: 'https://www.googleapis.com/auth/cloud-platform openid', token_type: 'Bearer', id_token: 'eyJ.fake.idtoken' });
      }
      // Rotation: the used refresh token dies when its successor is issued.
      refreshOwners.delete(parsed.refresh_token);
      const next = newRefresh(provider);
      if (provider === 'qwen-code') {
        return void json(200, { access_token: a.token, token_type: 'Bearer', expires_in: expiresIn, refresh_token: next, resource_url: resourceUrl ?? `http://127.0.0.1:${port}/qwen-api` });
      }
      json(200, { token_type: 'Bearer', access_token: a.token, refresh_token: next, expires_in: expiresIn, scope: 'user:inference user:profile' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    tokenUrl: (p) => url + PATHS[p],
    issue(p, opts = {}) {
      const a = newAccess(p, opts.expiresInS ?? 3600);
      return { access_token: a.token, refresh_token: newRefresh(p), expiry_ms: a.expiry };
    },
    isValidAccess: (t) => (access.get(t) ?? 0) > Date.now(),
    refreshes: (p) => (p ? counts[p] : counts['qwen-code'] + counts['gemini-cli'] + counts['claude-code']),
    requests,
    revoke: (t) => void refreshOwners.delete(t),
    revokeAccess: (t) => void access.delete(t),
    liveRefreshTokens: (p) => [...refreshOwners].filter(([, o]) => o === p).map(([t]) => t),
    setExpiresIn: (s) => void (expiresIn = s),
    setDelay: (ms) => void (delayMs = ms),
    fail: (f, times = 1) => void (fault = { f, left: times }),
    setResourceUrl: (u) => void (resourceUrl = u),
    onIssue: (cb) => void listeners.push(cb),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
