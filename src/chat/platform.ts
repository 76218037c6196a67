import fs from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ByokError } from '../errors.ts';
import type { CustomModel } from '../registry/index.ts';
import { Capabilities, Pricing, ThinkingRule, WireId } from '../vendors/template-schema.ts';

/**
 * Operator-configured platform models (e.g. through the operator's own OpenRouter key),
 * from a YAML file named by BYOK_PLATFORM_MODELS. The operator's key is read from the
 * operator's environment at call time; custom models never go through these.
 */
const PlatformModel = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    name: z.string().min(1),
    base_url: z.string().url(),
    wire: WireId.default('openai'),
    upstream_model: z.string().min(1),
    api_key_env: z.string().regex(/^[A-Z][A-Z0-9_]*$/),
    headers: z.record(z.string(), z.string()).default({}),
    max_tokens: z.number().int().positive().default(4096),
    capabilities: Capabilities.default({ json: false, vision: false, tools: false, reasoning: false }),
    pricing: Pricing.optional(),
    thinking: ThinkingRule.default({ style: 'none' }),
  })
  .strict();

const PlatformFile = z.object({ default: z.string().optional(), models: z.array(PlatformModel).default([]) }).strict();

export interface PlatformModels {
  default?: string;
  models: CustomModel[];
}

export function loadPlatformModels(file: string | undefined): PlatformModels {
  if (!file) return { models: [] };
  let raw: unknown;
  try {
    raw = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ByokError('config', `cannot read platform models from ${file}: ${(e as Error).message}`);
  }
  const parsed = PlatformFile.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ByokError('config', `${file}: ${issue.path.join('.')}: ${issue.message}`);
  }
  const now = new Date(0).toISOString();
  const models = parsed.data.models.map(
    (m): CustomModel => ({
      id: m.id,
      name: m.name,
      vendor: 'platform',
      wire: m.wire,
      upstream_model: m.upstream_model,
      base_url: m.base_url,
      api_key_env: m.api_key_env,
      extra_env_vars: [],
      key_optional: false,
      headers: m.headers,
      query: {},
      settings: {},
      request_fields: {},
      thinking: m.thinking,
      max_tokens: m.max_tokens,
      capabilities: m.capabilities,
      pricing: m.pricing,
      status: 'active',
      created_at: now,
      updated_at: now,
    }),
  );
  const def = parsed.data.default;
  if (def && !models.some((m) => m.id === def)) throw new ByokError('config', `${file}: default "${def}" is not one of the models`);
  return { default: def, models };
}
