/**
 * `/think on | off | <budget tokens> | default`: thinking for the chat's current model.
 *
 * The choice is kept per model selector in the prefs of the chat's scope (the user's
 * workspace in a private chat, the group's in a group), so every process reads the same; the
 * relay turns it into the wire's `thinking` option and, with a budget, the rule's
 * `budget_tokens` (see thinkingCall and src/vendors/thinking.ts for what each style sends).
 */
import type { ChannelAdapter, InboundMessage, OutgoingMessage } from '../../channel.ts';
import type { Lang, MessageKey } from '../../i18n/index.ts';
import { type Registry, reasoningParamOf, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import { ANTHROPIC_MIN_BUDGET, thinkingState } from '../../vendors/thinking.ts';
import type { PlatformModels } from '../platform.ts';
import type { ChatStateStore, ThinkingChoice } from '../state.ts';
import { isGroupAdmin } from './group.ts';

/** What a command handler needs of the router's per-message context. */
export interface CommandCtx {
  msg: InboundMessage;
  adapter: ChannelAdapter;
  lang: Lang;
  reply: (text: string, extra?: Omit<OutgoingMessage, 'text'>) => Promise<void>;
  tr: (key: MessageKey, params?: Record<string, string | number>) => string;
}

export interface ThinkDeps {
  registry: Registry;
  state: ChatStateStore;
  platform: PlatformModels;
  /** The chat's model (chosen, else the user's default, else the platform's). */
  currentModel(msg: InboundMessage): Promise<{ selector?: string; owner: string }>;
  /** The prefs scope of the chat (user workspace, or the group's). */
  scope(msg: InboundMessage): string;
}

/** Largest budget accepted (no vendor takes more thinking tokens in one answer today). */
export const MAX_THINKING_BUDGET = 200_000;

export interface ThinkingSupport {
  /** none: no switch; always: cannot be switched off; held_off: kept off by its template. */
  kind: 'none' | 'always' | 'held_off' | 'switch';
  budget: boolean;
  minBudget: number;
}

/** Whether and how a model can think, from its rule and wire. */
export function thinkingSupport(model: Pick<CustomModel, 'thinking' | 'wire'>): ThinkingSupport {
  const rule = model.thinking ?? { style: 'none' };
  // The Code Assist wire sends thinkingConfig (with thinkingBudget) for any rule but none.
  const gemini = model.wire === 'gemini-code-assist' && rule.style !== 'none';
  if (rule.style === 'none') return { kind: 'none', budget: false, minBudget: 1 };
  if (rule.disabled) return { kind: 'held_off', budget: false, minBudget: 1 };
  if (rule.style === 'always_on') return { kind: 'always', budget: gemini, minBudget: 1 };
  const budget =
    gemini ||
    (rule.style === 'anthropic_budget' && !rule.adaptive) ||
    rule.style === 'enable_thinking' ||
    rule.style === 'openrouter_reasoning';
  return { kind: 'switch', budget, minBudget: rule.style === 'anthropic_budget' ? ANTHROPIC_MIN_BUDGET : 1 };
}

/**
 * The model and `thinking` option for one vendor call under the user's choice: off → false;
 * on → true, with the budget put into the rule where the vendor takes one.
 */
export function thinkingCall(model: CustomModel, choice: ThinkingChoice | undefined): { model: CustomModel; thinking?: boolean } {
  if (!choice) return { model };
  if (!choice.on) return { model, thinking: false };
  const support = thinkingSupport(model);
  if (choice.budget && support.budget) return { model: { ...model, thinking: { ...model.thinking, budget_tokens: choice.budget } }, thinking: true };
  return { model, thinking: true };
}

async function resolveModel(deps: ThinkDeps, target: { selector?: string; owner: string }): Promise<CustomModel | undefined> {
  if (!target.selector) return undefined;
  if (target.selector.startsWith(MODEL_SELECTOR_PREFIX)) {
    const res = await deps.registry.get(target.owner, target.selector);
    return res.ok && res.model.status !== 'removed' ? res.model : undefined;
  }
  return deps.platform.models.find((m) => m.id === target.selector);
}

/** The `/think` command. */
export async function think(deps: ThinkDeps, ctx: CommandCtx, arg: string): Promise<void> {
  const { msg } = ctx;
  const target = await deps.currentModel(msg);
  const model = await resolveModel(deps, target);
  if (!model || !target.selector) return ctx.reply(ctx.tr('think.no_model'));
  const selector = target.selector;
  const scope = deps.scope(msg);
  const name = model.name;
  const support = thinkingSupport(model);
  const a = arg.trim().toLowerCase();
  if (!a) return ctx.reply(await status(deps, ctx, model, selector, scope, support));

  // A group's thinking is the group's setting: the same people who pick its model change it.
  // A channel without an admin check fails closed (isGroupAdmin).
  if (!msg.isPrivate && !(await isGroupAdmin(ctx))) return ctx.reply(ctx.tr('think.group_admin_only'));

  if (a === 'default' || a === 'reset' || a === '默认') {
    await deps.state.setThinking(scope, selector, undefined);
    return ctx.reply(ctx.tr('think.default_again', { model: name }));
  }
  const on = /^(on|yes|开|开启|打开)$/.test(a);
  const off = /^(off|no|关|关闭)$/.test(a);
  const budget = /^\d{1,7}$/.test(a) ? Number(a) : undefined;
  if (!on && !off && budget === undefined) return ctx.reply(ctx.tr('think.usage'));

  if (support.kind === 'none') {
    const custom = selector.startsWith(MODEL_SELECTOR_PREFIX);
    return ctx.reply([ctx.tr('think.cannot', { model: name }), ...(custom ? [ctx.tr('think.cannot_hint', { id: model.id })] : [])].join('\n'));
  }
  if (support.kind === 'held_off') return ctx.reply(ctx.tr('think.held_off', { model: name }));
  if (support.kind === 'always' && off) return ctx.reply(ctx.tr('think.always_on', { model: name }));
  if (budget !== undefined) {
    if (!support.budget) return ctx.reply(ctx.tr('think.no_budget', { model: name, param: reasoningParamOf(model.thinking) }));
    if (budget < support.minBudget || budget > MAX_THINKING_BUDGET) {
      return ctx.reply(ctx.tr('think.bad_budget', { model: name, min: support.minBudget, max: MAX_THINKING_BUDGET }));
    }
    await deps.state.setThinking(scope, selector, { on: true, budget });
    return ctx.reply(ctx.tr('think.on_budget', { model: name, budget }));
  }
  if (support.kind === 'always') {
    await deps.state.setThinking(scope, selector, undefined);
    return ctx.reply(ctx.tr('think.always_on_already', { model: name }));
  }
  await deps.state.setThinking(scope, selector, { on });
  return ctx.reply(ctx.tr(on ? 'think.on' : 'think.off', { model: name }));
}

async function status(deps: ThinkDeps, ctx: CommandCtx, model: CustomModel, selector: string, scope: string, support: ThinkingSupport): Promise<string> {
  const name = model.name;
  if (support.kind === 'none') return [ctx.tr('think.cannot', { model: name }), ...(selector.startsWith(MODEL_SELECTOR_PREFIX) ? [ctx.tr('think.cannot_hint', { id: model.id })] : [])].join('\n');
  if (support.kind === 'held_off') return ctx.tr('think.held_off', { model: name });
  const choice = (await deps.state.getPrefs(scope)).thinking?.[selector];
  let state: string;
  if (support.kind === 'always') state = ctx.tr('think.state_always');
  else if (choice?.on && choice.budget && support.budget) state = ctx.tr('think.state_budget', { budget: choice.budget });
  else if (choice) state = ctx.tr(choice.on ? 'think.state_on' : 'think.state_off');
  else {
    const d = thinkingState(model.thinking);
    state = ctx.tr('think.state_default', { state: ctx.tr(d === 'on' ? 'think.state_on' : d === 'off' ? 'think.state_off' : 'think.state_vendor') });
  }
  return [ctx.tr('think.status', { model: name, state }), ctx.tr(support.budget ? 'think.usage' : 'think.usage_no_budget')].join('\n');
}
