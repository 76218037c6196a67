/**
 * The smaller `/byok` subcommands over the user's models: `templates`, `list` (status and
 * masked key), `test` (re-queue a pending submission, else probe the stored key), `edit`
 * (name, model, base URL, max tokens) and `remove`. Adding is commands/add.ts, settings
 * commands/settings.ts, keys commands/keys.ts.
 */
import type { MessageKey } from '../../i18n/index.ts';
import { type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import { offeredTemplates } from '../../vendors/templates.ts';
import { templateName } from '../../vendors/template-name.ts';
import { registryErrorText } from '../registry-text.ts';
import type { ChatDeps, ChatVault, EnvInputRequester } from '../deps.ts';
import type { ChatStateStore } from '../state.ts';
import { afterEdit, checkModel, type AddDeps } from './add.ts';
import { clearDefaultIf } from './default-model.ts';
import type { CommandCtx } from './think.ts';

export interface ByokMiscDeps {
  registry: Registry;
  vault: Pick<ChatVault, 'list' | 'has'>;
  state: ChatStateStore;
  requests: Pick<EnvInputRequester, 'voidForModel'>;
  retest: ChatDeps['retest'];
  /** The chat state scope (user workspace, or the group's). */
  scope: string;
  add: AddDeps;
  needsKey(workspace: string, model: CustomModel): Promise<boolean>;
  offerKeyForm(ctx: CommandCtx, model: CustomModel, force: boolean): Promise<void>;
}

/** `/byok templates`: the curated vendors offered here. */
export function templatesCommand(ctx: CommandCtx): Promise<void> {
  const lines = [ctx.tr('byok.templates_header')];
  for (const tpl of offeredTemplates()) lines.push(`• ${tpl.id}: ${templateName(tpl, ctx.lang)} (${tpl.aliases.slice(0, 3).join(', ')})`);
  return ctx.reply(lines.join('\n'));
}

/** `/byok list`: the user's models with status and masked key. */
export async function listCommand(deps: ByokMiscDeps, ctx: CommandCtx): Promise<void> {
  const ws = ctx.msg.workspace;
  const res = await deps.registry.list_models(ws);
  if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res));
  const models = res.models.filter((m) => m.status !== 'removed');
  if (!models.length) return ctx.reply(ctx.tr('byok.list_empty'));
  const keys = new Map((await deps.vault.list(ws)).map((k) => [k.env_var, k.masked]));
  const lines = [ctx.tr('byok.list_header')];
  models.forEach((m, i) =>
    lines.push(
      ctx.tr('byok.list_item', {
        n: i + 1,
        id: m.id,
        name: m.name,
        vendor: m.vendor,
        upstream: m.upstream_model,
        status: ctx.tr(`model.status_${m.status}` as MessageKey),
        masked: keys.get(m.api_key_env) ?? ctx.tr(m.key_optional ? 'byok.key_not_needed' : 'byok.key_missing'),
      }),
    ),
  );
  return ctx.reply(lines.join('\n'));
}

/** `/byok key <model>`: a fresh secure form for it. */
export async function keyFormCommand(deps: ByokMiscDeps, ctx: CommandCtx, arg: string | undefined): Promise<void> {
  const model = await modelArg(deps, ctx, arg);
  if (model) await deps.offerKeyForm(ctx, model, true);
}

/** `/byok test <model>`. */
export async function testCommand(deps: ByokMiscDeps, ctx: CommandCtx, arg: string | undefined): Promise<void> {
  const ws = ctx.msg.workspace;
  const model = await modelArg(deps, ctx, arg);
  if (!model) return;
  if (await deps.retest(ws, model.id, ctx.msg.chat, ctx.lang)) return ctx.reply(ctx.tr('byok.test_started', { id: model.id }));
  if (await deps.needsKey(ws, model)) return deps.offerKeyForm(ctx, model, false);
  // The answer becomes the model's status (model_problem when the vendor does not serve it).
  return ctx.reply(await checkModel(deps.add, ctx, model, 'test'));
}

/** `/byok edit <id> <field> <value>`. */
export async function editCommand(deps: ByokMiscDeps, ctx: CommandCtx, args: string[]): Promise<void> {
  const [id, field, ...valueParts] = args;
  const value = valueParts.join(' ');
  if (!id || !field || !value) return ctx.reply(ctx.tr('byok.edit_usage'));
  const key = ({ name: 'name', model: 'upstream_model', upstream_model: 'upstream_model', base_url: 'base_url', url: 'base_url', max_tokens: 'max_tokens' } as Record<string, string>)[field.toLowerCase()];
  if (!key) return ctx.reply(ctx.tr('byok.edit_usage'));
  const changes: Record<string, unknown> = { [key]: key === 'max_tokens' ? Number(value) : value };
  // Another host asks for that host's key; a changed model is checked again (commands/add.ts).
  return afterEdit(deps.add, ctx, await deps.registry.update(ctx.msg.workspace, id, changes), key, id);
}

/** `/byok remove <id>` (or `delete`). */
export async function removeCommand(deps: ByokMiscDeps, ctx: CommandCtx, arg: string | undefined): Promise<void> {
  const ws = ctx.msg.workspace;
  if (!arg) return ctx.reply(ctx.tr('byok.help'));
  const res = await deps.registry.remove(ws, arg);
  if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res, arg));
  await deps.state.update(deps.scope, (s) => {
    if (s.model === MODEL_SELECTOR_PREFIX + res.model.id) delete s.model;
  });
  await clearDefaultIf(deps, ws, MODEL_SELECTOR_PREFIX + res.model.id);
  await deps.requests.voidForModel?.(ws, res.model.id);
  // "Its key stays sealed" only when there is one.
  const keyed = await deps.vault.has(ws, res.model.api_key_env);
  return ctx.reply(ctx.tr(keyed ? 'byok.removed' : 'byok.removed_no_key', { id: res.model.id }));
}

async function modelArg(deps: Pick<ByokMiscDeps, 'registry'>, ctx: CommandCtx, arg: string | undefined): Promise<CustomModel | undefined> {
  if (!arg) {
    await ctx.reply(ctx.tr('byok.help'));
    return undefined;
  }
  const res = await deps.registry.resolve(ctx.msg.workspace, arg);
  if (res.ok) return res.model;
  const sugg = (res as { suggestions?: string[] }).suggestions ?? [];
  await ctx.reply([ctx.tr('model.unknown', { query: arg.slice(0, 80) }), ...(sugg.length ? [ctx.tr('model.did_you_mean', { list: sugg.join(', ') })] : [])].join('\n'));
  return undefined;
}
