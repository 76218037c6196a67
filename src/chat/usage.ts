import type { Store } from '../store/types.ts';
import type { Pricing } from '../vendors/template-schema.ts';

export interface ModelUsage {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  /** Cost per currency, from the model's pricing (per million tokens). */
  cost: Record<string, number>;
  last_at: string;
  /** Who served it: the template id (qwen, anthropic…), a custom endpoint's host, or `platform`. */
  provider?: string;
}

/** One answered request, as the per-request log keeps it. */
export interface UsageEntry {
  at: string;
  /** The selector key: `custom/<id>` or the platform model id. */
  model: string;
  provider: string;
  input: number;
  output: number;
  /** Cost in `currency`; absent when the model has no pricing. */
  cost?: number;
  currency?: string;
}

export interface UsageDoc {
  models: Record<string, ModelUsage>;
  /** The last requests, oldest first: at most USAGE_LOG_MAX, none older than USAGE_LOG_DAYS. */
  log?: UsageEntry[];
}

/**
 * The log lives in the usage document itself: one atomic update per request keeps totals and
 * log in step across processes, and forgetting a workspace (which drops the document) takes
 * the log with it. Bounded so the document stays small.
 */
export const USAGE_LOG_MAX = 1000;
export const USAGE_LOG_DAYS = 90;
const DAY_MS = 86_400_000;

/** Totals of one group (a model or a provider) over a period. */
export interface UsageRow {
  key: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cost: Record<string, number>;
}

/** Usage per workspace and model; the selector key is `custom/<id>` or the platform id. */
export class UsageLedger {
  constructor(
    private readonly store: Store,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async record(workspace: string, key: string, input: number, output: number, pricing?: Pricing, meta: { provider?: string } = {}): Promise<ModelUsage> {
    const at = this.now();
    return this.store.updateDoc<UsageDoc, ModelUsage>(workspace, 'usage', (cur) => {
      const doc = cur ?? { models: {} };
      const u = (doc.models[key] ??= { requests: 0, input_tokens: 0, output_tokens: 0, cost: {}, last_at: '' });
      u.requests += 1;
      u.input_tokens += input;
      u.output_tokens += output;
      const entry: UsageEntry = { at: at.toISOString(), model: key, provider: meta.provider ?? u.provider ?? 'unknown', input, output };
      if (pricing) {
        const c = (input * pricing.input_per_mtok + output * pricing.output_per_mtok) / 1e6;
        u.cost[pricing.currency] = round6((u.cost[pricing.currency] ?? 0) + c);
        entry.cost = round6(c);
        entry.currency = pricing.currency;
      }
      if (meta.provider) u.provider = meta.provider;
      u.last_at = entry.at;
      const oldest = at.getTime() - USAGE_LOG_DAYS * DAY_MS;
      doc.log = [...(doc.log ?? []).filter((e) => Date.parse(e.at) >= oldest), entry].slice(-USAGE_LOG_MAX);
      return { value: doc, result: { ...u } };
    });
  }

  async get(workspace: string): Promise<UsageDoc> {
    return (await this.store.getDoc<UsageDoc>(workspace, 'usage')) ?? { models: {} };
  }

  /** The logged requests since `since` (all kept ones without it), oldest first. */
  async entries(workspace: string, since?: Date): Promise<UsageEntry[]> {
    const log = (await this.get(workspace)).log ?? [];
    if (!since) return log;
    const from = since.getTime();
    return log.filter((e) => Date.parse(e.at) >= from);
  }
}

/** The provider a model's usage counts under: its template id, `platform`, or a custom endpoint's host. */
export function providerOf(model: { vendor: string; base_url?: string }): string {
  if (model.vendor !== 'custom') return model.vendor;
  try {
    return model.base_url ? new URL(model.base_url).host : 'custom';
  } catch {
    return 'custom';
  }
}

/** Groups logged requests by model or provider, biggest first. */
export function summarize(entries: UsageEntry[], by: 'model' | 'provider'): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const e of entries) {
    const key = by === 'model' ? e.model : e.provider;
    const r = rows.get(key) ?? { key, requests: 0, input_tokens: 0, output_tokens: 0, cost: {} };
    r.requests += 1;
    r.input_tokens += e.input;
    r.output_tokens += e.output;
    if (e.cost !== undefined && e.currency) r.cost[e.currency] = round6((r.cost[e.currency] ?? 0) + e.cost);
    rows.set(key, r);
  }
  return sortRows([...rows.values()]);
}

/**
 * The all-time totals (kept beyond the log's window) grouped by model or provider. A model
 * recorded before providers were kept gets `providerOf(key)`, else `unknown`.
 */
export function summarizeTotals(doc: UsageDoc, by: 'model' | 'provider', providerOf: (key: string) => string | undefined = () => undefined): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const [model, u] of Object.entries(doc.models)) {
    const key = by === 'model' ? model : (u.provider ?? providerOf(model) ?? 'unknown');
    const r = rows.get(key) ?? { key, requests: 0, input_tokens: 0, output_tokens: 0, cost: {} };
    r.requests += u.requests;
    r.input_tokens += u.input_tokens;
    r.output_tokens += u.output_tokens;
    for (const [cur, v] of Object.entries(u.cost)) r.cost[cur] = round6((r.cost[cur] ?? 0) + v);
    rows.set(key, r);
  }
  return sortRows([...rows.values()]);
}

/** The sum of rows (costs stay per currency). */
export function totalOf(rows: UsageRow[]): UsageRow {
  const t: UsageRow = { key: 'total', requests: 0, input_tokens: 0, output_tokens: 0, cost: {} };
  for (const r of rows) {
    t.requests += r.requests;
    t.input_tokens += r.input_tokens;
    t.output_tokens += r.output_tokens;
    for (const [cur, v] of Object.entries(r.cost)) t.cost[cur] = round6((t.cost[cur] ?? 0) + v);
  }
  return t;
}

export type UsagePeriod = { kind: 'today' } | { kind: 'days'; days: number } | { kind: 'all' };

/** `today`, `all`, `<n>d` (1–3650); anything else: undefined. */
export function parsePeriod(s: string): UsagePeriod | undefined {
  const v = s.trim().toLowerCase();
  if (v === 'today') return { kind: 'today' };
  if (v === 'all') return { kind: 'all' };
  const m = /^(\d{1,4})d$/.exec(v);
  if (m && Number(m[1]) >= 1 && Number(m[1]) <= 3650) return { kind: 'days', days: Number(m[1]) };
  return undefined;
}

/**
 * Where a period starts; undefined for `all`. `today` starts at midnight in the user's zone,
 * given as its offset from UTC in minutes at that instant (UTC on the CLI).
 */
export function periodStart(p: UsagePeriod, now: Date, utcOffsetMin = 0): Date | undefined {
  if (p.kind === 'all') return undefined;
  if (p.kind === 'days') return new Date(now.getTime() - p.days * DAY_MS);
  const local = now.getTime() + utcOffsetMin * 60_000;
  return new Date(local - (local % DAY_MS) - utcOffsetMin * 60_000);
}

/** `0.0123 USD, 0.5 CNY` (empty when nothing was priced). */
export function costText(cost: Record<string, number>): string {
  return Object.entries(cost)
    .map(([cur, v]) => `${v.toFixed(4)} ${cur}`)
    .join(', ');
}

function sortRows(rows: UsageRow[]): UsageRow[] {
  return rows.sort((a, b) => b.requests - a.requests || b.input_tokens + b.output_tokens - (a.input_tokens + a.output_tokens) || a.key.localeCompare(b.key));
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
