/**
 * `byok update <id>` options beyond name/model/base URL/max tokens: capability flags,
 * pricing and the reasoning parameter (the CLI side of the chat's `/byok set`).
 */
import type { ParseArgsConfig } from 'node:util';
import type { ModelChanges } from '../registry/index.ts';

type Values = Record<string, string | boolean | undefined>;

const FLAGS = ['vision', 'tools', 'json', 'reasoning'] as const;

export const UPDATE_SETTING_OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  vision: { type: 'string' },
  tools: { type: 'string' },
  json: { type: 'string' },
  reasoning: { type: 'string' },
  'price-in': { type: 'string' },
  'price-out': { type: 'string' },
  currency: { type: 'string' },
  'no-price': { type: 'boolean' },
  'reasoning-param': { type: 'string' },
};

export const UPDATE_SETTING_USAGE = '[--vision on|off] [--tools on|off] [--json on|off] [--reasoning on|off] [--price-in N --price-out N [--currency USD]] [--no-price] [--reasoning-param NAME|off]';

/** The settings part of the changes, or a usage error message. */
export function settingChanges(values: Values): { ok: true; changes: ModelChanges } | { ok: false; error: string } {
  const changes: ModelChanges = {};
  const caps: Record<string, boolean> = {};
  for (const f of FLAGS) {
    const v = values[f];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !/^(on|off|true|false)$/i.test(v)) return { ok: false, error: `--${f} takes on or off` };
    caps[f] = /^(on|true)$/i.test(v);
  }
  if (Object.keys(caps).length) changes.capabilities = caps;

  const pin = values['price-in'];
  const pout = values['price-out'];
  const cur = values.currency;
  if (values['no-price'] === true) {
    if (pin !== undefined || pout !== undefined || cur !== undefined) return { ok: false, error: '--no-price cannot be combined with --price-in/--price-out/--currency' };
    changes.pricing = null;
  } else if (pin !== undefined || pout !== undefined || cur !== undefined) {
    if (typeof pin !== 'string' || typeof pout !== 'string') return { ok: false, error: '--price-in and --price-out go together (per 1M tokens), e.g. --price-in 0.8 --price-out 2' };
    const num = (s: string) => (/^\d{1,9}(\.\d{1,6})?$/.test(s.trim()) ? Number(s.trim()) : Number.NaN);
    // A malformed number reaches the registry as NaN, which names the rule.
    changes.pricing = { input_per_mtok: num(pin), output_per_mtok: num(pout), currency: typeof cur === 'string' ? cur.toUpperCase() : 'USD' };
  }

  const rp = values['reasoning-param'];
  if (typeof rp === 'string') changes.reasoning_param = /^(off|none|default)$/i.test(rp.trim()) ? null : rp.trim();
  return { ok: true, changes };
}
