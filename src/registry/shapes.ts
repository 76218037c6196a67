/**
 * Zod schemas for the argument shapes of the registry API (add, add_template, update and the
 * status calls). Each carries the user-facing message of its check; `parseArg` turns the first
 * issue into ByokError('invalid_input', message, {field}), as the hand-written checks did.
 * Checks that are more than a shape (URLs, headers, request fields, key-host rules) stay in
 * validation.ts and key-hosts.ts.
 */
import { z } from 'zod';
import { ByokError } from '../errors.ts';
import { MAX_TOKENS_LIMIT } from './contract.ts';
import { looksLikeKey } from './key-like.ts';
import { MODEL_ID_RE } from './slug.ts';
import { MODEL_SELECTOR_PREFIX, type ModelStatus } from './types.ts';

/**
 * Parses `raw`; on failure throws the first issue's message as invalid_input. `field` names the
 * argument (else the issue's first path segment, else none).
 */
export function parseArg<T>(schema: z.ZodType<T>, raw: unknown, field?: string): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const f = field ?? (issue.path.length ? String(issue.path[0]) : undefined);
  throw new ByokError('invalid_input', issue.message, f === undefined ? undefined : { field: f });
}

export function keyLikeMessage(field: string): string {
  return `${field} looks like an API key. Keys are accepted only through the secure form, never as a parameter; if this was a real key, rotate it at the vendor.`;
}

// Control characters, bidi overrides and zero-width characters that make names deceptive.
export const BAD_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\ufeff\u2028\u2029]/;

/** The arguments object of a call (`{...}`, not null, not an array). */
export const argsObject = (message: string) => z.looseObject({}, { error: message });

/** A map of names to values (headers, query, request fields); the values are checked by the caller. */
export const objectOf = (message: string) => z.record(z.string(), z.unknown(), { error: message });

/** Display name: whitespace collapsed, 1–64 code points, nothing invisible or key-like. */
export const nameSchema = z
    .string({ error: 'name must be a string of 1–64 characters' })
    .transform((s) => s.trim().replace(/\s+/g, ' '))
    .check((ctx) => {
      const len = [...ctx.value].length;
      if (len < 1 || len > 64) ctx.issues.push({ code: 'custom', input: ctx.value, message: `name must be 1–64 characters (got ${len})` });
      else if (BAD_CHARS.test(ctx.value)) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'name must not contain control or invisible characters' });
      else if (looksLikeKey(ctx.value)) ctx.issues.push({ code: 'custom', input: ctx.value, message: keyLikeMessage('name') });
    });

/** The vendor's model id: 1–200 chars, no whitespace or control characters, nothing key-like. */
export const upstreamModelSchema = z
    .string({ error: 'upstream_model (the vendor\'s model id, e.g. qwen-plus) is required' })
    .transform((s) => s.trim())
    .check((ctx) => {
      const m = ctx.value;
      const add = (message: string) => ctx.issues.push({ code: 'custom', input: m, message });
      if (m.length < 1 || m.length > 200) add(`upstream_model must be 1–200 characters (got ${m.length})`);
      else if (BAD_CHARS.test(m)) add('upstream_model must not contain control characters');
      else if (/\s/.test(m)) add('upstream_model is the vendor\'s model id and contains no spaces (e.g. qwen-plus); use name for a display name');
      else if (looksLikeKey(m)) add(keyLikeMessage('upstream_model'));
    });

const MAX_TOKENS_MSG = 'max_tokens must be an integer ≥ 1 (the completion cap, e.g. 4096)';
export const maxTokensSchema = z
  .number({ error: MAX_TOKENS_MSG })
  .int({ error: MAX_TOKENS_MSG })
  .min(1, { error: MAX_TOKENS_MSG })
  .max(MAX_TOKENS_LIMIT, { error: `max_tokens must be at most ${MAX_TOKENS_LIMIT}` });

const ENV_VAR_MSG = 'api_key_env must be an env var NAME such as MYVENDOR_API_KEY (uppercase letters, digits, _), not the key itself';
/** A key's NAME (MYVENDOR_API_KEY), never the key: a long name without `_` is taken for a key. */
export const envVarSchema = z
    .string({ error: ENV_VAR_MSG })
    .regex(/^[A-Z][A-Z0-9_]{1,63}$/, { error: ENV_VAR_MSG })
    .refine((v) => !(looksLikeKey(v) || (v.length >= 24 && !v.includes('_'))), { error: keyLikeMessage('api_key_env'), abort: true });

/** An explicit model id (the `custom/` selector prefix is accepted and dropped). */
export const modelIdSchema = z
  .string({ error: 'id must be a lowercase slug (a-z, 0-9, -)' })
  .transform((s) => (s.startsWith(MODEL_SELECTOR_PREFIX) ? s.slice(MODEL_SELECTOR_PREFIX.length) : s))
  .refine((id) => MODEL_ID_RE.test(id), { error: 'id must be a lowercase slug of 1–64 chars (a-z, 0-9, -), e.g. qwen-plus-e3f4' });

export const CAPABILITY_KEYS = ['json', 'vision', 'tools', 'reasoning'] as const;

/** Partial capability flags (merged over the model's by the caller; zod defaults would turn missing flags off). */
export const capabilityFlagsSchema = z.strictObject(
  Object.fromEntries(
    CAPABILITY_KEYS.map((k) => [k, z.boolean({ error: `capabilities.${k} must be true or false` }).optional()]),
  ) as Record<(typeof CAPABILITY_KEYS)[number], z.ZodOptional<z.ZodBoolean>>,
  {
    error: (iss) =>
      iss.code === 'unrecognized_keys'
        ? `capabilities: unknown flag "${String(iss.keys[0]).slice(0, 30)}" (known: ${CAPABILITY_KEYS.join(', ')})`
        : 'capabilities must be an object of booleans json, vision, tools, reasoning',
  },
);

const SNAKE_CODE = /^[a-z_]{1,40}$/;

/** `{code, message}` of a failed probe; the message is cleaned by the caller. */
export const lastErrorSchema = z.object(
  {
    code: z.string({ error: 'last_error.code must be a short snake_case code' }).regex(SNAKE_CODE, { error: 'last_error.code must be a short snake_case code' }),
    message: z.unknown(),
  },
  { error: 'last_error must be {code, message}' },
);

export const STATUSES: ModelStatus[] = ['pending_key', 'validating', 'active', 'key_error', 'model_problem', 'removed'];
export const statusSchema = z.enum(STATUSES as [ModelStatus, ...ModelStatus[]], { error: `status must be one of ${STATUSES.join(', ')}` });
/** A status set after a probe: never `removed` (that is the user's remove). */
export const keyStatusSchema = z.enum(STATUSES.filter((s) => s !== 'removed') as [ModelStatus, ...ModelStatus[]], {
  error: 'status must be pending_key, validating, active, key_error or model_problem',
});

const OUTCOME_MSG = 'attempt.outcome must be a short snake_case code';
export const attemptSchema = z.object({ outcome: z.string({ error: OUTCOME_MSG }).regex(SNAKE_CODE, { error: OUTCOME_MSG }) }, { error: OUTCOME_MSG });

export const credentialKindSchema = z.enum(['api_key', 'aws_keypair', 'bearer', 'oauth_json'], {
  error: 'credential.kind must be api_key, aws_keypair, bearer or oauth_json',
});
export const extraEnvVarsSchema = z.array(z.unknown(), { error: 'extra_env_vars must be a list of env var names' }).max(7, {
  error: 'extra_env_vars must be a list of env var names',
});
