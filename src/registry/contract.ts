/**
 * The registry's public contract: the Registry API, its argument and result shapes, the
 * workspace document, and the defaults shared by its parts. Types and small constants only
 * (plus the environment KeySource), so every part can import it without a cycle.
 */
import type { Capabilities, CredentialKind, Pricing, Template, ThinkingRule, WireId } from '../vendors/template-schema.ts';
import type { Result } from '../result.ts';
import type { Store } from '../store/types.ts';
import type { parseExample } from './parse-example.ts';
import { MODEL_SELECTOR_PREFIX, type CustomModel, type ModelStatus } from './types.ts';

/** Where keys come from. The vault implements it; a plaintext key is only ever bytes the caller wipes. */
export interface KeySource {
  has(workspace: string, envVar: string): Promise<boolean>;
  withKey<T>(workspace: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
}

export interface RegistryDeps {
  store: Store;
  /** Defaults to the process environment (the template's env var), until the vault replaces it. */
  keys?: KeySource;
  fetch?: typeof fetch;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Vendor templates to use instead of `templates/*.yaml` (tests). */
  templates?: Template[];
  /** Timeout of the live `/models` call (default 10 s). */
  discoveryTimeoutMs?: number;
}

export interface NeedEnvInput {
  env_vars: string[];
  reason: string;
}

export interface TemplateSummary {
  id: string;
  name: string;
  aliases: string[];
  homepage: string;
  docs?: string;
  wire: WireId;
  base_url: string | null;
  base_url_hint?: string;
  base_url_required: boolean;
  env_var: string;
  key_optional: boolean;
  credential_kind: CredentialKind;
  default_model: string;
  models: VendorModel[];
  model_discovery: boolean;
  notes: string[];
  notes_zh: string[];
}

export interface VendorModel {
  id: string;
  name: string;
  capabilities?: Capabilities;
  pricing?: Pricing;
  tee?: boolean;
  context_window?: number;
  /** In the template's curated list. */
  curated: boolean;
}

export interface VendorModels {
  vendor: string;
  source: 'live' | 'curated';
  models: VendorModel[];
  /** Why the list is the curated one (no key yet, no discovery, the vendor refused...). */
  note?: string;
}

export interface AddResult {
  model: CustomModel;
  selector: string;
  need_env_input?: NeedEnvInput;
  warnings?: string[];
  /** True when a removed entry with the same id / name and vendor was brought back. */
  reactivated?: boolean;
}

export interface AddTemplateOptions {
  upstream_model?: string;
  name?: string;
  base_url?: string;
  max_tokens?: number;
  /** Explicit model id (slug, no random suffix); re-adding a removed id reactivates it. */
  id?: string;
  /** Overrides of the template's non-secret settings (Bedrock `region`). */
  settings?: Record<string, string>;
  /** Overrides of the template's query parameters (Azure `api-version`); only those it has. */
  query?: Record<string, string>;
  /**
   * oauth_json templates: another token endpoint than the template's (a gateway in front of
   * the vendor, a local fake in tests). Checked like a base URL (https, no private address
   * unless the operator allows it). Not offered in chat.
   */
  token_url?: string;
}

export interface AddArgs {
  upstream_model: string;
  base_url: string;
  wire?: WireId;
  name?: string;
  api_key_env?: string;
  /** The endpoint needs no key (self-hosted servers); no secure form is asked for. */
  key_optional?: boolean;
  headers?: Record<string, string>;
  request_fields?: Record<string, unknown>;
  thinking?: ThinkingRule;
  max_tokens?: number;
  capabilities?: Partial<Capabilities>;
  pricing?: Pricing;
  /** Non-secret query parameters (Azure `api-version`), as parse_example detects them. */
  query?: Record<string, string>;
  id?: string;
}


export interface ModelChanges {
  name?: string;
  upstream_model?: string;
  base_url?: string;
  max_tokens?: number;
  capabilities?: Partial<Capabilities>;
  /** null clears the pricing. */
  pricing?: Pricing | null;
  /**
   * The request field carrying the thinking switch or budget (see reasoning-param.ts);
   * null restores the template's rule (custom endpoints: no switch).
   */
  reasoning_param?: string | null;
}

export interface Registry {
  templates(): Result<{ templates: TemplateSummary[] }>;
  list_vendor_models(
    workspace: string,
    vendor: string,
    opts?: { base_url?: string },
  ): Promise<Result<VendorModels>>;
  add_template(workspace: string, vendor: string, opts?: AddTemplateOptions): Promise<Result<AddResult>>;
  parse_example(text: string): ReturnType<typeof parseExample>;
  add(workspace: string, args: AddArgs): Promise<Result<AddResult>>;
  list_models(workspace: string, opts?: { include_removed?: boolean }): Promise<Result<{ models: CustomModel[] }>>;
  get(workspace: string, modelId: string): Promise<Result<{ model: CustomModel }>>;
  remove(workspace: string, modelId: string): Promise<Result<{ model: CustomModel; already_removed?: boolean }>>;
  /** A base URL on another host switches the model to that host's key (need_env_input when not stored). */
  update(workspace: string, modelId: string, changes: ModelChanges): Promise<Result<{ model: CustomModel; warnings?: string[]; need_env_input?: NeedEnvInput }>>;
  set_status(
    workspace: string,
    modelId: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ model: CustomModel }>>;
  /** Sets the status of every live model of the workspace that uses this key (after a probe). */
  set_key_status(
    workspace: string,
    envVar: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ models: CustomModel[] }>>;
  /**
   * `set_status(modelId)` then `set_key_status(envVar)` in one atomic update of the workspace
   * (after a probe: the model and every other live model using the key). The key part applies
   * even when the model part fails (not found, removed meanwhile), as the two calls in a row
   * would; the result is the model part's.
   */
  set_status_and_key(
    workspace: string,
    modelId: string,
    envVar: string,
    status: ModelStatus,
    lastError?: { code: string; message: string },
  ): Promise<Result<{ model: CustomModel; models: CustomModel[] }>>;
  resolve(workspace: string, selector: string): Promise<Result<{ model: CustomModel }>>;
  /** Records the outcome of a submitted replacement key without touching the status (the previous key stays in use). */
  record_key_attempt(workspace: string, modelId: string, attempt: { outcome: string }): Promise<Result<{ model: CustomModel }>>;
  /**
   * Switches the model to another credential shape its template accepts (Bedrock: IAM key
   * pair ⇄ Bedrock API key), with the live models of the same vendor that shared its key, in
   * one atomic update. Called by the worker once the vendor accepted the new credential.
   */
  use_credential(
    workspace: string,
    modelId: string,
    credential: { kind: CredentialKind; api_key_env: string; extra_env_vars: string[] },
  ): Promise<Result<{ model: CustomModel; models: CustomModel[] }>>;
}

/** Name of the workspace document holding the entries. */
export const MODELS_DOC = 'custom_models';
export interface ModelsDoc {
  version: 1;
  models: CustomModel[];
  /**
   * The host each key name was given for (keyHostOf form). A stored key stays bound to it
   * even when no model uses that name any more (a model moved to another host).
   */
  key_hosts?: Record<string, string>;
}

export const DEFAULT_MAX_TOKENS = 4096;
export const MAX_TOKENS_LIMIT = 10_000_000;
export const DEFAULT_CAPABILITIES: Capabilities = { json: true, vision: false, tools: true, reasoning: false };

/** The default KeySource: keys from the environment under the template's env var name. */
export function envKeySource(env: NodeJS.ProcessEnv = process.env): KeySource {
  return {
    async has(_ws, envVar) {
      return typeof env[envVar] === 'string' && env[envVar] !== '';
    },
    async withKey(_ws, envVar, fn) {
      const v = env[envVar];
      if (!v) return undefined;
      const bytes = Buffer.from(v, 'utf8');
      try {
        return await fn(bytes);
      } finally {
        bytes.fill(0);
      }
    },
  };
}

export function selectorOf(model: Pick<CustomModel, 'id'>): string {
  return `${MODEL_SELECTOR_PREFIX}${model.id}`;
}
