import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { t, type Lang } from '../i18n/index.ts';
import { createRegistry } from '../registry/registry.ts';
import type { CustomModel } from '../registry/types.ts';
import type { Store } from '../store/types.ts';
import {
  credentialForm,
  MAX_FILE_BYTES,
  maxPlaintextBytes,
  optionFor,
  parseExpiry,
  PROJECT_ID_RE,
  type CredentialForm,
} from './credential-form.ts';
import { FORM_CSS, renderErrorPage, renderFormPage, renderGonePage, renderNotFoundPage, statusTexts } from './page.ts';
import { hashToken, isTokenShaped, type EnvInputRecord, type EnvInputRequests, type LookupResult } from './tokens.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Telegram Mini App launch data (`initData`) the form forwards in `X-Telegram-Init-Data`,
     * for `verifyLaunch`. Undefined when the form was not opened as a Mini App.
     */
    telegramInitData?: string;
  }
  interface FastifyInstance {
    /**
     * Counts one request of this client (its IPv4 address, or its IPv6 /64) in `bucket` and
     * answers true when over `max` per `windowMs`. For routes channels mount (/wechat/qr).
     */
    limitPerClient(req: FastifyRequest, bucket: string, max: number, windowMs: number): Promise<boolean>;
  }
}

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

export const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const DEFAULT_BODY_LIMIT = 16 * 1024;
/** A sealed 16 KiB credentials file is ~22 KB of base64, plus the JSON around it. */
const FILE_BODY_LIMIT = 32 * 1024;
const DEFAULT_SUBMIT_DEADLINE_MS = 5_000;
const SEAL_OVERHEAD = 48; // crypto_box_SEALBYTES
/** Sealed plaintext bounds: no key is shorter than 8; the upper bound is per kind (credential-form.ts). */
const MIN_PLAINTEXT_BYTES = 8;
/** What the page sends: standard base64 (sodium's ORIGINAL variant), padded. */
const STD_B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The rate-limit identity of a client: an IPv4 address (IPv4-mapped IPv6 included) as is, an
 * IPv6 address by its /64 (a client rotating addresses within its own prefix is one client).
 */
export function clientKey(ip: string | undefined): string {
  const a = (ip ?? '').trim().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(a);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return a ? `other:${a.slice(0, 64)}` : 'unknown';
  const h = ipv6Hextets(a);
  if (h.slice(0, 5).every((x) => x === '0') && h[5] === 'ffff') {
    const [hi, lo] = [parseInt(h[6]!, 16), parseInt(h[7]!, 16)];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${h.slice(0, 4).join(':')}::/64`;
}

/** The eight hextets of an IPv6 address (lower case, no leading zeros), `::` expanded. */
function ipv6Hextets(a: string): string[] {
  let s = a.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) becomes two hextets.
  const quad = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    s = `${s.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0');
  return [...h, ...fill, ...t].map((x) => (parseInt(x || '0', 16) || 0).toString(16));
}

interface Asset {
  body: Buffer;
  type: string;
}

/**
 * The browser script `public/form.js`: next to this file in the sources; from the build
 * (dist/src/secure-input/) it is read from the package's own src/secure-input/public/, so the
 * build does not copy it.
 */
function formScriptPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'public', 'form.js');
  if (existsSync(beside)) return beside;
  for (let dir = path.dirname(here); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const inSources = path.join(dir, 'src', 'secure-input', 'public', 'form.js');
    if (existsSync(inSources)) return inSources;
  }
  return beside; // unreadable: loadAssets fails and the asset route answers an error
}

let assetsPromise: Promise<Record<string, Asset>> | undefined;

/**
 * libsodium for the browser, from our own origin: the UMD builds from node_modules. The core
 * (`libsodium.js`, wasm inlined, sets `window.libsodium`) loads first, then the wrappers
 * (`sodium.js`, sets `window.sodium`). Instantiating the wasm needs `'wasm-unsafe-eval'`.
 */
function loadAssets(): Promise<Record<string, Asset>> {
  assetsPromise ??= (async () => {
    const require = createRequire(import.meta.url);
    const wrappersMain = require.resolve('libsodium-wrappers'); // dist/modules/libsodium-wrappers.js (UMD)
    const coreMain = require.resolve('libsodium'); // dist/modules/libsodium.js (UMD)
    const js = 'text/javascript; charset=utf-8';
    const [wrappers, core, form] = await Promise.all([
      readFile(wrappersMain),
      readFile(coreMain),
      readFile(formScriptPath()),
    ]);
    return {
      'sodium.js': { body: wrappers, type: js },
      'libsodium.js': { body: core, type: js },
      'form.js': { body: form, type: js },
      'form.css': { body: Buffer.from(FORM_CSS, 'utf8'), type: 'text/css; charset=utf-8' },
    };
  })();
  assetsPromise.catch(() => {
    assetsPromise = undefined;
  });
  return assetsPromise;
}

/**
 * The language of a page about a form: `?lang=` (the link and the page's own status polls
 * carry it), else the requester's language, else — when the requester never chose one
 * (`lang_default`) — the browser's Accept-Language.
 */
function recordLang(req: FastifyRequest, r: { lang: Lang; lang_default?: true }): Lang {
  return pickLang(req, r.lang_default ? undefined : r.lang);
}

/** The status is read by the page, which names its language (`?lang=zh`); without it, English. */
function statusLang(req: FastifyRequest): Lang {
  return (req.query as Record<string, unknown> | undefined)?.lang === 'zh' ? 'zh' : 'en';
}

function pickLang(req: FastifyRequest, fallback?: Lang): Lang {
  const q = (req.query as Record<string, unknown> | undefined)?.lang;
  if (q === 'zh' || q === 'en') return q;
  if (fallback) return fallback;
  const al = req.headers['accept-language'];
  return typeof al === 'string' && /^\s*zh\b/i.test(al) ? 'zh' : 'en';
}

/** The POST body's size: Content-Length, else the parsed body re-serialized (chunked uploads). */
function bodyBytes(req: FastifyRequest): number {
  const n = Number(req.headers['content-length']);
  if (Number.isFinite(n) && n >= 0) return n;
  try {
    return Buffer.byteLength(JSON.stringify(req.body ?? null));
  } catch {
    return Infinity;
  }
}

function asAnswer(d: { status: number; body: Record<string, unknown> }): { code: number; body: Record<string, unknown> } {
  return { code: d.status, body: d.body };
}

function deadJson(dead: Extract<LookupResult, { ok: false }>): { status: number; body: Record<string, unknown> } {
  if (dead.reason === 'not_found') return { status: 404, body: { ok: false, code: 'not_found', error: 'Unknown link.' } };
  if (dead.reason === 'expired') {
    return { status: 410, body: { ok: false, code: 'expired', reason: 'expired', error: 'This link has expired; ask the bot for a new one.' } };
  }
  return {
    status: 410,
    body: {
      ok: false,
      code: 'already_used',
      reason: dead.reason,
      error: dead.reason === 'voided' ? 'This link was replaced by a newer one.' : 'This link was already used.',
    },
  };
}

interface PostBody {
  key_id: string;
  sealed: Record<string, string>;
}

interface ParsedPost {
  body: PostBody;
  boxes: Record<string, Uint8Array>;
  /** The env vars of the credential the user chose, in form order. */
  env_vars: string[];
  expires_in_days?: number | null;
  project_id?: string;
}

const FILE_TOO_LARGE = `the credentials file is larger than ${MAX_FILE_BYTES / 1024} KiB; paste only the JSON file the CLI wrote`;

function parseBody(raw: unknown, form: CredentialForm): { ok: true; value: ParsedPost } | { ok: false; error: string } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, error: 'expected a JSON object {key_id, sealed}' };
  const b = raw as Record<string, unknown>;
  if (typeof b.key_id !== 'string' || b.key_id.length === 0 || b.key_id.length > 128) return { ok: false, error: 'key_id is required' };
  const sealed = b.sealed;
  if (!sealed || typeof sealed !== 'object' || Array.isArray(sealed)) return { ok: false, error: 'sealed must be an object {ENV_VAR: base64}' };
  const names = Object.keys(sealed as Record<string, unknown>);
  const expected = new Set(form.options.flatMap((o) => o.env_vars));
  // Never echo what was sent: a name or a value here may be a pasted key.
  for (const env of names) if (!expected.has(env)) return { ok: false, error: 'unexpected env var in sealed' };
  // One credential choice, complete; never the secrets of two.
  const option = optionFor(form, names) ?? (form.options.length === 1 ? form.options[0]! : undefined);
  if (!option) return { ok: false, error: 'send the secrets of one credential choice (all of its fields), not of two' };
  const maxPlain = maxPlaintextBytes(option.kind);
  const boxes: Record<string, Uint8Array> = {};
  for (const env of option.env_vars) {
    const v = (sealed as Record<string, unknown>)[env];
    // Exactly what the page produces: canonical standard base64 of a crypto_box_seal box. A
    // plaintext key (URL-safe alphabet, no padding, a length no box has) is refused here,
    // before the link is redeemed, and nothing of it is kept.
    const maxChars = 4 * Math.ceil((SEAL_OVERHEAD + maxPlain) / 3);
    if (typeof v !== 'string' || v.length === 0 || !STD_B64_RE.test(v)) return { ok: false, error: `sealed.${env} is not a sealed box` };
    if (v.length > maxChars) return { ok: false, error: option.kind === 'oauth_json' ? FILE_TOO_LARGE : `sealed.${env} is not a sealed box` };
    const bytes = Buffer.from(v, 'base64');
    if (bytes.toString('base64') !== v) return { ok: false, error: `sealed.${env} is not a sealed box` };
    const plain = bytes.length - SEAL_OVERHEAD;
    if (plain > maxPlain && option.kind === 'oauth_json') return { ok: false, error: FILE_TOO_LARGE };
    if (plain < MIN_PLAINTEXT_BYTES || plain > maxPlain) return { ok: false, error: `sealed.${env} is not a sealed box` };
    boxes[env] = new Uint8Array(bytes);
  }
  const expiry = parseExpiry(b.expires_in_days);
  if (!expiry.ok) return { ok: false, error: 'expires_in_days must be 1, 7, 30, or null (never)' };
  let project_id: string | undefined;
  if (b.project_id !== undefined && b.project_id !== null && b.project_id !== '') {
    if (!form.project_id) return { ok: false, error: 'project_id is not asked for this credential' };
    if (typeof b.project_id !== 'string' || !PROJECT_ID_RE.test(b.project_id.trim())) {
      return { ok: false, error: 'project_id is not a Google Cloud project ID (6-30 lowercase letters, digits or hyphens, starting with a letter)' };
    }
    project_id = b.project_id.trim();
  }
  return {
    ok: true,
    value: {
      body: { key_id: b.key_id, sealed: sealed as Record<string, string> },
      boxes,
      env_vars: [...option.env_vars],
      ...(expiry.value !== undefined ? { expires_in_days: expiry.value } : {}),
      ...(project_id !== undefined ? { project_id } : {}),
    },
  };
}

/**
 * Whether every box opens with the form key. The plaintext is wiped at once; nothing of a
 * box that does not open is kept. A process without the master key of that key pair (a
 * misconfigured one) cannot tell: the worker decides, as before.
 */
async function checkBoxesOpen(boxKeys: BoxKeySource, keyId: string, boxes: Record<string, Uint8Array>): Promise<boolean | 'stale'> {
  if (!boxKeys.open) return true;
  for (const box of Object.values(boxes)) {
    try {
      (await boxKeys.open(keyId, box)).fill(0);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === 'stale_key_id') return 'stale';
      if (code === 'master_key_unavailable') return true;
      if (code === 'invalid_input' || code === 'too_large') return false;
      throw e;
    }
  }
  return true;
}

export function buildServer(deps: SecureInputDeps): FastifyInstance {
  const boxesOpen = (keyId: string, boxes: Record<string, Uint8Array>) => checkBoxesOpen(deps.boxKeys, keyId, boxes);
  const limits: RateLimits = { ...DEFAULT_RATE_LIMITS, ...(deps.rateLimits ?? {}) };
  const submitDeadlineMs = deps.submitDeadlineMs ?? DEFAULT_SUBMIT_DEADLINE_MS;
  /** Token hashes of committed POSTs answered at the deadline and still running here. */
  const lateSubmissions = new Set<string>();
  const { store, requests, logger } = deps;
  const hsts = requests.publicUrl.startsWith('https://');

  const keyBodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const getModel =
    deps.getModel ??
    (() => {
      const registry = createRegistry({ store });
      return async (ws: string, id: string) => {
        const got = await registry.get(ws, id);
        return got.ok ? got.model : undefined;
      };
    })();
  /** The form of a request: from its model's credential kind (a plain key form when unreadable). */
  async function formFor(record: EnvInputRecord): Promise<CredentialForm> {
    const model = await getModel(record.workspace, record.model_id).catch(() => undefined);
    return credentialForm(record.env_vars, model && model.id === record.model_id && model.status !== 'removed' ? model : undefined);
  }

  const app = Fastify({
    // Fastify's own request logging would write URLs, and a URL here carries a token.
    logger: false,
    // Key forms are held to keyBodyLimit in the POST handler; only a file form takes more.
    bodyLimit: Math.max(keyBodyLimit, FILE_BODY_LIMIT),
    trustProxy: deps.trustProxy ?? false,
    return503OnClosing: true,
  });

  app.decorateRequest('telegramInitData', undefined);

  app.addHook('onRequest', async (req) => {
    const h = req.headers['x-telegram-init-data'];
    if (typeof h === 'string' && h.length > 0 && h.length <= 8192) req.telegramInitData = h;
  });

  // Reading a link never hangs on the store either (a Redis outage: ioredis queues commands
  // until it reconnects): past the submit deadline the page or status answers 503 "busy",
  // the link untouched. A handler finishing later finds the reply sent and is ignored.
  app.addHook('onRequest', async (req, reply) => {
    if (req.method !== 'GET' || !req.url.startsWith('/s/')) return;
    const timer = setTimeout(() => {
      if (reply.sent) return;
      reply.code(503).header('Retry-After', '5');
      if (req.url.split('?')[0].endsWith('/status')) void reply.send({ ok: false, code: 'busy', error: 'The service is busy; try again in a moment.' });
      else void reply.type('text/html; charset=utf-8').send(renderErrorPage(pickLang(req), 503));
    }, submitDeadlineMs);
    timer.unref();
    reply.raw.once('close', () => clearTimeout(timer));
  });

  // Every response, errors and 404s included.
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('Content-Security-Policy', CSP);
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cache-Control', 'no-store');
    reply.header('X-Frame-Options', 'DENY');
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('X-Robots-Tag', 'noindex, nofollow');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
    if (hsts) reply.header('Strict-Transport-Security', 'max-age=31536000');
    return payload;
  });

  // Route pattern only: never the URL (token) nor the body.
  app.addHook('onResponse', async (req, reply) => {
    const entry = {
      method: req.method,
      route: req.routeOptions?.url ?? 'unmatched',
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    };
    if (req.method === 'POST' || reply.statusCode >= 500) logger.info(entry, 'secure-input http');
    else logger.debug(entry, 'secure-input http');
  });

  app.setErrorHandler(async (err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) logger.error({ err: { type: err.name, code: err.code }, route: req.routeOptions?.url }, 'secure-input error');
    let body: Record<string, unknown>;
    if (status === 413) body = { ok: false, code: 'too_large', error: 'The request is too large.' };
    else if (status === 415) body = { ok: false, code: 'invalid_input', error: 'Send application/json.' };
    else if (status < 500) body = { ok: false, code: 'invalid_input', error: 'Bad request.' };
    else body = { ok: false, code: 'internal', error: 'Internal error; try again.' };
    if (req.method === 'GET' && status >= 500 && req.routeOptions?.url === '/s/:token') {
      return reply.code(status).type('text/html; charset=utf-8').send(renderErrorPage(pickLang(req), status));
    }
    return reply.code(status).send(body);
  });

  app.setNotFoundHandler(async (req, reply) => {
    if (req.method === 'GET' && /\btext\/html\b/.test(String(req.headers.accept ?? ''))) {
      return reply.code(404).type('text/html; charset=utf-8').send(renderNotFoundPage(pickLang(req)));
    }
    return reply.code(404).send({ ok: false, code: 'not_found', error: 'Not found.' });
  });

  /** true when over the limit (429 already prepared). */
  async function overLimit(reply: FastifyReply, key: string, max: number, windowMs: number): Promise<boolean> {
    const n = await store.incr(`rl:secure-input:${key}`, windowMs);
    if (n <= max) return false;
    reply.header('Retry-After', String(Math.max(1, Math.ceil(windowMs / 1000))));
    reply.code(429);
    return true;
  }

  app.decorate('limitPerClient', async (req: FastifyRequest, bucket: string, max: number, windowMs: number) =>
    (await store.incr(`rl:${bucket}:${clientKey(req.ip)}`, windowMs)) > max,
  );

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    if (await overLimit(reply, `asset:${clientKey(req.ip)}`, limits.assetGetsPerIp, limits.windowMs)) {
      return reply.send({ ok: false, code: 'rate_limited', error: 'Too many requests.' });
    }
    const assets = await loadAssets();
    const asset = Object.hasOwn(assets, req.params.name) ? assets[req.params.name] : undefined;
    if (!asset) return reply.code(404).send({ ok: false, code: 'not_found', error: 'Not found.' });
    return reply.type(asset.type).send(asset.body);
  });

  // The form. Never burns the token: link-preview crawlers fetch it seconds after it is sent.
  app.get<{ Params: { token: string } }>('/s/:token', async (req, reply) => {
    if (await overLimit(reply, `page:${clientKey(req.ip)}`, limits.pageGetsPerIp, limits.windowMs)) {
      return reply.type('text/html; charset=utf-8').send(renderErrorPage(pickLang(req), 429));
    }
    const found = await requests.lookup(req.params.token);
    if (!found.ok) {
      if (found.reason === 'not_found') {
        return reply.code(404).type('text/html; charset=utf-8').send(renderNotFoundPage(pickLang(req)));
      }
      return reply
        .code(410)
        .type('text/html; charset=utf-8')
        .send(renderGonePage(pickLang(req, found.hint?.lang), found.reason, found.hint?.model_id));
    }
    const [key, form] = await Promise.all([deps.boxKeys.current(), formFor(found.record)]);
    const html = renderFormPage({
      record: found.record,
      form,
      lang: recordLang(req, found.record),
      publicKeyB64: Buffer.from(key.publicKey).toString('base64'),
      keyId: key.id,
    });
    return reply.type('text/html; charset=utf-8').send(html);
  });

  app.get<{ Params: { token: string } }>('/s/:token/status', async (req, reply) => {
    if (await overLimit(reply, `status:${clientKey(req.ip)}`, limits.statusGetsPerIp, limits.windowMs)) {
      return reply.send({ ok: false, code: 'rate_limited', error: 'Too many requests.' });
    }
    const token = req.params.token;
    if (!isTokenShaped(token)) return reply.code(404).send({ ok: false, code: 'not_found', error: 'Unknown link.' });
    const status = await requests.getStatus(token);
    if (status?.status === 'error' && status.retry) {
      // Only the holder of this link gets here: the fresh link for another try goes to them.
      const retry = await requests.retryFor(token);
      const { retry: _flag, ...rest } = status;
      const shown = { ...rest, ...statusTexts(statusLang(req), rest) };
      return reply.send(retry ? { ...shown, retry: { url: new URL(retry.url).pathname + new URL(retry.url).search, expires_at: retry.expires_at } } : shown);
    }
    if (status) return reply.send({ ...status, ...statusTexts(statusLang(req), status) });
    // A late POST of this process is still on its way: not "awaiting input" yet.
    if (lateSubmissions.has(hashToken(token))) return reply.send({ status: 'processing' });
    const found = await requests.lookup(token);
    if (found.ok) return reply.send({ status: 'awaiting_input' });
    const dead = deadJson(found);
    return reply.code(dead.status).send(dead.body);
  });

  /**
   * The form POST answers within `submitDeadlineMs` even when the store hangs (a Redis
   * outage: ioredis queues commands until it reconnects). Before the token is redeemed the
   * work is abandoned at the deadline (503 busy, the link stays valid: the late steps see
   * `abandoned` and stop before redeeming). Once the redeem is under way the submission is
   * committed: the answer is 202 "still processing", the steps go on in the background, and
   * the page follows the status (or finds the link usable again if the save failed).
   */
  app.post<{ Params: { token: string } }>('/s/:token', async (req, reply) => {
    const state: PostState = { phase: 'checking', abandoned: false };
    const work = acceptSubmission(req, state);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), submitDeadlineMs);
    });
    const answer = await Promise.race([work, late]).finally(() => clearTimeout(timer));
    if (answer !== 'late') {
      if (answer.headers) for (const [k, v] of Object.entries(answer.headers)) reply.header(k, v);
      return reply.code(answer.code).send(answer.body);
    }
    state.abandoned = true;
    const model_id = state.model_id;
    const tokenHash = isTokenShaped(req.params.token) ? hashToken(req.params.token) : undefined;
    if (state.phase === 'committed' && tokenHash) {
      lateSubmissions.add(tokenHash);
      void work.finally(() => lateSubmissions.delete(tokenHash)).catch(() => undefined);
    }
    // The background steps log their own failure; nothing here may reject unhandled.
    void work.then(
      (a) => logger.info({ status: a.code, model_id }, 'secure-input: late submission settled'),
      (e) => logger.error({ err: { type: (e as Error)?.name, code: (e as { code?: unknown })?.code }, model_id }, 'secure-input: late submission failed'),
    );
    const lang = pickLang(req, state.lang);
    if (state.phase === 'checking') {
      logger.warn({ model_id }, 'secure-input: store too slow before redeem; answered busy');
      reply.header('Retry-After', '5');
      return reply.code(503).send({ ok: false, code: 'busy', error: t(lang, 'form.busy') });
    }
    logger.warn({ model_id }, 'secure-input: submission still processing at the deadline');
    return reply.code(202).send({
      ok: true,
      code: 'processing',
      message: t(lang, 'form.processing'),
      retry_message: t(lang, 'form.not_saved'),
      status_url: `/s/${req.params.token}/status`,
    });
  });

  interface PostState {
    /** committed: the redeem is under way; from then on the submission goes on to the end. */
    phase: 'checking' | 'committed';
    /** The deadline passed and the user was answered. */
    abandoned: boolean;
    model_id?: string;
    lang?: Lang;
  }

  interface Answer {
    code: number;
    body: Record<string, unknown>;
    headers?: Record<string, string>;
  }

  /** The POST's steps; `state.abandoned` (the deadline passed) stops them before the redeem. */
  async function acceptSubmission(req: FastifyRequest<{ Params: { token: string } }>, state: PostState): Promise<Answer> {
    const token = req.params.token;
    const limited = (error: string, windowMs: number): Answer => ({
      code: 429,
      body: { ok: false, code: 'rate_limited', error },
      headers: { 'Retry-After': String(Math.max(1, Math.ceil(windowMs / 1000))) },
    });
    if (await counted(`post:${clientKey(req.ip)}`, limits.postsPerIp, limits.windowMs)) return limited('Too many requests.', limits.windowMs);
    if (!isTokenShaped(token)) return { code: 404, body: { ok: false, code: 'not_found', error: 'Unknown link.' } };
    // Above a key form's limit only a credentials-file form may go (as Fastify's own 413: not counted per link).
    if (bodyBytes(req) > keyBodyLimit) {
      const f = await requests.lookup(token);
      if (!f.ok || !(await formFor(f.record)).options.some((o) => o.kind === 'oauth_json')) {
        return { code: 413, body: { ok: false, code: 'too_large', error: 'The request is too large.' } };
      }
    }
    if (await counted(`post-token:${hashToken(token)}`, limits.postsPerToken, limits.postsPerTokenWindowMs)) {
      return limited('Too many attempts for this link.', limits.postsPerTokenWindowMs);
    }

    const found = await requests.lookup(token);
    if (!found.ok) return asAnswer(deadJson(found));
    state.model_id = found.record.model_id;
    state.lang = recordLang(req, found.record);
    if (deps.verifyLaunch && !(await deps.verifyLaunch(found.record, req))) {
      return { code: 403, body: { ok: false, code: 'forbidden', error: 'This form must be opened from the chat that asked for it.' } };
    }
    const parsed = parseBody(req.body, await formFor(found.record));
    if (!parsed.ok) return { code: 400, body: { ok: false, code: 'invalid_input', error: parsed.error } };
    const post = parsed.value;
    const current = await deps.boxKeys.current();
    if (post.body.key_id !== current.id) {
      return { code: 409, body: { ok: false, code: 'stale_key_id', error: 'The page is out of date; reload it.' } };
    }
    const opens = await boxesOpen(post.body.key_id, post.boxes);
    if (opens === 'stale') return { code: 409, body: { ok: false, code: 'stale_key_id', error: 'The page is out of date; reload it.' } };
    if (!opens) return { code: 400, body: { ok: false, code: 'invalid_input', error: 'the submission is not a sealed box' } };

    // Too late: the user was told the link is still valid, so it must stay so.
    if (state.abandoned) return { code: 503, body: { ok: false, code: 'busy', error: 'abandoned before redeem' } };
    state.phase = 'committed';
    // Single use: of two concurrent POSTs exactly one gets the record.
    const redeemed = await requests.redeem(token);
    if (!redeemed.ok) return asAnswer(deadJson(redeemed));
    try {
      await deps.onSubmit({
        record: redeemed.record,
        token_hash: redeemed.token_hash,
        sealed: post.boxes[post.env_vars[0]!]!,
        boxes: post.boxes,
        key_id: post.body.key_id,
        ...(post.expires_in_days !== undefined ? { expires_in_days: post.expires_in_days } : {}),
        ...(post.project_id !== undefined ? { project_id: post.project_id } : {}),
      });
    } catch (e) {
      const err = e as Error & { code?: unknown };
      logger.error({ err: { type: err?.name, code: err?.code }, model_id: redeemed.record.model_id }, 'secure-input: submission not accepted');
      await requests.release(redeemed.record).catch(() => undefined);
      return { code: 503, body: { ok: false, code: 'internal', error: 'The key could not be accepted right now; try again in a moment.' } };
    }
    return { code: 202, body: { ok: true, status_url: `/s/${token}/status` } };
  }

  /** true when over the limit; unlike overLimit it leaves the reply alone (the POST may have answered already). */
  async function counted(key: string, max: number, windowMs: number): Promise<boolean> {
    return (await store.incr(`rl:secure-input:${key}`, windowMs)) > max;
  }

  return app;
}
