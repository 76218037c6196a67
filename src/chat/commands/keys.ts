/**
 * A key's life in chat: `/byok keys` (every stored key, masked), `/byok key delete <…>` and
 * `/byok forget`, each asked first and carried out by `/byok confirm [#nonce]` (a button or the
 * typed word), taken once across processes (src/chat/confirmations.ts). The deletions
 * themselves are src/jobs/keys.ts, shared with the CLI.
 */
import type { Choice } from '../../channel.ts';
import type { MessageKey } from '../../i18n/index.ts';
import { deleteKeyGroup, forgetWorkspace, keyGroups, resolveKeyTarget, type KeyGroup } from '../../jobs/keys.ts';
import type { Logger } from '../../log.ts';
import { type Registry, MODEL_SELECTOR_PREFIX } from '../../registry/index.ts';
import type { Store } from '../../store/types.ts';
import { localizeTemplateName } from '../../vendors/template-name.ts';
import { CONFIRM_TTL_MS, type Confirmations } from '../confirmations.ts';
import type { ChatVault, EnvInputRequester } from '../deps.ts';
import { formatTime, userTimeZone } from '../time.ts';
import type { CommandCtx } from './think.ts';

export interface KeysDeps {
  store: Store;
  registry: Registry;
  vault: ChatVault;
  requests: Pick<EnvInputRequester, 'void'>;
  logger: Logger;
  confirmations: Confirmations;
}

function groupsOf(deps: KeysDeps, ws: string): Promise<KeyGroup[]> {
  return keyGroups({ store: deps.store, registry: deps.registry, vault: deps.vault }, ws);
}

/** `/byok keys`: every stored key, masked, with its kind, dates, health and models. */
export async function showKeys(deps: KeysDeps, ctx: CommandCtx): Promise<void> {
  const groups = await groupsOf(deps, ctx.msg.workspace);
  if (!groups.length) return ctx.reply(ctx.tr('byok.keys_empty'));
  const tz = await userTimeZone(deps.store, ctx.msg.workspace, ctx.lang);
  const when = (iso: string | undefined) => (iso && Number.isFinite(Date.parse(iso)) ? formatTime(iso, ctx.lang, tz) : ctx.tr('byok.keys_unknown'));
  const lines = [ctx.tr('byok.keys_header')];
  groups.forEach((g, i) => {
    const health = g.expired
      ? ctx.tr('keys.expired')
      : g.health.status === 'unchecked'
        ? ctx.tr('keys.health_unchecked')
        : ctx.tr(`keys.health_${g.health.status}` as MessageKey, { time: when(g.health.checked_at) });
    lines.push(
      ctx.tr('byok.keys_item', {
        n: i + 1,
        vendor: localizeTemplateName(g.vendor_name, ctx.lang),
        env: g.env_vars.filter((v) => g.stored.includes(v)).join(' + '),
        kind: g.kind,
        masked: g.masked ?? '****',
        validated: when(g.meta.validated_at ?? g.updated_at),
        expires: g.expires_at ? when(g.expires_at) : ctx.tr('byok.keys_never'),
        health,
        models: g.models.length ? g.models.map((m) => MODEL_SELECTOR_PREFIX + m.id).join(', ') : ctx.tr('byok.keys_no_models'),
      }),
    );
  });
  lines.push('', ctx.tr('byok.keys_footer'));
  return ctx.reply(lines.join('\n'));
}

/** The confirm / cancel buttons of a question (a numbered list where a channel has no buttons). */
function confirmChoices(ctx: CommandCtx, nonce: string, label: MessageKey): Choice[][] {
  return [[{ label: ctx.tr(label), data: `/byok confirm #${nonce}` }, { label: ctx.tr('byok.confirm_cancel_button'), data: '/byok cancel' }]];
}

/** `/byok key delete <vendor | model id | KEY_NAME>`: asks first. */
export async function askDeleteKey(deps: KeysDeps, ctx: CommandCtx, query: string): Promise<void> {
  const ws = ctx.msg.workspace;
  if (!query) return ctx.reply(ctx.tr('byok.key_delete_usage'));
  const groups = await groupsOf(deps, ws);
  let target = resolveKeyTarget(groups, query);
  if (!target.ok && target.code === 'not_found') {
    // A model named loosely (its name, a prefix of its id): the registry's own resolution.
    const res = await deps.registry.resolve(ws, query);
    const g = res.ok ? groups.find((x) => x.env_vars.includes(res.model.api_key_env)) : undefined;
    if (g) target = { ok: true, group: g };
  }
  if (!target.ok) {
    if (target.code === 'ambiguous') return ctx.reply(ctx.tr('byok.key_delete_ambiguous', { query: query.slice(0, 80), list: target.candidates.map((g) => g.env_var).join(', ') }));
    return ctx.reply(ctx.tr('byok.key_delete_unknown', { query: query.slice(0, 80) }));
  }
  const g = target.group;
  const nonce = await deps.confirmations.ask(ws, { kind: 'delete_key', env_var: g.env_var, env_vars: g.env_vars });
  const text = ctx.tr('byok.key_delete_confirm', {
    vendor: localizeTemplateName(g.vendor_name, ctx.lang),
    masked: g.masked ?? '****',
    env: g.stored.join(' + '),
    models: g.models.length ? g.models.map((m) => MODEL_SELECTOR_PREFIX + m.id).join(', ') : ctx.tr('byok.keys_no_models'),
    minutes: Math.round(CONFIRM_TTL_MS / 60_000),
  });
  return ctx.reply(text, { choices: confirmChoices(ctx, nonce, 'byok.confirm_delete_button') });
}

/** `/byok forget`: asks first, naming what would go. */
export async function askForget(deps: KeysDeps, ctx: CommandCtx): Promise<void> {
  const ws = ctx.msg.workspace;
  const [keys, models] = await Promise.all([deps.vault.list(ws), deps.registry.list_models(ws, { include_removed: true })]);
  const nonce = await deps.confirmations.ask(ws, { kind: 'forget' });
  const text = ctx.tr('byok.forget_confirm', { keys: keys.length, models: models.ok ? models.models.length : 0, minutes: Math.round(CONFIRM_TTL_MS / 60_000) });
  return ctx.reply(text, { choices: confirmChoices(ctx, nonce, 'byok.forget_button') });
}

/** `/byok confirm [#nonce]` for a pending key deletion or forget (taken once, across processes). */
export async function confirmAction(deps: KeysDeps, ctx: CommandCtx, nonce: string | undefined): Promise<void> {
  const ws = ctx.msg.workspace;
  const action = await deps.confirmations.take(ws, nonce);
  if (!action) return ctx.reply(ctx.tr('byok.confirm_none', { minutes: Math.round(CONFIRM_TTL_MS / 60_000) }));
  if (action.kind === 'forget') {
    const r = await forgetWorkspace({ store: deps.store, vault: deps.vault, voidForm: async (h) => (await deps.requests.void?.(h)) ?? false }, ws);
    deps.logger.info({ channel: ctx.msg.channel, ...r }, 'workspace forgotten');
    return ctx.reply(
      ctx.tr('byok.forgotten', {
        keys: r.keys,
        models: r.models,
        usage: r.usage,
        forms: r.forms,
        submissions: r.submissions,
        messages: r.chat_messages,
        groups: r.groups ? ctx.tr('byok.forgotten_groups', { n: r.groups }) : '',
      }),
    );
  }
  const g = (await groupsOf(deps, ws)).find((x) => x.env_vars.includes(action.env_var));
  if (!g) return ctx.reply(ctx.tr('byok.key_deleted_gone'));
  const names = [...new Set([...action.env_vars, ...g.env_vars])];
  const r = await deleteKeyGroup({ vault: deps.vault, registry: deps.registry }, ws, names, { code: 'key_deleted', message: 'the key was deleted by its owner' });
  return ctx.reply(
    ctx.tr('byok.key_deleted', {
      vendor: localizeTemplateName(g.vendor_name, ctx.lang),
      masked: g.masked ?? '****',
      env: r.deleted.join(' + ') || g.env_var,
      models: r.models.length ? r.models.map((id) => MODEL_SELECTOR_PREFIX + id).join(', ') : ctx.tr('byok.keys_no_models'),
    }),
  );
}
