/**
 * A chat's small preferences: `/lang en|zh`, `/tz <zone>` (src/chat/time.ts) and `/reset`
 * (forgets the conversation and any open multi-step question).
 */
import { t } from '../../i18n/index.ts';
import type { Store } from '../../store/types.ts';
import type { ChatStateStore } from '../state.ts';
import { tzCommand } from '../time.ts';
import type { CommandCtx } from './think.ts';

export interface PrefsDeps {
  store: Store;
  state: ChatStateStore;
  /** The chat state scope (user workspace, or the group's). */
  scope: string;
}

/** `/reset`. */
export async function resetCommand(deps: PrefsDeps, ctx: CommandCtx): Promise<void> {
  await deps.state.update(deps.scope, (s) => {
    s.history = [];
    delete s.parked;
    delete s.pending;
  });
  return ctx.reply(ctx.tr('reset.done'));
}

/** `/tz [zone]`. */
export async function tzChatCommand(deps: PrefsDeps, ctx: CommandCtx, rest: string): Promise<void> {
  return ctx.reply(await tzCommand(deps.store, ctx.msg.workspace, ctx.lang, rest));
}

/** `/lang en|zh`: answered in the new language. */
export async function langCommand(deps: PrefsDeps, ctx: CommandCtx, rest: string): Promise<void> {
  const l = rest.toLowerCase();
  if (l !== 'en' && l !== 'zh') return ctx.reply(ctx.tr('lang.usage'));
  await deps.state.setLang(ctx.msg.workspace, l);
  return ctx.reply(t(l, 'lang.set'));
}
