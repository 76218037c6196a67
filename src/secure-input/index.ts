/** One-time secure-input links: issue, show the form, redeem, status. */
export {
  EnvInputRequests,
  hashToken,
  isTokenShaped,
  type DeadReason,
  type EnvInputError,
  type EnvInputParams,
  type EnvInputRecord,
  type EnvInputStatus,
  type EnvInputStatusInput,
  type LookupResult,
  type RequestResult,
} from './tokens.ts';
export {
  buildServer,
  CSP,
  DEFAULT_RATE_LIMITS,
  type BoxKeySource,
  type RateLimits,
  type SecureInputDeps,
  type ServerLogger,
  type SubmissionContext,
} from './server.ts';
export { escapeHtml, renderFormPage, renderGonePage, renderNotFoundPage } from './page.ts';
