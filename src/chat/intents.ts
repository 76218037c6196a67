import type { Choice } from '../channel.ts';
import type { MessageKey } from '../i18n/index.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel } from '../registry/index.ts';
import type { Template } from '../vendors/template-schema.ts';
import { findTemplate, offeredTemplates, suggestTemplates } from '../vendors/templates.ts';
import { templateName } from '../vendors/template-name.ts';

/**
 * Plain-language intents: "register DeepSeek", "我想用小米的模型", "换成通义千问",
 * "add my Claude key", "use kimi".
 *
 * When one fires (the rule, in full):
 *  - The pasted-key guard has already run on the message (router.handle): an intent never
 *    sees a message carrying a key.
 *  - The message is short (≤ MAX_INTENT_CHARS, one line) and STARTS with an intent verb
 *    (register / add / connect / set up / switch to / use …, 注册 / 添加 / 换成 / 切换到 / 用 …)
 *    and names a vendor (findTemplate, en/zh aliases).
 *  - It is "unmistakable" when nothing is left once the verb, the vendor's name and filler
 *    words (my, key, model, 的, 模型, 密钥 …) are taken out: "use kimi" is, "use kimi to
 *    translate this" is not. A question mark is never filler.
 *  - A chat that already has a model gets only the unmistakable ones; everything else there
 *    is ordinary chat and goes to the model untouched. A chat with no model has nobody to
 *    talk to yet, so any verb + vendor phrase starts the flow.
 */
export const MAX_INTENT_CHARS = 60;

export type IntentVerb = 'register' | 'switch' | 'key';

export interface Intent {
  verb: IntentVerb;
  /** One template, or several when the phrase is ambiguous (ask which). */
  templates: Template[];
  unmistakable: boolean;
}

// Anchored at the start: the verb leads the message. Longer alternatives first.
const VERB_EN =
  /^(?:(?:please|pls|ok|okay|now)\s+)*(?:(?:i\s+(?:want|would\s+like|'d\s+like|wanna)\s+to|let\s+me|can\s+i|could\s+you|help\s+me)\s+)?(register|add|connect|set\s*up|switch\s+(?:over\s+)?to|switch|change\s+to|move\s+to|go\s+with|use|try)\b/i;
const VERB_ZH = /^(?:请|麻烦)?(?:帮我|给我)?(?:我想要|我想|我要|想要|想)?(?:帮我)?(注册|添加|接入|绑定|配置|设置|换成|换到|换用|切换到|切换成|切换|改用|改成|使用|用)/;
const KEY_WORD = /\b(?:api[\s-]?)?keys?\b|密钥|秘钥|api\s*key|令牌/i;

const FILLER_EN = new Set(['my', 'the', 'a', 'an', 'new', 'own', 'model', 'models', 'key', 'keys', 'api', 'apikey', 'please', 'pls', 'now', 'instead', 'account', 'for', 'me', 'one', 'llm', 'please.']);
const FILLER_ZH = ['我的', '大模型', '模型', '密钥', '秘钥', '的', '吧', '一下', '了', '请', '账号', '帐号', '现在', '这个', 'api', 'key'];

/** The intent of a short message, or undefined when it is not one (the message is ordinary chat). */
export function parseIntent(text: string): Intent | undefined {
  const raw = text.trim();
  if (!raw || raw.length > MAX_INTENT_CHARS || /[\r\n]/.test(raw) || raw.startsWith('/')) return undefined;
  const lower = raw.normalize('NFKC').toLowerCase();
  const m = VERB_EN.exec(lower) ?? VERB_ZH.exec(lower);
  if (!m) return undefined;
  const verbWord = m[1]!;
  const rest = lower.slice(m[0].length);
  const verb: IntentVerb = KEY_WORD.test(rest) ? 'key' : /^(register|add|connect|set\s*up|注册|添加|接入|绑定|配置|设置)$/.test(verbWord) ? 'register' : 'switch';

  const hits = mentionedTemplates(rest);
  if (hits.length) {
    const residue = hits.reduce((s, t) => removeNames(s, t), rest);
    return { verb, templates: hits, unmistakable: isFiller(residue) };
  }
  // No vendor named exactly: a lone word close to one ("use deepsek") is asked about.
  const word = stripFiller(rest).trim();
  if (!word || /\s/.test(word) || word.length < 3) return undefined;
  const sugg = suggestTemplates(word, 3);
  return sugg.length ? { verb, templates: sugg, unmistakable: false } : undefined;
}

/**
 * Every template the phrase names. findTemplate picks the longest mention; a second vendor
 * named separately ("use gpt or claude") makes it ambiguous, but a name inside a longer one
 * ("claude" in "claude code cli") does not.
 */
function mentionedTemplates(phrase: string): Template[] {
  const all = offeredTemplates();
  const best = findTemplate(phrase, all);
  if (!best) return [];
  const out = [best];
  let left = removeNames(phrase, best);
  for (const t of all) {
    if (t.id === best.id || t.id === 'openai-compatible') continue;
    if (findTemplate(left, [t])) {
      out.push(t);
      left = removeNames(left, t);
    }
  }
  return out.slice(0, 4);
}

function removeNames(s: string, t: Template): string {
  const names = [t.id, t.name, ...t.aliases].map((n) => n.normalize('NFKC').toLowerCase()).sort((a, b) => b.length - a.length);
  let out = s;
  for (const n of names) {
    if (!n) continue;
    // Latin names as whole words (allowing "claude's"); CJK names anywhere.
    if (/[\p{Script=Han}]/u.test(n)) out = out.split(n).join(' ');
    else out = out.replace(new RegExp(`(^|[^\\p{L}\\p{N}])${escapeRe(n)}(?:'?s)?(?=$|[^\\p{L}\\p{N}])`, 'gu'), '$1 ');
  }
  return out;
}

function stripFiller(s: string): string {
  let out = s;
  for (const f of FILLER_ZH) out = out.split(f).join(' ');
  return out
    .split(/[\s,，。.!！、]+/)
    .filter((w) => w && !FILLER_EN.has(w))
    .join(' ');
}

function isFiller(residue: string): boolean {
  return stripFiller(residue).trim() === '';
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What the router lends an intent to act with (the same paths the commands take). */
export interface IntentHost {
  /** The chat has a model selected (then only unmistakable intents fire). */
  hasModel(): Promise<boolean>;
  /** The models this chat may switch to, of one vendor (a group: the group's). */
  modelsOf(vendor: string): Promise<CustomModel[]>;
  /** `/byok add <template>`: registers and sends the secure form. */
  register(tpl: Template): Promise<void>;
  /** `/model custom/<id>`. */
  switchTo(model: CustomModel): Promise<void>;
  /** The secure form for a model's key. */
  keyFor(model: CustomModel): Promise<void>;
  reply(text: string, choices?: Choice[][]): Promise<void>;
  tr(key: MessageKey, params?: Record<string, string | number>): string;
  lang: 'en' | 'zh';
}

/** Acts on an intent; true when the message was one (and was answered). */
export async function handleIntent(text: string, host: IntentHost): Promise<boolean> {
  const intent = parseIntent(text);
  if (!intent) return false;
  if (!intent.unmistakable && (await host.hasModel())) return false;
  const name = (t: Template) => templateName(t, host.lang);

  if (intent.templates.length > 1) {
    // The phrase itself is the choice: typed back (numbered channels) or tapped, it is unmistakable.
    const cmd = (t: Template) => (intent.verb === 'switch' ? `use ${t.id}` : intent.verb === 'key' ? `add ${t.id} key` : `register ${t.id}`);
    await host.reply(
      host.tr('intent.which_vendor', { list: intent.templates.map(name).join(' / ') }),
      intent.templates.map((t) => [{ label: name(t), data: cmd(t) }]),
    );
    return true;
  }
  const tpl = intent.templates[0]!;
  if (intent.verb === 'register') {
    await host.register(tpl);
    return true;
  }
  const models = (await host.modelsOf(tpl.id)).filter((m) => m.status !== 'removed');
  if (!models.length) {
    if (intent.verb === 'key') {
      // "add my Claude key" with no Claude model: add it first; the form follows.
      await host.register(tpl);
      return true;
    }
    await host.reply(host.tr('intent.no_model_of_vendor', { vendor: name(tpl), id: tpl.id }), [[{ label: host.tr('intent.add_button', { vendor: name(tpl) }), data: `/byok add ${tpl.id}` }]]);
    return true;
  }
  if (models.length > 1) {
    const cmd = (m: CustomModel) => (intent.verb === 'key' ? `/byok key ${m.id}` : `/model ${MODEL_SELECTOR_PREFIX}${m.id}`);
    await host.reply(
      host.tr('intent.which_model', { vendor: name(tpl) }),
      models.slice(0, 8).map((m) => [{ label: `${m.name} (${MODEL_SELECTOR_PREFIX}${m.id})`, data: cmd(m) }]),
    );
    return true;
  }
  if (intent.verb === 'key') await host.keyFor(models[0]!);
  else await host.switchTo(models[0]!);
  return true;
}
