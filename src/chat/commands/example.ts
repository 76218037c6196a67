/**
 * `/byok example`: the next message is the vendor's API example (curl, Python, JS); the parsed
 * draft is shown, and `/byok confirm [name]` adds it. The open step lives in the chat state
 * (the Store), so any process takes the answer; it lapses after PENDING_TTL_MS, or when the
 * next message is plainly not an example.
 */
import { type Registry, reasoningParamOf } from '../../registry/index.ts';
import type { Confirmations } from '../confirmations.ts';
import { exampleErrorText, looksLikeExample } from '../registry-text.ts';
import { PENDING_TTL_MS, type ChatStateStore } from '../state.ts';
import { afterAdd, type AddDeps } from './add.ts';
import type { CommandCtx } from './think.ts';

export interface ExampleDeps {
  registry: Registry;
  state: ChatStateStore;
  confirmations: Confirmations;
  /** The chat state scope (user workspace, or the group's). */
  scope: string;
  add: AddDeps;
}

/** `/byok example`: waits for the example. */
export async function startExample(deps: ExampleDeps, ctx: CommandCtx): Promise<void> {
  // `/byok confirm` then means the example draft, not an older question.
  await deps.confirmations.cancel(ctx.msg.workspace);
  await deps.state.update(deps.scope, (s) => {
    s.pending = { kind: 'await_example', at: new Date().toISOString() };
  });
  return ctx.reply(ctx.tr('byok.example_prompt'));
}

/** The message after /byok example: parsed into a draft. False when no example is awaited. */
export async function pendingExampleStep(deps: ExampleDeps, ctx: CommandCtx, text: string): Promise<boolean> {
  const scope = deps.scope;
  const s = await deps.state.get(scope);
  if (s.pending?.kind !== 'await_example') return false;
  if (Date.now() - Date.parse(s.pending.at) > PENDING_TTL_MS) {
    await deps.state.update(scope, (st) => {
      delete st.pending;
    });
    return false;
  }
  // Plainly not an example ("那算了，你好"): leave the step and handle the message as usual.
  if (!looksLikeExample(text)) {
    await deps.state.update(scope, (st) => {
      if (st.pending?.kind === 'await_example') delete st.pending;
    });
    return false;
  }
  const res = deps.registry.parse_example(text);
  if (!res.ok) {
    await ctx.reply(exampleErrorText(ctx.lang, res));
    return true;
  }
  const { draft, warnings } = res;
  await deps.state.update(scope, (st) => {
    st.pending = { kind: 'confirm_example', draft, at: new Date().toISOString() };
  });
  const extra = [
    // The parameter as the request sends it ("thinking (adaptive)"), not the rule's internal style name.
    draft.thinking ? `\n${ctx.tr('byok.draft_thinking')}: ${reasoningParamOf(draft.thinking)}` : '',
    Object.keys(draft.request_fields).length ? `\n${ctx.tr('byok.draft_fields')}: ${Object.keys(draft.request_fields).join(', ')}` : '',
    Object.keys(draft.headers).length ? `\n${ctx.tr('byok.draft_headers')}: ${Object.keys(draft.headers).join(', ')}` : '',
    ...(ctx.lang === 'zh' ? [] : warnings.map((w) => `\n⚠️ ${w}`)),
  ].join('');
  await ctx.reply(ctx.tr('byok.example_draft', { base_url: draft.base_url, model: draft.upstream_model, wire: draft.wire, env: draft.api_key_env, extra }), { noPreview: true });
  return true;
}

/** `/byok confirm [name]` with no key question open: adds the example's draft. */
export async function confirmExample(deps: ExampleDeps, ctx: CommandCtx, name: string): Promise<void> {
  const scope = deps.scope;
  const s = await deps.state.get(scope);
  if (s.pending?.kind !== 'confirm_example') return ctx.reply(ctx.tr('byok.example_none'));
  const d = s.pending.draft;
  const res = await deps.registry.add(ctx.msg.workspace, {
    upstream_model: d.upstream_model,
    base_url: d.base_url,
    wire: d.wire,
    name: name || undefined,
    api_key_env: d.api_key_env,
    headers: d.headers,
    request_fields: d.request_fields,
    thinking: d.thinking,
    max_tokens: d.max_tokens,
    query: d.query,
  });
  if (res.ok) {
    await deps.state.update(scope, (st) => {
      delete st.pending;
    });
  }
  return afterAdd(deps.add, ctx, res);
}
