/**
 * The custom-model registry: the seed's exports API (`templates`, `list_vendor_models`,
 * `add_template`, `parse_example`, `add`, `list_models`, `get`, `remove`) plus `update`,
 * `set_status`, `set_key_status` and `resolve`, all scoped to a workspace.
 *
 * Every method answers `{ ok: true, ... }` or `{ ok: false, error, code }` and never throws for
 * user error. Entries live in the workspace document `custom_models` (YAML in the file store),
 * read-modify-written atomically under the store's per-workspace lock. No key is ever stored
 * here or echoed in an error: keys are read only through a KeySource, as bytes, for discovery.
 *
 * The parts: contract.ts (types), validation.ts (argument checks), key-hosts.ts (which key goes
 * to which host), models-doc.ts (the workspace document), catalog.ts (templates), discovery.ts
 * (list_vendor_models), register.ts + add.ts (add_template, add), update.ts, status.ts.
 * This module composes them and answers the simple reads.
 */
import { ByokError } from '../errors.ts';
import { fail, guarded, ok, type Result } from '../result.ts';
import { adding } from './add.ts';
import { makeCatalog } from './catalog.ts';
import { envKeySource, type Registry, type RegistryDeps, type TemplateSummary } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { curatedOf, DISCOVERY_TIMEOUT_MS, lazyVendorFetch, vendorDiscovery } from './discovery.ts';
import { clean, modelsDoc } from './models-doc.ts';
import { parseExample } from './parse-example/index.ts';
import { registerer } from './register.ts';
import { nameKey } from './slug.ts';
import { statusChanges } from './status.ts';
import type { CustomModel } from './types.ts';
import { updating } from './update.ts';
import { checkWorkspace, stripSelector } from './validation.ts';

// The old import path stays valid: everything this module exported before the split.
export {
  DEFAULT_MAX_TOKENS,
  envKeySource,
  MAX_TOKENS_LIMIT,
  MODELS_DOC,
  selectorOf,
  type AddArgs,
  type AddResult,
  type AddTemplateOptions,
  type KeySource,
  type ModelChanges,
  type ModelsDoc,
  type NeedEnvInput,
  type Registry,
  type RegistryDeps,
  type TemplateSummary,
  type VendorModel,
  type VendorModels,
} from './contract.ts';
export { hostKeyName, keyFamily } from './key-hosts.ts';
export { addArgsFromDraft, checkBaseUrl, looksLikeKey } from './validation.ts';

export function createRegistry(deps: RegistryDeps): Registry {
  const keys = deps.keys ?? envKeySource(deps.env ?? process.env);
  const now = deps.now ?? (() => new Date());
  const catalog = makeCatalog(deps.templates);
  const ctx: RegistryCtx = { keys, now, catalog, doc: modelsDoc(deps.store, keys) };
  const { mutateModels, notFound, readModels } = ctx.doc;

  const api: Registry = {
    ...vendorDiscovery(ctx, {
      // Discovery sends the stored key: it goes through the same SSRF-safe network layer as the relay.
      fetch: deps.fetch ?? lazyVendorFetch,
      timeoutMs: deps.discoveryTimeoutMs ?? DISCOVERY_TIMEOUT_MS,
    }),
    ...adding(ctx, registerer(ctx)),
    ...updating(ctx),
    ...statusChanges(ctx),

    templates() {
      try {
        const list = catalog.all().map<TemplateSummary>((t) =>
          clean({
            id: t.id,
            name: t.name,
            aliases: t.aliases,
            homepage: t.homepage,
            docs: t.docs,
            wire: t.wire,
            base_url: t.base_url,
            base_url_hint: t.base_url_hint,
            base_url_required: t.base_url === null,
            env_var: t.env_var,
            key_optional: t.auth.optional || t.auth.scheme === 'none',
            credential_kind: t.credential.kind,
            default_model: t.default_model,
            models: curatedOf(t),
            model_discovery: t.model_discovery,
            notes: t.notes,
            notes_zh: t.notes_zh,
          }),
        );
        return ok({ templates: structuredClone(list) });
      } catch (e) {
        if (e instanceof ByokError) return fail(e.code, e.message, e.details ?? {});
        return fail('internal', 'internal error (see the server log)');
      }
    },

    parse_example(text) {
      try {
        if (typeof text !== 'string') return fail('invalid_input', 'api_example must be text (a curl / Python / JavaScript example)', { reason: 'example_not_text' });
        return parseExample(text);
      } catch (e) {
        if (e instanceof ByokError) return fail(e.code, e.message, e.details ?? {});
        return fail('internal', 'internal error (see the server log)');
      }
    },

    list_models(ws, opts = {}) {
      return guarded(async () => {
        checkWorkspace(ws);
        const models = await readModels(ws);
        return ok({ models: opts.include_removed ? models : models.filter((m) => m.status !== 'removed') });
      });
    },

    get(ws, modelId) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const models = await readModels(ws);
        const model = models.find((m) => m.id === id);
        if (!model) {
          const nf = notFound(ws, id, models);
          return nf;
        }
        return ok({ model });
      });
    },

    remove(ws, modelId) {
      return guarded(async () => {
        checkWorkspace(ws);
        const id = stripSelector(modelId);
        const at = now().toISOString();
        return mutateModels(ws, (models): Result<{ model: CustomModel; already_removed?: boolean }> => {
          const m = models.find((x) => x.id === id);
          if (!m) return notFound(ws, id, models);
          if (m.status === 'removed') return ok({ model: m, already_removed: true });
          m.status = 'removed';
          m.updated_at = at;
          return ok({ model: m });
        });
      });
    },

    resolve(ws, selector) {
      return guarded(async () => {
        checkWorkspace(ws);
        const q = stripSelector(selector, 'selector');
        const models = await readModels(ws);
        const live = models.filter((m) => m.status !== 'removed');
        const model =
          live.find((m) => m.id === q) ??
          live.find((m) => m.name.toLowerCase() === q.toLowerCase()) ??
          live.find((m) => nameKey(m.name) === nameKey(q));
        if (!model) return notFound(ws, q, models);
        return ok({ model });
      });
    },
  };
  return api;
}
