import type { OAuthConfig } from '../vendors/template-schema.ts';

/** Which CLI wrote a credentials file. */
export type OAuthProvider = OAuthConfig['provider'];

/** The CLIs by their own names, for messages. */
export const CLI_NAMES: Record<OAuthProvider, string> = {
  'qwen-code': 'Qwen Code',
  'gemini-cli': 'Gemini CLI',
  'claude-code': 'Claude Code',
};

/**
 * A pasted OAuth credentials file, normalised. The token strings live only as long as one
 * refresh or one vendor call (strings cannot be wiped); at rest the set is sealed in the
 * vault in the vendor's own file shape (see serialize.ts).
 */
export interface TokenSet {
  provider: OAuthProvider;
  /** Empty when the file had none (it is refreshed before use). */
  access_token: string;
  refresh_token: string;
  /** When the access token expires, ms since the epoch; 0 when unknown (refreshed before use). */
  expiry_ms: number;
  /** Qwen Code: the API host the token is issued for (`portal.qwen.ai`). */
  resource_url?: string;
  /** Gemini CLI: the Google Cloud project Code Assist bills (given, or found by loadCodeAssist). */
  project_id?: string;
  /**
   * The parsed file as pasted, so it is written back in its own shape with the fields this
   * code does not use (scopes, subscriptionType, id_token...) kept.
   */
  doc: Record<string, unknown>;
}

/** The access token is missing, expired, or expires within `skewMs`. */
export function needsRefresh(ts: TokenSet, now: number, skewMs: number): boolean {
  return !ts.access_token || !ts.expiry_ms || ts.expiry_ms - skewMs <= now;
}
