/**
 * The "reasoning parameter" of a model (seed 004's "Reasoning parameter name"): which request
 * field carries the thinking switch or budget. It edits the model's ThinkingRule:
 *
 *  enable_thinking / thinking_type / nearai_chat_template
 *                         the name is the field itself (`param`), e.g. `thinking`, `enable_reasoning`
 *  openrouter_reasoning   `max_tokens` (reasoning: {max_tokens}) or `effort` (reasoning: {effort})
 *  none                   a model with no switch yet gets one by the field's well-known name:
 *                         reasoning_effort, enable_thinking, thinking ({type}), reasoning | effort
 *                         | max_tokens (reasoning: {…}), chat_template_kwargs.<name>
 *  anthropic_budget, reasoning_effort, always_on
 *                         fixed by the vendor's API: refused
 *
 * Pure; the registry turns a refusal into an invalid_input error, the chat into its own text.
 */
import type { ThinkingRule } from '../vendors/template-schema.ts';

export type ReasoningParamResult =
  | { ok: true; rule: ThinkingRule }
  | { ok: false; reason: 'bad_name' | 'fixed' | 'unknown_name' | 'openrouter_name'; known?: string[] };

/** A request field name: letters, digits, `_`, `-`, `.` (no spaces, no quotes). */
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** Well-known names a model without a switch may be given (the style each one selects). */
export const KNOWN_REASONING_PARAMS = ['reasoning_effort', 'enable_thinking', 'thinking', 'reasoning', 'effort', 'max_tokens', 'chat_template_kwargs.<name>'];

/** Budget given to `reasoning: {max_tokens}` when the rule has none yet (half the answer cap). */
function defaultBudget(maxTokens: number): number {
  return Math.max(1024, Math.min(16_000, Math.floor(maxTokens / 2)));
}

export function withReasoningParam(rule: ThinkingRule, name: string, maxTokens: number): ReasoningParamResult {
  if (!NAME_RE.test(name)) return { ok: false, reason: 'bad_name' };
  const base: ThinkingRule = { ...rule };
  switch (rule.style) {
    case 'enable_thinking':
    case 'thinking_type':
    case 'nearai_chat_template':
      return { ok: true, rule: { ...base, param: name.replace(/^chat_template_kwargs\./, '') } };
    case 'openrouter_reasoning':
      if (name === 'effort') {
        delete base.budget_tokens;
        return { ok: true, rule: base };
      }
      if (name === 'max_tokens') return { ok: true, rule: { ...base, budget_tokens: base.budget_tokens ?? defaultBudget(maxTokens) } };
      return { ok: false, reason: 'openrouter_name', known: ['max_tokens', 'effort'] };
    case 'none': {
      const nested = /^chat_template_kwargs\.(.+)$/.exec(name);
      if (nested) return { ok: true, rule: { style: 'nearai_chat_template', param: nested[1] } };
      switch (name) {
        case 'reasoning_effort':
          return { ok: true, rule: { style: 'reasoning_effort' } };
        case 'enable_thinking':
          return { ok: true, rule: { style: 'enable_thinking' } };
        case 'thinking':
          return { ok: true, rule: { style: 'thinking_type' } };
        case 'reasoning':
        case 'effort':
          return { ok: true, rule: { style: 'openrouter_reasoning' } };
        case 'max_tokens':
          return { ok: true, rule: { style: 'openrouter_reasoning', budget_tokens: defaultBudget(maxTokens) } };
        default:
          return { ok: false, reason: 'unknown_name', known: KNOWN_REASONING_PARAMS };
      }
    }
    default:
      return { ok: false, reason: 'fixed' };
  }
}

/** How the rule sends thinking today, for display: the field name (or `—` when there is none). */
export function reasoningParamOf(rule: ThinkingRule | undefined): string {
  const r = rule ?? { style: 'none' };
  switch (r.style) {
    case 'enable_thinking':
      return r.param ?? 'enable_thinking';
    case 'thinking_type':
      return r.param ?? 'thinking';
    case 'nearai_chat_template':
      return `chat_template_kwargs.${r.param ?? 'enable_thinking'}`;
    case 'openrouter_reasoning':
      return r.budget_tokens ? 'reasoning.max_tokens' : 'reasoning.effort';
    case 'reasoning_effort':
      return 'reasoning_effort';
    case 'anthropic_budget':
      return r.adaptive ? 'thinking (adaptive)' : 'thinking.budget_tokens';
    case 'always_on':
      return 'always on';
    default:
      return '—';
  }
}
