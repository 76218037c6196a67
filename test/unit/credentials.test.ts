import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CredentialFileError,
  deserializeTokenSet,
  isLoginAgain,
  modelForTokenSet,
  needsRefresh,
  parseCredentialFile,
  probeTokenSet,
  qwenBaseUrl,
  refreshTokenSet,
  serializeTokenSet,
  type TokenSet,
} from '../../src/credentials/index.ts';
import { t } from '../../src/i18n/index.ts';
import type { CustomModel } from '../../src/registry/types.ts';
import { VendorError } from '../../src/vendors/errors.ts';
import type { NetOptions } from '../../src/vendors/net.ts';
import type { OAuthConfig } from '../../src/vendors/template-schema.ts';
import { FAKE_CLIENT, startFakeOAuth, type FakeOAuth, type FakeProvider } from '../support/fake-oauth.ts';

const NET: NetOptions = { allowPrivate: true, allowlist: [] };

const QWEN = JSON.stringify({
  access_token: 'qat-AAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  token_type: 'Bearer',
  refresh_token: 'qrt-BBBBBBBBBBBBBBBBBBBBBBBBBBBB',
  resource_url: 'portal.qwen.ai',
  expiry_date: 1767225600000,
});
const GEMINI = JSON.stringify({
  access_token: 'ya29.a0AfB_secretsecretsecret',
  refresh_token: '1//0gSECRETREFRESHTOKEN',
  scope: 'https://www.googleapis.com/auth/cloud-platform openid https://www.googleapis.com/auth/userinfo.email',
  token_type: 'Bearer',
  id_token: 'eyJhbGciOi.fake.sig',
  expiry_date: 1767225600000,
});
const CLAUDE = JSON.stringify({
  claudeAiOauth: {
    accessToken: 'sk-ant-oat01-SECRETACCESS',
    refreshToken: 'sk-ant-ort01-SECRETREFRESH',
    expiresAt: 1767225600000,
    scopes: ['user:inference', 'user:profile'],
    subscriptionType: 'max',
  },
});

function fileError(fn: () => unknown): CredentialFileError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CredentialFileError);
    return e as CredentialFileError;
  }
  throw new Error('expected a CredentialFileError');
}

describe('parseCredentialFile', () => {
  it('reads each CLI’s own file shape', () => {
    const q = parseCredentialFile('qwen-code', QWEN);
    expect(q).toMatchObject({ provider: 'qwen-code', access_token: 'qat-AAAAAAAAAAAAAAAAAAAAAAAAAAAA', refresh_token: 'qrt-BBBBBBBBBBBBBBBBBBBBBBBBBBBB', expiry_ms: 1767225600000, resource_url: 'portal.qwen.ai' });
    const g = parseCredentialFile('gemini-cli', GEMINI);
    expect(g).toMatchObject({ provider: 'gemini-cli', access_token: 'ya29.a0AfB_secretsecretsecret', refresh_token: '1//0gSECRETREFRESHTOKEN', expiry_ms: 1767225600000 });
    expect(g.project_id).toBeUndefined();
    const c = parseCredentialFile('claude-code', CLAUDE);
    expect(c).toMatchObject({ provider: 'claude-code', access_token: 'sk-ant-oat01-SECRETACCESS', refresh_token: 'sk-ant-ort01-SECRETREFRESH', expiry_ms: 1767225600000 });
  });

  it('takes the file out of a code fence or after its path', () => {
    expect(parseCredentialFile('qwen-code', '~/.qwen/oauth_creds.json:\n```json\n' + QWEN + '\n```').refresh_token).toBe('qrt-BBBBBBBBBBBBBBBBBBBBBBBBBBBB');
  });

  it('Gemini: the project id inside the file, and the form value winning over it', () => {
    const inside = JSON.stringify({ ...JSON.parse(GEMINI), projectId: 'my-project-123' });
    expect(parseCredentialFile('gemini-cli', inside).project_id).toBe('my-project-123');
    expect(parseCredentialFile('gemini-cli', JSON.stringify({ ...JSON.parse(GEMINI), project_id: 'other-proj-9' })).project_id).toBe('other-proj-9');
    expect(parseCredentialFile('gemini-cli', inside, { projectId: 'form-project-1' }).project_id).toBe('form-project-1');
    expect(fileError(() => parseCredentialFile('gemini-cli', GEMINI, { projectId: 'Bad Project!' })).key).toBe('cred.bad_project');
  });

  it('names another CLI’s file', () => {
    const e = fileError(() => parseCredentialFile('qwen-code', GEMINI));
    expect(e.message).toBe('this looks like a Gemini CLI file, not a Qwen Code one');
    expect(e.key).toBe('cred.wrong_cli');
    expect(t('en', e.key, e.params)).toContain('Gemini CLI');
    expect(t('zh', e.key, e.params)).toContain('Qwen Code');
    expect(fileError(() => parseCredentialFile('gemini-cli', CLAUDE)).message).toBe('this looks like a Claude Code file, not a Gemini CLI one');
    expect(fileError(() => parseCredentialFile('claude-code', QWEN)).message).toBe('this looks like a Qwen Code file, not a Claude Code one');
  });

  it('names the missing field', () => {
    const noRefresh = JSON.stringify({ ...JSON.parse(QWEN), refresh_token: undefined });
    const e = fileError(() => parseCredentialFile('qwen-code', noRefresh));
    expect(e.key).toBe('cred.missing_field');
    expect(e.params.field).toBe('refresh_token');
    const c = fileError(() => parseCredentialFile('claude-code', JSON.stringify({ claudeAiOauth: { accessToken: 'sk-ant-oat01-x' } })));
    expect(c.params.field).toBe('claudeAiOauth.refreshToken');
    expect(fileError(() => parseCredentialFile('claude-code', JSON.stringify({ other: 1 }))).params.field).toBe('claudeAiOauth');
    // No access token is fine: it is refreshed before use.
    const onlyRefresh = parseCredentialFile('gemini-cli', JSON.stringify({ refresh_token: '1//0gONLY' }));
    expect(needsRefresh(onlyRefresh, Date.now(), 0)).toBe(true);
  });

  it('refuses oversize text, non-JSON and non-tokens without echoing the content', () => {
    const big = JSON.stringify({ ...JSON.parse(QWEN), pad: 'x'.repeat(17 * 1024) });
    expect(fileError(() => parseCredentialFile('qwen-code', big)).key).toBe('cred.too_large');
    const cut = QWEN.slice(0, -20) + '}';
    const e = fileError(() => parseCredentialFile('qwen-code', cut));
    expect(e.key).toBe('cred.not_json');
    expect(fileError(() => parseCredentialFile('qwen-code', 'sk-just-a-key-SECRET')).key).toBe('cred.not_json');
    expect(fileError(() => parseCredentialFile('qwen-code', JSON.stringify({ refresh_token: 42 }))).params.field).toBe('refresh_token');
    for (const err of [e, fileError(() => parseCredentialFile('qwen-code', GEMINI))]) {
      const all = `${err.message} ${JSON.stringify(err.params)} ${JSON.stringify(err.details)} ${t('en', err.key, err.params)}`;
      expect(all).not.toMatch(/SECRET|qrt-|qat-|ya29|1\/\//);
    }
  });
});

describe('serialize / deserialize', () => {
  it('writes the set back in the CLI’s own shape, unknown fields kept', () => {
    for (const [p, text] of [
      ['qwen-code', QWEN],
      ['gemini-cli', GEMINI],
      ['claude-code', CLAUDE],
    ] as const) {
      const ts = parseCredentialFile(p, text);
      const next: TokenSet = { ...ts, access_token: 'new-access-token', refresh_token: 'new-refresh-token', expiry_ms: 1800000000000 };
      const bytes = serializeTokenSet(next);
      const doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
      const back = deserializeTokenSet(p, bytes);
      expect(back).toMatchObject({ access_token: 'new-access-token', refresh_token: 'new-refresh-token', expiry_ms: 1800000000000 });
      if (p === 'claude-code') expect(doc.claudeAiOauth).toMatchObject({ accessToken: 'new-access-token', scopes: ['user:inference', 'user:profile'], subscriptionType: 'max' });
      if (p === 'gemini-cli') expect(doc).toMatchObject({ id_token: 'eyJhbGciOi.fake.sig', token_type: 'Bearer', access_token: 'new-access-token' });
      if (p === 'qwen-code') expect(doc).toMatchObject({ token_type: 'Bearer', resource_url: 'portal.qwen.ai', expiry_date: 1800000000000 });
    }
  });

  it('keeps a Gemini project id given on the form', () => {
    const ts = parseCredentialFile('gemini-cli', GEMINI, { projectId: 'form-project-1' });
    expect(deserializeTokenSet('gemini-cli', serializeTokenSet(ts)).project_id).toBe('form-project-1');
  });
});

describe('model for a token set', () => {
  const base = { id: 'm', base_url: 'https://dashscope.aliyuncs.com/compatible-mode/v1', settings: { region: 'x' } } as unknown as CustomModel;
  it('Qwen: the resource_url host with https and /v1; a scheme is kept', () => {
    expect(qwenBaseUrl('portal.qwen.ai')).toBe('https://portal.qwen.ai/v1');
    expect(qwenBaseUrl('http://127.0.0.1:9999/qwen-api')).toBe('http://127.0.0.1:9999/qwen-api/v1');
    expect(qwenBaseUrl('https://portal.qwen.ai/v1/')).toBe('https://portal.qwen.ai/v1');
    const q = parseCredentialFile('qwen-code', QWEN);
    expect(modelForTokenSet(base, q).base_url).toBe('https://portal.qwen.ai/v1');
  });
  it('Gemini: the project id goes into settings', () => {
    const g = parseCredentialFile('gemini-cli', GEMINI, { projectId: 'form-project-1' });
    expect(modelForTokenSet(base, g).settings).toEqual({ region: 'x', project_id: 'form-project-1' });
  });
});

describe('refreshTokenSet against the fake token endpoints', () => {
  let oauth: FakeOAuth;
  beforeAll(async () => {
    oauth = await startFakeOAuth();
  });
  afterAll(async () => {
    await oauth.close();
  });

  const cfg = (p: FakeProvider): OAuthConfig => ({ provider: p, token_url: oauth.tokenUrl(p), ...FAKE_CLIENT[p], refresh_skew_seconds: 300, project_id: p === 'gemini-cli' ? 'optional' : 'none' });
  const fileFor = (p: FakeProvider, expiresInS = -60): TokenSet => {
    const s = oauth.issue(p, { expiresInS });
    const text =
      p === 'claude-code'
        ? JSON.stringify({ claudeAiOauth: { accessToken: s.access_token, refreshToken: s.refresh_token, expiresAt: s.expiry_ms, scopes: ['user:inference'], subscriptionType: 'pro' } })
        : JSON.stringify({ access_token: s.access_token, refresh_token: s.refresh_token, expiry_date: s.expiry_ms, token_type: 'Bearer', ...(p === 'qwen-code' ? { resource_url: 'portal.qwen.ai' } : { scope: 'https://www.googleapis.com/auth/cloud-platform' }) });
    return parseCredentialFile(p, text);
  };

  it('Qwen Code: form grant_type/refresh_token/client_id; rotated refresh token and resource_url taken', async () => {
    const ts = fileFor('qwen-code');
    const next = await refreshTokenSet(ts, cfg('qwen-code'), { net: NET });
    const req = oauth.requests.at(-1)!;
    expect(req.contentType).toBe('application/x-www-form-urlencoded');
    expect(req.body).toEqual({ grant_type: 'refresh_token', refresh_token: ts.refresh_token, client_id: FAKE_CLIENT['qwen-code'].client_id });
    expect(next.refresh_token).not.toBe(ts.refresh_token);
    expect(oauth.liveRefreshTokens('qwen-code')).toContain(next.refresh_token);
    expect(oauth.isValidAccess(next.access_token)).toBe(true);
    expect(next.resource_url).toBe(`http://127.0.0.1:${oauth.port}/qwen-api`);
    expect(needsRefresh(next, Date.now(), 300_000)).toBe(false);
    expect(ts.access_token).not.toBe(next.access_token); // the input is not changed
  });

  it('Gemini CLI: form with client_secret; no refresh token returned keeps the old one', async () => {
    const ts = fileFor('gemini-cli');
    const next = await refreshTokenSet(ts, cfg('gemini-cli'), { net: NET });
    const req = oauth.requests.at(-1)!;
    expect(req.contentType).toBe('application/x-www-form-urlencoded');
    expect(req.body).toEqual({ client_id: FAKE_CLIENT['gemini-cli'].client_id, client_secret: FAKE_CLIENT['gemini-cli'].client_secret, refresh_token: ts.refresh_token, grant_type: 'refresh_token' });
    expect(next.refresh_token).toBe(ts.refresh_token);
    expect(next.access_token.startsWith('ya29.')).toBe(true);
    expect(next.doc.id_token).toBe('eyJ.fake.idtoken');
  });

  it('Claude Code: JSON body without scope; rotation', async () => {
    const ts = fileFor('claude-code');
    const next = await refreshTokenSet(ts, cfg('claude-code'), { net: NET });
    const req = oauth.requests.at(-1)!;
    expect(req.contentType).toBe('application/json');
    expect(req.body).toEqual({ grant_type: 'refresh_token', refresh_token: ts.refresh_token, client_id: FAKE_CLIENT['claude-code'].client_id });
    expect(next.refresh_token).not.toBe(ts.refresh_token);
    expect((next.doc.claudeAiOauth as Record<string, unknown>).subscriptionType).toBe('pro');
  });

  it('a revoked or rotated-away refresh token → log in again (invalid_key), for each provider', async () => {
    for (const p of ['qwen-code', 'gemini-cli', 'claude-code'] as const) {
      const ts = fileFor(p);
      oauth.revoke(ts.refresh_token);
      const e = await refreshTokenSet(ts, cfg(p), { net: NET }).catch((x: unknown) => x);
      expect(isLoginAgain(e), p).toBe(true);
      expect((e as VendorError).outcome).toBe('invalid_key');
      expect((e as VendorError).status).toBe(400);
      expect((e as Error).message).not.toContain(ts.refresh_token);
    }
    // Reusing a rotated refresh token is the same answer.
    const ts = fileFor('claude-code');
    await refreshTokenSet(ts, cfg('claude-code'), { net: NET });
    expect(isLoginAgain(await refreshTokenSet(ts, cfg('claude-code'), { net: NET }).catch((x: unknown) => x))).toBe(true);
  });

  it('outages and rate limits are transient; a wrong client is a definite refusal but not "log in again"', async () => {
    const ts = fileFor('gemini-cli');
    oauth.fail('server_error');
    const down = (await refreshTokenSet(ts, cfg('gemini-cli'), { net: NET }).catch((x: unknown) => x)) as VendorError;
    expect(down).toBeInstanceOf(VendorError);
    expect(down.outcome).toBe('vendor_unavailable');
    expect(down.retryable).toBe(true);
    oauth.fail('rate_limited');
    const slow = (await refreshTokenSet(ts, cfg('gemini-cli'), { net: NET }).catch((x: unknown) => x)) as VendorError;
    expect(slow.outcome).toBe('rate_limited');
    expect(slow.retryAfterMs).toBe(2000);
    const unreachable = (await refreshTokenSet(ts, { ...cfg('gemini-cli'), token_url: 'http://127.0.0.1:1/token' }, { net: NET }).catch((x: unknown) => x)) as VendorError;
    expect(unreachable.outcome).toBe('unreachable');
    // 401 invalid_client: the template's client is wrong; Google answers 401, which is final.
    const wrong = (await refreshTokenSet(ts, { ...cfg('gemini-cli'), client_secret: 'nope' }, { net: NET }).catch((x: unknown) => x)) as VendorError;
    expect(wrong.outcome).toBe('invalid_key');
    // Still usable afterwards: the refresh token was not spent.
    expect((await refreshTokenSet(ts, cfg('gemini-cli'), { net: NET })).access_token).toMatch(/^ya29\./);
  });

  it('the token endpoint is behind the vendor network policy', async () => {
    const ts = fileFor('qwen-code');
    const e = await refreshTokenSet(ts, cfg('qwen-code'), { net: { allowPrivate: false, allowlist: [] } }).catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe('unsafe_url');
  });

  it('probeTokenSet: an expired file is refreshed before the probe; a 401 on a fresh-looking token refreshes once', async () => {
    const model = { id: 'qc', api_key_env: 'QWEN_OAUTH', base_url: 'https://x/v1', settings: {}, oauth: cfg('qwen-code'), credential_kind: 'oauth_json' } as unknown as CustomModel;
    const seen: string[] = [];
    const probe = async (m: CustomModel, s: Record<string, Uint8Array>) => {
      const tok = new TextDecoder().decode(s.QWEN_OAUTH);
      seen.push(`${m.base_url} ${oauth.isValidAccess(tok)}`);
      return oauth.isValidAccess(tok) ? { outcome: 'ok' as const } : { outcome: 'invalid_key' as const, status: 401, message: `bad key ${tok}` };
    };
    const before = oauth.refreshes('qwen-code');
    const expired = fileFor('qwen-code', -60);
    const r1 = await probeTokenSet(model, expired, probe, { net: NET });
    expect(r1.result.outcome).toBe('ok');
    expect(oauth.refreshes('qwen-code')).toBe(before + 1);
    expect(seen.at(-1)).toBe(`http://127.0.0.1:${oauth.port}/qwen-api/v1 true`);

    const live = fileFor('qwen-code', 3600);
    oauth.revokeAccess(live.access_token);
    const r2 = await probeTokenSet(model, live, probe, { net: NET });
    expect(r2.result.outcome).toBe('ok');
    expect(r2.ts.refresh_token).not.toBe(live.refresh_token);
    expect(oauth.refreshes('qwen-code')).toBe(before + 2);

    const dead = fileFor('qwen-code', 3600);
    oauth.revokeAccess(dead.access_token);
    oauth.revoke(dead.refresh_token);
    const r3 = await probeTokenSet(model, dead, probe, { net: NET });
    expect(r3.result.outcome).toBe('invalid_key');
    expect(r3.result.message).toMatch(/log in again in Qwen Code/);
  });
});
