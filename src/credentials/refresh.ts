import { isByokError } from '../errors.ts';
import { scrubSecret } from '../secrets/scrub.ts';
import { parseRetryAfter } from '../vendors/classify.ts';
import { VendorError } from '../vendors/errors.ts';
import { getDefaultNetOptions, USER_AGENT, vendorRequest, type NetOptions } from '../vendors/net.ts';
import type { OAuthConfig } from '../vendors/template-schema.ts';
import { loginAgainError } from './errors.ts';
import { CLI_NAMES, type TokenSet } from './types.ts';

/** One token request: the endpoints answer in well under a second. */
export const REFRESH_TIMEOUT_MS = 15_000;
/** When an endpoint gives no expires_in: one hour, what all three issue. */
const DEFAULT_EXPIRES_IN_S = 3600;

/**
 * OAuth error codes that mean "this refresh token will never work again": only a new login
 * in the CLI helps. (Google and Anthropic answer 400 invalid_grant for a revoked, expired or
 * rotated-away refresh token.)
 */
const LOGIN_AGAIN_CODES = new Set(['invalid_grant', 'invalid_token', 'unauthorized_client', 'access_denied']);

export interface RefreshOptions {
  signal?: AbortSignal;
  net?: NetOptions;
  now?: () => number;
}

interface TokenResponse {
  access_token?: unknown;
  refresh_token?: unknown;
  expires_in?: unknown;
  resource_url?: unknown;
  scope?: unknown;
  id_token?: unknown;
  error?: unknown;
  error_description?: unknown;
}

/**
 * The request each CLI sends to refresh (checked against the CLIs' own sources):
 *  - Qwen Code:   form grant_type=refresh_token, refresh_token, client_id
 *  - Gemini CLI:  form client_id, client_secret (Google's installed-app secret), refresh_token, grant_type
 *  - Claude Code: JSON {grant_type, refresh_token, client_id}
 */
function requestOf(ts: TokenSet, cfg: OAuthConfig): { headers: Record<string, string>; body: string } {
  const accept = { accept: 'application/json', 'user-agent': USER_AGENT };
  if (cfg.provider === 'claude-code') {
    return {
      headers: { ...accept, 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: ts.refresh_token, client_id: cfg.client_id }),
    };
  }
  const form = new URLSearchParams();
  if (cfg.provider === 'gemini-cli') {
    form.set('client_id', cfg.client_id);
    if (cfg.client_secret) form.set('client_secret', cfg.client_secret);
    form.set('refresh_token', ts.refresh_token);
    form.set('grant_type', 'refresh_token');
  } else {
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', ts.refresh_token);
    form.set('client_id', cfg.client_id);
  }
  return { headers: { ...accept, 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() };
}

/**
 * Exchanges the refresh token for a new access token (and, where the provider rotates them,
 * a new refresh token; Google usually returns none and the old one stays). Returns a new
 * TokenSet; `ts` is not changed. Throws loginAgainError when the endpoint definitely refuses
 * the refresh token, a transient VendorError (rate_limited, vendor_unavailable, unreachable)
 * otherwise. Messages carry no token: the endpoint's own text is scrubbed of both tokens.
 */
export async function refreshTokenSet(ts: TokenSet, cfg: OAuthConfig, opts: RefreshOptions = {}): Promise<TokenSet> {
  const cli = CLI_NAMES[cfg.provider];
  const now = opts.now ?? Date.now;
  const { headers, body } = requestOf(ts, cfg);
  const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(REFRESH_TIMEOUT_MS)]) : AbortSignal.timeout(REFRESH_TIMEOUT_MS);
  let status: number;
  let text: string;
  let resHeaders: Record<string, string | string[] | undefined>;
  try {
    const res = await vendorRequest(cfg.token_url, { method: 'POST', headers, body, signal, headersTimeoutMs: REFRESH_TIMEOUT_MS, bodyTimeoutMs: REFRESH_TIMEOUT_MS }, opts.net ?? getDefaultNetOptions());
    status = res.statusCode;
    resHeaders = res.headers;
    text = await res.body.text().catch(() => '');
  } catch (e) {
    if (isByokError(e) && e.code === 'unsafe_url') throw e; // the template's token_url: configuration, not the vendor
    throw new VendorError('unreachable', `${cli}'s token endpoint could not be reached (${signal.aborted ? 'timed out' : 'network error'})`, { whatToDo: 'try_later' });
  }
  let data: TokenResponse | undefined;
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed as TokenResponse;
  } catch {
    data = undefined;
  }
  const code = typeof data?.error === 'string' ? data.error : undefined;
  const said = (): string => {
    const d = typeof data?.error_description === 'string' ? data.error_description : '';
    return scrubSecret([code, d].filter(Boolean).join(': ').slice(0, 200), tokenBytes(ts));
  };

  if (status >= 200 && status < 300 && !code) {
    if (typeof data?.access_token !== 'string' || !data.access_token) {
      throw new VendorError('vendor_unavailable', `${cli}'s token endpoint answered without an access token`, { status, whatToDo: 'try_later' });
    }
    return applyResponse(ts, data, now());
  }
  if (status === 429) {
    const retryAfterMs = parseRetryAfter(resHeaders);
    throw new VendorError('rate_limited', `${cli}'s token endpoint is rate limiting (HTTP 429)`, { status, whatToDo: 'wait', ...(retryAfterMs !== undefined && { retryAfterMs }) });
  }
  if (status >= 500) throw new VendorError('vendor_unavailable', `${cli}'s token endpoint answered HTTP ${status}`, { status, whatToDo: 'try_later' });
  // Qwen Code itself treats every 400/401 of a refresh as "log in again"; the others name it.
  if (status === 401 || (cfg.provider === 'qwen-code' && (status === 400 || code)) || (code && LOGIN_AGAIN_CODES.has(code))) {
    throw loginAgainError(cfg.provider, status, code);
  }
  throw new VendorError('rejected', `${cli}'s token endpoint refused the refresh request (HTTP ${status}${code ? `, ${said()}` : ''})`, { status, whatToDo: 'check_request', ...(code && { vendorCode: code }) });
}

function applyResponse(ts: TokenSet, data: TokenResponse, now: number): TokenSet {
  const expiresIn = typeof data.expires_in === 'number' ? data.expires_in : typeof data.expires_in === 'string' && /^\d+$/.test(data.expires_in) ? Number(data.expires_in) : DEFAULT_EXPIRES_IN_S;
  const next: TokenSet = {
    ...ts,
    access_token: data.access_token as string,
    // Rotation: a new refresh token replaces the old one; none returned keeps the old (Google).
    refresh_token: typeof data.refresh_token === 'string' && data.refresh_token ? data.refresh_token : ts.refresh_token,
    expiry_ms: now + expiresIn * 1000,
    doc: { ...ts.doc },
  };
  if (ts.provider === 'qwen-code' && typeof data.resource_url === 'string' && data.resource_url) next.resource_url = data.resource_url;
  if (ts.provider === 'gemini-cli' && typeof data.id_token === 'string') next.doc.id_token = data.id_token;
  if (typeof data.scope === 'string' && data.scope) {
    if (ts.provider === 'claude-code') {
      const inner = { ...((next.doc.claudeAiOauth as Record<string, unknown>) ?? {}) };
      inner.scopes = data.scope.split(/\s+/).filter(Boolean);
      next.doc.claudeAiOauth = inner;
    } else {
      next.doc.scope = data.scope;
    }
  }
  return next;
}

function tokenBytes(ts: TokenSet): Uint8Array[] {
  const enc = new TextEncoder();
  return [ts.access_token, ts.refresh_token].filter(Boolean).map((s) => enc.encode(s));
}
