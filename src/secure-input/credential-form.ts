import type { CustomModel } from '../registry/index.ts';
import type { CredentialKind, Template } from '../vendors/template-schema.ts';
import { getTemplate } from '../vendors/templates.ts';

/**
 * What the one-time form asks for, decided from the model's credential kind and its
 * template: one or two credential choices (Bedrock: an IAM key pair or a Bedrock API key,
 * never both), a textarea for a pasted OAuth credentials file, and the optional Google Cloud
 * project id of Gemini CLI. The page renders it, the server checks POSTs against it, and the
 * worker uses `submittedCredential` to follow the choice the user made.
 */

export interface CredentialOption {
  kind: CredentialKind;
  /** The secrets this option seals, in form order. */
  env_vars: string[];
}

export interface CredentialForm {
  /** The first is the one the request asked for (selected on the page). */
  options: CredentialOption[];
  /** Gemini CLI: an optional, non-secret Google Cloud project id box. */
  project_id: boolean;
  /** oauth_json: the provider whose CLI wrote the file (for the hint on where to find it). */
  oauth_provider?: string;
}

/** A pasted credentials file: the page and the server refuse more than this. */
export const MAX_FILE_BYTES = 16 * 1024;
/** One key: the page's input takes up to 4096 characters. */
export const MAX_KEY_BYTES = 4096;
/** Google Cloud project id: 6–30 of a-z 0-9 -, starting with a letter, not ending with '-'. */
export const PROJECT_ID_RE = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** "Keep this key" choices, in days (absent / null: never). */
export const EXPIRY_DAYS: readonly number[] = [1, 7, 30];

export function maxPlaintextBytes(kind: CredentialKind): number {
  return kind === 'oauth_json' ? MAX_FILE_BYTES : MAX_KEY_BYTES;
}

/** The template's two accepted shapes, when it has an alternative. */
function shapesOf(t: Template | undefined): [CredentialOption, CredentialOption] | undefined {
  const alt = t?.credential.alternative;
  if (!t || !alt) return undefined;
  return [
    { kind: t.credential.kind, env_vars: [t.env_var, ...t.extra_env_vars] },
    { kind: alt.kind, env_vars: [alt.env_var] },
  ];
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * The form for a request. Without a model (a request for an entry not in the registry) it is
 * one plain key per env var, as before.
 */
export function credentialForm(
  envVars: string[],
  model: Pick<CustomModel, 'vendor' | 'api_key_env' | 'extra_env_vars' | 'credential_kind' | 'oauth'> | undefined,
  template: Template | undefined = model ? getTemplate(model.vendor) : undefined,
): CredentialForm {
  const shapes = model && template?.id === model.vendor ? shapesOf(template) : undefined;
  const current = model ? [model.api_key_env, ...model.extra_env_vars] : [];
  // Entries saved before credential_kind existed: the template shape they use tells.
  const kind: CredentialKind = model?.credential_kind ?? shapes?.find((s) => sameSet(s.env_vars, current))?.kind ?? 'api_key';
  const options: CredentialOption[] = [{ kind, env_vars: [...envVars] }];
  if (shapes) {
    // The other shape than the one the model uses now.
    const other = shapes.find((s) => !sameSet(s.env_vars, current) && !s.env_vars.some((e) => envVars.includes(e)));
    if (other) options.push({ kind: other.kind, env_vars: [...other.env_vars] });
  }
  const oauth = kind === 'oauth_json' ? model?.oauth : undefined;
  return {
    options,
    project_id: oauth?.project_id === 'optional',
    ...(oauth ? { oauth_provider: oauth.provider } : {}),
  };
}

/** The option whose secrets are exactly these names, if any. */
export function optionFor(form: CredentialForm, names: readonly string[]): CredentialOption | undefined {
  return form.options.find((o) => sameSet(o.env_vars, names));
}

/**
 * The model as the worker should probe it for a submission sealing `sealedNames`: when they
 * are exactly the template's other accepted shape (a Bedrock API key for a key-pair model, or
 * the reverse), a copy switched to it; otherwise the model itself.
 */
export function submittedCredential<M extends CustomModel>(model: M, sealedNames: readonly string[], template: Template | undefined = getTemplate(model.vendor)): M {
  const shapes = shapesOf(template);
  if (!shapes || template!.id !== model.vendor) return model;
  if (sameSet([model.api_key_env, ...model.extra_env_vars], sealedNames)) return model;
  const chosen = shapes.find((s) => sameSet(s.env_vars, sealedNames));
  if (!chosen) return model;
  return { ...model, credential_kind: chosen.kind, api_key_env: chosen.env_vars[0]!, extra_env_vars: chosen.env_vars.slice(1) };
}

/** Parses the posted expiry: 1, 7, 30, or null / absent (never). */
export function parseExpiry(raw: unknown): { ok: true; value: number | null | undefined } | { ok: false } {
  if (raw === undefined) return { ok: true, value: undefined };
  if (raw === null) return { ok: true, value: null };
  return typeof raw === 'number' && EXPIRY_DAYS.includes(raw) ? { ok: true, value: raw } : { ok: false };
}
