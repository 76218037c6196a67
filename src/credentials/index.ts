/**
 * OAuth credential files (Qwen Code, Gemini CLI, Claude Code): the shape check of a pasted
 * file, the token refresh of each CLI, one refresh at a time across processes, and the call
 * wrapper the relay, validation and health checks use for every kind of credential.
 */
export { CredentialFileError, isCredentialFileError, isLoginAgain, LOGIN_AGAIN, loginAgainError } from './errors.ts';
export { CREDENTIAL_FILE_PATHS, detectProvider, MAX_CREDENTIAL_FILE_BYTES, parseCredentialFile } from './parse.ts';
export { REFRESH_TIMEOUT_MS, refreshTokenSet, type RefreshOptions } from './refresh.ts';
export { deserializeTokenSet, serializeTokenSet, tokenSetDoc } from './serialize.ts';
export { DEFAULT_REFRESH_LOCK, readStoredSet, refreshShared, type CredentialDeps, type CredentialStore, type CredentialVault, type RefreshLockTimes, type StoredSet } from './shared-refresh.ts';
export { CLI_NAMES, needsRefresh, type OAuthProvider, type TokenSet } from './types.ts';
export {
  modelForTokenSet,
  probeResultOf,
  probeTokenSet,
  probeWithCredentials,
  qwenBaseUrl,
  withModelCredentials,
  type CredentialCall,
  type CredentialInfo,
  type MaybeCredentialDeps,
  type Probe,
} from './with-credentials.ts';
