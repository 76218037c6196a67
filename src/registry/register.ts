/**
 * Registering a model (add_template and add both end here): key names for its host, name and
 * id clashes, reactivating a removed entry, and the secure-form request when its key is not stored.
 */
import { ByokError } from '../errors.ts';
import { ok, type Result } from '../result.ts';
import type { Template, TemplateModel } from '../vendors/template-schema.ts';
import { selectorOf, type AddResult, type NeedEnvInput } from './contract.ts';
import type { RegistryCtx } from './context.ts';
import { bindingsOf, checkKeyHost, keyNamesAt, recordKeyHost } from './key-hosts.ts';
import { clean } from './models-doc.ts';
import { idBase, nameKey, newModelId } from './slug.ts';
import type { CustomModel, ModelStatus } from './types.ts';

export type Draft = Omit<CustomModel, 'id' | 'status' | 'last_error' | 'created_at' | 'updated_at'>;

export interface RegisterOptions {
  explicitId?: string;
  /** The user typed the name (otherwise it is a default and may be disambiguated). */
  nameGiven: boolean;
  /** Used instead of a default name that collides with another vendor's model. */
  altName?: string;
  vendorLabel: string;
  homepage?: string;
}

/** The secure-form request for a model whose key is not stored yet. */
export function needEnv(model: CustomModel, opts: RegisterOptions): NeedEnvInput {
  const env_vars = [model.api_key_env, ...model.extra_env_vars];
  // An OAuth file is not created at a key page: its CLI writes it at login.
  const file = model.credential_kind === 'oauth_json';
  const where = opts.homepage && !file ? ` Create one at ${opts.homepage}.` : '';
  const what = file
    ? `${opts.vendorLabel} OAuth credentials file (${model.api_key_env}, the file its CLI writes when you log in)`
    : env_vars.length > 1
      ? `${opts.vendorLabel} credentials (${env_vars.join(', ')})`
      : `${opts.vendorLabel} API key (${model.api_key_env})`;
  return {
    env_vars,
    reason: `Enter your ${what} for ${selectorOf(model)} (${model.upstream_model}) through the secure form.${where} One ${file ? 'login' : 'key'} serves every ${opts.vendorLabel} model in this workspace.`,
  };
}

/** A model outside a TEE vendor's protected list is registered, with this warning. */
export function teeWarning(t: Template, upstream: string, curated: TemplateModel | undefined): string | undefined {
  if (!t.models.some((m) => m.tee)) return undefined;
  if (curated?.tee) return undefined;
  return `${upstream} is not one of ${t.name}'s TEE-protected models: prompts and answers are not protected by the enclave. Registered anyway; for a third-party model prefer that vendor's own template.`;
}

/** `register(ws, draft, opts, warnings)`: stores the entry under the workspace lock. */
export function registerer(ctx: RegistryCtx): (ws: string, input: Draft, opts: RegisterOptions, warnings: string[]) => Promise<Result<AddResult>> {
  const { now } = ctx;
  const { keyState, keyStored, mutateModels } = ctx.doc;
  async function register(ws: string, input: Draft, opts: RegisterOptions, warnings: string[]): Promise<Result<AddResult>> {
    // The key names for this host (a vendor key on another host gets a name of its own).
    const ks = await keyState(ws);
    const draft: Draft = { ...input, ...keyNamesAt(bindingsOf(ks.models, ks.keyHosts, ks.stored), input, input.base_url) };
    const envVars = [draft.api_key_env, ...draft.extra_env_vars];
    const stored = draft.key_optional || (await keyStored(ws, envVars));
    const at = now().toISOString();
    const { model, reactivated } = await mutateModels(ws, (models, keyHosts) => {
      checkKeyHost(models, keyHosts, ks.stored, draft.api_key_env, draft.base_url);
      recordKeyHost(keyHosts, draft);
      let name = draft.name;
      let target: CustomModel | undefined;
      const live = (n: string) => models.find((m) => m.status !== 'removed' && nameKey(m.name) === nameKey(n) && m.id !== target?.id);
      if (opts.explicitId) {
        const existing = models.find((m) => m.id === opts.explicitId);
        if (existing && existing.status !== 'removed') {
          throw new ByokError('conflict', `${selectorOf(existing)} already exists (${existing.name}); pick another id, or update/remove it`, {
            field: 'id',
            reason: 'id_taken',
            existing: selectorOf(existing),
          });
        }
        if (existing && existing.vendor !== draft.vendor) {
          throw new ByokError(
            'conflict',
            `${selectorOf(existing)} was a ${existing.vendor} model; a removed id can only be reactivated with the same vendor. Pick another id.`,
            { field: 'id', reason: 'id_other_vendor' },
          );
        }
        target = existing;
      }
      let clash = live(name);
      if (clash && !opts.nameGiven && opts.altName && clash.vendor !== draft.vendor) {
        name = opts.altName;
        clash = live(name);
      }
      if (clash) {
        throw new ByokError(
          'conflict',
          `a model named "${clash.name}" already exists in this workspace (${selectorOf(clash)}, vendor ${clash.vendor}); give this one another name, or update/remove that one`,
          { field: 'name', existing: selectorOf(clash), name: clash.name, reason: 'name_taken' },
        );
      }
      if (!opts.explicitId) {
        const gone = models
          .filter((m) => m.status === 'removed' && nameKey(m.name) === nameKey(name))
          .sort((a, b) => b.updated_at.localeCompare(a.updated_at))[0];
        if (gone && gone.vendor !== draft.vendor) {
          throw new ByokError(
            'conflict',
            `the name "${name}" belongs to the removed ${gone.vendor} model ${selectorOf(gone)}; it can only be reactivated with the same vendor. Choose another name.`,
            { field: 'name', existing: selectorOf(gone), name, reason: 'name_removed_other_vendor' },
          );
        }
        target = gone;
      }
      const status: ModelStatus = stored ? 'active' : 'pending_key';
      if (target) {
        const idx = models.indexOf(target);
        const m: CustomModel = structuredClone(clean({ id: target.id, ...draft, name, status, created_at: target.created_at, updated_at: at }));
        models[idx] = m;
        return { model: m, reactivated: true };
      }
      const id =
        opts.explicitId ??
        newModelId(idBase(opts.nameGiven ? name : undefined, draft.upstream_model), (c) => models.some((m) => m.id === c));
      // A deep copy: nothing in the document may share objects with the cached templates.
      const m: CustomModel = structuredClone(clean({ id, ...draft, name, status, created_at: at, updated_at: at }));
      models.push(m);
      // A stored key serves every model that uses it: siblings still waiting for it are ready too.
      if (stored && !draft.key_optional) {
        for (const s of models) if (s.status === 'pending_key' && s.api_key_env === draft.api_key_env) Object.assign(s, { status: 'active', updated_at: at });
      }
      return { model: m, reactivated: false };
    });
    const out: AddResult = { model, selector: selectorOf(model) };
    if (!stored) out.need_env_input = needEnv(model, opts);
    if (warnings.length) out.warnings = warnings;
    if (reactivated) out.reactivated = true;
    return ok(out);
  }
  return register;
}
