import { randomBytes } from 'node:crypto';
import type { ChannelAdapter, InboundMessage, OutgoingMessage } from '../../channel.ts';
import { operatorAdmins } from '../../config.ts';
import type { Lang, MessageKey } from '../../i18n/index.ts';
import { type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import { SYSTEM_SCOPE, type Store } from '../../store/types.ts';
import { findTemplate, suggestTemplates } from '../../vendors/templates.ts';
import type { PlatformModels } from '../platform.ts';
import { registryErrorText } from '../registry-text.ts';
import type { ChatStateStore } from '../state.ts';

/**
 * Group chats, Pipelines-style: a group has its own workspace (`tg:group:<id>`,
 * `wx:room-<id>`) holding the group's models and keys. Group admins manage them (/group add,
 * /group key, /group remove); members only use them (/model among the group's models, chat).
 * Keys are never entered in the group: the admin gets a one-time, admin-bound request that
 * opens the secure form in their private chat. Operator admins (BYOK_ADMINS) manage the
 * platform models (/platform). Every admin check fails closed: a channel without one, or a
 * check that errors, means "not an admin".
 */

interface Ctx {
  msg: InboundMessage;
  lang: Lang;
  adapter: ChannelAdapter;
  reply: (text: string, extra?: Omit<OutgoingMessage, 'text'>) => Promise<void>;
  tr: (key: MessageKey, params?: Record<string, string | number>) => string;
}

export interface GroupDeps {
  store: Store;
  registry: Registry;
  state: ChatStateStore;
  platform: PlatformModels;
  /** The router's secure-form path, for `workspace` (the group's) in this private chat. */
  offerKeyForm(ctx: Ctx, model: CustomModel, workspace: string): Promise<void>;
  /** Operator admins; default: BYOK_ADMINS. */
  admins?: readonly string[];
}

/** How long a group key request (from /group add or /group key) can be taken up privately. */
export const GROUP_KEY_TTL_MS = 10 * 60_000;

/** The sender administers this group. No check on the channel, or a failed one: false. */
export async function isGroupAdmin(ctx: Pick<Ctx, 'msg' | 'adapter'>): Promise<boolean> {
  if (ctx.msg.isPrivate) return true;
  if (!ctx.adapter.isGroupAdmin) return false;
  try {
    return (await ctx.adapter.isGroupAdmin(ctx.msg)) === true;
  } catch {
    return false;
  }
}

/** An operator admin: the sender's channel user id (tg:123, wx:abc, local) is in BYOK_ADMINS. */
export function isOperatorAdmin(msg: InboundMessage, admins: readonly string[] = operatorAdmins()): boolean {
  return admins.includes(msg.workspace);
}

/** The group's workspace, in a group; undefined in a private chat. */
export function groupWorkspace(msg: InboundMessage): string | undefined {
  return msg.isPrivate ? undefined : msg.groupWorkspace;
}

/** The group's own models, usable by every member. */
export async function groupModels(registry: Registry, groupWs: string): Promise<CustomModel[]> {
  const res = await registry.list_models(groupWs);
  return res.ok ? res.models.filter((m) => m.status !== 'removed') : [];
}

interface Grant {
  group: string;
  model_id: string;
  admin: string;
  channel: string;
}

const grantKey = (nonce: string) => `groupkey:${nonce}`;

/** `/group …` */
export async function groupCommand(deps: GroupDeps, ctx: Ctx, rest: string): Promise<void> {
  const { msg } = ctx;
  const [sub = '', ...args] = rest.split(/\s+/).filter(Boolean);
  const action = sub.toLowerCase();
  if (msg.isPrivate) {
    // The only private step: taking up a key request an admin got in the group.
    if (action === 'key' && args[0]?.startsWith('#')) return takeKeyGrant(deps, ctx, args[0].slice(1));
    return ctx.reply(`${ctx.tr('group.in_group_only')}\n${ctx.tr('group.usage')}`);
  }
  const gws = msg.groupWorkspace;
  if (!gws) return ctx.reply(ctx.tr('group.in_group_only'));
  if (action === '' || action === 'list') return listGroup(deps, ctx, gws);
  if (!['add', 'key', 'remove', 'delete'].includes(action)) return ctx.reply(ctx.tr('group.usage'));
  if (!(await isGroupAdmin(ctx))) return ctx.reply(ctx.tr('group.admin_only'));
  if (action === 'add') {
    if (!args.length) return ctx.reply(ctx.tr('group.usage'));
    const tpl = findTemplate(args[0]!);
    if (!tpl) {
      const sugg = suggestTemplates(args[0]!, 3).map((s) => s.id);
      return ctx.reply([ctx.tr('byok.unknown_vendor', { query: args[0]!.slice(0, 60) }), ...(sugg.length ? [ctx.tr('model.did_you_mean', { list: sugg.join(', ') })] : [])].join('\n'));
    }
    const [upstream, ...nameParts] = args.slice(1);
    const res = await deps.registry.add_template(gws, tpl.id, { upstream_model: upstream, name: nameParts.join(' ') || undefined });
    if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res));
    const lines = [ctx.tr('group.added', { name: res.model.name, id: res.model.id })];
    if (res.need_env_input) lines.push(await grantLine(deps, ctx, gws, res.model.id));
    return ctx.reply(lines.join('\n'), { noPreview: true });
  }
  if (!args[0]) return ctx.reply(ctx.tr('group.usage'));
  const found = await deps.registry.resolve(gws, args[0]);
  if (!found.ok || found.model.status === 'removed') return ctx.reply(ctx.tr('model.unknown', { query: args[0].slice(0, 80) }));
  if (action === 'key') return ctx.reply(await grantLine(deps, ctx, gws, found.model.id), { noPreview: true });
  const res = await deps.registry.remove(gws, found.model.id);
  if (!res.ok) return ctx.reply(ctx.tr('model.unknown', { query: args[0].slice(0, 80) }));
  await deps.state.update(gws, (s) => {
    if (s.model === MODEL_SELECTOR_PREFIX + res.model.id && s.model_owner === gws) {
      delete s.model;
      delete s.model_owner;
    }
  });
  return ctx.reply(ctx.tr('group.removed', { id: res.model.id }));
}

async function listGroup(deps: GroupDeps, ctx: Ctx, gws: string): Promise<void> {
  const models = await groupModels(deps.registry, gws);
  if (!models.length) return ctx.reply(`${ctx.tr('group.list_empty')}\n${ctx.tr('group.usage')}`);
  const lines = [ctx.tr('group.list_header')];
  models.forEach((m, i) => lines.push(ctx.tr('group.list_item', { n: i + 1, name: m.name, id: m.id, status: ctx.tr(`model.status_${m.status}` as MessageKey) })));
  lines.push('', ctx.tr('group.usage'));
  return ctx.reply(lines.join('\n'));
}

/** A one-time request, bound to this admin, to enter a group model's key privately. */
async function grantLine(deps: GroupDeps, ctx: Ctx, gws: string, modelId: string): Promise<string> {
  const nonce = randomBytes(9).toString('base64url');
  const grant: Grant = { group: gws, model_id: modelId, admin: ctx.msg.workspace, channel: ctx.msg.channel };
  await deps.store.putEphemeral(grantKey(nonce), JSON.stringify(grant), GROUP_KEY_TTL_MS);
  const url = ctx.adapter.privateChatLink?.(`grp_${nonce}`);
  return url ? ctx.tr('group.key_link', { url }) : ctx.tr('group.key_command', { nonce, minutes: Math.round(GROUP_KEY_TTL_MS / 60_000) });
}

/** `/group key #<nonce>` (or the `grp_<nonce>` deep link) in the admin's private chat. */
async function takeKeyGrant(deps: GroupDeps, ctx: Ctx, nonce: string): Promise<void> {
  const key = grantKey(nonce.replace(/[^A-Za-z0-9_-]/g, ''));
  const raw = await deps.store.getEphemeral(key);
  const grant = raw ? (JSON.parse(raw) as Grant) : undefined;
  // Another member who saw the request cannot take it (nor use it up for the admin).
  if (!grant || grant.admin !== ctx.msg.workspace || grant.channel !== ctx.msg.channel) return ctx.reply(ctx.tr('group.key_grant_invalid'));
  if (!(await deps.store.takeEphemeral(key))) return ctx.reply(ctx.tr('group.key_grant_invalid'));
  const got = await deps.registry.get(grant.group, grant.model_id);
  if (!got.ok || got.model.status === 'removed') return ctx.reply(ctx.tr('group.key_grant_invalid'));
  await deps.offerKeyForm(ctx, got.model, grant.group);
}

/**
 * In a group, a group model without its key: say who can fix it (the relay would otherwise
 * promise a form that is never sent in a group). True when answered.
 */
export async function groupKeyMissing(deps: Pick<GroupDeps, 'registry'>, ctx: Ctx, target: { selector?: string; owner: string }, hasKey: (ws: string, env: string) => Promise<boolean>): Promise<boolean> {
  const gws = groupWorkspace(ctx.msg);
  if (!gws || target.owner !== gws || !target.selector?.startsWith(MODEL_SELECTOR_PREFIX)) return false;
  const got = await deps.registry.get(gws, target.selector);
  if (!got.ok || got.model.key_optional || got.model.status === 'validating' || got.model.status === 'removed') return false;
  for (const env of [got.model.api_key_env, ...got.model.extra_env_vars]) {
    if (!(await hasKey(gws, env))) {
      await ctx.reply(ctx.tr('group.key_missing_room', { model: got.model.name, id: got.model.id }));
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------- platform models

interface PlatformOverrides {
  hidden: string[];
  default?: string;
}

const OVERRIDES_DOC = 'platform_overrides';

export async function platformOverrides(store: Store): Promise<PlatformOverrides> {
  return (await store.getDoc<PlatformOverrides>(SYSTEM_SCOPE, OVERRIDES_DOC)) ?? { hidden: [] };
}

/** The platform models users are offered, and the default for new chats, after the operators' changes. */
export async function offeredPlatform(store: Store, platform: PlatformModels): Promise<PlatformModels> {
  const o = await platformOverrides(store);
  const models = platform.models.filter((m) => !o.hidden.includes(m.id));
  const def = o.default ?? platform.default;
  return { models, default: def && models.some((m) => m.id === def) ? def : undefined };
}

/** `/platform [hide|show|default <id>]`: operator admins only. */
export async function platformCommand(deps: GroupDeps, ctx: Ctx, rest: string): Promise<void> {
  if (!isOperatorAdmin(ctx.msg, deps.admins ?? operatorAdmins())) return ctx.reply(ctx.tr('platform.admin_only'));
  const [sub = '', id] = rest.split(/\s+/).filter(Boolean);
  const action = sub.toLowerCase();
  if (!deps.platform.models.length) return ctx.reply(ctx.tr('platform.none'));
  if (action === '' || action === 'list') {
    const o = await platformOverrides(deps.store);
    const eff = await offeredPlatform(deps.store, deps.platform);
    const lines = [ctx.tr('platform.header', { default: eff.default ?? ctx.tr('platform.no_default') })];
    deps.platform.models.forEach((m, i) =>
      lines.push(
        ctx.tr('platform.item', {
          n: i + 1,
          id: m.id,
          name: m.name,
          upstream: m.upstream_model,
          // Whether the operator's key is there; never any part of it.
          key: process.env[m.api_key_env] ? ctx.tr('platform.key_set') : ctx.tr('platform.key_missing', { env: m.api_key_env }),
          state: ctx.tr(o.hidden.includes(m.id) ? 'platform.state_hidden' : 'platform.state_shown'),
        }),
      ),
    );
    return ctx.reply(lines.join('\n'));
  }
  if (!['hide', 'show', 'default'].includes(action) || !id) return ctx.reply(ctx.tr('platform.usage'));
  if (!deps.platform.models.some((m) => m.id === id)) return ctx.reply(ctx.tr('platform.unknown', { id: id.slice(0, 80) }));
  await deps.store.updateDoc<PlatformOverrides, void>(SYSTEM_SCOPE, OVERRIDES_DOC, (cur) => {
    const o: PlatformOverrides = { hidden: [...(cur?.hidden ?? [])], ...(cur?.default ? { default: cur.default } : {}) };
    if (action === 'hide' && !o.hidden.includes(id)) o.hidden.push(id);
    if (action === 'show' || action === 'default') o.hidden = o.hidden.filter((h) => h !== id);
    if (action === 'default') o.default = id;
    return { value: o, result: undefined };
  });
  return ctx.reply(ctx.tr(action === 'hide' ? 'platform.hidden_done' : action === 'show' ? 'platform.shown_done' : 'platform.default_done', { id }));
}
