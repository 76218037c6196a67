/**
 * `/byok set <id> [<field> <value>]`: a model's capability flags, max tokens, pricing and
 * reasoning parameter (seed 004's Edit page, in chat). Alone, it shows the current values and
 * the fields. Changes go through registry.update, the same as `byok update` on the CLI.
 */
import { type ModelChanges, type Registry, reasoningParamOf, withReasoningParam, MODEL_SELECTOR_PREFIX, type CustomModel } from '../../registry/index.ts';
import { registryErrorText } from '../registry-text.ts';
import type { CommandCtx } from './think.ts';

export interface SettingsDeps {
  registry: Registry;
}

const FLAGS = ['vision', 'tools', 'json', 'reasoning'] as const;
type Flag = (typeof FLAGS)[number];

const ON = /^(on|yes|true|1|开|开启|打开|是)$/i;
const OFF = /^(off|no|false|0|关|关闭|否)$/i;
const NUMBER = /^\d{1,9}(\.\d{1,6})?$/;

/** `/byok set …` (args after `set`). */
export async function setCommand(deps: SettingsDeps, ctx: CommandCtx, args: string[]): Promise<void> {
  const [query, rawField, ...values] = args;
  if (!query) return ctx.reply(ctx.tr('settings.usage'));
  const ws = ctx.msg.workspace;
  const res = await deps.registry.resolve(ws, query);
  if (!res.ok) return ctx.reply(registryErrorText(ctx.lang, res, query));
  const model = res.model;
  if (model.status === 'removed') return ctx.reply(ctx.tr('model.removed', { id: model.id }));
  if (!rawField) return ctx.reply(show(ctx, model));

  const field = rawField.toLowerCase().replace(/-/g, '_');
  const parsed = parseChange(ctx, model, field, values);
  if (typeof parsed === 'string') return ctx.reply(parsed);
  const upd = await deps.registry.update(ws, model.id, parsed.changes);
  if (!upd.ok) return ctx.reply(registryErrorText(ctx.lang, upd, query));
  return ctx.reply([ctx.tr('settings.changed', { id: upd.model.id, field: parsed.label, value: parsed.shown(upd.model) }), '', show(ctx, upd.model)].join('\n'));
}

interface Parsed {
  changes: ModelChanges;
  label: string;
  shown: (m: CustomModel) => string;
}

/** One field's change, or the text explaining what is wrong with it. */
function parseChange(ctx: CommandCtx, model: CustomModel, field: string, values: string[]): Parsed | string {
  const value = values.join(' ').trim();
  const usage = () => ctx.tr('settings.field_usage', { id: model.id, fields: ctx.tr('settings.fields') });
  if ((FLAGS as readonly string[]).includes(field)) {
    const flag = field as Flag;
    if (!ON.test(value) && !OFF.test(value)) return ctx.tr('settings.flag_value', { field: flag, id: model.id });
    return { changes: { capabilities: { [flag]: ON.test(value) } }, label: flag, shown: (m) => onOff(ctx, m.capabilities[flag]) };
  }
  switch (field) {
    case 'name':
      if (!value) return usage();
      return { changes: { name: value }, label: 'name', shown: (m) => m.name };
    case 'max_tokens':
    case 'maxtokens': {
      if (!/^\d{1,9}$/.test(value)) return ctx.tr('err.invalid_input.max_tokens');
      return { changes: { max_tokens: Number(value) }, label: 'max_tokens', shown: (m) => String(m.max_tokens) };
    }
    case 'price':
    case 'pricing': {
      if (values.length === 1 && OFF.test(values[0])) return { changes: { pricing: null }, label: 'price', shown: () => ctx.tr('settings.price_none') };
      const [input, output, currency] = values;
      if (!input || !output || !NUMBER.test(input) || !NUMBER.test(output) || values.length > 3 || (currency !== undefined && !/^[A-Za-z]{3}$/.test(currency))) {
        return ctx.tr('settings.price_value', { id: model.id });
      }
      const pricing = { input_per_mtok: Number(input), output_per_mtok: Number(output), currency: (currency ?? model.pricing?.currency ?? 'USD').toUpperCase() };
      return { changes: { pricing }, label: 'price', shown: (m) => priceText(ctx, m) };
    }
    case 'reasoning_param':
    case 'reasoning_parameter': {
      if (!value || /\s/.test(value)) return ctx.tr('settings.reasoning_param_value', { id: model.id, known: 'reasoning_effort, enable_thinking, thinking, reasoning, max_tokens, effort' });
      if (OFF.test(value) || value === 'default') return { changes: { reasoning_param: null }, label: 'reasoning_param', shown: (m) => reasoningParamOf(m.thinking) };
      // Checked here too, so the refusal is in the user's language (the registry answers in English).
      const r = withReasoningParam(model.thinking ?? { style: 'none' }, value, model.max_tokens);
      if (!r.ok) {
        if (r.reason === 'fixed') return ctx.tr('settings.reasoning_param_fixed', { model: model.name, param: reasoningParamOf(model.thinking) });
        return ctx.tr('settings.reasoning_param_value', { id: model.id, known: (r.known ?? []).join(', ') });
      }
      return { changes: { reasoning_param: value }, label: 'reasoning_param', shown: (m) => reasoningParamOf(m.thinking) };
    }
    default:
      return usage();
  }
}

function onOff(ctx: CommandCtx, v: boolean): string {
  return ctx.tr(v ? 'settings.on' : 'settings.off');
}

function priceText(ctx: CommandCtx, m: CustomModel): string {
  if (!m.pricing) return ctx.tr('settings.price_none');
  return ctx.tr('settings.price_is', { input: m.pricing.input_per_mtok, output: m.pricing.output_per_mtok, currency: m.pricing.currency });
}

/** The current values and the fields that can be set. */
function show(ctx: CommandCtx, m: CustomModel): string {
  return [
    ctx.tr('settings.header', { id: `${MODEL_SELECTOR_PREFIX}${m.id}`, name: m.name }),
    `• name: ${m.name}`,
    `• max_tokens: ${m.max_tokens}`,
    `• ${FLAGS.map((f) => `${f}: ${onOff(ctx, m.capabilities[f])}`).join(' · ')}`,
    `• price: ${priceText(ctx, m)}`,
    `• reasoning_param: ${reasoningParamOf(m.thinking)}`,
    '',
    ctx.tr('settings.field_usage', { id: m.id, fields: ctx.tr('settings.fields') }),
  ].join('\n');
}
