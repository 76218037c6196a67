import { ByokError } from '../errors.ts';
import type { MessageKey } from '../i18n/index.ts';
import { VendorError } from '../vendors/errors.ts';
import { CLI_NAMES, type OAuthProvider } from './types.ts';

/**
 * A pasted credentials file that is not usable as it is: a definite answer (never retried)
 * naming the problem. `key`/`params` give the user-facing text in either language; the
 * English message is what logs and the registry keep. Never carries file content.
 */
export class CredentialFileError extends ByokError {
  constructor(
    readonly key: MessageKey,
    readonly params: Record<string, string>,
    message: string,
  ) {
    super('invalid_input', message, { reason: 'credential_file', key });
    this.name = 'CredentialFileError';
  }
}

export function isCredentialFileError(e: unknown): e is CredentialFileError {
  return e instanceof CredentialFileError;
}

/** The vendor code a refused refresh token carries through VendorError.vendorCode. */
export const LOGIN_AGAIN = 'oauth_login_again';

/**
 * The token endpoint refused the refresh token (revoked, expired, rotated away): only a new
 * login in the CLI helps. Classified invalid_key so the model goes to key_error.
 */
export function loginAgainError(provider: OAuthProvider, status: number | undefined, vendorCode?: string): VendorError {
  const cli = CLI_NAMES[provider];
  return new VendorError('invalid_key', `${cli} refused the saved login${vendorCode ? ` (${vendorCode})` : ''}: log in again in ${cli} and paste the new file`, {
    status,
    whatToDo: 'resubmit_key',
    vendorCode: LOGIN_AGAIN,
  });
}

export function isLoginAgain(e: unknown): boolean {
  return e instanceof VendorError && e.vendorCode === LOGIN_AGAIN;
}
