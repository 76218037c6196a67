import type { ChannelAdapter, InboundMessage, OutgoingMessage, Choice } from '../../channels/types.ts';
import { t, type Lang, type MessageKey } from '../i18n/index.ts';
import type { Logger } from '../log.ts';
import type { ChannelRef } from '../queue/types.ts';
import type { Registry } from '../registry/registry.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel } from '../registry/types.ts';
import { detectKeys, vendorHintForKinds } from '../secrets/detector.ts';
import { isMasterKeyUnavailable } from '../secrets/keyring-check.ts';
import type { Store } from '../store/types.ts';
import type { EnvInputParams, RequestResult } from '../secure-input/tokens.ts';
import { editDistance, findTemplate, getTemplate, loadTemplates, normalize, offeredTemplates, suggestTemplates } from '../vendors/templates.ts';
import type { Template } from '../vendors/template-schema.ts';
import type { ProbeResult } from '../vendors/types.ts';
import { outcomeText } from './outcomes.ts';
import { exampleErrorText, looksLikeExample, registryErrorText } from './registry-text.ts';
import type { PlatformModels } from './platform.ts';
import { Relay, type RelayKeys } from './relay.ts';
import { ChatStateStore, PENDING_TTL_MS } from './state.ts';
import { CONFIRM_TTL_MS, Confirmations } from './confirmations.ts';
import { deleteKeyGroup, forgetWorkspace, keyGroups, resolveKeyTarget, type KeyGroup } from '../jobs/keys.ts';
import { UsageLedger } from './usage.ts';
import { addCommand, afterAdd, afterEdit, checkModel, keyPageOf, pendingAddStep, type AddDeps } from './commands/add.ts';
import { vendorModelsCommand } from './commands/models.ts';
import { usageCommand } from './commands/usage.ts';
import { setCommand } from './commands/settings.ts';
import { think } from './commands/think.ts';
import { clearDefaultIf, defaultModel, defaultSelector, describeDefault, isDefaultArg } from './commands/default-model.ts';
import { handleIntent } from './intents.ts';
import { groupCommand, groupKeyMissing, isGroupAdmin, offeredPlatform, platformCommand, type GroupDeps } from './commands/group.ts';
import { destinationOf, splitKeep, switchHistory } from './privacy.ts';
import { reasoningParamOf } from '../registry/reasoning-param.ts';
import { formatTime, storedTimeZone, tzCommand, userTimeZone } from './time.ts';

/** Longest inbound message we relay; longer ones are refused with a clear reply. */
export const MAX_INBOUND_CHARS = 16_000;

export interface EnvInputRequester {
  request(params: EnvInputParams): Promise<RequestResult>;
  /** Remember which message shows the form, so the result can edit it (Telegram card). */
  bindMessage?(tokenId: string, messageId: string, launch?: 'web_app' | 'link'): Promise<void>;
  /** Voids a pending form by its token hash (forget me): its link answers 410. */
  void?(tokenHash: string): Promise<boolean>;
  /** Voids the pending forms of a removed model (else "already waiting" points the next model to it). */
  voidForModel?(workspace: string, modelId: string): Promise<number>;
}

export interface ChatVault extends RelayKeys {
  list(workspace: string): Promise<Array<{ env_var: string; masked: string }>>;
  fingerprintMatcher(workspace: string): Promise<(candidate: string) => boolean>;
  /** /byok key delete: the key's names (a pair for AWS), in one update. */
  deleteMany(workspace: string, envVars: string[]): Promise<string[]>;
  /** /byok forget. */
  deleteAll(workspace: string): Promise<number>;
}

export interface ChatDeps {
  store: Store;
  registry: Registry;
  vault: ChatVault;
  requests: EnvInputRequester;
  platform: PlatformModels;
  logger: Logger;
  /** Re-queues a sealed submission that is still pending for this model; false when none. */
  retest(workspace: string, modelId: string, channel: ChannelRef, lang: Lang): Promise<boolean>;
  /** Probes the vendor with the stored key (for /byok test when nothing is pending). */
  probeStored(workspace: string, model: CustomModel): Promise<ProbeResult>;
  relay?: Relay;
  /** A vendor silent this long is given up on with a notice (config.vendorIdleTimeoutMs). */
  vendorIdleTimeoutMs?: number;
}

interface Ctx {
  msg: InboundMessage;
  adapter: ChannelAdapter;
  lang: Lang;
  reply: (text: string, extra?: Omit<OutgoingMessage, 'text'>) => Promise<void>;
  tr: (key: MessageKey, params?: Record<string, string | number>) => string;
}

/** /byok actions a `/start byok_...` deep link may continue (nothing that removes or edits). */
const DEEP_LINK_ACTIONS = new Set(['add', 'key', 'list', 'templates', 'example', 'help']);

/**
 * The channel-agnostic chat core: every inbound message passes the pasted-key guard,
 * then a command (/model, /byok ..., /reset, /lang), or goes to the relay.
 */
export class ChatRouter {
  readonly state: ChatStateStore;
  readonly usage: UsageLedger;
  readonly relay: Relay;
  readonly confirmations: Confirmations;

  constructor(private readonly deps: ChatDeps) {
    this.state = new ChatStateStore(deps.store);
    this.usage = new UsageLedger(deps.store);
    this.confirmations = new Confirmations(deps.store);
    this.relay =
      deps.relay ?? new Relay({ vault: deps.vault, store: deps.store, usage: this.usage, state: this.state, logger: deps.logger, registry: deps.registry, platform: deps.platform, idleTimeoutMs: deps.vendorIdleTimeoutMs });
  }

  async handle(msg: InboundMessage, adapter: ChannelAdapter): Promise<void> {
    const lang = await this.langFor(msg);
    const ctx: Ctx = {
      msg,
      adapter,
      lang,
      tr: (key, params) => t(lang, key, params),
      reply: async (text, extra) => {
        await adapter.send(msg.chat, { text, ...extra });
      },
    };
    try {
      // The guard runs before anything else, on every text-bearing message.
      if (await this.refusePastedKey(ctx)) return;
      // An edited message is checked for keys (above) but not answered a second time.
      if (msg.kind === 'edited') return;
      const text = (msg.callbackData ?? msg.text).trim();
      if (!text) return;
      if (text.length > MAX_INBOUND_CHARS) {
        await ctx.reply(ctx.tr('error.too_long', { len: text.length, max: MAX_INBOUND_CHARS }));
        return;
      }
      if (text.startsWith('/')) {
        await this.command(ctx, text);
        return;
      }
      if (await this.pendingStep(ctx, text)) return;
      // Plain-language intents ("use kimi", "换成通义千问"): after the key guard, never for ordinary chat (see intents.ts).
      if (await this.intent(ctx, text)) return;
      const target = await this.modelFor(msg);
      // In a group, /byok add is refused: point to the private chat instead.
      if (!target.selector && !msg.isPrivate) return void (await ctx.reply(ctx.tr('relay.no_model_room')));
      if (await groupKeyMissing(this.deps, ctx, target, (w, e) => this.deps.vault.has(w, e))) return;
      await this.relay.reply(ctx.msg, adapter, lang, target, text, (m) => this.offerKeyForm(ctx, m, false));
    } catch (e) {
      // Log the class of failure only: the message text is never logged.
      this.deps.logger.error({ err: e, channel: msg.channel, kind: msg.kind }, 'chat handler failed');
      // A stored key sealed under a master key this process lacks: retrying cannot help.
      await ctx.reply(ctx.tr(isMasterKeyUnavailable(e) ? 'error.master_key_missing' : 'error.generic')).catch(() => undefined);
    }
  }

  private async langFor(msg: InboundMessage): Promise<Lang> {
    const prefs = await this.state.getPrefs(msg.workspace);
    return prefs.lang ?? msg.lang ?? 'en';
  }

  /** Pasted-key guard. True when the message was refused. */
  private async refusePastedKey(ctx: Ctx): Promise<boolean> {
    const { msg, adapter } = ctx;
    const isKnownKey = await this.deps.vault.fingerprintMatcher(msg.workspace);
    const hit = detectKeys(msg.text, { isKnownKey });
    if (!hit.refused) return false;
    // Drop any half-finished multi-step action: the example carried a key.
    await this.state.update(this.chatScope(msg), (s) => {
      delete s.pending;
    });
    let deletion: string;
    if (adapter.capabilities.deleteInbound && adapter.deleteInbound) {
      const deleted = await adapter.deleteInbound(msg).catch(() => false);
      deletion = ctx.tr(deleted ? 'guard.deleted' : 'guard.not_deleted');
    } else {
      deletion = ctx.tr('guard.no_delete');
    }
    const lines = [ctx.tr('guard.refused', { kinds: hit.kinds.join(', ') }), deletion, ctx.tr('guard.rotate'), ctx.tr('guard.use_form')];
    const target = await this.modelForKinds(msg.workspace, hit.kinds);
    const room = !msg.isPrivate;
    lines.push(
      target
        ? ctx.tr(room ? 'guard.offer_key_room' : 'guard.offer_key', { model: target.name, id: target.id })
        : ctx.tr(room ? 'guard.offer_add_room' : 'guard.offer_add'),
    );
    const text = msg.channel === 'wechat' ? [ctx.tr('wechat.key_exposed', { kinds: hit.kinds.join(', ') }), lines.at(-1)!].join('\n') : lines.join('\n');
    await ctx.reply(text);
    this.deps.logger.warn({ channel: msg.channel, kinds: hit.kinds }, 'refused a message carrying an API key');
    return true;
  }

  /** The model a pasted key most probably belongs to: same vendor, else the only one. */
  private async modelForKinds(workspace: string, kinds: string[]): Promise<CustomModel | undefined> {
    const res = await this.deps.registry.list_models(workspace);
    if (!res.ok) return undefined;
    const models = res.models.filter((m) => m.status !== 'removed');
    const vendor = vendorHintForKinds(kinds);
    return (vendor && models.find((m) => m.vendor === vendor)) || (models.length === 1 ? models[0] : undefined);
  }

  private chatScope(msg: InboundMessage): string {
    return msg.isPrivate ? msg.workspace : (msg.groupWorkspace ?? msg.workspace);
  }

  private async modelFor(msg: InboundMessage): Promise<{ selector?: string; owner: string }> {
    const s = await this.state.get(this.chatScope(msg));
    // No model chosen in a private chat: the user's default (/model default), then the platform's.
    const fallback = !s.model && msg.isPrivate ? await defaultSelector(this, msg.workspace) : undefined;
    // Platform models as the operators left them (/platform): a hidden one is no longer used.
    const offered = await offeredPlatform(this.deps.store, this.deps.platform);
    const hidden = (sel?: string) => !!sel && this.deps.platform.models.some((p) => p.id === sel) && !offered.models.some((p) => p.id === sel);
    const chosen = [s.model, fallback].find((x) => x && !hidden(x));
    return { selector: chosen ?? offered.default, owner: chosen === s.model ? (s.model_owner ?? msg.workspace) : msg.workspace };
  }

  /** The model a selector names for its owner (platform or custom), as the relay resolves it. */
  private async relayModel(selector: string, owner: string): Promise<CustomModel | undefined> {
    if (!selector.startsWith(MODEL_SELECTOR_PREFIX)) return this.deps.platform.models.find((p) => p.id === selector);
    const res = await this.deps.registry.get(owner, selector);
    return res.ok ? res.model : undefined;
  }

  private groupDeps(): GroupDeps {
    return {
      store: this.deps.store,
      registry: this.deps.registry,
      state: this.state,
      platform: this.deps.platform,
      // The group's key, entered in this private chat: the form's workspace is the group's.
      offerKeyForm: (ctx, model, workspace) => this.offerKeyForm({ ...(ctx as Ctx), msg: { ...ctx.msg, workspace } }, model, true),
    };
  }

  // ---------------------------------------------------------------- commands

  private async command(ctx: Ctx, text: string): Promise<void> {
    const m = /^\/([A-Za-z_]+)(?:@\S+)?(?:\s+([\s\S]*))?$/.exec(text);
    if (!m) return this.help(ctx);
    const cmd = m[1].toLowerCase();
    const rest = (m[2] ?? '').trim();
    switch (cmd) {
      case 'start':
        if (rest.startsWith('byok_')) {
          // A deep link is one tap on a link anyone can post: it may only start harmless actions.
          const args = deepLinkToArgs(rest);
          // `key delete` only asks, but a posted link must not even put that question up.
          return this.byok(ctx, DEEP_LINK_ACTIONS.has(args.split(' ')[0]) && !/^key\s+(delete|remove)\b/i.test(args) ? args : '');
        }
        // A group key request taken up in the admin's private chat (src/chat/commands/group.ts).
        if (rest.startsWith('grp_')) return groupCommand(this.groupDeps(), ctx, `key #${rest.slice(4)}`);
        return this.help(ctx);
      case 'group':
        return groupCommand(this.groupDeps(), ctx, rest);
      case 'platform':
        return platformCommand(this.groupDeps(), ctx, rest);
      case 'help':
        return this.help(ctx);
      case 'model':
      case 'models':
        return this.model(ctx, rest);
      case 'byok':
        return this.byok(ctx, rest);
      case 'think':
        return think({ ...this.deps, state: this.state, currentModel: (m) => this.modelFor(m), scope: (m) => this.chatScope(m) }, ctx, rest);
      case 'reset':
        await this.state.update(this.chatScope(ctx.msg), (s) => {
          s.history = [];
          delete s.parked;
          delete s.pending;
        });
        return ctx.reply(ctx.tr('reset.done'));
      case 'tz':
        return ctx.reply(await tzCommand(this.deps.store, ctx.msg.workspace, ctx.lang, rest));
      case 'lang': {
        const l = rest.toLowerCase();
        if (l !== 'en' && l !== 'zh') return ctx.reply(ctx.tr('lang.usage'));
        await this.state.setLang(ctx.msg.workspace, l);
        return ctx.reply(t(l, 'lang.set'));
      }
      default:
        return this.help(ctx);
    }
  }

  private async help(ctx: Ctx): Promise<void> {
    // The terminal joins pasted lines into one message: say how (see channels/shell).
    const shell = ctx.msg.channel === 'shell' ? `\n\n${ctx.tr('shell.paste_help')}` : '';
    await ctx.reply(`${ctx.tr('help.title')}\n\n${ctx.tr('help.body')}${shell}`);
  }

  /** Numbered list shared by /model and /model <n>: platform models first, then custom. */
  private async modelChoices(workspace: string, group?: string): Promise<Array<{ selector: string; label: string; model: CustomModel; owner?: string }>> {
    const out: Array<{ selector: string; label: string; model: CustomModel; owner?: string }> = [];
    for (const p of (await offeredPlatform(this.deps.store, this.deps.platform)).models) out.push({ selector: p.id, label: p.name, model: p, owner: '' });
    // In a group: the group's own models next, usable by every member (owner: the group).
    const shared = group ? await this.deps.registry.list_models(group) : undefined;
    if (group && shared?.ok) {
      for (const c of shared.models) if (c.status !== 'removed') out.push({ selector: MODEL_SELECTOR_PREFIX + c.id, label: `${c.name} (${MODEL_SELECTOR_PREFIX}${c.id})`, model: c, owner: group });
    }
    const res = await this.deps.registry.list_models(workspace);
    if (res.ok) {
      for (const c of res.models) {
        if (c.status === 'removed') continue;
        out.push({ selector: MODEL_SELECTOR_PREFIX + c.id, label: `${c.name} (${MODEL_SELECTOR_PREFIX}${c.id})`, model: c });
      }
    }
    return out;
  }

  private async model(ctx: Ctx, rawArg: string): Promise<void> {
    const { msg } = ctx;
    const inGroup = !msg.isPrivate;
    // `/model <id> keep`: the conversation goes along to another vendor (src/chat/privacy.ts).
    const { arg, keep } = splitKeep(rawArg);
    if (!arg) return this.showModels(ctx);
    if (isDefaultArg(arg)) return defaultModel({ ...this.deps, state: this.state }, ctx, arg);
    const choices = await this.modelChoices(msg.workspace, inGroup ? msg.groupWorkspace : undefined);
    let chosen: { selector: string; model: CustomModel; owner?: string } | undefined;
    if (/^\d{1,4}$/.test(arg)) {
      chosen = choices[Number(arg) - 1];
      if (!chosen) return ctx.reply(ctx.tr('model.bad_index', { n: arg }));
    } else {
      chosen = choices.find((c) => c.selector === arg || c.selector.toLowerCase() === arg.toLowerCase());
      if (!chosen) {
        const direct = await this.deps.registry.get(msg.workspace, arg);
        if (direct.ok && direct.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: direct.model.id }));
        const res = await this.deps.registry.resolve(msg.workspace, arg);
        if (res.ok) {
          if (res.model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: res.model.id }));
          chosen = { selector: MODEL_SELECTOR_PREFIX + res.model.id, model: res.model };
        } else {
          const names = [
            ...((res as { suggestions?: string[] }).suggestions ?? []).map((s) => (s.startsWith(MODEL_SELECTOR_PREFIX) ? s : MODEL_SELECTOR_PREFIX + s)),
            ...closest(arg, this.deps.platform.models.map((p) => p.id)),
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
    const before = await this.modelFor(msg);
    const from = destinationOf(before.selector ? await this.relayModel(before.selector, before.owner) : undefined);
    const to = destinationOf(chosen.model)!;
    const history = await this.state.update(this.chatScope(msg), (s) => {
      s.model = chosen!.selector;
      if (inGroup) s.model_owner = chosen!.owner || msg.workspace;
      else delete s.model_owner;
      return switchHistory(s, from, to, keep);
    });
    await ctx.reply(ctx.tr(inGroup ? 'model.group_switched' : 'model.switched', { model: chosen.model.name }));
    // Two hosts of one vendor (two Bedrock regions, Qwen's mainland host): the hosts tell them apart.
    const sameName = from !== undefined && from.name === to.name;
    if (history === 'fresh') await ctx.reply(ctx.tr('model.fresh_history', { old: sameName ? from.host : (from?.name ?? before.selector ?? ''), new: sameName ? to.host : to.name, selector: chosen.selector }));
    if (history === 'kept') await ctx.reply(ctx.tr('model.kept_history', { new: to.name }));
    // A custom model whose key is missing gets the secure form right away (private chats only).
    if (chosen.selector.startsWith(MODEL_SELECTOR_PREFIX) && msg.isPrivate && (await this.needsKey(msg.workspace, chosen.model))) {
      await this.offerKeyForm(ctx, chosen.model, false);
    }
  }

  private async showModels(ctx: Ctx): Promise<void> {
    const { msg } = ctx;
    const current = await this.modelFor(msg);
    const choices = await this.modelChoices(msg.workspace, msg.isPrivate ? undefined : msg.groupWorkspace);
    const lines: string[] = [];
    const currentLabel = current.selector ? (choices.find((c) => c.selector === current.selector)?.label ?? current.selector) : undefined;
    lines.push(currentLabel ? ctx.tr('model.current', { model: currentLabel }) : ctx.tr('model.none'));
    if (msg.isPrivate) lines.push(await describeDefault({ ...this.deps, state: this.state }, ctx, msg.workspace));
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

  private async byok(ctx: Ctx, rest: string): Promise<void> {
    const { msg } = ctx;
    const [sub, ...args] = rest.split(/\s+/).filter(Boolean);
    if (!msg.isPrivate) {
      // Keys and BYOK management never happen in a group: continue in a private chat.
      const link = ctx.adapter.privateChatLink?.(argsToDeepLink(rest));
      return ctx.reply(link ? ctx.tr('byok.private_only_link', { url: link }) : ctx.tr('byok.private_only'), { noPreview: true });
    }
    const ws = msg.workspace;
    const reg = this.deps.registry;
    switch ((sub ?? '').toLowerCase()) {
      case '':
      case 'help':
        return ctx.reply(ctx.tr('byok.help'));
      case 'templates': {
        const lines = [ctx.tr('byok.templates_header')];
        for (const tpl of offeredTemplates()) lines.push(`• ${tpl.id}: ${tpl.name} (${tpl.aliases.slice(0, 3).join(', ')})`);
        return ctx.reply(lines.join('\n'));
      }
      case 'add':
        return this.addTemplate(ctx, args);
      case 'example':
        // `/byok confirm` then means the example draft, not an older question.
        await this.confirmations.cancel(ws);
        await this.state.update(this.chatScope(msg), (s) => {
          s.pending = { kind: 'await_example', at: new Date().toISOString() };
        });
        return ctx.reply(ctx.tr('byok.example_prompt'));
      case 'confirm': {
        // A button carries `#<nonce>`; a typed /byok confirm answers the latest question.
        const nonce = args[0]?.startsWith('#') ? args[0].slice(1) : undefined;
        if (nonce !== undefined || (await this.confirmations.has(ws))) return this.confirmAction(ctx, nonce);
        return this.confirmExample(ctx, args.join(' '));
      }
      case 'cancel':
        await this.confirmations.cancel(ws);
        await this.state.update(this.chatScope(msg), (s) => {
          delete s.pending;
        });
        return ctx.reply(ctx.tr('byok.cancelled'));
      case 'keys':
        return this.showKeys(ctx);
      case 'forget':
        return this.askForget(ctx);
      case 'list': {
        const res = await reg.list_models(ws);
        if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res));
        const models = res.models.filter((m) => m.status !== 'removed');
        if (!models.length) return ctx.reply(ctx.tr('byok.list_empty'));
        const keys = new Map((await this.deps.vault.list(ws)).map((k) => [k.env_var, k.masked]));
        const lines = [ctx.tr('byok.list_header')];
        models.forEach((m, i) =>
          lines.push(
            ctx.tr('byok.list_item', {
              n: i + 1,
              id: m.id,
              name: m.name,
              vendor: m.vendor,
              upstream: m.upstream_model,
              status: ctx.tr(`model.status_${m.status}` as MessageKey),
              masked: keys.get(m.api_key_env) ?? ctx.tr(m.key_optional ? 'byok.key_not_needed' : 'byok.key_missing'),
            }),
          ),
        );
        return ctx.reply(lines.join('\n'));
      }
      case 'key': {
        if (/^(delete|remove|rm)$/i.test(args[0] ?? '')) return this.askDeleteKey(ctx, args.slice(1).join(' '));
        const model = await this.modelArg(ctx, args[0]);
        if (model) await this.offerKeyForm(ctx, model, true);
        return;
      }
      case 'test': {
        const model = await this.modelArg(ctx, args[0]);
        if (!model) return;
        if (await this.deps.retest(ws, model.id, msg.chat, ctx.lang)) return ctx.reply(ctx.tr('byok.test_started', { id: model.id }));
        if (await this.needsKey(ws, model)) return this.offerKeyForm(ctx, model, false);
        // The answer becomes the model's status (model_problem when the vendor does not serve it).
        return ctx.reply(await checkModel(this.addDeps(ctx), ctx, model, 'test'));
      }
      case 'set':
        return setCommand(this.deps, ctx, args);
      case 'edit': {
        const [id, field, ...valueParts] = args;
        const value = valueParts.join(' ');
        if (!id || !field || !value) return ctx.reply(ctx.tr('byok.edit_usage'));
        const key = ({ name: 'name', model: 'upstream_model', upstream_model: 'upstream_model', base_url: 'base_url', url: 'base_url', max_tokens: 'max_tokens' } as Record<string, string>)[field.toLowerCase()];
        if (!key) return ctx.reply(ctx.tr('byok.edit_usage'));
        const changes: Record<string, unknown> = { [key]: key === 'max_tokens' ? Number(value) : value };
        // Another host asks for that host's key; a changed model is checked again (commands/add.ts).
        return afterEdit(this.addDeps(ctx), ctx, await reg.update(ws, id, changes), key, id);
      }
      case 'remove':
      case 'delete': {
        if (!args[0]) return ctx.reply(ctx.tr('byok.help'));
        const res = await reg.remove(ws, args[0]);
        if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res, args[0]));
        await this.state.update(this.chatScope(msg), (s) => {
          if (s.model === MODEL_SELECTOR_PREFIX + res.model.id) delete s.model;
        });
        await clearDefaultIf(this, ws, MODEL_SELECTOR_PREFIX + res.model.id);
        await this.deps.requests.voidForModel?.(ws, res.model.id);
        // "Its key stays sealed" only when there is one.
        const keyed = await this.deps.vault.has(ws, res.model.api_key_env);
        return ctx.reply(ctx.tr(keyed ? 'byok.removed' : 'byok.removed_no_key', { id: res.model.id }));
      }
      case 'models':
        return vendorModelsCommand(ctx, { registry: reg }, args);
      case 'usage':
        return usageCommand(ctx, { usage: this.usage, store: this.deps.store, registry: reg }, args);
      default:
        return ctx.reply(ctx.tr('byok.unknown_sub', { help: ctx.tr('byok.help') }));
    }
  }

  // ------------------------------------------------------------- key life

  private keyGroups(ws: string): Promise<KeyGroup[]> {
    return keyGroups({ store: this.deps.store, registry: this.deps.registry, vault: this.deps.vault }, ws);
  }

  /** `/byok keys`: every stored key, masked, with its kind, dates, health and models. */
  private async showKeys(ctx: Ctx): Promise<void> {
    const groups = await this.keyGroups(ctx.msg.workspace);
    if (!groups.length) return ctx.reply(ctx.tr('byok.keys_empty'));
    const tz = await userTimeZone(this.deps.store, ctx.msg.workspace, ctx.lang);
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
          vendor: g.vendor_name,
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
  private confirmChoices(ctx: Ctx, nonce: string, label: MessageKey): Choice[][] {
    return [[{ label: ctx.tr(label), data: `/byok confirm #${nonce}` }, { label: ctx.tr('byok.confirm_cancel_button'), data: '/byok cancel' }]];
  }

  /** `/byok key delete <vendor | model id | KEY_NAME>`: asks first. */
  private async askDeleteKey(ctx: Ctx, query: string): Promise<void> {
    const ws = ctx.msg.workspace;
    if (!query) return ctx.reply(ctx.tr('byok.key_delete_usage'));
    const groups = await this.keyGroups(ws);
    let target = resolveKeyTarget(groups, query);
    if (!target.ok && target.code === 'not_found') {
      // A model named loosely (its name, a prefix of its id): the registry's own resolution.
      const res = await this.deps.registry.resolve(ws, query);
      const g = res.ok ? groups.find((x) => x.env_vars.includes(res.model.api_key_env)) : undefined;
      if (g) target = { ok: true, group: g };
    }
    if (!target.ok) {
      if (target.code === 'ambiguous') return ctx.reply(ctx.tr('byok.key_delete_ambiguous', { query: query.slice(0, 80), list: target.candidates.map((g) => g.env_var).join(', ') }));
      return ctx.reply(ctx.tr('byok.key_delete_unknown', { query: query.slice(0, 80) }));
    }
    const g = target.group;
    const nonce = await this.confirmations.ask(ws, { kind: 'delete_key', env_var: g.env_var, env_vars: g.env_vars });
    const text = ctx.tr('byok.key_delete_confirm', {
      vendor: g.vendor_name,
      masked: g.masked ?? '****',
      env: g.stored.join(' + '),
      models: g.models.length ? g.models.map((m) => MODEL_SELECTOR_PREFIX + m.id).join(', ') : ctx.tr('byok.keys_no_models'),
      minutes: Math.round(CONFIRM_TTL_MS / 60_000),
    });
    return ctx.reply(text, { choices: this.confirmChoices(ctx, nonce, 'byok.confirm_delete_button') });
  }

  /** `/byok forget`: asks first, naming what would go. */
  private async askForget(ctx: Ctx): Promise<void> {
    const ws = ctx.msg.workspace;
    const [keys, models] = await Promise.all([this.deps.vault.list(ws), this.deps.registry.list_models(ws, { include_removed: true })]);
    const nonce = await this.confirmations.ask(ws, { kind: 'forget' });
    const text = ctx.tr('byok.forget_confirm', { keys: keys.length, models: models.ok ? models.models.length : 0, minutes: Math.round(CONFIRM_TTL_MS / 60_000) });
    return ctx.reply(text, { choices: this.confirmChoices(ctx, nonce, 'byok.forget_button') });
  }

  /** `/byok confirm [#nonce]` for a pending key deletion or forget (taken once, across processes). */
  private async confirmAction(ctx: Ctx, nonce: string | undefined): Promise<void> {
    const ws = ctx.msg.workspace;
    const action = await this.confirmations.take(ws, nonce);
    if (!action) return ctx.reply(ctx.tr('byok.confirm_none', { minutes: Math.round(CONFIRM_TTL_MS / 60_000) }));
    if (action.kind === 'forget') {
      const r = await forgetWorkspace({ store: this.deps.store, vault: this.deps.vault, voidForm: async (h) => (await this.deps.requests.void?.(h)) ?? false }, ws);
      this.deps.logger.info({ channel: ctx.msg.channel, ...r }, 'workspace forgotten');
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
    const g = (await this.keyGroups(ws)).find((x) => x.env_vars.includes(action.env_var));
    if (!g) return ctx.reply(ctx.tr('byok.key_deleted_gone'));
    const names = [...new Set([...action.env_vars, ...g.env_vars])];
    const r = await deleteKeyGroup({ vault: this.deps.vault, registry: this.deps.registry }, ws, names, { code: 'key_deleted', message: 'the key was deleted by its owner' });
    return ctx.reply(
      ctx.tr('byok.key_deleted', {
        vendor: g.vendor_name,
        masked: g.masked ?? '****',
        env: r.deleted.join(' + ') || g.env_var,
        models: r.models.length ? r.models.map((id) => MODEL_SELECTOR_PREFIX + id).join(', ') : ctx.tr('byok.keys_no_models'),
      }),
    );
  }

  private async modelArg(ctx: Ctx, arg: string | undefined): Promise<CustomModel | undefined> {
    if (!arg) {
      await ctx.reply(ctx.tr('byok.help'));
      return undefined;
    }
    const res = await this.deps.registry.resolve(ctx.msg.workspace, arg);
    if (res.ok) return res.model;
    const sugg = (res as { suggestions?: string[] }).suggestions ?? [];
    await ctx.reply([ctx.tr('model.unknown', { query: arg.slice(0, 80) }), ...(sugg.length ? [ctx.tr('model.did_you_mean', { list: sugg.join(', ') })] : [])].join('\n'));
    return undefined;
  }

  /** `/byok add <vendor> [url] [model] [name]` (and the natural-language form): src/chat/commands/add.ts. */
  private async addTemplate(ctx: Ctx, args: string[]): Promise<void> {
    return addCommand(this.addDeps(ctx), ctx, args);
  }

  private afterAdd(ctx: Ctx, res: Awaited<ReturnType<Registry['add_template']>>): Promise<void> {
    return afterAdd(this.addDeps(ctx), ctx, res);
  }

  private addDeps(ctx: Ctx): AddDeps {
    return {
      registry: this.deps.registry,
      state: this.state,
      probeStored: (ws, m) => this.deps.probeStored(ws, m),
      offerKeyForm: (c, m, need) => this.offerKeyForm(c as Ctx, m, false, need),
      scope: this.chatScope(ctx.msg),
    };
  }

  /** Plain-language intents ("register DeepSeek", "我想用小米的模型", "add my Claude key"): src/chat/intents.ts. */
  private async intent(ctx: Ctx, text: string): Promise<boolean> {
    const { msg } = ctx;
    return handleIntent(text, {
      lang: ctx.lang,
      tr: ctx.tr,
      reply: (t, choices) => ctx.reply(t, choices ? { choices } : undefined),
      hasModel: async () => !!(await this.modelFor(msg)).selector,
      modelsOf: async (vendor) => {
        // In a group: the group's models (what members may switch to); else the user's own.
        const res = await this.deps.registry.list_models(msg.isPrivate ? msg.workspace : (msg.groupWorkspace ?? msg.workspace));
        return res.ok ? res.models.filter((m) => m.vendor === vendor) : [];
      },
      // In a group these answer with the private-chat link, as the commands do.
      register: (tpl) => (msg.isPrivate ? this.addTemplate(ctx, [tpl.id]) : this.byok(ctx, `add ${tpl.id}`)),
      switchTo: (m) => this.model(ctx, MODEL_SELECTOR_PREFIX + m.id),
      // Asked for in so many words, like /byok key <id>: a fresh form.
      keyFor: (m) => this.offerKeyForm(ctx, m, true),
    });
  }

  /** The next message after /byok example is the vendor's API example. */
  private async pendingStep(ctx: Ctx, text: string): Promise<boolean> {
    // An open /byok add question (endpoint URL, deployment, api-version) first.
    if (await pendingAddStep(this.addDeps(ctx), ctx, text)) return true;
    const scope = this.chatScope(ctx.msg);
    const s = await this.state.get(scope);
    if (s.pending?.kind !== 'await_example') return false;
    if (Date.now() - Date.parse(s.pending.at) > PENDING_TTL_MS) {
      await this.state.update(scope, (st) => {
        delete st.pending;
      });
      return false;
    }
    // Plainly not an example ("那算了，你好"): leave the step and handle the message as usual.
    if (!looksLikeExample(text)) {
      await this.state.update(scope, (st) => {
        if (st.pending?.kind === 'await_example') delete st.pending;
      });
      return false;
    }
    const res = this.deps.registry.parse_example(text);
    if (!res.ok) {
      await ctx.reply(exampleErrorText(ctx.lang, res));
      return true;
    }
    const { draft, warnings } = res;
    await this.state.update(scope, (st) => {
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

  private async confirmExample(ctx: Ctx, name: string): Promise<void> {
    const scope = this.chatScope(ctx.msg);
    const s = await this.state.get(scope);
    if (s.pending?.kind !== 'confirm_example') return ctx.reply(ctx.tr('byok.example_none'));
    const d = s.pending.draft;
    const res = await this.deps.registry.add(ctx.msg.workspace, {
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
      await this.state.update(scope, (st) => {
        delete st.pending;
      });
    }
    return this.afterAdd(ctx, res);
  }

  private async needsKey(workspace: string, model: CustomModel): Promise<boolean> {
    if (model.key_optional) return false;
    for (const env of [model.api_key_env, ...model.extra_env_vars]) if (!(await this.deps.vault.has(workspace, env))) return true;
    return false;
  }

  /** Issues (or, when one is pending and not forced, points to) the one-time secure form. */
  private async offerKeyForm(ctx: Ctx, model: CustomModel, force: boolean, need?: { env_vars: string[]; reason: string }): Promise<void> {
    const { msg, adapter } = ctx;
    if (!msg.isPrivate) {
      const link = adapter.privateChatLink?.(argsToDeepLink(`key ${model.id}`));
      await ctx.reply(link ? ctx.tr('byok.private_only_link', { url: link }) : ctx.tr('byok.private_only'), { noPreview: true });
      return;
    }
    const tpl = getTemplate(model.vendor);
    const env_vars = need?.env_vars ?? [model.api_key_env, ...model.extra_env_vars];
    // A custom endpoint has no vendor name: it is named by its host, not "custom".
    const host = hostOf(model.base_url);
    // The key page and its name: a custom endpoint has none ("Create a key at custom" helped no one).
    const page = keyPageOf(model);
    const vendorName = page.vendor_name;
    // The chat shows the reason in the user's language; the registry's own reason is for the API.
    const reason = tpl
      ? ctx.tr(model.credential_kind === 'oauth_json' ? 'byok.reason_file' : 'byok.reason', { vendor: vendorName, model: model.name, id: model.id })
      : ctx.tr('byok.reason_custom', { model: model.name, id: model.id, host: host ?? model.vendor });
    const tz = await userTimeZone(this.deps.store, msg.workspace, ctx.lang);
    // A user who never chose a language (no /lang, none from the channel): the page follows the browser.
    const langKnown = (await this.state.getPrefs(msg.workspace)).lang ?? msg.lang;
    const res = await this.deps.requests.request({
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
    await this.deps.requests.bindMessage?.(res.token_id, sent.messageId, sent.launch);
  }
}

/** Telegram deep-link payloads allow [A-Za-z0-9_-] only, up to 64 characters. */
export function argsToDeepLink(args: string): string {
  const words = args.trim().split(/\s+/).filter(Boolean).slice(0, 3);
  return ('byok_' + words.map((w) => w.replace(/[^A-Za-z0-9-]/g, '')).join('_')).slice(0, 64);
}

export function deepLinkToArgs(payload: string): string {
  return payload.replace(/^byok_/, '').split('_').join(' ');
}

/** Moved to time.ts (one helper for every time shown); re-exported for older importers. */
export { formatTime } from './time.ts';

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}

/** Moved to commands/add.ts with the add flow; re-exported for older importers. */
export { mainlandBaseUrl } from './commands/add.ts';

/** A template named exactly (id, alias or display name, ignoring case and punctuation). */
function exactTemplate(words: string): Template | undefined {
  const q = normalize(words);
  if (!q) return undefined;
  return loadTemplates().find((t) => normalize(t.id) === q || normalize(t.name) === q || t.aliases.some((a) => normalize(a) === q));
}

function closest(query: string, candidates: string[]): string[] {
  const q = query.toLowerCase();
  return candidates
    .map((c) => ({ c, d: editDistance(q, c.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(2, Math.floor(x.c.length / 3)))
    .sort((a, b) => a.d - b.d)
    .map((x) => x.c);
}
