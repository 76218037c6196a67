import { describe, expect, it } from 'vitest';
import type { CustomModel } from '../../src/registry/types.ts';
import type { ThinkingRule } from '../../src/vendors/template-schema.ts';
import { applyThinking, mergeRequestFields, thinkingState } from '../../src/vendors/thinking.ts';

const m = (thinking: ThinkingRule, max_tokens = 4096) => ({ thinking, max_tokens }) as Pick<CustomModel, 'thinking' | 'max_tokens'>;
const run = (rule: ThinkingRule, thinking?: boolean, body: Record<string, unknown> = {}) => applyThinking(m(rule), { ...body }, { thinking });

describe('thinking state', () => {
  it('disabled forces off; choice beats default; default_on; unset', () => {
    expect(thinkingState({ style: 'enable_thinking', disabled: true }, true)).toBe('off');
    expect(thinkingState({ style: 'enable_thinking', default_on: true }, false)).toBe('off');
    expect(thinkingState({ style: 'enable_thinking', default_on: true })).toBe('on');
    expect(thinkingState({ style: 'enable_thinking' })).toBe('unset');
  });
});

describe('applyThinking per style', () => {
  it('none / always_on send nothing', () => {
    expect(run({ style: 'none' }, true)).toEqual({});
    expect(run({ style: 'always_on' }, false)).toEqual({});
  });
  it('reasoning_effort', () => {
    expect(run({ style: 'reasoning_effort', default_effort: 'high' }, true)).toEqual({ reasoning_effort: 'high' });
    expect(run({ style: 'reasoning_effort' }, true)).toEqual({ reasoning_effort: 'medium' });
    expect(run({ style: 'reasoning_effort' }, false)).toEqual({});
  });
  it('anthropic_budget: budget, max_tokens above it, temperature dropped', () => {
    const b: Record<string, unknown> = applyThinking(m({ style: "anthropic_budget", budget_tokens: 8000 }, 4096), { max_tokens: 4096, temperature: 0.2, top_k: 5 }, { thinking: true });
    expect(b.thinking).toEqual({ type: 'enabled', budget_tokens: 8000 });
    expect(b.max_tokens as number).toBeGreaterThan(8000);
    expect(b).not.toHaveProperty('temperature');
    expect(b).not.toHaveProperty('top_k');
    const d = applyThinking(m({ style: 'anthropic_budget' }, 16000), { max_tokens: 16000 }, { thinking: true });
    expect(d).toEqual({ max_tokens: 16000, thinking: { type: 'enabled', budget_tokens: 8000 } });
    const small: Record<string, unknown> = applyThinking(m({ style: 'anthropic_budget' }, 1000), { max_tokens: 1000 }, { thinking: true });
    expect((small.thinking as { budget_tokens: number }).budget_tokens).toBe(1024);
    expect(small.max_tokens as number).toBeGreaterThan(1024);
    expect(run({ style: 'anthropic_budget' }, false, { max_tokens: 10 })).toEqual({ max_tokens: 10 });
  });
  it('anthropic_budget adaptive', () => {
    expect(run({ style: 'anthropic_budget', adaptive: true, default_effort: 'high' }, true, { max_tokens: 100 })).toEqual({ max_tokens: 100, thinking: { type: 'adaptive' }, output_config: { effort: 'high' } });
  });
  it('enable_thinking (qwen)', () => {
    expect(run({ style: 'enable_thinking' }, true)).toEqual({ enable_thinking: true });
    expect(run({ style: 'enable_thinking' }, false)).toEqual({ enable_thinking: false });
    expect(run({ style: 'enable_thinking', param: 'enable_reasoning', budget_tokens: 500 }, true)).toEqual({ enable_reasoning: true, thinking_budget: 500 });
    expect(run({ style: 'enable_thinking' })).toEqual({});
  });
  it('thinking_type (DeepSeek/Kimi/GLM)', () => {
    expect(run({ style: 'thinking_type' }, true)).toEqual({ thinking: { type: 'enabled' } });
    expect(run({ style: 'thinking_type' }, false)).toEqual({ thinking: { type: 'disabled' } });
  });
  it('nearai_chat_template merges into chat_template_kwargs at the top level', () => {
    expect(run({ style: 'nearai_chat_template', param: 'thinking' }, true)).toEqual({ chat_template_kwargs: { thinking: true } });
    expect(run({ style: 'nearai_chat_template' }, false, { chat_template_kwargs: { x: 1 } })).toEqual({ chat_template_kwargs: { x: 1, enable_thinking: false } });
    expect(run({ style: 'nearai_chat_template', disabled: true }, true)).toEqual({ chat_template_kwargs: { enable_thinking: false } });
  });
  it('openrouter_reasoning', () => {
    expect(run({ style: 'openrouter_reasoning', default_effort: 'low' }, true)).toEqual({ reasoning: { effort: 'low' } });
    expect(run({ style: 'openrouter_reasoning', budget_tokens: 2000 }, true)).toEqual({ reasoning: { max_tokens: 2000 } });
    expect(run({ style: 'openrouter_reasoning' }, false)).toEqual({ reasoning: { enabled: false } });
    expect(run({ style: 'openrouter_reasoning' })).toEqual({});
  });
});

describe('mergeRequestFields', () => {
  it('flattens extra_body, merges objects one level, protects owned keys', () => {
    const b = mergeRequestFields({ model: 'a', chat_template_kwargs: { a: 1 } }, { model: 'evil', temperature: 0.3, extra_body: { chat_template_kwargs: { b: 2 }, top_k: 20 } }, ['model']);
    expect(b).toEqual({ model: 'a', temperature: 0.3, chat_template_kwargs: { a: 1, b: 2 }, top_k: 20 });
  });
});
