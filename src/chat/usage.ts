import type { Store } from '../store/types.ts';
import type { Pricing } from '../vendors/template-schema.ts';

export interface ModelUsage {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  /** Cost per currency, from the model's pricing (per million tokens). */
  cost: Record<string, number>;
  last_at: string;
}

export interface UsageDoc {
  models: Record<string, ModelUsage>;
}

/** Usage per workspace and model; the selector key is `custom/<id>` or the platform id. */
export class UsageLedger {
  constructor(private readonly store: Store) {}

  async record(workspace: string, key: string, input: number, output: number, pricing?: Pricing): Promise<ModelUsage> {
    return this.store.updateDoc<UsageDoc, ModelUsage>(workspace, 'usage', (cur) => {
      const doc = cur ?? { models: {} };
      const u = (doc.models[key] ??= { requests: 0, input_tokens: 0, output_tokens: 0, cost: {}, last_at: '' });
      u.requests += 1;
      u.input_tokens += input;
      u.output_tokens += output;
      if (pricing) {
        const c = (input * pricing.input_per_mtok + output * pricing.output_per_mtok) / 1e6;
        u.cost[pricing.currency] = round6((u.cost[pricing.currency] ?? 0) + c);
      }
      u.last_at = new Date().toISOString();
      return { value: doc, result: { ...u } };
    });
  }

  async get(workspace: string): Promise<UsageDoc> {
    return (await this.store.getDoc<UsageDoc>(workspace, 'usage')) ?? { models: {} };
  }
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
