import path from 'node:path';
import { ByokError } from './errors.ts';

/** Everything the process reads from its environment, read in one place. */
export interface Config {
  dataDir: string;
  port: number;
  host: string;
  publicUrl: string;
  redisUrl?: string;
  /** Redis key prefix; tests give each file its own. */
  redisPrefix: string;
  masterKey?: string;
  /** Old master keys still readable until `byok rotate-master-key` (BYOK_MASTER_KEY_PREVIOUS). */
  masterKeyPrevious?: string;
  allowPrivateBaseUrls: boolean;
  /** Hosts (or host:port) allowed even when they resolve to private addresses. */
  baseUrlAllowlist: string[];
  tokenTtlMs: number;
  platformModelsFile?: string;
  telegram?: { token: string; webhookUrl?: string; webhookSecret?: string; apiRoot?: string };
  wechat?: { puppet: string; token?: string };
  logLevel: string;
  /** BullMQ job lock, ms (BYOK_JOB_LOCK_MS, default 5000): a crashed worker's jobs move on after about this long. */
  jobLockMs: number;
  /** Key validation: one vendor try (BYOK_VALIDATE_PROBE_TIMEOUT_MS, 10 s) and the whole job (BYOK_VALIDATE_BUDGET_MS, 45 s). */
  validateProbeTimeoutMs: number;
  validateBudgetMs: number;
  /** A form POST answers within this long even when the store is unreachable (BYOK_SUBMIT_DEADLINE_MS, 5 s). */
  submitDeadlineMs: number;
  /** How often a worker queues saved submissions that were never queued (BYOK_SWEEP_MS, 30 s). */
  sweepMs: number;
  /** On SIGTERM, how long answers in flight may finish before they are cut with a notice (BYOK_DRAIN_SECONDS, 20 s). */
  drainMs: number;
  /** Reverse-proxy hops trusted for the client address (TRUST_PROXY, default 0: none). */
  trustProxyHops: number;
  /** Operator secret for admin-only routes such as /wechat/qr from a non-loopback peer (BYOK_ADMIN_SECRET). */
  adminSecret?: string;
  /** Operator admins, who manage platform models in chat: channel user ids (BYOK_ADMINS=tg:123,wx:abc). */
  admins: string[];
  /** How often stored keys are re-checked with the vendor (BYOK_KEY_HEALTH_INTERVAL_HOURS, 24; 0: never). */
  keyHealthIntervalMs: number;
  /** Health probes at once per run (BYOK_KEY_HEALTH_CONCURRENCY, 4). */
  keyHealthConcurrency: number;
  /** How often expired keys are deleted and "expires tomorrow" notices sent (BYOK_KEY_EXPIRY_SWEEP_MINUTES, 15; 0: never). */
  keyExpirySweepMs: number;
  /** A vendor that sends nothing for this long is given up on, with a notice (BYOK_VENDOR_IDLE_TIMEOUT_SECONDS, 60; 0: never). */
  vendorIdleTimeoutMs: number;
}

/** BYOK_ADMINS: comma-separated channel user ids (tg:123, wx:abc, local); empty: nobody. */
export function operatorAdmins(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.BYOK_ADMINS || '').split(',').map((s) => s.trim()).filter(Boolean);
}

/** A non-negative number (fractions allowed: tests run hourly jobs every few seconds). */
function num(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new ByokError('config', `${name} must be a non-negative number, got "${v}"`);
  return n;
}

function int(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new ByokError('config', `${name} must be a non-negative integer, got "${v}"`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const port = int('PORT', env.PORT, 8787);
  const host = env.HOST || '127.0.0.1';
  const tg = env.TELEGRAM_BOT_TOKEN
    ? {
        token: env.TELEGRAM_BOT_TOKEN,
        webhookUrl: env.TELEGRAM_WEBHOOK_URL || undefined,
        webhookSecret: env.TELEGRAM_WEBHOOK_SECRET || undefined,
        apiRoot: env.TELEGRAM_API_ROOT || undefined,
      }
    : undefined;
  return {
    dataDir: path.resolve(env.BYOK_DATA_DIR || './data'),
    port,
    host,
    publicUrl: (env.PUBLIC_URL || `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`).replace(/\/+$/, ''),
    redisUrl: env.REDIS_URL || undefined,
    redisPrefix: env.BYOK_REDIS_PREFIX || 'byok:',
    masterKey: env.BYOK_MASTER_KEY || undefined,
    masterKeyPrevious: env.BYOK_MASTER_KEY_PREVIOUS || undefined,
    allowPrivateBaseUrls: env.BYOK_ALLOW_PRIVATE_BASE_URLS === '1',
    baseUrlAllowlist: (env.BYOK_BASE_URL_ALLOWLIST || '').split(',').map((s) => s.trim()).filter(Boolean),
    tokenTtlMs: int('BYOK_TOKEN_TTL_SECONDS', env.BYOK_TOKEN_TTL_SECONDS, 15 * 60) * 1000,
    platformModelsFile: env.BYOK_PLATFORM_MODELS || undefined,
    telegram: tg,
    wechat: env.WECHATY_PUPPET ? { puppet: env.WECHATY_PUPPET, token: env.WECHATY_PUPPET_SERVICE_TOKEN } : undefined,
    logLevel: env.LOG_LEVEL || 'info',
    jobLockMs: int('BYOK_JOB_LOCK_MS', env.BYOK_JOB_LOCK_MS, 5_000) || 5_000,
    validateProbeTimeoutMs: int('BYOK_VALIDATE_PROBE_TIMEOUT_MS', env.BYOK_VALIDATE_PROBE_TIMEOUT_MS, 10_000) || 10_000,
    validateBudgetMs: int('BYOK_VALIDATE_BUDGET_MS', env.BYOK_VALIDATE_BUDGET_MS, 45_000) || 45_000,
    submitDeadlineMs: int('BYOK_SUBMIT_DEADLINE_MS', env.BYOK_SUBMIT_DEADLINE_MS, 5_000) || 5_000,
    sweepMs: int('BYOK_SWEEP_MS', env.BYOK_SWEEP_MS, 30_000) || 30_000,
    drainMs: int('BYOK_DRAIN_SECONDS', env.BYOK_DRAIN_SECONDS, 20) * 1000,
    trustProxyHops: Math.max(0, Math.floor(Number(env.TRUST_PROXY) || 0)),
    adminSecret: env.BYOK_ADMIN_SECRET || undefined,
    admins: operatorAdmins(env),
    keyHealthIntervalMs: Math.round(num('BYOK_KEY_HEALTH_INTERVAL_HOURS', env.BYOK_KEY_HEALTH_INTERVAL_HOURS, 24) * 3_600_000),
    keyHealthConcurrency: Math.max(1, int('BYOK_KEY_HEALTH_CONCURRENCY', env.BYOK_KEY_HEALTH_CONCURRENCY, 4)),
    keyExpirySweepMs: Math.round(num('BYOK_KEY_EXPIRY_SWEEP_MINUTES', env.BYOK_KEY_EXPIRY_SWEEP_MINUTES, 15) * 60_000),
    vendorIdleTimeoutMs: Math.round(num('BYOK_VENDOR_IDLE_TIMEOUT_SECONDS', env.BYOK_VENDOR_IDLE_TIMEOUT_SECONDS, 60) * 1000),
  };
}
