/**
 * `/byok models <vendor> [page]`: the seed's list_vendor_models in chat. Live from the vendor's
 * /models with the user's stored key where the vendor offers discovery, else the curated list;
 * paged, with the next page as a button (Telegram) and as the command to type (everywhere).
 */
import type { Choice, OutgoingMessage } from '../../channel.ts';
import { t, type Lang } from '../../i18n/index.ts';
import type { Registry, VendorModel } from '../../registry/index.ts';
import { getTemplate, suggestTemplates } from '../../vendors/templates.ts';
import { templateName } from '../../vendors/template-name.ts';
import type { Template } from '../../vendors/template-schema.ts';
import { registryErrorText } from '../registry-text.ts';

export const VENDOR_MODELS_PAGE_SIZE = 20;

export interface CommandCtx {
  lang: Lang;
  msg: { workspace: string };
  reply: (text: string, extra?: Omit<OutgoingMessage, 'text'>) => Promise<void>;
}

/** `args`: the words after `/byok models`; a last word that is a number is the page. */
export async function vendorModelsCommand(ctx: CommandCtx, deps: { registry: Pick<Registry, 'list_vendor_models' | 'list_models'> }, args: string[]): Promise<void> {
  const { lang } = ctx;
  const words = [...args];
  let page = 1;
  if (words.length > 1 && /^\d{1,4}$/.test(words.at(-1)!)) page = Math.max(1, Number(words.pop()));
  const vendor = words.join(' ').trim();
  if (!vendor) return ctx.reply(t(lang, 'models.usage'));
  const res = await deps.registry.list_vendor_models(ctx.msg.workspace, vendor);
  if (!res.ok) {
    if (res.code !== 'unknown_vendor') return ctx.reply(registryErrorText(lang, res));
    const sugg = suggestTemplates(vendor, 3).map((s) => s.id);
    return ctx.reply([t(lang, 'byok.unknown_vendor', { query: vendor.slice(0, 60) }), ...(sugg.length ? [t(lang, 'model.did_you_mean', { list: sugg.join(', ') })] : []), t(lang, 'models.usage')].join('\n'));
  }
  const { models } = res;
  const id = res.vendor;
  const tpl = getTemplate(id);
  const name = tpl ? templateName(tpl, lang) : id;
  const pages = Math.max(1, Math.ceil(models.length / VENDOR_MODELS_PAGE_SIZE));
  if (page > pages) return ctx.reply(t(lang, pages === 1 ? 'models.bad_page_one' : 'models.bad_page', { page, pages, vendor: id }));
  const first = (page - 1) * VENDOR_MODELS_PAGE_SIZE;
  const shown = models.slice(first, first + VENDOR_MODELS_PAGE_SIZE);
  const lines = [t(lang, res.source === 'live' ? 'models.header_live' : 'models.header_curated', { vendor: name, count: models.length, page, pages })];
  shown.forEach((m, i) => lines.push(`${first + i + 1}. ${modelLine(lang, m)}`));
  // The registry explains a fallback in English (API text); a Chinese chat gets the gist in Chinese.
  const otherHost = res.source === 'curated' && tpl ? await keyOnOtherHost(deps.registry, ctx.msg.workspace, tpl, res.note) : undefined;
  if (otherHost) lines.push('', `ℹ️ ${t(lang, 'models.key_other_host', { vendor: name, ...otherHost })}`);
  else if (res.source === 'curated' && res.note) lines.push('', `ℹ️ ${lang === 'zh' ? t(lang, 'models.curated_note') : res.note}`);
  lines.push('', t(lang, 'models.add_hint', { vendor: id, example: shown[0]?.id ?? 'model' }));
  const nav: Choice[] = [];
  if (page > 1) nav.push({ label: t(lang, 'telegram.prev'), data: `/byok models ${id} ${page - 1}` });
  if (page < pages) {
    lines.push(t(lang, 'models.next_hint', { vendor: id, page: page + 1 }));
    nav.push({ label: t(lang, 'telegram.next'), data: `/byok models ${id} ${page + 1}` });
  }
  return ctx.reply(lines.join('\n'), nav.length ? { choices: [nav] } : undefined);
}

/** `qwen-plus — Qwen Plus · 128k · 0.8/2 CNY per 1M tokens (in/out)`. */
function modelLine(lang: Lang, m: VendorModel): string {
  const parts = [m.name && m.name !== m.id ? `${m.id} — ${m.name}` : m.id];
  if (m.context_window) parts.push(t(lang, 'models.context', { k: Math.round(m.context_window / 1000) }));
  if (m.pricing) parts.push(t(lang, 'models.price', { input: m.pricing.input_per_mtok, output: m.pricing.output_per_mtok, currency: m.pricing.currency }));
  return parts.join(' · ');
}

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}

/**
 * "No key stored" while the user's key for this vendor is stored for another host (a Qwen
 * key for the mainland host, the list asked of the international one): which host's key it
 * is, and that the list shown is the curated one for the template's host.
 */
async function keyOnOtherHost(
  registry: Pick<Registry, 'list_models'>,
  ws: string,
  tpl: Template,
  note: string | undefined,
): Promise<{ host: string; env: string; list_host: string } | undefined> {
  const listHost = hostOf(tpl.base_url ?? undefined);
  if (!listHost || !note || !/\bno\b.*\bkey stored\b/i.test(note)) return undefined;
  const res = await registry.list_models(ws);
  // A model whose key was stored (accepted, or refused later): its host has the key.
  const keyed = res.ok ? res.models.filter((m) => m.vendor === tpl.id && !m.key_optional && ['active', 'model_problem', 'key_error'].includes(m.status)) : [];
  const other = keyed.find((m) => hostOf(m.base_url) !== listHost);
  if (!other || keyed.some((m) => hostOf(m.base_url) === listHost)) return undefined;
  return { host: hostOf(other.base_url) ?? other.base_url, env: other.api_key_env, list_host: listHost };
}
