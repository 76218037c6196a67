/** What buildServer takes (deps, limits, logger) and what its route modules share. */
import type { FastifyRequest } from 'fastify';
import type { CustomModel } from '../registry/index.ts';
import type { Store } from '../store/types.ts';
import type { CredentialForm } from './credential-form.ts';
import type { EnvInputRecord, EnvInputRequests } from './tokens.ts';

/** The worker's box key pair, public half (from `src/secrets/box-keys.ts`). */
export interface BoxKeySource {
  current(): Promise<{ id: string; publicKey: Uint8Array }>;
  /**
   * Opens a box (the caller wipes the result). When given, every POSTed box must open
   * before the link is redeemed: a plaintext key written in the base64 alphabet has the
   * shape of a box, and only opening tells them apart.
   */
  open?(id: string, sealed: Uint8Array): Promise<Uint8Array>;
}

export interface SubmissionContext {
  /** The redeemed request (workspace, channel, env vars, model, lang...). */
  record: EnvInputRecord;
  token_hash: string;
  /** The sealed box of the first (usually only) env var of the chosen credential. */
  sealed: Uint8Array;
  /**
   * Every sealed box, by env var name: one per env var of the credential the user chose
   * (`record.env_vars`, or the template's alternative, e.g. a Bedrock API key).
   */
  boxes: Record<string, Uint8Array>;
  /** The box key id the page sealed with (equal to `boxKeys.current().id` at redeem time). */
  key_id: string;
  /** "Keep this key" on the form: 1, 7 or 30 days; null: never; undefined: not asked. */
  expires_in_days?: number | null;
  /** Gemini CLI: the optional Google Cloud project id (validated, not secret). */
  project_id?: string;
}

export interface RateLimits {
  /** Window of the per-IP counters. */
  windowMs: number;
  /** `GET /s/<token>` per IP per window. */
  pageGetsPerIp: number;
  /** `GET /s/<token>/status` per IP per window (the page polls every second). */
  statusGetsPerIp: number;
  /** `/assets/*` per IP per window. */
  assetGetsPerIp: number;
  /** `POST /s/<token>` per IP per window. */
  postsPerIp: number;
  /** `POST /s/<token>` attempts per token (over `postsPerTokenWindowMs`). */
  postsPerToken: number;
  postsPerTokenWindowMs: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  windowMs: 60_000,
  pageGetsPerIp: 30,
  statusGetsPerIp: 180,
  assetGetsPerIp: 300,
  postsPerIp: 20,
  postsPerToken: 5,
  postsPerTokenWindowMs: 60 * 60_000,
};

type LogFn = (obj: object, msg?: string) => void;
export interface ServerLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export interface SecureInputDeps {
  store: Store;
  requests: EnvInputRequests;
  boxKeys: BoxKeySource;
  /** Stores the sealed box(es) and enqueues `validate-key`. A throw puts the token back. */
  onSubmit: (ctx: SubmissionContext) => Promise<void>;
  logger: ServerLogger;
  rateLimits?: Partial<RateLimits>;
  /**
   * Optional launch check (Telegram Mini App `initData`, see `request.telegramInitData`).
   * Called on `POST /s/<token>` before the token is redeemed; `false` answers 403 and leaves
   * the token usable. (The page `GET` cannot carry initData: it lives in the URL fragment.)
   */
  verifyLaunch?: (record: EnvInputRecord, req: FastifyRequest) => Promise<boolean>;
  /** Behind a reverse proxy: trust X-Forwarded-For for the client IP (rate limits). */
  trustProxy?: boolean | string | string[] | ((address: string, hop: number) => boolean);
  /** Maximum POST body of a key form, bytes (default 16 KiB); a credentials-file form takes up to 32 KiB. */
  bodyLimit?: number;
  /**
   * Reads the model a request is for (its credential kind decides the form). Defaults to a
   * registry over `store`; a model that cannot be read gets the plain key form.
   */
  getModel?: (workspace: string, modelId: string) => Promise<CustomModel | undefined>;
  /** A form POST answers within this long, whatever the store does (default 5 s). */
  submitDeadlineMs?: number;
}

/** Built once by buildServer from its deps; the route modules read it. */
export interface ServerEnv {
  deps: SecureInputDeps;
  limits: RateLimits;
  /** Maximum POST body of a key form (a credentials-file form may go up to Fastify's limit). */
  keyBodyLimit: number;
  submitDeadlineMs: number;
  /** Token hashes of committed POSTs answered at the deadline and still running here. */
  lateSubmissions: Set<string>;
  /** The form of a request: from its model's credential kind (a plain key form when unreadable). */
  formFor(record: EnvInputRecord): Promise<CredentialForm>;
}
