/**
 * Vendor-model discovery (`list_vendor_models`): the vendor's live `/models` list, fetched with
 * the stored key through the SSRF-safe network layer (capped in time, size and count), or the
 * template's curated list with a note saying why.
 */
import { guarded, ok } from '../result.ts';
import type { Template } from '../vendors/template-schema.ts';
import type { Registry, VendorModel, VendorModels } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { hostKeyName, hostOf, keyFamily, keyHostOf } from './key-hosts.ts';
import { clean } from './models-doc.ts';
import { BAD_CHARS, checkBaseUrl, checkWorkspace } from './validation.ts';

/**
 * vendorFetch (src/vendors/net.ts), imported on the first network call: net.ts loads undici,
 * which commands that never reach a vendor (`byok templates`) should not pay for.
 */
export const lazyVendorFetch = ((url: string | URL, init?: RequestInit) =>
  import('../vendors/net.ts').then((m) => m.vendorFetch(url, init))) as typeof fetch;

export const DISCOVERY_TIMEOUT_MS = 10_000;
const DISCOVERY_MAX_BYTES = 5 * 1024 * 1024;
const DISCOVERY_MAX_MODELS = 1000;

/** The template's curated models, as list_vendor_models and templates() show them. */
export function curatedOf(t: Template): VendorModel[] {
  return structuredClone(t.models).map((m) =>
    clean({ id: m.id, name: m.name, capabilities: m.capabilities, pricing: m.pricing, tee: m.tee, context_window: m.context_window, curated: true }),
  );
}

export function vendorDiscovery(ctx: RegistryCtx, opts: { fetch: typeof fetch; timeoutMs: number }): Pick<Registry, 'list_vendor_models'> {
  const { keys } = ctx;
  const { keyStored, readModels } = ctx.doc;
  const templateOrFail = ctx.catalog.orFail;
  const doFetch = opts.fetch;
  const discoveryTimeout = opts.timeoutMs;

  async function discover(ws: string, t: Template, baseUrl: string, keyAllowed: boolean, envVar = t.env_var): Promise<{ models?: VendorModel[]; note?: string }> {
    const url = baseUrl.replace(/\/+$/, '') + (t.discovery_path.startsWith('/') ? t.discovery_path : `/${t.discovery_path}`);
    const host = hostOf(url) ?? 'the vendor';
    const call = async (key?: Uint8Array): Promise<{ models?: VendorModel[]; note?: string }> => {
      const headers: Record<string, string> = { accept: 'application/json', ...t.default_headers };
      if (key && key.length) {
        const k = Buffer.from(key).toString('utf8');
        if (t.auth.scheme === 'bearer') headers.authorization = `Bearer ${k}`;
        else if (t.auth.scheme === 'header') headers[(t.auth.header ?? 'x-api-key').toLowerCase()] = k;
      }
      if (t.wire === 'anthropic' && !headers['anthropic-version']) headers['anthropic-version'] = '2023-06-01';
      let res: Response;
      try {
        res = await doFetch(url, { method: 'GET', headers, redirect: 'error', signal: AbortSignal.timeout(discoveryTimeout) });
      } catch (e) {
        const name = (e as { name?: string })?.name;
        if (name === 'TimeoutError' || name === 'AbortError') return { note: `${host} did not answer within ${Math.round(discoveryTimeout / 1000)} s` };
        return { note: `could not reach ${host}` };
      }
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel().catch(() => undefined);
        return { note: `${host} answered ${res.status}: the stored key was refused (enter a new one with the secure form)` };
      }
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return { note: `${host} answered HTTP ${res.status} to ${t.discovery_path}` };
      }
      const text = await readCapped(res, DISCOVERY_MAX_BYTES);
      if (text === undefined) return { note: `${host} sent a model list larger than ${DISCOVERY_MAX_BYTES / 1024 / 1024} MB` };
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return { note: `${host} answered ${t.discovery_path} with something other than JSON` };
      }
      const items = extractModels(body);
      if (!items) return { note: `${host} answered ${t.discovery_path} in an unexpected shape` };
      const curated = new Map(t.models.map((m) => [m.id, m]));
      const seen = new Set<string>();
      const models: VendorModel[] = [];
      for (const it of items) {
        if (models.length >= DISCOVERY_MAX_MODELS) break;
        const id = it.id.replace(/^models\//, '');
        if (!id || id.length > 200 || seen.has(id) || BAD_CHARS.test(id)) continue;
        seen.add(id);
        const c = curated.get(id);
        models.push(
          c
            ? clean({ id, name: c.name, capabilities: c.capabilities, pricing: c.pricing, tee: c.tee, context_window: c.context_window, curated: true })
            : clean({ id, name: it.name && it.name.length <= 200 ? it.name : id, curated: false }),
        );
      }
      return { models };
    };
    if (t.auth.scheme === 'none' || !keyAllowed) return call();
    const envVars = [envVar];
    if (!(await keyStored(ws, envVars))) {
      if (t.auth.optional) return call();
      return {
        note: `no ${t.name} key stored in this workspace yet (${t.env_var}); add a ${t.name} model and enter its key through the secure form to see the live list`,
      };
    }
    const r = await keys.withKey(ws, envVar, (key) => call(key));
    return r ?? { note: `the ${envVar} key could not be read` };
  }

  return {
    list_vendor_models(ws, vendor, opts = {}) {
      return guarded<VendorModels>(async () => {
        checkWorkspace(ws);
        const t = templateOrFail(vendor);
        const curated = curatedOf(t);
        const fallback = (note: string) => ok<VendorModels>({ vendor: t.id, source: 'curated', models: curated, note });
        if (!t.model_discovery) return fallback(`${t.name} has no model discovery (/models); showing the curated list`);
        const mine = (await readModels(ws)).filter((m) => m.status !== 'removed' && keyFamily(m.api_key_env) === t.env_var);
        let baseUrl = t.base_url;
        if (opts.base_url !== undefined && opts.base_url !== '') baseUrl = checkBaseUrl(opts.base_url, []);
        if (!baseUrl) baseUrl = mine.find((m) => m.vendor === t.id)?.base_url ?? null;
        if (!baseUrl) return fallback(`${t.name} needs your endpoint URL (base_url) before its models can be listed; showing the curated list`);
        // The stored key only goes to the template's host or a host a model of this workspace uses it with.
        const bound = new Set([keyHostOf(t.base_url), ...mine.map((m) => keyHostOf(m.base_url))].filter(Boolean));
        const keyAllowed = bound.has(keyHostOf(baseUrl));
        if (!keyAllowed && !(t.auth.optional || t.auth.scheme === 'none')) {
          return fallback(`the ${t.env_var} key is only sent to hosts your registered ${t.name} models use, and ${hostOf(baseUrl)} is not one; showing the curated list`);
        }
        // The key of that host (a model on another host of the vendor has a key of its own).
        const plainElsewhere = mine.some((m) => m.api_key_env === t.env_var && keyHostOf(m.base_url) !== keyHostOf(baseUrl));
        const envVar = mine.find((m) => keyHostOf(m.base_url) === keyHostOf(baseUrl))?.api_key_env ?? (plainElsewhere ? hostKeyName(t.env_var, keyHostOf(baseUrl) ?? 'host') : t.env_var);
        const r = await discover(ws, t, baseUrl, keyAllowed, envVar);
        if (!r.models) return fallback(`${r.note}; showing the curated list`);
        if (!r.models.length) return fallback(`${hostOf(baseUrl)} listed no models; showing the curated list`);
        return ok<VendorModels>({ vendor: t.id, source: 'live', models: structuredClone(r.models) });
      });
    },
  };
}

async function readCapped(res: Response, max: number): Promise<string | undefined> {
  const len = Number(res.headers.get('content-length') ?? '0');
  if (len > max) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** OpenAI/Anthropic `{data: [...]}`, Ollama-style `{models: [...]}`, or a bare array. */
function extractModels(body: unknown): Array<{ id: string; name?: string }> | undefined {
  const arr = Array.isArray(body)
    ? body
    : body && typeof body === 'object'
      ? (Array.isArray((body as { data?: unknown }).data) ? (body as { data: unknown[] }).data : (body as { models?: unknown }).models)
      : undefined;
  if (!Array.isArray(arr)) return undefined;
  const out: Array<{ id: string; name?: string }> = [];
  for (const it of arr) {
    if (typeof it === 'string') out.push({ id: it });
    else if (it && typeof it === 'object') {
      const o = it as Record<string, unknown>;
      const id = typeof o.id === 'string' ? o.id : typeof o.name === 'string' ? o.name : typeof o.model === 'string' ? o.model : undefined;
      if (!id) continue;
      const name = typeof o.display_name === 'string' ? o.display_name : typeof o.name === 'string' && o.name !== id ? o.name : undefined;
      out.push(name ? { id, name } : { id });
    }
  }
  return out;
}
