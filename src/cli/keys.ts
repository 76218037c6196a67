import { ring } from './secrets.ts';
import type { CommandContext, CommandSpec } from '../cli.ts';
import { UsageError } from './usage-error.ts';
import { deleteKeyGroup, forgetWorkspace, keyGroups, resolveKeyTarget, type KeyGroup } from '../jobs/keys.ts';
import type { CustomModel } from '../registry/index.ts';
import { readVaultMeta, Vault } from '../secrets/vault.ts';
import { EnvInputRequests } from '../secure-input/tokens.ts';

/**
 * CLI commands for stored keys: `keys`, `delete-key`, `forget`, and the key fields that
 * `list` and `get` add to each model. None of them ever opens a key: the masked form comes
 * from the vault's sealed last-4 (so the master key is loaded, but only when the workspace
 * has stored keys: a read on a fresh data dir creates no master.key).
 */

/** The workspace's key groups; masked forms only when keys are stored and the master key opens their last-4. */
async function groupsOf(ctx: CommandContext, opts: { masked: boolean }): Promise<KeyGroup[]> {
  const store = ctx.store();
  let vault: Vault | undefined;
  if (opts.masked && (await readVaultMeta(store, ctx.workspace)).length) {
    // A listing still works without the master key (masked: null); delete and forget need none.
    vault = await ring(ctx).then((r) => new Vault(store, r)).catch(() => undefined);
  }
  return keyGroups({ store, registry: ctx.registry(), vault }, ctx.workspace);
}

export function keyJson(g: KeyGroup): Record<string, unknown> {
  return {
    env_var: g.env_var,
    env_vars: g.env_vars,
    stored: g.stored,
    kind: g.kind,
    vendor: g.vendor,
    vendor_name: g.vendor_name,
    ...(g.host && { host: g.host }),
    masked: g.masked,
    updated_at: g.updated_at ?? null,
    validated_at: g.meta.validated_at ?? null,
    expires_at: g.expires_at ?? null,
    expired: g.expired,
    health: g.health,
    models: g.models.map((m) => m.id),
  };
}

/** What `list` / `get` add to a model: `key` (its credential's state). Existing fields stay as they were. */
function modelKey(m: CustomModel, groups: KeyGroup[]): Record<string, unknown> {
  const names = [m.api_key_env, ...m.extra_env_vars];
  const g = groups.find((x) => x.env_vars.includes(m.api_key_env));
  const stored = !!g && !g.expired && names.every((n) => g.stored.includes(n));
  return {
    env_vars: names,
    stored,
    masked: stored ? g!.masked : null,
    kind: g?.kind ?? m.credential_kind ?? 'api_key',
    health: g && stored ? g.health : { status: 'unchecked' },
    validated_at: (stored && (g!.meta.validated_at ?? g!.updated_at)) || null,
    expires_at: g?.expires_at ?? null,
  };
}

/** Adds `key` to each model of a list/get result (ok results only). */
export async function withKeyFields<R extends object>(ctx: CommandContext, result: R): Promise<R> {
  const r = result as { ok?: boolean; models?: CustomModel[]; model?: CustomModel };
  if (r.ok !== true || (!r.models && !r.model)) return result;
  const groups = await groupsOf(ctx, { masked: true });
  if (r.models) return { ...result, models: r.models.map((m) => ({ ...m, key: modelKey(m, groups) })) };
  return { ...result, model: { ...r.model!, key: modelKey(r.model!, groups) } };
}

export const keyCommands: Record<string, CommandSpec> = {
  keys: {
    summary: 'List stored keys per vendor: name, kind, masked ****last4, validated / expires at, health, models using each',
    usage: 'keys',
    run: async (ctx) => {
      const groups = await groupsOf(ctx, { masked: true });
      return { ok: true, workspace: ctx.workspace, keys: groups.map(keyJson) };
    },
  },
  'delete-key': {
    summary: 'Delete a stored key (both names of a pair), keeping its models: they wait for a new key (pending_key). Needs --yes',
    usage: 'delete-key <vendor|model_id|KEY_NAME> --yes',
    positionals: { min: 1, max: 1 },
    options: { yes: { type: 'boolean', short: 'y' } },
    run: async (ctx) => {
      if (ctx.values.yes !== true) {
        throw new UsageError('delete-key deletes a stored key and cannot be undone: add --yes to confirm (the models stay registered and will need a new key; byok keys lists the keys)');
      }
      const groups = await groupsOf(ctx, { masked: false });
      let target = resolveKeyTarget(groups, ctx.args[0]!);
      if (!target.ok && target.code === 'not_found') {
        const res = await ctx.registry().resolve(ctx.workspace, ctx.args[0]!);
        const g = res.ok ? groups.find((x) => x.env_vars.includes(res.model.api_key_env)) : undefined;
        if (g) target = { ok: true, group: g };
      }
      if (!target.ok) {
        return target.code === 'ambiguous'
          ? { ok: false, code: 'ambiguous', error: `"${ctx.args[0]!.slice(0, 80)}" matches several keys; name one (KEY_NAME)`, candidates: target.candidates.map((g) => g.env_var) }
          : { ok: false, code: 'not_found', error: `no stored key matches "${ctx.args[0]!.slice(0, 80)}"; byok keys lists them` };
      }
      const g = target.group;
      const vault = new Vault(ctx.store(), await ring(ctx));
      const r = await deleteKeyGroup({ vault, registry: ctx.registry() }, ctx.workspace, g.env_vars, { code: 'key_deleted', message: 'the key was deleted by its owner' });
      return { ok: true, workspace: ctx.workspace, env_var: g.env_var, deleted: r.deleted, models: r.models, models_status: 'pending_key' };
    },
  },
  forget: {
    summary: "Delete everything of a workspace: keys, models, usage, chat state, pending forms and submissions. Needs --yes",
    usage: 'forget --yes',
    options: { yes: { type: 'boolean', short: 'y' } },
    run: async (ctx) => {
      if (ctx.values.yes !== true) {
        throw new UsageError(`forget deletes every key, model, usage record, chat state and pending form of workspace ${ctx.workspace} and cannot be undone: add --yes to confirm`);
      }
      const store = ctx.store();
      const config = ctx.config();
      const hasKeys = (await readVaultMeta(store, ctx.workspace)).length > 0;
      const vault = hasKeys ? new Vault(store, await ring(ctx)) : { deleteAll: async () => 0 };
      const requests = new EnvInputRequests(store, { ttlMs: config.tokenTtlMs, publicUrl: config.publicUrl });
      const deleted = await forgetWorkspace({ store, vault, voidForm: (h) => requests.void(h) }, ctx.workspace);
      return { ok: true, workspace: ctx.workspace, deleted };
    },
  },
};
