import { z } from 'zod';

/** The wire protocol a model speaks. */
export const WireId = z.enum(['openai', 'anthropic', 'azure-openai', 'bedrock', 'gemini-code-assist']);
export type WireId = z.infer<typeof WireId>;

export const Capabilities = z
  .object({
    json: z.boolean().default(false),
    vision: z.boolean().default(false),
    tools: z.boolean().default(false),
    reasoning: z.boolean().default(false),
  })
  .strict();
export type Capabilities = z.infer<typeof Capabilities>;

/** Prices in the vendor's currency per one million tokens. */
export const Pricing = z
  .object({
    input_per_mtok: z.number().nonnegative(),
    output_per_mtok: z.number().nonnegative(),
    currency: z.string().length(3).default('USD'),
    source: z.string().url().optional(),
  })
  .strict();
export type Pricing = z.infer<typeof Pricing>;

/**
 * How a model is asked to think. One rule per style; `param` names the request field where
 * vendors differ per model (NEAR's chat_template_kwargs keys, qwen's enable_thinking).
 *  - none:                 the model has no switch
 *  - reasoning_effort:     top-level `reasoning_effort: low|medium|high` (OpenAI, xAI grok-3-mini, Gemini compat)
 *  - anthropic_budget:     `thinking: {type: enabled, budget_tokens}` (Anthropic messages)
 *  - enable_thinking:      top-level boolean `<param>` (qwen `enable_thinking`)
 *  - thinking_type:        `thinking: {type: enabled|disabled}` (DeepSeek/Kimi/GLM style)
 *  - nearai_chat_template: `chat_template_kwargs: {<param>: bool}` sent inside extra_body
 *  - always_on:            reasoning cannot be switched off (gpt-oss, deepseek-reasoner)
 *  - openrouter_reasoning: `reasoning: {effort}` or `reasoning: {max_tokens}`
 */
export const ThinkingRule = z
  .object({
    style: z.enum([
      'none',
      'reasoning_effort',
      'anthropic_budget',
      'enable_thinking',
      'thinking_type',
      'nearai_chat_template',
      'always_on',
      'openrouter_reasoning',
    ]),
    param: z.string().optional(),
    default_effort: z.enum(['minimal', 'low', 'medium', 'high']).optional(),
    budget_tokens: z.number().int().positive().optional(),
    /** Whether thinking is on by default for this model when the user has not chosen. */
    default_on: z.boolean().optional(),
    /** Disable thinking on baseline calls (e.g. NEAR Qwen3.5 hidden-thinking pattern). */
    disabled: z.boolean().optional(),
    /**
     * anthropic_budget only: the model takes `thinking: {type: adaptive}` plus
     * `output_config: {effort}` and rejects `budget_tokens` (Claude Opus 4.7+, Claude 5 family).
     */
    adaptive: z.boolean().optional(),
  })
  .strict();
export type ThinkingRule = z.infer<typeof ThinkingRule>;

export const TemplateModel = z
  .object({
    id: z.string().min(1),
    name: z.string().min(1),
    capabilities: Capabilities,
    context_window: z.number().int().positive().optional(),
    max_output_tokens: z.number().int().positive().optional(),
    pricing: Pricing.optional(),
    thinking: ThinkingRule.optional(),
    /** NEAR AI: served inside a TEE (hardware enclave). */
    tee: z.boolean().optional(),
    notes: z.array(z.string()).optional(),
    /** Simplified Chinese counterpart of `notes`. */
    notes_zh: z.array(z.string()).optional(),
  })
  .strict();
export type TemplateModel = z.infer<typeof TemplateModel>;

/** How the key reaches the vendor. */
export const AuthRule = z
  .object({
    scheme: z.enum(['bearer', 'header', 'aws-sigv4', 'none']),
    /** Header name for `header` (e.g. x-api-key, api-key). Bearer uses Authorization. */
    header: z.string().optional(),
    /** The key may be left empty (self-hosted openai-compatible servers). */
    optional: z.boolean().default(false),
  })
  .strict();
export type AuthRule = z.infer<typeof AuthRule>;

/**
 * What the user hands over, declared by the template (never guessed from the key):
 *  - api_key:     one vendor API key (most vendors)
 *  - aws_keypair: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, requests signed with SigV4
 *  - bearer:      a bearer token issued by the vendor's console (a Bedrock API key, ABSK…)
 *  - oauth_json:  the OAuth credentials file a vendor's CLI writes (Qwen Code, Gemini CLI,
 *                 Claude Code), pasted whole; the access token is refreshed as it expires
 */
export const CredentialKind = z.enum(['api_key', 'aws_keypair', 'bearer', 'oauth_json']);
export type CredentialKind = z.infer<typeof CredentialKind>;

/** How an `oauth_json` credential is refreshed: the CLI's public OAuth client. */
export const OAuthConfig = z
  .object({
    /** Which CLI wrote the file: selects the file-shape check and the refresh request shape. */
    provider: z.enum(['qwen-code', 'gemini-cli', 'claude-code']),
    token_url: z.string().url(),
    client_id: z.string().min(1),
    /** Installed-app clients (Google) publish a non-confidential client secret. */
    client_secret: z.string().optional(),
    /** Refresh this many seconds before the access token expires. */
    refresh_skew_seconds: z.number().int().nonnegative().default(300),
    /** Gemini CLI: a Google Cloud project id may be given beside the file (or inside it). */
    project_id: z.enum(['none', 'optional']).default('none'),
  })
  .strict();
export type OAuthConfig = z.infer<typeof OAuthConfig>;

export const CredentialRule = z
  .object({
    kind: CredentialKind,
    /** Required for `oauth_json`. */
    oauth: OAuthConfig.optional(),
    /** Another accepted shape on the same template; the form asks for one or the other. */
    alternative: z
      .object({ kind: CredentialKind, env_var: z.string().regex(/^[A-Z][A-Z0-9_]*$/) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.kind === 'oauth_json' && !c.oauth) ctx.addIssue({ code: 'custom', path: ['oauth'], message: 'required for kind oauth_json' });
    if (c.kind !== 'oauth_json' && c.oauth) ctx.addIssue({ code: 'custom', path: ['oauth'], message: 'only for kind oauth_json' });
  });
export type CredentialRule = z.infer<typeof CredentialRule>;

export const Template = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    name: z.string().min(1),
    /** The display name in Simplified Chinese, where one is natural (brand-only names have none). */
    name_zh: z.string().min(1).optional(),
    aliases: z.array(z.string().min(1)).min(1),
    /** Where the user creates the key. */
    homepage: z.string().url(),
    docs: z.string().url().optional(),
    /** Null when the user supplies it (Azure resource, HF endpoint, openai-compatible). */
    base_url: z.string().url().nullable(),
    base_url_hint: z.string().optional(),
    wire: WireId,
    auth: AuthRule,
    credential: CredentialRule,
    /** The vault name of the main secret. */
    env_var: z.string().regex(/^[A-Z][A-Z0-9_]*$/),
    /** Further secrets collected in the same form (Bedrock IAM secret key). */
    extra_env_vars: z.array(z.string().regex(/^[A-Z][A-Z0-9_]*$/)).default([]),
    default_headers: z.record(z.string(), z.string()).default({}),
    /** Query parameters the wire needs (Azure api-version). */
    default_query: z.record(z.string(), z.string()).default({}),
    /** Non-secret settings the wire needs (Bedrock region). */
    settings: z.record(z.string(), z.string()).default({}),
    default_model: z.string().min(1),
    models: z.array(TemplateModel).min(1),
    model_discovery: z.boolean(),
    discovery_path: z.string().default('/models'),
    thinking: ThinkingRule,
    default_max_tokens: z.number().int().positive().default(4096),
    notes: z.array(z.string()).default([]),
    notes_zh: z.array(z.string()).default([]),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (!t.models.some((m) => m.id === t.default_model) && t.base_url !== null) {
      ctx.addIssue({ code: 'custom', path: ['default_model'], message: `default_model "${t.default_model}" is not in models` });
    }
  });
export type Template = z.infer<typeof Template>;
