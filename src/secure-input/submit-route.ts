/** POST /s/<token>: the sealed form submission, answered within the submit deadline. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { t, type Lang } from '../i18n/index.ts';
import { clientKey } from './client-key.ts';
import { asAnswer, bodyBytes, checkBoxesOpen, counted, deadJson, parseBody } from './request-checks.ts';
import { pickLang, recordLang } from './request-lang.ts';
import type { ServerEnv } from './server-types.ts';
import { hashToken, isTokenShaped } from './tokens.ts';

export function registerSubmitRoute(app: FastifyInstance, env: ServerEnv): void {
  const { deps, limits, keyBodyLimit, submitDeadlineMs, lateSubmissions, formFor } = env;
  const { store, requests, logger } = deps;
  const boxesOpen = (keyId: string, boxes: Record<string, Uint8Array>) => checkBoxesOpen(deps.boxKeys, keyId, boxes);

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
    if (await counted(store, `post:${clientKey(req.ip)}`, limits.postsPerIp, limits.windowMs)) return limited('Too many requests.', limits.windowMs);
    if (!isTokenShaped(token)) return { code: 404, body: { ok: false, code: 'not_found', error: 'Unknown link.' } };
    // Above a key form's limit only a credentials-file form may go (as Fastify's own 413: not counted per link).
    if (bodyBytes(req) > keyBodyLimit) {
      const f = await requests.lookup(token);
      if (!f.ok || !(await formFor(f.record)).options.some((o) => o.kind === 'oauth_json')) {
        return { code: 413, body: { ok: false, code: 'too_large', error: 'The request is too large.' } };
      }
    }
    if (await counted(store, `post-token:${hashToken(token)}`, limits.postsPerToken, limits.postsPerTokenWindowMs)) {
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
}
