import { ByokError } from '../errors.ts';
import { tokenSetOf } from './parse.ts';
import type { OAuthProvider, TokenSet } from './types.ts';

/**
 * A TokenSet written back in its CLI's own file shape, with every field this code does not
 * use (scopes, subscriptionType, id_token, token_type...) kept as pasted: what is sealed is
 * still a file the CLI itself would read. Compact JSON (no indentation) to stay well under
 * the vault's size limit.
 */
export function tokenSetDoc(ts: TokenSet): Record<string, unknown> {
  const doc: Record<string, unknown> = { ...ts.doc };
  if (ts.provider === 'claude-code') {
    const inner = { ...((doc.claudeAiOauth as Record<string, unknown> | undefined) ?? {}) };
    inner.accessToken = ts.access_token;
    inner.refreshToken = ts.refresh_token;
    inner.expiresAt = ts.expiry_ms;
    doc.claudeAiOauth = inner;
    return doc;
  }
  doc.access_token = ts.access_token;
  doc.refresh_token = ts.refresh_token;
  doc.expiry_date = ts.expiry_ms;
  if (ts.provider === 'qwen-code' && ts.resource_url) doc.resource_url = ts.resource_url;
  if (ts.provider === 'gemini-cli' && ts.project_id) {
    // Written where the file had it (projectId or project_id), else as project_id.
    if ('projectId' in doc && !('project_id' in doc)) doc.projectId = ts.project_id;
    else doc.project_id = ts.project_id;
  }
  return doc;
}

/** The bytes sealed in the vault (the caller wipes them after vault.put). */
export function serializeTokenSet(ts: TokenSet): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(tokenSetDoc(ts)));
}

/**
 * Reads a sealed set back. The bytes were checked when they were stored, so a failure here is
 * an internal error (a record sealed under another kind), never user input.
 */
export function deserializeTokenSet(provider: OAuthProvider, bytes: Uint8Array): TokenSet {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ByokError('internal', 'the stored OAuth credential is not a credentials file; paste the file again', { reason: 'credential_unreadable' });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ByokError('internal', 'the stored OAuth credential is not a credentials file; paste the file again', { reason: 'credential_unreadable' });
  }
  return tokenSetOf(provider, doc as Record<string, unknown>);
}
