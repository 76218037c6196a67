/**
 * Maps a model's ThinkingRule into a request body.
 *
 * State: `rule.disabled` forces off; otherwise the caller's `thinking` choice; otherwise
 * `rule.default_on` when the template says; otherwise "unset" (nothing is sent and the
 * vendor's default applies).
 *
 *  none                  nothing
 *  reasoning_effort      on: `reasoning_effort: <default_effort|medium>`; off/unset: nothing
 *                        (there is no portable "off": the lowest effort is model-specific)
 *  anthropic_budget      on: `thinking: {type: enabled, budget_tokens}` with max_tokens raised
 *                        above the budget, temperature/top_k dropped (Anthropic refuses them
 *                        with thinking); no budget in the rule: one sized from max_tokens;
 *                        adaptive models: `thinking: {type: adaptive}` + `output_config:
 *                        {effort}` (the rule's, else the request fields', else medium);
 *                        off/unset: nothing (off is the default)
 *  enable_thinking       on/off: top-level boolean `<param|enable_thinking>`; with
 *                        budget_tokens also `thinking_budget` (DashScope)
 *  thinking_type         on/off: `<param|thinking>: {type: enabled|disabled}`
 *  nearai_chat_template  on/off: `chat_template_kwargs: {<param|enable_thinking>: bool}` at the
 *                        top level of the HTTP body (the SDKs' extra_body is merged in)
 *  always_on             nothing
 *  openrouter_reasoning  on: `reasoning: {max_tokens}` when budget_tokens else `{effort}`;
 *                        off: `reasoning: {enabled: false}`; unset: nothing
 */
import type { CustomModel } from '../registry/types.ts';
import type { ThinkingRule } from './template-schema.ts';

export type ThinkingState = 'on' | 'off' | 'unset';

export function thinkingState(rule: ThinkingRule, choice?: boolean): ThinkingState {
  if (rule.disabled) return 'off';
  if (choice !== undefined) return choice ? 'on' : 'off';
  if (rule.default_on !== undefined) return rule.default_on ? 'on' : 'off';
  return 'unset';
}

/** Anthropic's minimum thinking budget. */
export const ANTHROPIC_MIN_BUDGET = 1024;

function anthropicBudget(rule: ThinkingRule, maxTokens: number): number {
  if (rule.budget_tokens) return Math.max(ANTHROPIC_MIN_BUDGET, rule.budget_tokens);
  return Math.max(ANTHROPIC_MIN_BUDGET, Math.min(16_000, Math.floor(maxTokens / 2)));
}

/**
 * Mutates and returns `body`. `maxTokensField` names where the token limit lives in this
 * body (anthropic: `max_tokens`; Bedrock callers pass a scratch object and read it back).
 */
export function applyThinking<T extends Record<string, unknown>>(
  model: Pick<CustomModel, 'thinking' | 'max_tokens'>,
  body: T,
  opts: { thinking?: boolean; maxTokensField?: string } = {},
): T {
  const rule = model.thinking ?? { style: 'none' };
  const state = thinkingState(rule, opts.thinking);
  const b = body as Record<string, unknown>;
  switch (rule.style) {
    case 'none':
    case 'always_on':
      return body;
    case 'reasoning_effort':
      if (state === 'on') b.reasoning_effort = rule.default_effort ?? 'medium';
      return body;
    case 'anthropic_budget': {
      if (state !== 'on') return body;
      const field = opts.maxTokensField ?? 'max_tokens';
      if (rule.adaptive) {
        b.thinking = { type: 'adaptive' };
        // An effort the request fields already carry (e.g. `max`, beyond the rule's scale) stays.
        const prev = b.output_config && typeof b.output_config === 'object' && !Array.isArray(b.output_config) ? (b.output_config as Record<string, unknown>) : {};
        const effort = rule.default_effort ? (rule.default_effort === 'minimal' ? 'low' : rule.default_effort) : typeof prev.effort === 'string' ? prev.effort : 'medium';
        b.output_config = { ...prev, effort };
      } else {
        const current = typeof b[field] === 'number' ? (b[field] as number) : model.max_tokens;
        const budget = anthropicBudget(rule, current);
        b.thinking = { type: 'enabled', budget_tokens: budget };
        // max_tokens must exceed the budget and leave room for the answer.
        if (!(current > budget)) b[field] = budget + Math.max(1024, current);
      }
      delete b.temperature;
      delete b.top_k;
      return body;
    }
    case 'enable_thinking':
      if (state === 'unset') return body;
      b[rule.param ?? 'enable_thinking'] = state === 'on';
      if (state === 'on' && rule.budget_tokens) b.thinking_budget = rule.budget_tokens;
      return body;
    case 'thinking_type':
      if (state === 'unset') return body;
      b[rule.param ?? 'thinking'] = { type: state === 'on' ? 'enabled' : 'disabled' };
      return body;
    case 'nearai_chat_template': {
      if (state === 'unset') return body;
      const prev = b.chat_template_kwargs && typeof b.chat_template_kwargs === 'object' ? (b.chat_template_kwargs as Record<string, unknown>) : {};
      b.chat_template_kwargs = { ...prev, [rule.param ?? 'enable_thinking']: state === 'on' };
      return body;
    }
    case 'openrouter_reasoning':
      if (state === 'on') b.reasoning = rule.budget_tokens ? { max_tokens: rule.budget_tokens } : { effort: rule.default_effort ?? 'medium' };
      else if (state === 'off') b.reasoning = { enabled: false };
      return body;
    default:
      return body;
  }
}

/**
 * Merges a model's `request_fields` into an HTTP body. `extra_body` (an SDK concept) is
 * flattened into the top level; nested objects (e.g. chat_template_kwargs) are merged one
 * level deep. Fields the wire owns (`protected`) are never overwritten.
 */
export function mergeRequestFields(body: Record<string, unknown>, fields: Record<string, unknown> | undefined, protectedKeys: string[] = []): Record<string, unknown> {
  if (!fields) return body;
  const put = (k: string, v: unknown) => {
    if (protectedKeys.includes(k)) return;
    const cur = body[k];
    if (cur && v && typeof cur === 'object' && typeof v === 'object' && !Array.isArray(cur) && !Array.isArray(v)) body[k] = { ...(cur as object), ...(v as object) };
    else body[k] = v;
  };
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'extra_body' && v && typeof v === 'object') for (const [k2, v2] of Object.entries(v as object)) put(k2, v2);
    else put(k, v);
  }
  return body;
}
