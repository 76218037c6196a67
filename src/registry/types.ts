import type { Capabilities, CredentialKind, OAuthConfig, Pricing, ThinkingRule, WireId } from '../vendors/template-schema.ts';

/**
 * Lifecycle of a registered model:
 *  pending_key  registered, the key is not stored yet (a secure form is due)
 *  validating   a sealed key was submitted and the worker is probing the vendor
 *  active       key stored and proven
 *  key_error    the last probe failed with a definite answer (see last_error)
 *  model_problem the key works but the vendor does not serve this model (invalid_model, see
 *               last_error): fixed by changing the model (or its base URL), not the key
 *  removed      deactivated by the user; re-adding the same id reactivates it
 */
export type ModelStatus = 'pending_key' | 'validating' | 'active' | 'key_error' | 'model_problem' | 'removed';

/** One entry of a workspace's custom_models.yaml. Never holds a key. */
export interface CustomModel {
  id: string;
  name: string;
  /** Template id, or `custom` for endpoints registered through add/parse_example. */
  vendor: string;
  wire: WireId;
  upstream_model: string;
  base_url: string;
  /** Vault name of the key (shared by every model of the same vendor in a workspace). */
  api_key_env: string;
  extra_env_vars: string[];
  key_optional: boolean;
  /** What the user hands over (from the template; `api_key` when absent, as for custom endpoints). */
  credential_kind?: CredentialKind;
  /** oauth_json only: how the access token is refreshed (copied from the template). */
  oauth?: OAuthConfig;
  headers: Record<string, string>;
  query: Record<string, string>;
  settings: Record<string, string>;
  request_fields: Record<string, unknown>;
  thinking: ThinkingRule;
  max_tokens: number;
  capabilities: Capabilities;
  pricing?: Pricing;
  status: ModelStatus;
  last_error?: { code: string; message: string; at: string };
  /** A replacement key that was not stored (the previous key stays in use); see record_key_attempt. */
  last_key_attempt?: { outcome: string; at: string };
  created_at: string;
  updated_at: string;
}

export const MODEL_SELECTOR_PREFIX = 'custom/';
