import { ByokError } from '../errors.ts';
import type { CustomModel } from '../registry/index.ts';
import { withModelSecrets, type KeyOpener } from '../secrets/model-secrets.ts';
import { scrubProbe } from '../secrets/scrub.ts';
import { isVendorError, VendorError } from '../vendors/errors.ts';
import type { ProbeResult, Secrets } from '../vendors/types.ts';
import { isLoginAgain } from './errors.ts';
import { refreshTokenSet, type RefreshOptions } from './refresh.ts';
import { readStoredSet, refreshShared, type CredentialDeps, type StoredSet } from './shared-refresh.ts';
import { needsRefresh, type TokenSet } from './types.ts';

/** What a call learns about the credential it ran with. */
export interface CredentialInfo {
  /** The vault record version of the set used (oauth_json only): meta updates should be fenced with it. */
  version?: string;
  /** This call obtained a refreshed set (its own refresh or another process's). */
  refreshed: boolean;
}

export type CredentialCall<T> = (model: CustomModel, secrets: Secrets, info: CredentialInfo) => Promise<T>;

/** api_key models need only the vault's withKey; oauth_json models need vault.put and the store too. */
export interface MaybeCredentialDeps extends Partial<Omit<CredentialDeps, 'vault'>> {
  vault: KeyOpener & Partial<Pick<CredentialDeps['vault'], 'put'>>;
}

/**
 * Qwen Code's API base from the token's resource_url, as the CLI builds it: `https://` when no
 * scheme is given (a scheme is kept: tests point it at http://127.0.0.1), `/v1` appended
 * unless present. The wire's SSRF policy still applies to the result.
 */
export function qwenBaseUrl(resourceUrl: string): string {
  const withScheme = /^https?:\/\//i.test(resourceUrl) ? resourceUrl : `https://${resourceUrl}`;
  const trimmed = withScheme.replace(/\/+$/, '');
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`;
}

/** The model as the vendor must be called with this token set (Qwen's host, Gemini's project). */
export function modelForTokenSet(model: CustomModel, ts: TokenSet): CustomModel {
  if (ts.provider === 'qwen-code' && ts.resource_url) return { ...model, base_url: qwenBaseUrl(ts.resource_url) };
  if (ts.provider === 'gemini-cli' && ts.project_id) return { ...model, settings: { ...model.settings, project_id: ts.project_id } };
  return model;
}

async function callWith<T>(model: CustomModel, ts: TokenSet, fn: CredentialCall<T>, info: CredentialInfo): Promise<T> {
  const secrets: Secrets = { [model.api_key_env]: new TextEncoder().encode(ts.access_token) };
  try {
    return await fn(modelForTokenSet(model, ts), secrets, info);
  } finally {
    for (const v of Object.values(secrets)) v.fill(0);
  }
}

function isRefusedToken(e: unknown): boolean {
  return isVendorError(e) && e.outcome === 'invalid_key' && !isLoginAgain(e);
}

/**
 * The one way relay, validation and health checks reach a stored credential. api_key (and
 * every non-OAuth kind): withModelSecrets, `fn(model, secrets)`. oauth_json: opens the sealed
 * token set, refreshes it first when it is expired or about to be (one process at a time, see
 * shared-refresh.ts), and calls `fn` with `{[api_key_env]: access token}` and the model
 * adjusted for the token (Qwen's host, Gemini's project). When `fn` throws VendorError
 * invalid_key (a 401) and this call has not refreshed yet, the set is refreshed once (or
 * another process's newer set is taken) and `fn` runs once more. Undefined when nothing is
 * stored. A refused refresh token throws loginAgainError (VendorError invalid_key).
 */
export async function withModelCredentials<T>(deps: MaybeCredentialDeps, ws: string, model: CustomModel, fn: CredentialCall<T>): Promise<T | undefined> {
  if (model.credential_kind !== 'oauth_json') return withModelSecrets(deps.vault, ws, model, (s) => fn(model, s, { refreshed: false }));
  if (!model.oauth) throw new ByokError('config', `model ${model.id} takes an OAuth credentials file but has no oauth settings (its template lacks credential.oauth)`);
  if (!deps.store || typeof deps.vault.put !== 'function') {
    throw new ByokError('config', 'OAuth credentials need the store (for the refresh lock) and the vault');
  }
  const full = deps as CredentialDeps;
  const now = full.now ?? Date.now;
  let cur: StoredSet | undefined = await readStoredSet(full, ws, model.api_key_env, model.oauth);
  if (!cur) return undefined;
  let refreshed = false;
  if (needsRefresh(cur.ts, now(), model.oauth.refresh_skew_seconds * 1000)) {
    cur = await refreshShared(full, ws, model, cur, { force: false });
    refreshed = true;
  }
  try {
    return await callWith(model, cur.ts, fn, { version: cur.version, refreshed });
  } catch (e) {
    if (refreshed || !isRefusedToken(e)) throw e;
  }
  cur = await refreshShared(full, ws, model, cur, { force: true });
  return callWith(model, cur.ts, fn, { version: cur.version, refreshed: true });
}

/** A ProbeResult for a classified failure (refresh refused, token endpoint down). */
export function probeResultOf(e: unknown): ProbeResult {
  if (!isVendorError(e)) throw e;
  return { outcome: e.outcome, message: e.message, ...(e.status !== undefined && { status: e.status }), ...(e.retryAfterMs !== undefined && { retryAfterMs: e.retryAfterMs }) };
}

/** Carries a probe's invalid_key answer through withModelCredentials so it refreshes once. */
class ProbeRefused extends VendorError {
  constructor(readonly result: ProbeResult) {
    super('invalid_key', result.message ?? 'invalid_key', { whatToDo: 'resubmit_key', ...(result.status !== undefined && { status: result.status }) });
  }
}

export type Probe = (model: CustomModel, secrets: Secrets, opts?: { signal?: AbortSignal }) => Promise<ProbeResult>;

/**
 * A stored credential's health probe (key-health, /byok test): any kind, OAuth refreshed as
 * needed and retried once on a 401. Undefined when nothing is stored; `version` is the record
 * the answer is about (after a refresh it is the new one).
 */
export async function probeWithCredentials(
  deps: MaybeCredentialDeps,
  ws: string,
  model: CustomModel,
  probe: Probe,
  opts: { signal?: AbortSignal } = {},
): Promise<{ result: ProbeResult; version?: string } | undefined> {
  let version: string | undefined;
  try {
    return await withModelCredentials(deps, ws, model, async (m, secrets, info) => {
      version = info.version;
      const result = scrubProbe(await probe(m, secrets, opts), secrets);
      if (result.outcome === 'invalid_key' && model.credential_kind === 'oauth_json') throw new ProbeRefused(result);
      return { result, version };
    });
  } catch (e) {
    if (e instanceof ProbeRefused) return { result: e.result, version };
    return { result: probeResultOf(e), version };
  }
}

/**
 * Validation of a pasted file (nothing stored yet, so no lock): refreshes the set when it is
 * expired, probes with the access token, and on a 401 from a set it did not refresh, refreshes
 * once and probes again. Returns the answer and the set to store (refreshed or as pasted).
 * Refresh failures come back as the answer (login again: invalid_key; endpoint down: transient).
 */
export async function probeTokenSet(
  model: CustomModel,
  ts: TokenSet,
  probe: Probe,
  opts: { signal?: AbortSignal; now?: () => number; refresh?: typeof refreshTokenSet; net?: RefreshOptions['net'] } = {},
): Promise<{ result: ProbeResult; ts: TokenSet }> {
  const cfg = model.oauth!;
  const refresh = opts.refresh ?? refreshTokenSet;
  const now = opts.now ?? Date.now;
  let cur = ts;
  let refreshed = false;
  const renew = async (): Promise<ProbeResult | undefined> => {
    try {
      cur = await refresh(cur, cfg, { signal: opts.signal, now, net: opts.net });
      refreshed = true;
      return undefined;
    } catch (e) {
      return probeResultOf(e);
    }
  };
  if (needsRefresh(cur, now(), cfg.refresh_skew_seconds * 1000)) {
    const failed = await renew();
    if (failed) return { result: failed, ts: cur };
  }
  const once = () => callWith(model, cur, async (m, secrets) => scrubProbe(await probe(m, secrets, { signal: opts.signal }), secrets), { refreshed });
  let result = await once();
  if (result.outcome === 'invalid_key' && !refreshed) {
    const failed = await renew();
    if (failed) return { result: failed, ts: cur };
    result = await once();
  }
  return { result, ts: cur };
}
