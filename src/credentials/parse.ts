import { CredentialFileError } from './errors.ts';
import { CLI_NAMES, type OAuthProvider, type TokenSet } from './types.ts';

/** A credentials file is a few hundred bytes; anything past this is not one. */
export const MAX_CREDENTIAL_FILE_BYTES = 16 * 1024;

/** Where each CLI keeps the file, for messages. */
export const CREDENTIAL_FILE_PATHS: Record<OAuthProvider, string> = {
  'qwen-code': '~/.qwen/oauth_creds.json',
  'gemini-cli': '~/.gemini/oauth_creds.json',
  'claude-code': '~/.claude/.credentials.json',
};

/** A Google Cloud project id: 6–30 lowercase letters, digits, hyphens (legacy ids may carry a domain prefix). */
const PROJECT_ID_RE = /^(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
/** Qwen's resource_url: a host name (`portal.qwen.ai`), optionally with scheme, port and path. */
const RESOURCE_URL_RE = /^(?:https?:\/\/)?[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~/-]*)?$/;

function fail(key: 'cred.too_large' | 'cred.not_json' | 'cred.not_object' | 'cred.wrong_cli' | 'cred.missing_field' | 'cred.bad_field' | 'cred.bad_project', provider: OAuthProvider, params: Record<string, string>, message: string): never {
  throw new CredentialFileError(key, { cli: CLI_NAMES[provider], file: CREDENTIAL_FILE_PATHS[provider], ...params }, message);
}

/**
 * The JSON object inside what was pasted. Users paste the file as it is, inside a code fence,
 * or after its path; the object from the first `{` to the last `}` is taken. Parser errors are
 * replaced with our own text: Node's JSON.parse messages quote the input.
 */
function jsonObject(provider: OAuthProvider, text: string): Record<string, unknown> {
  const cli = CLI_NAMES[provider];
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) fail('cred.not_json', provider, {}, `this is not the ${cli} credentials file (no JSON object found)`);
  let doc: unknown;
  try {
    doc = JSON.parse(text.slice(start, end + 1));
  } catch {
    fail('cred.not_json', provider, {}, `the pasted ${cli} credentials file is not valid JSON (was it cut short?)`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) fail('cred.not_object', provider, {}, `the pasted ${cli} credentials file is not a JSON object`);
  return doc as Record<string, unknown>;
}

/** Which CLI most likely wrote this object, from marks only that CLI leaves; undefined when unsure. */
export function detectProvider(doc: Record<string, unknown>): OAuthProvider | undefined {
  if (doc.claudeAiOauth && typeof doc.claudeAiOauth === 'object') return 'claude-code';
  const access = typeof doc.access_token === 'string' ? doc.access_token : '';
  const refresh = typeof doc.refresh_token === 'string' ? doc.refresh_token : '';
  const scope = typeof doc.scope === 'string' ? doc.scope : '';
  // Google tokens: ya29. access tokens, 1// refresh tokens, googleapis.com scopes.
  if (access.startsWith('ya29.') || refresh.startsWith('1//') || scope.includes('googleapis.com')) return 'gemini-cli';
  if (typeof doc.resource_url === 'string' || scope.includes('model.completion')) return 'qwen-code';
  return undefined;
}

function str(provider: OAuthProvider, obj: Record<string, unknown>, field: string, path: string, required: boolean): string {
  const v = obj[field];
  if (v === undefined || v === null || v === '') {
    if (required) fail('cred.missing_field', provider, { field: path }, `the ${CLI_NAMES[provider]} credentials file has no "${path}"; log in again in ${CLI_NAMES[provider]} and paste the whole file`);
    return '';
  }
  if (typeof v !== 'string' || /\s/.test(v)) fail('cred.bad_field', provider, { field: path }, `"${path}" in the ${CLI_NAMES[provider]} credentials file is not a token`);
  return v;
}

/** Epoch ms from a number or numeric string; seconds are taken for ms-sized values' tenth-power mistakes. */
function expiry(provider: OAuthProvider, obj: Record<string, unknown>, field: string, path: string): number {
  const v = obj[field];
  if (v === undefined || v === null || v === '') return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0) fail('cred.bad_field', provider, { field: path }, `"${path}" in the ${CLI_NAMES[provider]} credentials file is not a time`);
  // The CLIs write ms; a value in seconds (before the year 2286) is scaled up.
  return n < 1e11 ? n * 1000 : n;
}

function projectIdOf(provider: OAuthProvider, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const v = typeof value === 'string' ? value.trim() : '';
  if (!PROJECT_ID_RE.test(v)) fail('cred.bad_project', provider, {}, 'the Google Cloud project id is not valid (6–30 lowercase letters, digits and hyphens, starting with a letter)');
  return v;
}

/**
 * Parses and checks a pasted OAuth credentials file for `provider`. Throws
 * CredentialFileError naming the problem (too large, not JSON, another CLI's file, a missing
 * field); the message never quotes the content. Gemini CLI: a project id given beside the
 * file (`opts.projectId`) wins over `projectId`/`project_id` inside it.
 */
export function parseCredentialFile(provider: OAuthProvider, text: string, opts: { projectId?: string } = {}): TokenSet {
  const cli = CLI_NAMES[provider];
  if (Buffer.byteLength(text, 'utf8') > MAX_CREDENTIAL_FILE_BYTES) {
    fail('cred.too_large', provider, { max: String(MAX_CREDENTIAL_FILE_BYTES / 1024) }, `the pasted text is larger than ${MAX_CREDENTIAL_FILE_BYTES / 1024} KiB; paste only the ${cli} credentials file`);
  }
  const doc = jsonObject(provider, text);
  const found = detectProvider(doc);
  if (found && found !== provider) {
    fail('cred.wrong_cli', provider, { found: CLI_NAMES[found] }, `this looks like a ${CLI_NAMES[found]} file, not a ${cli} one`);
  }
  return tokenSetOf(provider, doc, opts);
}

/** The TokenSet of an already parsed file object (also used to read back a sealed set). */
export function tokenSetOf(provider: OAuthProvider, doc: Record<string, unknown>, opts: { projectId?: string } = {}): TokenSet {
  if (provider === 'claude-code') {
    const inner = doc.claudeAiOauth;
    if (!inner || typeof inner !== 'object' || Array.isArray(inner)) {
      fail('cred.missing_field', provider, { field: 'claudeAiOauth' }, `the Claude Code credentials file has no "claudeAiOauth"; log in again in Claude Code and paste the whole file`);
    }
    const o = inner as Record<string, unknown>;
    return {
      provider,
      access_token: str(provider, o, 'accessToken', 'claudeAiOauth.accessToken', false),
      refresh_token: str(provider, o, 'refreshToken', 'claudeAiOauth.refreshToken', true),
      expiry_ms: expiry(provider, o, 'expiresAt', 'claudeAiOauth.expiresAt'),
      doc,
    };
  }
  const ts: TokenSet = {
    provider,
    access_token: str(provider, doc, 'access_token', 'access_token', false),
    refresh_token: str(provider, doc, 'refresh_token', 'refresh_token', true),
    expiry_ms: expiry(provider, doc, 'expiry_date', 'expiry_date'),
    doc,
  };
  if (provider === 'qwen-code') {
    const r = doc.resource_url;
    if (r !== undefined && r !== null && r !== '') {
      if (typeof r !== 'string' || !RESOURCE_URL_RE.test(r)) fail('cred.bad_field', provider, { field: 'resource_url' }, `"resource_url" in the Qwen Code credentials file is not a host name`);
      ts.resource_url = r;
    }
  } else {
    const project = projectIdOf(provider, opts.projectId) ?? projectIdOf(provider, doc.projectId ?? doc.project_id);
    if (project) ts.project_id = project;
  }
  return ts;
}
