/**
 * The secure-input HTTP server: Fastify set-up, security headers, logging and error pages.
 * The routes are in page-routes.ts (GET) and submit-route.ts (POST).
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { createRegistry } from '../registry/index.ts';
import { clientKey } from './client-key.ts';
import { credentialForm, type CredentialForm } from './credential-form.ts';
import { renderErrorPage, renderNotFoundPage } from './page.ts';
import { registerPageRoutes } from './page-routes.ts';
import { pickLang } from './request-lang.ts';
import { DEFAULT_RATE_LIMITS, type RateLimits, type SecureInputDeps } from './server-types.ts';
import { registerSubmitRoute } from './submit-route.ts';
import type { EnvInputRecord } from './tokens.ts';

export { clientKey } from './client-key.ts';
export {
  DEFAULT_RATE_LIMITS,
  type BoxKeySource,
  type RateLimits,
  type SecureInputDeps,
  type ServerLogger,
  type SubmissionContext,
} from './server-types.ts';

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

export const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const DEFAULT_BODY_LIMIT = 16 * 1024;
/** A sealed 16 KiB credentials file is ~22 KB of base64, plus the JSON around it. */
const FILE_BODY_LIMIT = 32 * 1024;
const DEFAULT_SUBMIT_DEADLINE_MS = 5_000;

export function buildServer(deps: SecureInputDeps): FastifyInstance {
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

  app.decorate('limitPerClient', async (req: FastifyRequest, bucket: string, max: number, windowMs: number) =>
    (await store.incr(`rl:${bucket}:${clientKey(req.ip)}`, windowMs)) > max,
  );

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());

  const env = { deps, limits, keyBodyLimit, submitDeadlineMs, lateSubmissions, formFor };
  registerPageRoutes(app, env);
  registerSubmitRoute(app, env);

  return app;
}
