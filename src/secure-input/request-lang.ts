/** The language of a page or answer about a form. */
import type { FastifyRequest } from 'fastify';
import type { Lang } from '../i18n/index.ts';

/**
 * The language of a page about a form: `?lang=` (the link and the page's own status polls
 * carry it), else the requester's language, else — when the requester never chose one
 * (`lang_default`) — the browser's Accept-Language.
 */
export function recordLang(req: FastifyRequest, r: { lang: Lang; lang_default?: true }): Lang {
  return pickLang(req, r.lang_default ? undefined : r.lang);
}

/** The status is read by the page, which names its language (`?lang=zh`); without it, English. */
export function statusLang(req: FastifyRequest): Lang {
  return (req.query as Record<string, unknown> | undefined)?.lang === 'zh' ? 'zh' : 'en';
}

export function pickLang(req: FastifyRequest, fallback?: Lang): Lang {
  const q = (req.query as Record<string, unknown> | undefined)?.lang;
  if (q === 'zh' || q === 'en') return q;
  if (fallback) return fallback;
  const al = req.headers['accept-language'];
  return typeof al === 'string' && /^\s*zh\b/i.test(al) ? 'zh' : 'en';
}
