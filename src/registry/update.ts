/** `update`: the changeable fields of a model; a base URL on another host moves it to that host's key. */
import { ByokError } from '../errors.ts';
import { fail, guarded, ok, type Result } from '../result.ts';
import type { Capabilities, Template } from '../vendors/template-schema.ts';
import { withReasoningParam } from './reasoning-param.ts';
import { DEFAULT_CAPABILITIES, selectorOf, type NeedEnvInput, type Registry } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { bindingsOf, checkKeyHost, hostOf, keyFamily, keyHostOf, keyNamesAt, oldHostOf, recordKeyHost, type KeyNames } from './key-hosts.ts';
import { needEnv, teeWarning } from './register.ts';
import { argsObject, parseArg } from './shapes.ts';
import { nameKey } from './slug.ts';
import type { CustomModel } from './types.ts';
import { applyStatus } from './status.ts';
import { checkBaseUrl, checkCapabilities, checkMaxTokens, checkName, checkPricing, checkUpstreamModel, checkWorkspace, invalid, stripSelector } from './validation.ts';

/** `update({reasoning_param})`: the thinking rule's field; null back to the template's rule. */
function applyReasoningParam(m: CustomModel, raw: unknown, touchCapability: boolean, t: Template | undefined): void {
  if (raw === null || raw === '') {
    m.thinking = structuredClone(t ? (t.models.find((x) => x.id === m.upstream_model)?.thinking ?? t.thinking) : { style: 'none' as const });
    return;
  }
  if (typeof raw !== 'string') throw invalid('reasoning_param must be a request field name, or null', { field: 'reasoning_param' });
  const r = withReasoningParam(m.thinking ?? { style: 'none' }, raw.trim(), m.max_tokens);
  if (!r.ok) {
    const why =
      r.reason === 'fixed'
        ? `${selectorOf(m)} thinks through the ${m.thinking.style} API, whose parameter is fixed`
        : r.reason === 'bad_name'
          ? 'reasoning_param must be a request field name (letters, digits, _ - .)'
          : `reasoning_param for ${selectorOf(m)} must be one of: ${(r.known ?? []).join(', ')}`;
    throw invalid(why, { field: 'reasoning_param' });
  }
  // A model that gained a thinking switch supports reasoning (unless the same call says otherwise).
  if (touchCapability && m.thinking.style === 'none' && r.rule.style !== 'none') m.capabilities = { ...m.capabilities, reasoning: true };
  m.thinking = r.rule;
}

export function updating(ctx: RegistryCtx): Pick<Registry, 'update'> {
  const { now } = ctx;
  const { keyState, keyStored, mutateModels, notFound, readModels } = ctx.doc;
  const templateById = ctx.catalog.byId;
  return {
    update(ws, modelId, changes) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        parseArg(argsObject('changes must be an object'), changes);
        const allowed = new Set(['name', 'upstream_model', 'base_url', 'max_tokens', 'capabilities', 'pricing', 'reasoning_param']);
        const immutable = new Set(['id', 'vendor', 'wire', 'api_key_env', 'extra_env_vars', 'key_optional', 'created_at']);
        const current = (await readModels(ws)).find((m) => m.id === id);
        for (const [k, v] of Object.entries(changes)) {
          if (v === undefined) continue;
          if (immutable.has(k)) {
            if (current && JSON.stringify((current as unknown as Record<string, unknown>)[k]) === JSON.stringify(v)) continue;
            throw new ByokError(
              'immutable',
              `${k} is permanent once a model is registered; remove ${current ? selectorOf(current) : 'the model'} and add a new one instead`,
              { field: k },
            );
          }
          if (!allowed.has(k)) throw invalid(`cannot change "${k.slice(0, 40)}"; updatable: ${[...allowed].join(', ')}`, { field: k });
        }
        const warnings: string[] = [];
        const c = changes as Record<string, unknown>;
        const name = c.name !== undefined ? checkName(c.name) : undefined;
        const upstream = c.upstream_model !== undefined ? checkUpstreamModel(c.upstream_model) : undefined;
        let baseUrl: string | undefined;
        if (c.base_url !== undefined) {
          if (c.base_url === null || c.base_url === '') throw invalid('base_url cannot be cleared; give the endpoint root URL', { field: 'base_url' });
          baseUrl = checkBaseUrl(c.base_url, warnings);
        }
        // Another host: the model takes the key names of that host (its own key, asked for through
        // the form when not stored); the key stored for the old host is never sent to the new one.
        let rebind: { names: KeyNames; stored: boolean; keyStoredSet: Set<string> } | undefined;
        if (baseUrl !== undefined && current && current.status !== 'removed' && keyHostOf(baseUrl) !== keyHostOf(current.base_url)) {
          const ks = await keyState(ws);
          const plain = { api_key_env: keyFamily(current.api_key_env), extra_env_vars: current.extra_env_vars.map(keyFamily) };
          // The model's own stored key stays bound to the host it leaves.
          const bindings = bindingsOf(ks.models, { ...ks.keyHosts, ...oldHostOf(current, ks.stored) }, ks.stored, current.id);
          const names = keyNamesAt(bindings, plain, baseUrl);
          const stored = current.key_optional || (await keyStored(ws, [names.api_key_env, ...names.extra_env_vars]));
          rebind = { names, stored, keyStoredSet: ks.stored };
        }
        const maxTokens = c.max_tokens !== undefined ? checkMaxTokens(c.max_tokens) : undefined;
        if (c.capabilities !== undefined) checkCapabilities(c.capabilities, DEFAULT_CAPABILITIES);
        const pricing = c.pricing === undefined ? undefined : c.pricing === null ? null : checkPricing(c.pricing);
        const at = now().toISOString();
        const r = await mutateModels(ws, (models, keyHosts): Result<{ model: CustomModel; need_env_input?: NeedEnvInput }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return fail('not_found', `${selectorOf(m)} was removed; add it again to reactivate it, then update`);
          let need: NeedEnvInput | undefined;
          if (name !== undefined) {
            const clash = models.find((x) => x.id !== m.id && x.status !== 'removed' && nameKey(x.name) === nameKey(name));
            if (clash) throw new ByokError('conflict', `a model named "${clash.name}" already exists (${selectorOf(clash)}); choose another name`, { field: 'name', existing: selectorOf(clash), name: clash.name, reason: 'name_taken' });
            m.name = name;
          }
          if (baseUrl !== undefined) {
            if (rebind && keyHostOf(baseUrl) !== keyHostOf(m.base_url)) {
              const { names } = rebind;
              // The key stored for the old host stays bound there, used by a model or not.
              Object.assign(keyHosts, oldHostOf(m, rebind.keyStoredSet));
              checkKeyHost(models, keyHosts, rebind.keyStoredSet, names.api_key_env, baseUrl, m.id);
              if (names.api_key_env !== m.api_key_env) {
                warnings.push(`${hostOf(baseUrl)} uses its own key, ${names.api_key_env}${rebind.stored ? ', already stored' : ': enter it through the secure form'}; ${m.api_key_env} stays with ${hostOf(m.base_url)}`);
              }
              m.api_key_env = names.api_key_env;
              m.extra_env_vars = [...names.extra_env_vars];
              recordKeyHost(keyHosts, { ...m, base_url: baseUrl });
              if (!rebind.stored) {
                applyStatus(m, 'pending_key', undefined, at);
                const t = templateById(m.vendor);
                need = needEnv({ ...m, base_url: baseUrl }, { nameGiven: true, vendorLabel: t?.name ?? hostOf(baseUrl) ?? m.vendor, homepage: t?.homepage });
              } else if (m.status !== 'validating') applyStatus(m, 'active', undefined, at);
            } else if (rebind === undefined && keyHostOf(baseUrl) !== keyHostOf(m.base_url)) {
              throw new ByokError('conflict', `${selectorOf(m)} changed meanwhile; send the update again`, { field: 'base_url', reason: 'changed_meanwhile' });
            }
            m.base_url = baseUrl;
          }
          // A model the vendor did not know, now pointing elsewhere: to be proven again, not kept broken.
          if (m.status === 'model_problem' && (upstream !== undefined || baseUrl !== undefined)) applyStatus(m, 'active', undefined, at);
          if (upstream !== undefined && upstream !== m.upstream_model) {
            m.upstream_model = upstream;
            const t = templateById(m.vendor);
            if (t) {
              const curated = t.models.find((x) => x.id === upstream);
              m.thinking = structuredClone(curated?.thinking ?? t.thinking);
              if (curated && c.capabilities === undefined) m.capabilities = { ...curated.capabilities };
              if (c.pricing === undefined) {
                if (curated?.pricing) m.pricing = { ...curated.pricing };
                else delete m.pricing;
              }
              if (!curated) warnings.push(`${upstream} is not in ${t.name}'s curated list; check capabilities and pricing`);
              const tee = teeWarning(t, upstream, curated);
              if (tee) warnings.push(tee);
            }
          }
          if (maxTokens !== undefined) m.max_tokens = maxTokens;
          if (c.capabilities !== undefined) m.capabilities = checkCapabilities(c.capabilities, m.capabilities);
          if (pricing === null) delete m.pricing;
          else if (pricing !== undefined) m.pricing = pricing;
          if (c.reasoning_param !== undefined) applyReasoningParam(m, c.reasoning_param, (c.capabilities as Partial<Capabilities> | undefined)?.reasoning === undefined, templateById(m.vendor));
          m.updated_at = at;
          return ok({ model: m, ...(need && { need_env_input: need }) });
        });
        if (r.ok && warnings.length) return ok({ ...r, warnings });
        return r;
      });
    },
  };
}
