import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ByokError } from '../errors.ts';
import type { ChannelRef } from '../queue/types.ts';
import { isValidWorkspace, type Store } from '../store/types.ts';

/**
 * One-time secure-input requests ("give me the key for this model").
 *
 * A request is identified by a random token (32 bytes, base64url) that only ever travels in
 * the link; the store keeps SHA-256(token) and nothing else. Ephemeral keys (all with TTLs):
 *
 *   envreq:<hash>          the live request record (JSON); taken atomically on redeem
 *   envreq-exp:<hash>      expiry marker, kept a day past expiry, so a dead link says 410, not 404
 *   envreq-used:<hash>     tombstone after redeem / void ('used' | 'voided'), kept a day
 *   envreq-status:<hash>   the result the page polls (pending / ok / classified error), ~1 h
 *   envreq-done:<hash>     the redeemed record, ~1 h: a refused key may be retried on the same request
 *
 * Pending index: the workspace document `env_input_requests` maps each env var to the hash of
 * its pending request; it is read-modify-written under the store's per-workspace lock, so two
 * concurrent non-forced requests cannot both issue a link.
 */

export type Lang = 'en' | 'zh';

export interface EnvInputParams {
  workspace: string;
  channel: ChannelRef;
  env_vars: string[];
  reason: string;
  model_id: string;
  vendor: string;
  vendor_name: string;
  model_name: string;
  /** Where the user creates the key (shown as a link on the form). */
  homepage: string;
  lang?: Lang;
  /** `lang` is only a default (the user never chose one): the form page follows the browser's Accept-Language. */
  lang_default?: boolean;
  /** Explicit user request (`/byok key <id>`, `byok request-key`): void the pending one, issue anew. */
  force?: boolean;
}

/** What is stored for a live token (no secret in it: the token itself is never stored). */
export interface EnvInputRecord extends Omit<EnvInputParams, 'lang' | 'lang_default' | 'force'> {
  v: 1;
  token_hash: string;
  lang: Lang;
  /** The requester's language was not known: pages follow the browser (see EnvInputParams.lang_default). */
  lang_default?: true;
  created_at: string;
  expires_at: string;
  /** How the channel presented the form (bound after sending); `web_app` demands launch data. */
  launch?: 'web_app' | 'link';
  /** A retry of a refused key (see retryFor): how many so far, and the original request's hash. */
  retry_n?: number;
  retry_of?: string;
}

export type RequestResult =
  | { status: 'issued'; url: string; expires_at: string; token_id: string }
  | { status: 'pending'; expires_at: string };

export type DeadReason = 'not_found' | 'expired' | 'already_used' | 'voided';

export type LookupResult =
  | { ok: true; record: EnvInputRecord; token_hash: string }
  | {
      ok: false;
      reason: DeadReason;
      /** For a friendly "ask again" page when the link is dead (never for not_found). */
      hint?: { model_id: string; lang: Lang };
    };

export interface EnvInputError {
  code: string;
  message: string;
  what_to_do: string;
  /** A replacement key was refused; the model keeps its previous key. */
  kept_previous?: boolean;
  /** The vendor refused the key: the page may offer the form again (retryFor). */
  retry?: boolean;
  /** What exactly was wrong, as a message key, so the page says it in its own language. */
  detail?: { key: string; params?: Record<string, string> };
  /** The model the form was for: the page's "ask for a new form" names its /byok key command. */
  model_id?: string;
}

/** What `setStatus` accepts. */
export type EnvInputStatusInput =
  | 'pending'
  | 'ok'
  | { status: 'ok'; masked_key?: string; message?: string }
  | (EnvInputError & { status?: 'error' });

/** What the page sees from `GET /s/<token>/status`. */
export type EnvInputStatus =
  | { status: 'pending'; updated_at: string }
  | { status: 'ok'; masked_key?: string; message?: string; updated_at: string }
  | ({ status: 'error'; updated_at: string } & EnvInputError);

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
const ENV_VAR_RE = /^[A-Z][A-Z0-9_]{0,63}$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const DAY_MS = 24 * 60 * 60 * 1000;
const STATUS_TTL_MS = 60 * 60 * 1000;
const PENDING_DOC = 'env_input_requests';
/** Retries of a refused key per original request. */
export const MAX_KEY_RETRIES = 3;

interface PendingDoc {
  [envVar: string]: { hash: string; expires_at: string; model_id: string };
}

interface ExpiryMarker {
  expires_at: string;
  model_id: string;
  lang: Lang;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function isTokenShaped(token: string): boolean {
  return TOKEN_RE.test(token);
}

/**
 * The retry link of a refused submission, derived from its own link: only the holder of that
 * link can compute it, the store keeps only its hash like any other, and every status poll
 * of the same link answers the same retry.
 */
export function retryTokenOf(token: string): string {
  return createHmac('sha256', token).update('byok retry link v1').digest('base64url');
}

function sameHash(a: string, b: string): boolean {
  if (!HASH_RE.test(a) || !HASH_RE.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

export class EnvInputRequests {
  readonly ttlMs: number;
  readonly publicUrl: string;

  constructor(
    private readonly store: Store,
    opts: { ttlMs: number; publicUrl: string },
  ) {
    if (!(opts.ttlMs > 0)) throw new ByokError('config', 'token TTL must be positive');
    this.ttlMs = opts.ttlMs;
    this.publicUrl = opts.publicUrl.replace(/\/+$/, '');
  }

  urlFor(token: string, lang?: Lang): string {
    return `${this.publicUrl}/s/${token}${lang === 'zh' ? '?lang=zh' : ''}`;
  }

  /**
   * Issues a one-time link, or answers `pending` when one is still waiting for one of these env
   * vars in this workspace (unless `force`, which voids the waiting one(s) first).
   */
  async request(params: EnvInputParams): Promise<RequestResult> {
    validateParams(params);
    const lang: Lang = params.lang ?? params.channel.lang ?? 'en';
    return this.store.updateDoc<PendingDoc, RequestResult>(params.workspace, PENDING_DOC, async (current) => {
      const now = Date.now();
      const doc: PendingDoc = {};
      // Keep only entries whose request is still alive.
      for (const [env, entry] of Object.entries(current ?? {})) {
        if (Date.parse(entry.expires_at) > now && (await this.store.getEphemeral(`envreq:${entry.hash}`)) !== undefined) {
          doc[env] = entry;
        }
      }
      const waiting = params.env_vars.map((e) => doc[e]).filter((e): e is PendingDoc[string] => e !== undefined);
      if (waiting.length > 0 && !params.force) {
        const expires = waiting.map((w) => w.expires_at).sort()[0]!;
        return { value: nonEmpty(doc), result: { status: 'pending', expires_at: expires } };
      }
      // Forced: void every waiting request that covers one of these env vars.
      for (const w of waiting) {
        await this.void(w.hash);
        for (const [env, entry] of Object.entries(doc)) if (entry.hash === w.hash) delete doc[env];
      }

      const token = randomBytes(32).toString('base64url');
      const hash = hashToken(token);
      const expiresAt = new Date(now + this.ttlMs).toISOString();
      const record: EnvInputRecord = {
        v: 1,
        token_hash: hash,
        workspace: params.workspace,
        channel: params.channel,
        env_vars: [...params.env_vars],
        reason: params.reason,
        model_id: params.model_id,
        vendor: params.vendor,
        vendor_name: params.vendor_name,
        model_name: params.model_name,
        homepage: params.homepage,
        lang,
        ...(params.lang_default ? { lang_default: true as const } : {}),
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
      };
      const marker: ExpiryMarker = { expires_at: expiresAt, model_id: params.model_id, lang };
      await this.store.putEphemeral(`envreq-exp:${hash}`, JSON.stringify(marker), this.ttlMs + DAY_MS);
      await this.store.putEphemeral(`envreq:${hash}`, JSON.stringify(record), this.ttlMs);
      for (const env of params.env_vars) doc[env] = { hash, expires_at: expiresAt, model_id: params.model_id };
      return {
        value: doc,
        result: { status: 'issued', url: this.urlFor(token, lang), expires_at: expiresAt, token_id: hash },
      };
    });
  }

  /** Reads a live request without burning it (the form page, link previews). */
  async lookup(token: string): Promise<LookupResult> {
    if (!isTokenShaped(token)) return { ok: false, reason: 'not_found' };
    const hash = hashToken(token);
    const raw = await this.store.getEphemeral(`envreq:${hash}`);
    if (raw !== undefined) {
      const record = parseRecord(raw);
      if (record && sameHash(record.token_hash, hash) && Date.parse(record.expires_at) > Date.now()) {
        return { ok: true, record: await this.withBinding(record), token_hash: hash };
      }
    }
    return this.classifyDead(hash);
  }

  /**
   * Redeems a token: single use, atomic (of two concurrent redeems exactly one wins; the other
   * gets `already_used`). Leaves a tombstone and marks the status `pending`.
   */
  async redeem(token: string): Promise<LookupResult> {
    if (!isTokenShaped(token)) return { ok: false, reason: 'not_found' };
    const hash = hashToken(token);
    const raw = await this.store.takeEphemeral(`envreq:${hash}`);
    const record = raw === undefined ? undefined : parseRecord(raw);
    if (!record || !sameHash(record.token_hash, hash) || Date.parse(record.expires_at) <= Date.now()) {
      return this.classifyDead(hash);
    }
    await this.store.putEphemeral(`envreq-used:${hash}`, 'used', DAY_MS);
    await this.setStatus(hash, 'pending');
    const bound = await this.withBinding(record);
    // No secret in it: what a retry of this request needs (same workspace, model, env vars, channel).
    await this.store.putEphemeral(`envreq-done:${hash}`, JSON.stringify(bound), STATUS_TTL_MS);
    return { ok: true, record: bound, token_hash: hash };
  }

  /**
   * The fresh single-use link offered after the vendor refused the key submitted with `token`
   * (its status says `retry`): bound to the same request, at most MAX_KEY_RETRIES per original
   * request. Issued on first ask (the expiry marker is the claim, so concurrent polls issue it
   * once); undefined when no retry is due or it is no longer usable.
   */
  async retryFor(token: string): Promise<{ token: string; url: string; expires_at: string } | undefined> {
    if (!isTokenShaped(token)) return undefined;
    const hash = hashToken(token);
    const status = await this.getStatusByHash(hash);
    if (status?.status !== 'error' || !status.retry) return undefined;
    const done = await this.store.getEphemeral(`envreq-done:${hash}`);
    const prev = done === undefined ? undefined : parseRecord(done);
    if (!prev || !sameHash(prev.token_hash, hash) || (prev.retry_n ?? 0) >= MAX_KEY_RETRIES) return undefined;
    const retry = retryTokenOf(token);
    const rhash = hashToken(retry);
    const now = Date.now();
    const expiresAt = new Date(now + this.ttlMs).toISOString();
    const marker: ExpiryMarker = { expires_at: expiresAt, model_id: prev.model_id, lang: prev.lang };
    if (await this.store.putEphemeralIfAbsent(`envreq-exp:${rhash}`, JSON.stringify(marker), this.ttlMs + DAY_MS)) {
      const record: EnvInputRecord = {
        ...prev,
        token_hash: rhash,
        created_at: new Date(now).toISOString(),
        expires_at: expiresAt,
        retry_n: (prev.retry_n ?? 0) + 1,
        retry_of: prev.retry_of ?? hash,
      };
      await this.store.putEphemeral(`envreq:${rhash}`, JSON.stringify(record), this.ttlMs);
      // Listed as the workspace's waiting link: a new link from the chat voids it.
      await this.store.updateDoc<PendingDoc, void>(prev.workspace, PENDING_DOC, (cur) => {
        const doc: PendingDoc = { ...(cur ?? {}) };
        for (const env of record.env_vars) doc[env] = { hash: rhash, expires_at: expiresAt, model_id: record.model_id };
        return { value: doc, result: undefined };
      });
    }
    const found = await this.lookup(retry);
    return found.ok ? { token: retry, url: this.urlFor(retry, prev.lang), expires_at: found.record.expires_at } : undefined;
  }

  /**
   * Puts a redeemed request back (the submission could not be handed over, e.g. the store was
   * down): the user may submit again with the same link until it expires.
   */
  async release(record: EnvInputRecord): Promise<void> {
    const remaining = Date.parse(record.expires_at) - Date.now();
    if (remaining <= 0) return;
    await this.store.putEphemeral(`envreq:${record.token_hash}`, JSON.stringify(record), remaining);
    await this.store.deleteEphemeral(`envreq-used:${record.token_hash}`);
    await this.store.deleteEphemeral(`envreq-status:${record.token_hash}`);
    await this.store.deleteEphemeral(`envreq-done:${record.token_hash}`);
  }

  /**
   * Records which chat message presents this request (the Telegram card, so the result can
   * edit it) and how it was presented. Kept under its own key: rewriting the record itself
   * could bring back a request redeemed in the meantime.
   */
  async bindMessage(tokenHash: string, messageId: string, launch?: 'web_app' | 'link'): Promise<void> {
    if (!HASH_RE.test(tokenHash)) return;
    const raw = await this.store.getEphemeral(`envreq:${tokenHash}`);
    const record = raw === undefined ? undefined : parseRecord(raw);
    if (!record) return;
    const remaining = Date.parse(record.expires_at) - Date.now();
    if (remaining <= 0) return;
    await this.store.putEphemeral(`envreq-msg:${tokenHash}`, JSON.stringify({ message_id: messageId, launch }), remaining + DAY_MS);
  }

  /** Adds what bindMessage recorded to a record read from the store. */
  private async withBinding(record: EnvInputRecord): Promise<EnvInputRecord> {
    const raw = await this.store.getEphemeral(`envreq-msg:${record.token_hash}`);
    if (raw === undefined) return record;
    try {
      const b = JSON.parse(raw) as { message_id?: string; launch?: 'web_app' | 'link' };
      return {
        ...record,
        channel: typeof b.message_id === 'string' ? { ...record.channel, message_id: b.message_id } : record.channel,
        ...(b.launch === 'web_app' || b.launch === 'link' ? { launch: b.launch } : {}),
      };
    } catch {
      return record;
    }
  }

  /** Voids a live request (by hash): its link answers 410 from now on. */
  async void(tokenHash: string): Promise<boolean> {
    if (!HASH_RE.test(tokenHash)) return false;
    const taken = await this.store.takeEphemeral(`envreq:${tokenHash}`);
    if (taken === undefined) return false;
    await this.store.putEphemeral(`envreq-used:${tokenHash}`, 'voided', DAY_MS);
    return true;
  }

  /**
   * Voids every live form issued for one model (it was removed). Else the form stays listed as
   * "already waiting" for the next model with the same key name, and a key entered there is
   * checked against the removed model's host and reported for a model that is gone.
   */
  async voidForModel(workspace: string, modelId: string): Promise<number> {
    return this.store.updateDoc<PendingDoc, number>(workspace, PENDING_DOC, async (cur) => {
      const doc: PendingDoc = { ...(cur ?? {}) };
      const hashes = new Set(Object.values(doc).filter((e) => e.model_id === modelId).map((e) => e.hash));
      let voided = 0;
      for (const h of hashes) if (await this.void(h)) voided++;
      for (const [env, e] of Object.entries(doc)) if (hashes.has(e.hash)) delete doc[env];
      return { value: nonEmpty(doc), result: voided };
    });
  }

  /** The worker (through the lead's wiring) reports progress and the result for the page. */
  async setStatus(tokenHash: string, status: EnvInputStatusInput): Promise<void> {
    if (!HASH_RE.test(tokenHash)) throw new ByokError('invalid_input', 'invalid token hash');
    const updated_at = new Date().toISOString();
    let value: EnvInputStatus;
    if (status === 'pending') value = { status: 'pending', updated_at };
    else if (status === 'ok') value = { status: 'ok', updated_at };
    else if ('status' in status && status.status === 'ok') {
      value = { status: 'ok', updated_at };
      if (status.masked_key) value.masked_key = status.masked_key;
      if (status.message) value.message = status.message;
    } else {
      const e = status as EnvInputError;
      value = { status: 'error', code: e.code, message: e.message, what_to_do: e.what_to_do, updated_at };
      if (e.kept_previous) value.kept_previous = true;
      if (e.retry) value.retry = true;
      if (e.detail) value.detail = e.detail;
      if (e.model_id) value.model_id = e.model_id;
    }
    await this.store.putEphemeral(`envreq-status:${tokenHash}`, JSON.stringify(value), STATUS_TTL_MS);
  }

  async getStatusByHash(tokenHash: string): Promise<EnvInputStatus | undefined> {
    if (!HASH_RE.test(tokenHash)) return undefined;
    const raw = await this.store.getEphemeral(`envreq-status:${tokenHash}`);
    if (raw === undefined) return undefined;
    try {
      return JSON.parse(raw) as EnvInputStatus;
    } catch {
      return undefined;
    }
  }

  /** The status of a submitted request, for the page; undefined when nothing was submitted. */
  async getStatus(token: string): Promise<EnvInputStatus | undefined> {
    if (!isTokenShaped(token)) return undefined;
    return this.getStatusByHash(hashToken(token));
  }

  private async classifyDead(hash: string): Promise<LookupResult> {
    const [tomb, markerRaw] = await Promise.all([
      this.store.getEphemeral(`envreq-used:${hash}`),
      this.store.getEphemeral(`envreq-exp:${hash}`),
    ]);
    let marker: ExpiryMarker | undefined;
    try {
      marker = markerRaw === undefined ? undefined : (JSON.parse(markerRaw) as ExpiryMarker);
    } catch {
      marker = undefined;
    }
    const hint = marker ? { model_id: marker.model_id, lang: marker.lang } : undefined;
    if (tomb === 'voided') return { ok: false, reason: 'voided', hint };
    if (tomb !== undefined) return { ok: false, reason: 'already_used', hint };
    if (marker) {
      // The record is gone but the link has not reached its expiry: someone redeemed it a
      // moment ago (the tombstone is being written). Otherwise it expired.
      const reason = Date.parse(marker.expires_at) > Date.now() ? 'already_used' : 'expired';
      return { ok: false, reason, hint };
    }
    return { ok: false, reason: 'not_found' };
  }
}

function nonEmpty(doc: PendingDoc): PendingDoc | undefined {
  return Object.keys(doc).length > 0 ? doc : undefined;
}

function parseRecord(raw: string): EnvInputRecord | undefined {
  try {
    const r = JSON.parse(raw) as EnvInputRecord;
    return r && r.v === 1 && typeof r.token_hash === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

function validateParams(p: EnvInputParams): void {
  if (!isValidWorkspace(p.workspace)) throw new ByokError('invalid_input', `invalid workspace id "${String(p.workspace).slice(0, 80)}"`);
  if (!p.channel || typeof p.channel.channel !== 'string' || typeof p.channel.chat_id !== 'string') {
    throw new ByokError('invalid_input', 'a channel reference {channel, chat_id} is required');
  }
  if (!Array.isArray(p.env_vars) || p.env_vars.length === 0 || p.env_vars.length > 8) {
    throw new ByokError('invalid_input', 'env_vars must list 1 to 8 variable names');
  }
  for (const e of p.env_vars) {
    if (typeof e !== 'string' || !ENV_VAR_RE.test(e)) throw new ByokError('invalid_input', `invalid env var name "${String(e).slice(0, 80)}"`);
  }
  if (new Set(p.env_vars).size !== p.env_vars.length) throw new ByokError('invalid_input', 'env_vars has duplicates');
  for (const k of ['model_id', 'vendor', 'vendor_name', 'model_name'] as const) {
    if (typeof p[k] !== 'string' || p[k].length === 0 || p[k].length > 200) throw new ByokError('invalid_input', `${k} is required`);
  }
  if (typeof p.reason !== 'string' || p.reason.length > 500) throw new ByokError('invalid_input', 'reason must be a string of at most 500 characters');
  if (typeof p.homepage !== 'string' || p.homepage.length > 500) throw new ByokError('invalid_input', 'homepage must be a URL');
  if (p.lang !== undefined && p.lang !== 'en' && p.lang !== 'zh') throw new ByokError('invalid_input', 'lang must be en or zh');
}
