/**
 * The checks a request passes before anything is redeemed: rate limits, body size, the
 * sealed body's shape, boxes that open; and the answers for a link that cannot be redeemed.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Store } from '../store/types.ts';
import { MAX_FILE_BYTES, maxPlaintextBytes, optionFor, parseExpiry, PROJECT_ID_RE, type CredentialForm } from './credential-form.ts';
import type { BoxKeySource } from './server-types.ts';
import type { LookupResult } from './tokens.ts';

const SEAL_OVERHEAD = 48; // crypto_box_SEALBYTES
/** Sealed plaintext bounds: no key is shorter than 8; the upper bound is per kind (credential-form.ts). */
const MIN_PLAINTEXT_BYTES = 8;
/** What the page sends: standard base64 (sodium's ORIGINAL variant), padded. */
const STD_B64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** true when over the limit (429 already prepared). */
export async function overLimit(store: Store, reply: FastifyReply, key: string, max: number, windowMs: number): Promise<boolean> {
  const n = await store.incr(`rl:secure-input:${key}`, windowMs);
  if (n <= max) return false;
  reply.header('Retry-After', String(Math.max(1, Math.ceil(windowMs / 1000))));
  reply.code(429);
  return true;
}

/** true when over the limit; unlike overLimit it leaves the reply alone (the POST may have answered already). */
export async function counted(store: Store, key: string, max: number, windowMs: number): Promise<boolean> {
  return (await store.incr(`rl:secure-input:${key}`, windowMs)) > max;
}

/** The POST body's size: Content-Length, else the parsed body re-serialized (chunked uploads). */
export function bodyBytes(req: FastifyRequest): number {
  const n = Number(req.headers['content-length']);
  if (Number.isFinite(n) && n >= 0) return n;
  try {
    return Buffer.byteLength(JSON.stringify(req.body ?? null));
  } catch {
    return Infinity;
  }
}

export function asAnswer(d: { status: number; body: Record<string, unknown> }): { code: number; body: Record<string, unknown> } {
  return { code: d.status, body: d.body };
}

export function deadJson(dead: Extract<LookupResult, { ok: false }>): { status: number; body: Record<string, unknown> } {
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

export function parseBody(raw: unknown, form: CredentialForm): { ok: true; value: ParsedPost } | { ok: false; error: string } {
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
export async function checkBoxesOpen(boxKeys: BoxKeySource, keyId: string, boxes: Record<string, Uint8Array>): Promise<boolean | 'stale'> {
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
