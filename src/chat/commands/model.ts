/**
 * `/model` (and `/models`): the numbered list of the models this chat may use (platform
 * first, then a group's own, then the user's), and switching by number, selector or a loose
 * name. A switch to another vendor starts a fresh history unless `keep` (src/chat/privacy.ts);
 * `/model default …` is src/chat/commands/default-model.ts.
 */
import type { Choice, InboundMessage } from '../../channel.ts';
import type { MessageKey } from '../../i18n/index.ts';
import { type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import type { Store } from '../../store/types.ts';
import { editDistance } from '../../vendors/templates.ts';
import type { PlatformModels } from '../platform.ts';
import { destinationOf, splitKeep, switchHistory } from '../privacy.ts';
import { localizeTemplateName } from '../../vendors/template-name.ts';
import type { ChatStateStore } from '../state.ts';
import { defaultModel, describeDefault, isDefaultArg } from './default-model.ts';
import { isGroupAdmin, offeredPlatform } from './group.ts';
import type { CommandCtx } from './think.ts';

export interface ModelDeps {
  store: Store;
  registry: Registry;
  platform: PlatformModels;
  state: ChatStateStore;
  /** The chat's model (chosen, else the user's default, else the platform's). */
  currentModel(msg: InboundMessage): Promise<{ selector?: string; owner: string }>;
  /** The chat state scope (user workspace, or the group's). */
  scope: string;
  needsKey(workspace: string, model: CustomModel): Promise<boolean>;
  offerKeyForm(ctx: CommandCtx, model: CustomModel, force: boolean): Promise<void>;
}

type ModelChoice = { selector: string; label: string; model: CustomModel; owner?: string };

/** Numbered list shared by /model and /model <n>: platform models first, then custom. */
async function modelChoices(deps: ModelDeps, workspace: string, group?: string): Promise<ModelChoice[]> {
  const out: ModelChoice[] = [];
  for (const p of (await offeredPlatform(deps.store, deps.platform)).models) out.push({ selector: p.id, label: p.name, model: p, owner: '' });
  // In a group: the group's own models next, usable by every member (owner: the group).
  const shared = group ? await deps.registry.list_models(group) : undefined;
  if (group && shared?.ok) {
    for (const c of shared.models) if (c.status !== 'removed') out.push({ selector: MODEL_SELECTOR_PREFIX + c.id, label: `${c.name} (${MODEL_SELECTOR_PREFIX}${c.id})`, model: c, owner: group });
  }
  const res = await deps.registry.list_models(workspace);
  if (res.ok) {
    for (const c of res.models) {
      if (c.status === 'removed') continue;
      out.push({ selector: MODEL_SELECTOR_PREFIX + c.id, label: `${c.name} (${MODEL_SELECTOR_PREFIX}${c.id})`, model: c });
    }
  }
  return out;
}

/** The model a selector names for its owner (platform or custom), as the relay resolves it. */
async function relayModel(deps: ModelDeps, selector: string, owner: string): Promise<CustomModel | undefined> {
  if (!selector.startsWith(MODEL_SELECTOR_PREFIX)) return deps.platform.models.find((p) => p.id === selector);
  const res = await deps.registry.get(owner, selector);
  return res.ok ? res.model : undefined;
}

/** `/model [<n> | <selector> | <name>] [keep]` and `/model default …`. */
export async function modelCommand(deps: ModelDeps, ctx: CommandCtx, rawArg: string): Promise<void> {
  const { msg } = ctx;
  const inGroup = !msg.isPrivate;
  // `/model <id> keep`: the conversation goes along to another vendor (src/chat/privacy.ts).
  const { arg, keep } = splitKeep(rawArg);
  if (!arg) return showModels(deps, ctx);
  if (isDefaultArg(arg)) return defaultModel(deps, ctx, arg);
  const choices = await modelChoices(deps, msg.workspace, inGroup ? msg.groupWorkspace : undefined);
  let chosen: { selector: string; model: CustomModel; owner?: string } | undefined;
  if (/^\d{1,4}$/.test(arg)) {
    chosen = choices[Number(arg) - 1];
    if (!chosen) return ctx.reply(ctx.tr('model.bad_index', { n: arg }));
  } else {
    chosen = choices.find((c) => c.selector === arg || c.selector.toLowerCase() === arg.toLowerCase());
    if (!chosen) {
      const direct = await deps.registry.get(msg.workspace, arg);
      if (direct.ok && direct.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: direct.model.id }));
      const res = await deps.registry.resolve(msg.workspace, arg);
      if (res.ok) {
        if (res.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: res.model.id }));
        chosen = { selector: MODEL_SELECTOR_PREFIX + res.model.id, model: res.model };
      } else {
        const names = [
          ...((res as { suggestions?: string[] }).suggestions ?? []).map((s) => (s.startsWith(MODEL_SELECTOR_PREFIX) ? s : MODEL_SELECTOR_PREFIX + s)),
          ...closest(arg, deps.platform.models.map((p) => p.id)),
        ].slice(0, 3);
        const lines = [ctx.tr('model.unknown', { query: arg.slice(0, 80) })];
        if (names.length) lines.push(ctx.tr('model.did_you_mean', { list: names.join(', ') }));
        return ctx.reply(lines.join('\n'));
      }
    }
  }
  // A group: members pick among the platform's and the group's own models; an admin's own
  // models need a group admin. No admin check on the channel, or a failed one: refused.
  if (inGroup && chosen.owner === undefined && !(await isGroupAdmin(ctx))) return ctx.reply(ctx.tr('model.group_admin_only'));
  const before = await deps.currentModel(msg);
  const from = destinationOf(before.selector ? await relayModel(deps, before.selector, before.owner) : undefined);
  const to = destinationOf(chosen.model)!;
  const history = await deps.state.update(deps.scope, (s) => {
    s.model = chosen!.selector;
    if (inGroup) s.model_owner = chosen!.owner || msg.workspace;
    else delete s.model_owner;
    return switchHistory(s, from, to, keep);
  });
  await ctx.reply(ctx.tr(inGroup ? 'model.group_switched' : 'model.switched', { model: chosen.model.name }));
  // Two hosts of one vendor (two Bedrock regions, Qwen's mainland host): the hosts tell them apart.
  const sameName = from !== undefined && from.name === to.name;
  const shown = (name: string) => localizeTemplateName(name, ctx.lang);
  if (history === 'fresh') await ctx.reply(ctx.tr('model.fresh_history', { old: sameName ? from.host : shown(from?.name ?? before.selector ?? ''), new: sameName ? to.host : shown(to.name), selector: chosen.selector }));
  if (history === 'kept') await ctx.reply(ctx.tr('model.kept_history', { new: shown(to.name) }));
  // A custom model whose key is missing gets the secure form right away (private chats only).
  if (chosen.selector.startsWith(MODEL_SELECTOR_PREFIX) && msg.isPrivate && (await deps.needsKey(msg.workspace, chosen.model))) {
    await deps.offerKeyForm(ctx, chosen.model, false);
  }
}

async function showModels(deps: ModelDeps, ctx: CommandCtx): Promise<void> {
  const { msg } = ctx;
  const current = await deps.currentModel(msg);
  const choices = await modelChoices(deps, msg.workspace, msg.isPrivate ? undefined : msg.groupWorkspace);
  const lines: string[] = [];
  const currentLabel = current.selector ? (choices.find((c) => c.selector === current.selector)?.label ?? current.selector) : undefined;
  lines.push(currentLabel ? ctx.tr('model.current', { model: currentLabel }) : ctx.tr('model.none'));
  if (msg.isPrivate) lines.push(await describeDefault(deps, ctx, msg.workspace));
  const buttons: Choice[][] = [];
  if (choices.length) {
    lines.push('', ctx.tr('model.list_header'));
    choices.forEach((c, i) => {
      const mark = c.selector === current.selector ? ' ✓' : '';
      const status = c.model.vendor === 'platform' ? '' : ` · ${ctx.tr(`model.status_${c.model.status}` as MessageKey)}`;
      lines.push(`${i + 1}. ${c.label}${status}${mark}`);
      buttons.push([{ label: `${c.selector === current.selector ? '✓ ' : ''}${c.model.name}`, data: `/model ${c.selector}` }]);
    });
  }
  if (!choices.some((c) => c.model.vendor !== 'platform')) lines.push('', ctx.tr(msg.isPrivate ? 'model.no_custom' : 'model.no_custom_room'));
  await ctx.reply(lines.join('\n'), { choices: buttons.length ? buttons : undefined });
}

function closest(query: string, candidates: string[]): string[] {
  const q = query.toLowerCase();
  return candidates
    .map((c) => ({ c, d: editDistance(q, c.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(x.c.length / 3)))
    .sort((a, b) => a.d - b.d)
    .map((x) => x.c);
}
