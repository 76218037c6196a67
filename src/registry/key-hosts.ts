/**
 * Key-host binding: a stored key is sent only to the host it was given for. Key names are
 * chosen per host (`<NAME>__<HOST>` when the plain name is taken by another host), and the
 * workspace document records the host of each stored key name (ModelsDoc.key_hosts).
 */
import { createHash } from 'node:crypto';
import { ByokError } from '../errors.ts';
import type { CustomModel } from './types.ts';

export function hostOf(url: string | null | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * The host a stored key is bound to. AWS credentials work in every Bedrock region, so all
 * `bedrock-runtime[-fips].<region>.amazonaws.com` hosts count as one (other amazonaws.com
 * names, such as S3 buckets, do not).
 */
export function keyHostOf(url: string | null | undefined): string | undefined {
  const h = hostOf(url);
  if (h && /^bedrock-runtime(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$/.test(h)) return 'bedrock-runtime.*.amazonaws.com';
  return h;
}

/** The plain name a host-specific key name derives from: `DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM` → `DASHSCOPE_API_KEY`. */
export function keyFamily(envVar: string): string {
  const i = envVar.indexOf('__');
  return i > 0 ? envVar.slice(0, i) : envVar;
}

/**
 * The name of a vendor's key for one host other than the one its plain name serves:
 * `<NAME>__<HOST>` (DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM), so the name itself says where
 * the key may go. At most 64 characters: a long host is cut and ends in a short hash of it.
 */
export function hostKeyName(envVar: string, keyHost: string): string {
  const part = keyHost.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '') || 'HOST';
  const full = `${keyFamily(envVar)}__${part}`;
  if (full.length <= 64) return full;
  const hash = createHash('sha256').update(keyHost).digest('hex').slice(0, 6).toUpperCase();
  return `${full.slice(0, 57).replace(/_+$/, '')}_${hash}`;
}

export interface KeyNames {
  api_key_env: string;
  extra_env_vars: string[];
}

/** A key name held for one host. */
export interface Binding {
  name: string;
  host: string | undefined;
  /** The model holding it (absent for a recorded key_hosts entry). */
  model?: CustomModel;
}

/**
 * Which key names are bound to which host. A live model binds its names to its host; a removed
 * one only while its key is still stored (a removed model without a key binds nothing); a
 * stored key stays bound to the host it was given for (key_hosts), also when the model moved
 * on. `selfId` (a model being moved) is left out.
 */
export function bindingsOf(models: CustomModel[], keyHosts: Record<string, string>, stored: ReadonlySet<string>, selfId?: string): Binding[] {
  const out: Binding[] = [];
  for (const m of models) {
    if (m.id === selfId) continue;
    const live = m.status !== 'removed';
    if (!live && !stored.has(m.api_key_env)) continue;
    for (const name of [m.api_key_env, ...m.extra_env_vars]) out.push({ name, host: keyHostOf(m.base_url), ...(live && { model: m }) });
  }
  for (const [name, host] of Object.entries(keyHosts)) if (stored.has(name)) out.push({ name, host });
  return out;
}

/**
 * The key names for a model at `baseUrl`: those a model of the same key family already uses
 * at that host; else the plain names, when no other host holds them (the first host to take a
 * name keeps it: existing models and keys are unchanged); else `<NAME>__<HOST>`.
 * A stored key is thus only ever sent to the host it was validated for, and a model on
 * another host simply asks for its own key.
 */
export function keyNamesAt(bindings: Binding[], plain: KeyNames, baseUrl: string): KeyNames {
  const host = keyHostOf(baseUrl);
  const fam = keyFamily(plain.api_key_env);
  const suffixed = (v: string) => hostKeyName(v, host ?? 'host');
  const same = bindings.find((b) => b.model && keyFamily(b.model.api_key_env) === fam && b.host === host);
  if (same?.model) return { api_key_env: same.model.api_key_env, extra_env_vars: [...same.model.extra_env_vars] };
  const elsewhere = (vs: string[]) => bindings.some((b) => b.host !== host && vs.includes(b.name));
  const names = [plain.api_key_env, ...plain.extra_env_vars];
  if (!elsewhere(names)) return { api_key_env: plain.api_key_env, extra_env_vars: [...plain.extra_env_vars] };
  const own = { api_key_env: suffixed(plain.api_key_env), extra_env_vars: plain.extra_env_vars.map(suffixed) };
  if (elsewhere([own.api_key_env, ...own.extra_env_vars])) {
    throw new ByokError('conflict', `no free key name for ${host}; pass api_key_env with a name of your own`, { field: 'api_key_env', reason: 'no_key_name' });
  }
  return own;
}

/** A model's stored key names, bound to its current host (it is about to leave it). */
export function oldHostOf(m: CustomModel, stored: ReadonlySet<string>): Record<string, string> {
  const host = keyHostOf(m.base_url);
  const out: Record<string, string> = {};
  if (host) for (const v of [m.api_key_env, ...m.extra_env_vars]) if (stored.has(v)) out[v] = host;
  return out;
}

/** Records the host of a model's key names (see ModelsDoc.key_hosts). */
export function recordKeyHost(keyHosts: Record<string, string>, m: Pick<CustomModel, 'api_key_env' | 'extra_env_vars' | 'base_url'>): void {
  const host = keyHostOf(m.base_url);
  if (host) for (const v of [m.api_key_env, ...m.extra_env_vars]) keyHosts[v] = host;
}

/**
 * Refuses sending one stored key to two different hosts in one workspace (the last check,
 * under the lock: key names are chosen by keyNamesAt before it, so this fires only on a race).
 */
export function checkKeyHost(models: CustomModel[], keyHosts: Record<string, string>, stored: ReadonlySet<string>, envVar: string, baseUrl: string, selfId?: string): void {
  const host = keyHostOf(baseUrl);
  const other = bindingsOf(models, keyHosts, stored, selfId).find((b) => b.name === envVar && b.host !== host);
  if (other) {
    throw new ByokError(
      'conflict',
      `${envVar} became the key for ${other.host} meanwhile, and a stored key is only sent to one host; send the same command again and ${hostOf(baseUrl)} gets a key name of its own.`,
      { field: 'base_url', reason: 'changed_meanwhile' },
    );
  }
}
