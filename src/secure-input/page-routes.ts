/** GET routes: the browser assets, the form page and the status the page polls. */
import type { FastifyInstance } from 'fastify';
import { loadAssets } from './assets.ts';
import { clientKey } from './client-key.ts';
import { renderErrorPage, renderFormPage, renderGonePage, renderNotFoundPage, statusTexts } from './page.ts';
import { deadJson, overLimit } from './request-checks.ts';
import { pickLang, recordLang, statusLang } from './request-lang.ts';
import type { ServerEnv } from './server-types.ts';
import { hashToken, isTokenShaped } from './tokens.ts';

export function registerPageRoutes(app: FastifyInstance, env: ServerEnv): void {
  const { deps, limits, lateSubmissions, formFor } = env;
  const { store, requests } = deps;

  app.get<{ Params: { name: string } }>('/assets/:name', async (req, reply) => {
    if (await overLimit(store, reply, `asset:${clientKey(req.ip)}`, limits.assetGetsPerIp, limits.windowMs)) {
      return reply.send({ ok: false, code: 'rate_limited', error: 'Too many requests.' });
    }
    const assets = await loadAssets();
    const asset = Object.hasOwn(assets, req.params.name) ? assets[req.params.name] : undefined;
    if (!asset) return reply.code(404).send({ ok: false, code: 'not_found', error: 'Not found.' });
    return reply.type(asset.type).send(asset.body);
  });

  // The form. Never burns the token: link-preview crawlers fetch it seconds after it is sent.
  app.get<{ Params: { token: string } }>('/s/:token', async (req, reply) => {
    if (await overLimit(store, reply, `page:${clientKey(req.ip)}`, limits.pageGetsPerIp, limits.windowMs)) {
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
    if (await overLimit(store, reply, `status:${clientKey(req.ip)}`, limits.statusGetsPerIp, limits.windowMs)) {
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
}
