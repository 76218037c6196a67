/**
 * The one-time secure form for a model's key, in a private chat: issued (or, when one is
 * pending and not forced, pointed to) through the secure-input requester, and shown by the
 * channel (a card, a web-app button or a link). The group case (point to the private chat)
 * stays with the router, which owns the deep links.
 */
import type { CustomModel } from '../../registry/index.ts';
import type { Store } from '../../store/types.ts';
import { getTemplate } from '../../vendors/templates.ts';
import type { RelayKeys } from '../relay.ts';
import type { EnvInputRequester } from '../deps.ts';
import type { ChatStateStore } from '../state.ts';
import { formatTime, userTimeZone } from '../time.ts';
import { keyPageOf } from './add.ts';
import type { CommandCtx } from './think.ts';

export interface KeyFormDeps {
  store: Store;
  state: ChatStateStore;
  vault: Pick<RelayKeys, 'has'>;
  requests: EnvInputRequester;
}

/** The model needs a key (or a key pair's other half) this workspace has not stored. */
export async function needsKey(deps: Pick<KeyFormDeps, 'vault'>, workspace: string, model: CustomModel): Promise<boolean> {
  if (model.key_optional) return false;
  for (const env of [model.api_key_env, ...model.extra_env_vars]) if (!(await deps.vault.has(workspace, env))) return true;
  return false;
}

/** The form for `model` in this private chat; `need` narrows it to some names (another host's key). */
export async function sendKeyForm(deps: KeyFormDeps, ctx: CommandCtx, model: CustomModel, force: boolean, need?: { env_vars: string[]; reason: string }): Promise<void> {
  const { msg, adapter } = ctx;
  const tpl = getTemplate(model.vendor);
  const env_vars = need?.env_vars ?? [model.api_key_env, ...model.extra_env_vars];
  // A custom endpoint has no vendor name: it is named by its host, not "custom".
  const host = hostOf(model.base_url);
  // The key page and its name: a custom endpoint has none ("Create a key at custom" helped no one).
  const page = keyPageOf(model, ctx.lang);
  const vendorName = page.vendor_name;
  // The chat shows the reason in the user's language; the registry's own reason is for the API.
  const reason = tpl
    ? ctx.tr(page.reason_key, { vendor: vendorName, model: model.name, id: model.id })
    : ctx.tr('byok.reason_custom', { model: model.name, id: model.id, host: host ?? model.vendor });
  const tz = await userTimeZone(deps.store, msg.workspace, ctx.lang);
  // A user who never chose a language (no /lang, none from the channel): the page follows the browser.
  const langKnown = (await deps.state.getPrefs(msg.workspace)).lang ?? msg.lang;
  const res = await deps.requests.request({
    workspace: msg.workspace,
    channel: { ...msg.chat, lang: ctx.lang },
    env_vars,
    reason,
    model_id: model.id,
    vendor: model.vendor,
    vendor_name: vendorName,
    model_name: `${model.name} (${model.upstream_model})`,
    homepage: page.homepage,
    lang: ctx.lang,
    ...(langKnown ? {} : { lang_default: true }),
    force,
  });
  if (res.status === 'pending') {
    await ctx.reply(ctx.tr('byok.form_pending', { expires: formatTime(res.expires_at, ctx.lang, tz), id: model.id }));
    return;
  }
  const sent = await adapter.requestEnvInput(msg.chat, {
    workspace: msg.workspace,
    model_id: model.id,
    vendor: model.vendor,
    vendor_name: vendorName,
    model_name: `${model.name} (${model.upstream_model})`,
    env_vars,
    reason,
    url: res.url,
    expires_at: res.expires_at,
    lang: ctx.lang,
    tz,
  });
  await deps.requests.bindMessage?.(res.token_id, sent.messageId, sent.launch);
}

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}
