import type { ChannelAdapter, InboundMessage, OutgoingMessage } from '../channel.ts';
import { t, type Lang, type MessageKey } from '../i18n/index.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel } from '../registry/index.ts';
import { detectKeys, vendorHintForKinds } from '../secrets/detector.ts';
import { isMasterKeyUnavailable } from '../secrets/keyring-check.ts';
import { Relay } from './relay.ts';
import type { ChatDeps } from './deps.ts';
import { ChatStateStore } from './state.ts';
import { Confirmations } from './confirmations.ts';
import { UsageLedger } from './usage.ts';
import { addCommand, pendingAddStep, type AddDeps } from './commands/add.ts';
import { vendorModelsCommand } from './commands/models.ts';
import { usageCommand } from './commands/usage.ts';
import { setCommand } from './commands/settings.ts';
import { think } from './commands/think.ts';
import { defaultSelector } from './commands/default-model.ts';
import { handleIntent } from './intents.ts';
import { groupCommand, groupKeyMissing, offeredPlatform, platformCommand, type GroupDeps } from './commands/group.ts';
import { askDeleteKey, askForget, confirmAction, showKeys, type KeysDeps } from './commands/keys.ts';
import { modelCommand, type ModelDeps } from './commands/model.ts';
import { editCommand, keyFormCommand, listCommand, removeCommand, templatesCommand, testCommand, type ByokMiscDeps } from './commands/byok-misc.ts';
import { confirmExample, pendingExampleStep, startExample, type ExampleDeps } from './commands/example.ts';
import { langCommand, resetCommand, tzChatCommand, type PrefsDeps } from './commands/prefs.ts';
import { needsKey, sendKeyForm } from './commands/key-form.ts';

/** Longest inbound message we relay; longer ones are refused with a clear reply. */
export const MAX_INBOUND_CHARS = 16_000;

// The dependency interfaces live in deps.ts so command modules need not import the router.
export type { ChatDeps, ChatVault, EnvInputRequester } from './deps.ts';

type PastedKeyHit = ReturnType<typeof detectKeys>;

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
    // The guard runs before anything else, on every text-bearing message, addressed to the bot
    // or not. Only a refusal or an addressed message needs more (the user's language, state):
    // group chatter without a key costs the fingerprint read and nothing else.
    let hit: PastedKeyHit | undefined;
    let guardError: unknown;
    try {
      hit = detectKeys(msg.text, { isKnownKey: await this.deps.vault.fingerprintMatcher(msg.workspace) });
    } catch (e) {
      guardError = e;
    }
    if (!msg.addressed_to_bot && !hit?.refused && guardError === undefined) return;
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
      if (guardError !== undefined) throw guardError;
      if (hit?.refused) return void (await this.refusePastedKey(ctx, hit));
      // Checked above with the user's stored-key fingerprints; otherwise not ours to answer.
      if (!msg.addressed_to_bot) return;
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

  /** The pasted-key guard's answer to a refused message: drop pending steps, delete it where possible, say what to do. */
  private async refusePastedKey(ctx: Ctx, hit: PastedKeyHit): Promise<void> {
    const { msg, adapter } = ctx;
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
        return resetCommand(this.commandDeps(ctx), ctx);
      case 'tz':
        return tzChatCommand(this.commandDeps(ctx), ctx, rest);
      case 'lang':
        return langCommand(this.commandDeps(ctx), ctx, rest);
      default:
        return this.help(ctx);
    }
  }

  private async help(ctx: Ctx): Promise<void> {
    // The terminal joins pasted lines into one message: say how (see channels/shell).
    const shell = ctx.msg.channel === 'shell' ? `\n\n${ctx.tr('shell.paste_help')}` : '';
    await ctx.reply(`${ctx.tr('help.title')}\n\n${ctx.tr('help.body')}${shell}`);
  }

  /** `/model …`: src/chat/commands/model.ts. */
  private model(ctx: Ctx, rawArg: string): Promise<void> {
    return modelCommand(this.commandDeps(ctx), ctx, rawArg);
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
    const deps = this.commandDeps(ctx);
    switch ((sub ?? '').toLowerCase()) {
      case '':
      case 'help':
        return ctx.reply(ctx.tr('byok.help'));
      case 'templates':
        return templatesCommand(ctx);
      case 'add':
        return this.addTemplate(ctx, args);
      case 'example':
        return startExample(deps, ctx);
      case 'confirm': {
        // A button carries `#<nonce>`; a typed /byok confirm answers the latest question.
        const nonce = args[0]?.startsWith('#') ? args[0].slice(1) : undefined;
        if (nonce !== undefined || (await this.confirmations.has(ws))) return confirmAction(deps, ctx, nonce);
        return confirmExample(deps, ctx, args.join(' '));
      }
      case 'cancel':
        await this.confirmations.cancel(ws);
        await this.state.update(this.chatScope(msg), (s) => {
          delete s.pending;
        });
        return ctx.reply(ctx.tr('byok.cancelled'));
      case 'keys':
        return showKeys(deps, ctx);
      case 'forget':
        return askForget(deps, ctx);
      case 'list':
        return listCommand(deps, ctx);
      case 'key':
        if (/^(delete|remove|rm)$/i.test(args[0] ?? '')) return askDeleteKey(deps, ctx, args.slice(1).join(' '));
        return keyFormCommand(deps, ctx, args[0]);
      case 'test':
        return testCommand(deps, ctx, args[0]);
      case 'set':
        return setCommand(this.deps, ctx, args);
      case 'edit':
        return editCommand(deps, ctx, args);
      case 'remove':
      case 'delete':
        return removeCommand(deps, ctx, args[0]);
      case 'models':
        return vendorModelsCommand(ctx, { registry: this.deps.registry }, args);
      case 'usage':
        return usageCommand(ctx, { usage: this.usage, store: this.deps.store, registry: this.deps.registry }, args);
      default:
        return ctx.reply(ctx.tr('byok.unknown_sub', { help: ctx.tr('byok.help') }));
    }
  }

  /** What the command modules need of this chat: one object that fits each module's deps. */
  private commandDeps(ctx: Ctx): KeysDeps & ModelDeps & ByokMiscDeps & ExampleDeps & PrefsDeps {
    return {
      ...this.deps,
      state: this.state,
      confirmations: this.confirmations,
      scope: this.chatScope(ctx.msg),
      add: this.addDeps(ctx),
      currentModel: (m) => this.modelFor(m),
      needsKey: (ws, m) => this.needsKey(ws, m),
      offerKeyForm: (c, m, force) => this.offerKeyForm(c as Ctx, m, force),
    };
  }

  /** `/byok add <vendor> [url] [model] [name]` (and the natural-language form): src/chat/commands/add.ts. */
  private async addTemplate(ctx: Ctx, args: string[]): Promise<void> {
    return addCommand(this.addDeps(ctx), ctx, args);
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

  /** An open multi-step question: /byok add's next field, else the example after /byok example. */
  private async pendingStep(ctx: Ctx, text: string): Promise<boolean> {
    // An open /byok add question (endpoint URL, deployment, api-version) first.
    if (await pendingAddStep(this.addDeps(ctx), ctx, text)) return true;
    return pendingExampleStep(this.commandDeps(ctx), ctx, text);
  }

  private needsKey(workspace: string, model: CustomModel): Promise<boolean> {
    return needsKey(this.deps, workspace, model);
  }

  /** Issues (or, when one is pending and not forced, points to) the one-time secure form. */
  private async offerKeyForm(ctx: Ctx, model: CustomModel, force: boolean, need?: { env_vars: string[]; reason: string }): Promise<void> {
    if (!ctx.msg.isPrivate) {
      const link = ctx.adapter.privateChatLink?.(argsToDeepLink(`key ${model.id}`));
      await ctx.reply(link ? ctx.tr('byok.private_only_link', { url: link }) : ctx.tr('byok.private_only'), { noPreview: true });
      return;
    }
    return sendKeyForm({ ...this.deps, state: this.state }, ctx, model, force, need);
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

/** Moved to commands/add.ts with the add flow; re-exported for older importers. */
export { mainlandBaseUrl } from './commands/add.ts';

