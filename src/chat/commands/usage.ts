/**
 * `/byok usage [today|7d|30d|all] [by provider]`: tokens and cost per model or per provider
 * over a period, from the per-request log (the totals for `all`), and the latest requests
 * with their time in the user's zone.
 */
import type { OutgoingMessage } from '../../channel.ts';
import { t, type Lang, type MessageKey } from '../../i18n/index.ts';
import { countOf, type Counted } from '../../i18n/plural.ts';
import { type Registry, MODEL_SELECTOR_PREFIX } from '../../registry/index.ts';
import type { Store } from '../../store/types.ts';
import { formatTime, userTimeZone } from '../time.ts';
import {
  costText,
  parsePeriod,
  providerOf,
  periodStart,
  summarize,
  summarizeTotals,
  totalOf,
  USAGE_LOG_DAYS,
  USAGE_LOG_MAX,
  UsageLedger,
  type UsageEntry,
  type UsagePeriod,
  type UsageRow,
} from '../usage.ts';

export interface CommandCtx {
  lang: Lang;
  msg: { workspace: string };
  reply: (text: string, extra?: Omit<OutgoingMessage, 'text'>) => Promise<void>;
}

/** How many of the period's requests are listed one by one. */
export const RECENT_SHOWN = 5;

/**
 * The user's clock: times as they read them and their zone's offset from UTC at an instant
 * (for "today"). The single place that knows where the zone comes from (`/tz`, else by language).
 */
export interface UserClock {
  format(at: Date): string;
  utcOffsetMin(at: Date): number;
}

export async function userClock(store: Pick<Store, 'getDoc'>, workspace: string, lang: Lang): Promise<UserClock> {
  const zone = await userTimeZone(store, workspace, lang);
  return { format: (at) => formatTime(at, lang, zone), utcOffsetMin: (at) => zoneOffsetMin(zone, at) };
}

/** Offset of `zone` from UTC at `at`, in minutes (DST included). */
export function zoneOffsetMin(zone: string, at: Date): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone: zone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' }).formatToParts(at);
  const n = (type: Intl.DateTimeFormatPartTypes) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const asUtc = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'));
  return Math.round((asUtc - (at.getTime() - (at.getTime() % 60_000))) / 60_000);
}

export interface UsageArgs {
  period: UsagePeriod;
  by: 'model' | 'provider';
}

/** `today`, `7d`, `all`, `by provider`, in any order (also 今天 / 全部 / 按厂商); undefined when a word is unknown. */
export function parseUsageArgs(args: string[]): UsageArgs | undefined {
  const out: UsageArgs = { period: { kind: 'all' }, by: 'model' };
  const words = args.map((a) => a.toLowerCase());
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'by' && /^(provider|providers|vendor|vendors|model|models)$/.test(words[i + 1] ?? '')) {
      out.by = words[++i]!.startsWith('model') ? 'model' : 'provider';
    } else if (/^(by-?provider|按厂商|按供应商)$/.test(w)) out.by = 'provider';
    else if (/^(by-?model|按模型)$/.test(w)) out.by = 'model';
    else if (w === '今天') out.period = { kind: 'today' };
    else if (w === '全部') out.period = { kind: 'all' };
    else {
      const p = parsePeriod(w);
      if (!p) return undefined;
      out.period = p;
    }
  }
  return out;
}

export interface UsageCommandDeps {
  usage: UsageLedger;
  store: Pick<Store, 'getDoc'>;
  now?: () => Date;
  /** For totals recorded before providers were kept: the model's provider from the registry. */
  registry?: Pick<Registry, 'list_models'>;
}

export async function usageCommand(ctx: CommandCtx, deps: UsageCommandDeps, args: string[]): Promise<void> {
  const { lang } = ctx;
  const tr = (key: MessageKey, params?: Record<string, string | number>) => t(lang, key, params);
  const parsed = parseUsageArgs(args);
  if (!parsed) return ctx.reply(tr('usage.usage'));
  const { period, by } = parsed;
  const ws = ctx.msg.workspace;
  const now = deps.now?.() ?? new Date();
  const clock = await userClock(deps.store, ws, lang);
  const since = periodStart(period, now, clock.utcOffsetMin(now));
  const doc = await deps.usage.get(ws);
  if (!Object.keys(doc.models).length) return ctx.reply(tr('byok.usage_empty'));
  const label =
    period.kind === 'today' ? tr('usage.period_today', { since: clock.format(since!) }) : period.kind === 'days' ? tr(period.days === 1 ? 'usage.period_day' : 'usage.period_days', { days: period.days }) : tr('usage.period_all');
  let entries: UsageEntry[] = [];
  let rows: UsageRow[];
  if (since) {
    entries = await deps.usage.entries(ws, since);
    rows = summarize(entries, by);
  } else {
    rows = summarizeTotals(doc, by, by === 'provider' ? await totalsProvider(deps.registry, ws) : undefined);
  }
  const lines: string[] = [];
  if (!rows.length) lines.push(tr('usage.empty_period', { period: label }));
  else {
    lines.push(tr(by === 'provider' ? 'usage.header_provider' : 'usage.header_model', { period: label }));
    for (const r of rows) lines.push(rowText(lang, 'usage.row', r));
    if (rows.length > 1) lines.push(rowText(lang, 'usage.total', totalOf(rows)));
  }
  if (entries.length) {
    lines.push('', tr('usage.recent'));
    for (const e of entries.slice(-RECENT_SHOWN).reverse()) {
      lines.push(
        tr('usage.entry', {
          time: clock.format(new Date(e.at)),
          model: e.model,
          provider: e.provider,
          input: e.input,
          output: e.output,
          cost: e.cost !== undefined && e.currency ? `, ≈ ${costText({ [e.currency]: e.cost })}` : '',
        }),
      );
    }
  }
  // The log is bounded: say so when the period reaches past what it still holds.
  const log = doc.log ?? [];
  const oldest = log[0] ? Date.parse(log[0].at) : undefined;
  if (since && ((period.kind === 'days' && period.days > USAGE_LOG_DAYS) || (log.length >= USAGE_LOG_MAX && oldest !== undefined && oldest > since.getTime()))) {
    lines.push('', tr('usage.log_bounds', { max: USAGE_LOG_MAX, days: USAGE_LOG_DAYS }));
  }
  lines.push('', tr('usage.hint'));
  return ctx.reply(lines.join('\n'));
}

/** The provider of totals recorded before providers were kept: the model's, from the registry (platform ids: `platform`). */
async function totalsProvider(registry: Pick<Registry, 'list_models'> | undefined, ws: string): Promise<(key: string) => string | undefined> {
  const res = registry ? await registry.list_models(ws, { include_removed: true }) : undefined;
  const known = new Map(res?.ok ? res.models.map((m) => [MODEL_SELECTOR_PREFIX + m.id, providerOf(m)]) : []);
  return (key) => known.get(key) ?? (key.startsWith(MODEL_SELECTOR_PREFIX) ? undefined : 'platform');
}

function rowText(lang: Lang, key: 'usage.row' | 'usage.total', r: UsageRow): string {
  const cost = costText(r.cost);
  const n = (noun: Counted, v: number) => countOf(lang, noun, v);
  return t(lang, key, { key: r.key, requests: n('requests', r.requests), input: n('tokens', r.input_tokens), output: n('tokens', r.output_tokens), cost: cost ? `, ≈ ${cost}` : '' });
}

/** `byok usage`'s JSON: rows per model or provider over a period (UTC days), and their total. */
export async function usageReport(
  store: Store,
  registry: Pick<Registry, 'list_models'>,
  ws: string,
  sinceArg: string,
  byArg: string,
  now = new Date(),
): Promise<object | undefined> {
  const period = parsePeriod(sinceArg);
  const by = byArg === 'provider' || byArg === 'model' ? byArg : undefined;
  if (!period || !by) return undefined;
  const usage = new UsageLedger(store);
  const since = periodStart(period, now, 0);
  let rows: UsageRow[];
  if (since) rows = summarize(await usage.entries(ws, since), by);
  else {
    rows = summarizeTotals(await usage.get(ws), by, by === 'provider' ? await totalsProvider(registry, ws) : undefined);
  }
  const total = totalOf(rows);
  return {
    ok: true,
    workspace: ws,
    since: since?.toISOString() ?? null,
    by,
    rows: rows.map((r) => ({ [by]: r.key, requests: r.requests, input_tokens: r.input_tokens, output_tokens: r.output_tokens, cost: r.cost })),
    total: { requests: total.requests, input_tokens: total.input_tokens, output_tokens: total.output_tokens, cost: total.cost },
    ...(since && { log: { max_requests: USAGE_LOG_MAX, max_days: USAGE_LOG_DAYS } }),
  };
}
