/**
 * `/model default <model>` and `/model default off`: a user's default model (Eigent's "set as
 * default"). A private chat in which no model was chosen uses it; a chosen model still wins.
 * Kept in the user's prefs document in the Store, so every process agrees.
 */
import { type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import type { PlatformModels } from '../platform.ts';
import type { ChatStateStore } from '../state.ts';
import type { CommandCtx } from './think.ts';

export interface DefaultModelDeps {
  registry: Registry;
  state: ChatStateStore;
  platform: PlatformModels;
}

/** True when `/model <arg>` is about the default (the router hands it here). */
export function isDefaultArg(arg: string): boolean {
  return /^(default|默认)(\s|$)/i.test(arg.trim());
}

/** The selectable models in /model's order: platform first, then the user's live custom models. */
async function choices(deps: DefaultModelDeps, workspace: string): Promise<Array<{ selector: string; model: CustomModel }>> {
  const out = deps.platform.models.map((p) => ({ selector: p.id, model: p }));
  const res = await deps.registry.list_models(workspace);
  if (res.ok) for (const m of res.models) if (m.status !== 'removed') out.push({ selector: MODEL_SELECTOR_PREFIX + m.id, model: m });
  return out;
}

/** `/model default …` (arg includes the word "default"). */
export async function defaultModel(deps: DefaultModelDeps, ctx: CommandCtx, arg: string): Promise<void> {
  const { msg } = ctx;
  const query = arg.trim().replace(/^(default|默认)\s*/i, '').trim();
  // A default belongs to a person, not a group: set it where only they read the answer.
  if (!msg.isPrivate) return ctx.reply(ctx.tr('model.default_private_only'));
  const ws = msg.workspace;
  if (!query) return ctx.reply(await describeDefault(deps, ctx, ws, true));
  if (/^(off|none|clear|关闭|取消)$/i.test(query)) {
    await deps.state.setDefaultModel(ws, undefined);
    return ctx.reply(ctx.tr('model.default_cleared'));
  }
  const list = await choices(deps, ws);
  let chosen: { selector: string; model: CustomModel } | undefined;
  if (/^\d{1,4}$/.test(query)) {
    chosen = list[Number(query) - 1];
    if (!chosen) return ctx.reply(ctx.tr('model.bad_index', { n: query }));
  } else {
    chosen = list.find((c) => c.selector.toLowerCase() === query.toLowerCase());
    if (!chosen) {
      const direct = await deps.registry.get(ws, query);
      if (direct.ok && direct.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: direct.model.id }));
      const res = await deps.registry.resolve(ws, query);
      if (!res.ok) {
        const sugg = (res as { suggestions?: string[] }).suggestions ?? [];
        return ctx.reply([ctx.tr('model.unknown', { query: query.slice(0, 80) }), ...(sugg.length ? [ctx.tr('model.did_you_mean', { list: sugg.join(', ') })] : [])].join('\n'));
      }
      if (res.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: res.model.id }));
      chosen = { selector: MODEL_SELECTOR_PREFIX + res.model.id, model: res.model };
    }
  }
  await deps.state.setDefaultModel(ws, chosen.selector);
  const label = chosen.selector.startsWith(MODEL_SELECTOR_PREFIX) ? `${chosen.model.name} (${chosen.selector})` : chosen.model.name;
  return ctx.reply(ctx.tr('model.default_set', { model: label }));
}

/** The line /model shows about the default (with how to set it when `usage`). */
export async function describeDefault(deps: DefaultModelDeps, ctx: CommandCtx, workspace: string, usage = false): Promise<string> {
  const selector = (await deps.state.getPrefs(workspace)).default_model;
  const lines: string[] = [];
  if (selector) {
    const c = (await choices(deps, workspace)).find((x) => x.selector === selector);
    const label = c ? (selector.startsWith(MODEL_SELECTOR_PREFIX) ? `${c.model.name} (${selector})` : c.model.name) : selector;
    lines.push(ctx.tr('model.default_is', { model: label }));
  } else lines.push(ctx.tr('model.default_none'));
  if (usage) lines.push(ctx.tr('model.default_usage'));
  return lines.join('\n');
}

/** The default selector of a private chat with no model chosen, if it is still usable. */
export async function defaultSelector(deps: Pick<DefaultModelDeps, 'state'>, workspace: string): Promise<string | undefined> {
  return (await deps.state.getPrefs(workspace)).default_model;
}

/** `/byok remove`: a default pointing at the removed model is cleared (it would fail every message). */
export async function clearDefaultIf(deps: Pick<DefaultModelDeps, 'state'>, workspace: string, selector: string): Promise<void> {
  const prefs = await deps.state.getPrefs(workspace);
  if (prefs.default_model !== selector) return;
  await deps.state.updatePrefs(workspace, (p) => {
    if (p.default_model === selector) delete p.default_model;
  });
}
