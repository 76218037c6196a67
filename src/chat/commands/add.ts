/**
 * `/byok add <vendor> …`: registers a model of a curated vendor from chat, for every template.
 * What the template cannot fill in (Azure's endpoint and deployment, a Hugging Face or any
 * OpenAI-compatible endpoint's URL and model) is taken from the same line
 * (`/byok add azure-openai https://x.openai.azure.com my-deploy`) or asked for one question
 * at a time; the open question lives in the chat state (the Store), so any process takes the
 * answer. A model that can use a key already stored is probed at once, so its status is the
 * vendor's answer, not a guess (`model_problem` when the vendor does not serve the model).
 */
import { type NeedEnvInput, type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import type { ProbeResult } from '../../vendors/types.ts';
import type { Template } from '../../vendors/template-schema.ts';
import { findTemplate, getTemplate, loadTemplates, normalize, suggestTemplates } from '../../vendors/templates.ts';
import { templateName } from '../../vendors/template-name.ts';
import type { Lang } from '../../i18n/index.ts';
import { outcomeText } from '../outcomes.ts';
import { registryErrorText } from '../registry-text.ts';
import { PENDING_TTL_MS, type AddField, type ChatStateStore, type PendingAdd } from '../state.ts';
import type { CommandCtx } from './think.ts';

export interface AddDeps {
  registry: Registry;
  state: ChatStateStore;
  /** Probes the vendor with the stored credential (OAuth files refreshed as needed). */
  probeStored(workspace: string, model: CustomModel): Promise<ProbeResult>;
  offerKeyForm(ctx: CommandCtx, model: CustomModel, need?: NeedEnvInput): Promise<void>;
  /** The chat state scope of this conversation. */
  scope: string;
}

type Have = PendingAdd['have'];
type AddRes = Awaited<ReturnType<Registry['add_template']>>;

/** How long the check of a new model may take before the user is told it could not be done now. */
export const ADD_PROBE_TIMEOUT_MS = 20_000;

const KEEP = /^(ok|okay|yes|y|default|-|好|好的|是|默认|可以)$/i;
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
const HOSTLIKE = /^[a-z0-9-]+(\.[a-z0-9-]+)+(:\d{1,5})?(\/\S*)?$/i;

/** `/byok add <vendor or alias> [url] [model] [name] [api-version=…]` (args after `add`). */
export async function addCommand(deps: AddDeps, ctx: CommandCtx, args: string[]): Promise<void> {
  if (!args.length) return ctx.reply(ctx.tr('byok.usage_add'));
  // The vendor may be several words ("azure openai"): the longest prefix that exactly
  // names one wins; a lone word may also be found inside it ("通义千问的").
  let vendorArgs = 0;
  let tpl: Template | undefined;
  for (let n = Math.min(3, args.length); n > 0 && !tpl; n--) {
    tpl = exactTemplate(args.slice(0, n).join(' '));
    if (tpl) vendorArgs = n;
  }
  if (!tpl) {
    tpl = findTemplate(args[0]!);
    vendorArgs = 1;
  }
  if (!tpl) {
    const sugg = suggestTemplates(args[0]!, 3).map((s) => s.id);
    return ctx.reply([ctx.tr('byok.unknown_vendor', { query: args[0]!.slice(0, 60) }), ...(sugg.length ? [ctx.tr('model.did_you_mean', { list: sugg.join(', ') })] : []), ctx.tr('byok.usage_add')].join('\n'));
  }
  return proceed(deps, ctx, tpl, parseLine(tpl, args.slice(vendorArgs)), false);
}

/** The rest of the line: a URL is the endpoint, `k=v` a query parameter or setting, then model, then name. */
export function parseLine(tpl: Template, words: string[]): Have {
  const have: Have = {};
  const rest: string[] = [];
  for (const w of words) {
    const kv = /^([A-Za-z][\w.-]{0,40})=(\S{1,64})$/.exec(w);
    if (!have.base_url && /^https?:\/\//i.test(w)) have.base_url = w;
    else if (kv && kv[1]! in tpl.default_query) have.query = { ...have.query, [kv[1]!]: kv[2]! };
    else if (kv && kv[1]! in tpl.settings) have.settings = { ...have.settings, [kv[1]!]: kv[2]! };
    else rest.push(w);
  }
  const [model, ...name] = rest;
  if (model) have.upstream_model = model;
  if (name.length) have.name = name.join(' ');
  return have;
}

/** The template's default model is a placeholder the user must replace (or may keep: `keep`). */
function modelQuestion(tpl: Template): 'deployment' | 'required' | 'keep' | undefined {
  if (tpl.wire === 'azure-openai') return 'deployment';
  const placeholder = tpl.models.find((m) => m.id === tpl.default_model)?.notes?.some((n) => /placeholder/i.test(n));
  if (!placeholder) return undefined;
  // openai-compatible's placeholder is refused by the registry; Hugging Face's `tgi` works on TGI.
  return tpl.id === 'openai-compatible' ? 'required' : 'keep';
}

/** The next question, or undefined when the model can be registered. */
export function nextField(tpl: Template, have: Have, hasSibling: boolean, interactive: boolean): AddField | undefined {
  if (tpl.base_url === null && !have.base_url && !hasSibling) return 'base_url';
  if (!have.upstream_model && modelQuestion(tpl)) return 'upstream_model';
  // Asked only in a conversation already asking: a complete one-line command is not held up.
  if (interactive && 'api-version' in tpl.default_query && have.query?.['api-version'] === undefined) return 'api_version';
  return undefined;
}

function question(ctx: CommandCtx, tpl: Template, field: AddField): string {
  switch (field) {
    case 'base_url':
      return ctx.tr('add.ask_base_url', { vendor: templateName(tpl, ctx.lang), example: urlExample(tpl) });
    case 'upstream_model': {
      const q = modelQuestion(tpl);
      if (q === 'deployment') return ctx.tr('add.ask_deployment', { vendor: templateName(tpl, ctx.lang) });
      if (q === 'keep') return ctx.tr('add.ask_model_default', { default: tpl.default_model });
      return ctx.tr('add.ask_model');
    }
    case 'api_version':
      return ctx.tr('add.ask_api_version', { default: tpl.default_query['api-version'] ?? '' });
  }
}

/** An example URL from the template's hint (`https://<resource-name>.openai.azure.com`). */
function urlExample(tpl: Template): string {
  return /https?:\/\/[^\s"'),;]+/.exec(tpl.base_url_hint ?? '')?.[0] ?? 'https://api.example.com/v1';
}

/** The whole command in one line, for next time. */
function oneLine(tpl: Template): string {
  const q = modelQuestion(tpl);
  const parts = [`/byok add ${tpl.id}`];
  if (tpl.base_url === null) parts.push(urlExample(tpl));
  if (q) parts.push(q === 'deployment' ? '<deployment>' : '<model>');
  parts.push('[name]');
  return parts.join(' ');
}

async function setPending(deps: AddDeps, pending: PendingAdd | undefined): Promise<void> {
  await deps.state.update(deps.scope, (s) => {
    if (pending) s.pending = pending;
    else if (s.pending?.kind === 'add_field') delete s.pending;
  });
}

async function liveModelsOf(deps: AddDeps, ws: string, vendor: string): Promise<CustomModel[]> {
  const res = await deps.registry.list_models(ws);
  return res.ok ? res.models.filter((m) => m.vendor === vendor) : [];
}

/** Asks the next question, or registers the model. */
async function proceed(deps: AddDeps, ctx: CommandCtx, tpl: Template, have: Have, interactive: boolean): Promise<void> {
  const ws = ctx.msg.workspace;
  const siblings = await liveModelsOf(deps, ws, tpl.id);
  const field = nextField(tpl, have, siblings.length > 0, interactive);
  if (field) {
    await setPending(deps, { kind: 'add_field', vendor: tpl.id, asking: field, have, at: new Date().toISOString() });
    const text = question(ctx, tpl, field);
    return ctx.reply(interactive ? text : `${text}\n${ctx.tr('add.one_line', { example: oneLine(tpl) })}`, { noPreview: true });
  }
  await setPending(deps, undefined);
  // A Chinese user most likely has a mainland account: its keys work only on the mainland
  // host, so pick it (and say so, with the way back) — unless their models of this vendor
  // already live somewhere (the registry then follows them).
  const mainland = !have.base_url && !siblings.length && ctx.lang === 'zh' ? mainlandBaseUrl(tpl) : undefined;
  const res = await deps.registry.add_template(ws, tpl.id, {
    upstream_model: have.upstream_model,
    name: have.name,
    base_url: have.base_url ?? mainland,
    ...(have.query && Object.keys(have.query).length && { query: have.query }),
    ...(have.settings && { settings: have.settings }),
  });
  if (!res.ok) {
    // The same model again (`/byok add deepseek` twice, "register DeepSeek"): not a name to
    // change, but the model the user already has, with its next step.
    const clash = res as { reason?: unknown; existing?: unknown };
    const existing = !have.name && clash.reason === 'name_taken' ? siblings.find((m) => `${MODEL_SELECTOR_PREFIX}${m.id}` === clash.existing) : undefined;
    if (existing) {
      await ctx.reply(ctx.tr('add.already_have', { name: existing.name, id: existing.id, vendor: tpl.id }));
      if (existing.status === 'pending_key' || existing.status === 'key_error') return deps.offerKeyForm(ctx, existing);
      return;
    }
    // A refused answer is asked again (no dead end); anything else is said as it is.
    const f = (res as { field?: unknown }).field;
    const again = f === 'base_url' && tpl.base_url === null ? 'base_url' : f === 'upstream_model' && modelQuestion(tpl) ? 'upstream_model' : undefined;
    if (again) {
      const next = { ...have };
      delete next[again];
      await setPending(deps, { kind: 'add_field', vendor: tpl.id, asking: again, have: next, at: new Date().toISOString() });
      return ctx.reply(`${registryErrorText(ctx.lang, res)}\n${question(ctx, tpl, again)}`, { noPreview: true });
    }
    return ctx.reply(registryErrorText(ctx.lang, res));
  }
  return afterAdd(deps, ctx, res, mainland && tpl.base_url ? { intl: tpl.base_url } : undefined);
}

/**
 * The answer to an open `/byok add` question. False when there is none (or it expired), and
 * when the message plainly is not an answer (several words): the step is left, said so, and
 * the message is handled as usual.
 */
export async function pendingAddStep(deps: AddDeps, ctx: CommandCtx, text: string): Promise<boolean> {
  const s = await deps.state.get(deps.scope);
  const p = s.pending;
  if (p?.kind !== 'add_field') return false;
  const tpl = getTemplate(p.vendor);
  if (!tpl || Date.now() - Date.parse(p.at) > PENDING_TTL_MS) {
    await setPending(deps, undefined);
    return false;
  }
  const answer = text.trim();
  if (/\s/.test(answer)) {
    await setPending(deps, undefined);
    await ctx.reply(ctx.tr('add.left', { vendor: tpl.id }));
    return false;
  }
  const have: Have = { ...p.have };
  const again = (why: string) => ctx.reply(`${why}\n${question(ctx, tpl, p.asking)}`, { noPreview: true });
  switch (p.asking) {
    case 'base_url':
      if (/^https?:\/\//i.test(answer)) have.base_url = answer;
      else if (HOSTLIKE.test(answer)) have.base_url = `https://${answer}`;
      else {
        await again(ctx.tr('registry.invalid_base_url'));
        return true;
      }
      break;
    case 'upstream_model':
      // The endpoint pasted again (a common slip): it would become the model/deployment name.
      if (/^https?:\/\//i.test(answer)) {
        await again(ctx.tr('add.url_not_name'));
        return true;
      }
      have.upstream_model = KEEP.test(answer) && modelQuestion(tpl) === 'keep' ? tpl.default_model : answer;
      break;
    case 'api_version':
      if (KEEP.test(answer)) have.query = { ...have.query, 'api-version': tpl.default_query['api-version']! };
      else if (API_VERSION.test(answer)) have.query = { ...have.query, 'api-version': answer };
      else {
        await again(ctx.tr('add.bad_api_version'));
        return true;
      }
      break;
  }
  await proceed(deps, ctx, tpl, have, true);
  return true;
}

/** After a model is registered: what it is, the vendor's notes, and the key form or the check. */
export async function afterAdd(deps: AddDeps, ctx: CommandCtx, res: AddRes, region?: { intl: string }): Promise<void> {
  if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res));
  const model = res.model;
  const lines = [ctx.tr(res.reactivated ? 'byok.reactivated' : 'byok.added', { name: model.name, id: model.id })];
  // The registry's warnings are English API text; a Chinese chat gets none rather than a mix.
  if (ctx.lang !== 'zh') for (const w of res.warnings ?? []) lines.push(`⚠️ ${w}`);
  const tpl = getTemplate(model.vendor);
  let notes = tpl ? (ctx.lang === 'zh' && tpl.notes_zh.length ? tpl.notes_zh : tpl.notes) : [];
  // A note about the template's international host is for models on that host only: a model
  // on the mainland host (picked for a Chinese user, or following the user's other models
  // there) would be told the opposite of where it is.
  const mainlandHost = tpl ? hostOf(mainlandBaseUrl(tpl)) : undefined;
  const intlHost = tpl?.base_url ? hostOf(tpl.base_url) : undefined;
  if (intlHost && mainlandHost && hostOf(model.base_url) === mainlandHost) notes = notes.filter((n) => !n.includes(intlHost));
  if (region) lines.push(ctx.tr('byok.mainland_endpoint', { host: new URL(model.base_url).host, id: model.id, intl: region.intl }));
  for (const n of notes.slice(0, 2)) lines.push(`ℹ️ ${n}`);
  if (res.need_env_input) {
    // A vendor key for another host than its usual one has a name of its own: say which.
    if (model.api_key_env.includes('__')) lines.push(ctx.tr('byok.host_key', { host: hostOf(model.base_url) ?? '', env: model.api_key_env }));
    await ctx.reply(lines.join('\n'), { noPreview: true });
    return deps.offerKeyForm(ctx, model, res.need_env_input);
  }
  // The key is already stored (or none is needed): ask the vendor now, so "ready" is true.
  lines.push(await checkModel(deps, ctx, model, 'add'));
  await ctx.reply(lines.join('\n'), { noPreview: true });
}

/** After `/byok edit`: a model moved to another host asks for that host's key; a changed model is checked again. */
export async function afterEdit(deps: AddDeps, ctx: CommandCtx, res: Awaited<ReturnType<Registry['update']>>, field: string, query: string): Promise<void> {
  if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res, query));
  const model = res.model;
  const lines = [ctx.tr('byok.edited', { id: model.id, field })];
  // Moved to a host whose key has a name of its own: say so and ask for it. Under the plain
  // name no key was stored yet, so a form already sent (or /byok key) still does the job.
  if (res.need_env_input && model.api_key_env.includes('__')) {
    lines.push(ctx.tr('byok.host_key', { host: hostOf(model.base_url) ?? '', env: model.api_key_env }));
    await ctx.reply(lines.join('\n'));
    return deps.offerKeyForm(ctx, model, res.need_env_input);
  }
  if ((field === 'upstream_model' || field === 'base_url') && model.status === 'active') lines.push(await checkModel(deps, ctx, model, 'edit'));
  await ctx.reply(lines.join('\n'), { noPreview: true });
}

/** Probes the model with its stored credential, records the answer as its status, and says it. */
export async function checkModel(deps: Pick<AddDeps, 'registry' | 'probeStored'>, ctx: CommandCtx, model: CustomModel, when: 'add' | 'edit' | 'test'): Promise<string> {
  const ws = ctx.msg.workspace;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve({ outcome: 'unreachable', message: `no answer within ${ADD_PROBE_TIMEOUT_MS / 1000} s` }), ADD_PROBE_TIMEOUT_MS);
  });
  let result: ProbeResult;
  try {
    result = await Promise.race([deps.probeStored(ws, model), timeout]);
  } finally {
    clearTimeout(timer);
  }
  await recordProbe(deps.registry, ws, model, result);
  const known = getTemplate(model.vendor);
  const vendor = (known && templateName(known, ctx.lang)) ?? hostOf(model.base_url) ?? model.vendor;
  const p = { env: model.api_key_env, id: model.id, model: model.name, vendor, host: hostOf(model.base_url) ?? vendor, upstream: model.upstream_model };
  const keyed = !model.key_optional;
  switch (result.outcome) {
    case 'ok':
      return when === 'test' ? ctx.tr('byok.test_ok', p) : ctx.tr(keyed ? 'byok.key_reused_ok' : 'byok.endpoint_ok', p);
    case 'invalid_model':
    case 'rejected':
      return ctx.tr('byok.model_problem', { ...p, message: (result.message ?? result.outcome).slice(0, 200) });
    case 'invalid_key':
    case 'quota_exceeded':
      return outcomeText(ctx.lang, result.outcome, { model, message: result.message });
    default:
      if (when === 'test') return outcomeText(ctx.lang, result.outcome, { model, message: result.message, retryAfterMs: result.retryAfterMs });
      return ctx.tr(keyed ? 'byok.key_reused_unchecked' : 'byok.endpoint_unchecked', p);
  }
}

/**
 * A probe's answer as the model's status: ok → active; the vendor does not serve the model
 * → model_problem; the stored key refused or out of quota → key_error (for every model on
 * that key); no answer → unchanged (the next check decides).
 */
export async function recordProbe(registry: Registry, ws: string, model: CustomModel, result: ProbeResult): Promise<void> {
  const err = { code: result.outcome, message: result.message ?? result.outcome };
  if (result.outcome === 'ok') {
    if (model.status !== 'active') await registry.set_status(ws, model.id, 'active');
  } else if (result.outcome === 'invalid_model' || result.outcome === 'rejected') {
    await registry.set_status(ws, model.id, 'model_problem', err);
  } else if ((result.outcome === 'invalid_key' || result.outcome === 'quota_exceeded') && !model.key_optional) {
    await registry.set_status_and_key(ws, model.id, model.api_key_env, 'key_error', err);
  }
}

/**
 * Where the secure form sends the user to create a key: the vendor's key page, named after
 * the vendor. A custom endpoint (or a template for any endpoint) has no such page: no link,
 * and the endpoint's host as its name — never "custom".
 */
export function keyPageOf(
  model: Pick<CustomModel, 'vendor' | 'base_url'> & { credential_kind?: CustomModel['credential_kind'] },
  lang: Lang = 'en',
): { vendor_name: string; homepage: string; reason_key: 'byok.reason' | 'byok.reason_file' | 'byok.reason_aws' } {
  const tpl = getTemplate(model.vendor);
  const host = hostOf(model.base_url) ?? model.vendor;
  // The form's "Why" line names what it asks for: a file, an AWS key pair (or Bedrock API key), a key.
  const kind = model.credential_kind;
  const reason_key = kind === 'oauth_json' ? 'byok.reason_file' : kind === 'aws_keypair' ? 'byok.reason_aws' : 'byok.reason';
  if (!tpl || tpl.id === 'openai-compatible') return { vendor_name: host, homepage: '', reason_key };
  // Named in the requester's language: the page and the chat card show it as it is.
  return { vendor_name: templateName(tpl, lang), homepage: tpl.homepage, reason_key };
}

/** The mainland China endpoint a template names in its base_url_hint (Qwen, Kimi, MiniMax, Z.ai). */
export function mainlandBaseUrl(tpl: Template): string | undefined {
  const hint = tpl.base_url_hint ?? '';
  if (!/mainland china/i.test(hint)) return undefined;
  return /https:\/\/[^\s"')]+/.exec(hint)?.[0]?.replace(/[.,;]+$/, '');
}

/** A template named exactly (id, alias or display name, ignoring case and punctuation). */
function exactTemplate(words: string): Template | undefined {
  const q = normalize(words);
  if (!q) return undefined;
  return loadTemplates().find((t) => normalize(t.id) === q || normalize(t.name) === q || t.aliases.some((a) => normalize(a) === q));
}

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}
