import { ByokError } from '../errors.ts';
import { SYSTEM_SCOPE, type Store } from '../store/types.ts';
import type { MasterKeyring } from './master-key.ts';
import { b64, getSodium, unb64, utf8, type Sodium } from './sodium.ts';

/**
 * The worker's X25519 keypairs for the secure form: the browser seals the key with
 * `crypto_box_seal(key, publicKey)` and posts the sealed box with the key id; the worker
 * opens it here.
 *
 * Kept in the `_system` scope document `box_keys`, so every bot and worker process sharing
 * the store (files or Redis) uses the same keypair:
 *   { v: 1, current: <id> | null, keys: { <id>: { pk, kid, nonce, sk, created_at, retired_at? } } }
 *  - id = hex of BLAKE2b-64 of the public key (not secret);
 *  - sk = XChaCha20-Poly1305(secret key, AD, nonce, K_box) where K_box is the master key's
 *    `box` subkey and AD = `byok:box:v1|<kid>|<id>|<pk base64url>`. Binding the full public
 *    key authenticates the (public, secret) pair: a store writer who swaps in their own
 *    public key cannot produce a matching sealed secret key, and `current()` refuses to
 *    publish a public key whose record does not open (so browsers never seal to a foreign key).
 *  - Creation is race-safe: a read first, then a re-check inside `updateDoc` (serialised per
 *    scope across processes), so concurrent `current()` calls create one keypair.
 *
 * Rotation: `rotate()` makes a new current keypair and marks the previous one retired; a
 * retired keypair stays openable for `graceMs` (default 7 days, so forms already open and
 * submissions still pending a vendor retry can be opened) and is pruned at the next write
 * after that. An unknown, pruned or expired id is `stale_key_id` (the form answers 409,
 * "reload").
 *
 * A record sealed under a master key this process does not have is never pruned, replaced
 * or re-sealed here: another process (correctly configured) may still need it. Using it is
 * `master_key_unavailable`, a transient error (the submission waits for a process that has
 * the key), never `stale_key_id`, which ends a submission.
 *
 * Opened secret keys are cached in memory, per id, together with the exact stored record
 * they came from (kid, nonce, sealed sk, pk). Every call still reads the document (one GET,
 * one small file read), so a rotation, prune, re-seal or tampering by another process is
 * seen at once: the checks (grace period, configured master key) run on the fresh record,
 * and the AEAD open is skipped only when the record is byte-for-byte the one already
 * opened (same inputs, same output). A cached secret key whose record changed or vanished
 * is wiped (`sodium.memzero`) and dropped; `wipe()` clears them all (shutdown).
 */
export const BOX_KEYS_DOC = 'box_keys';
export const DEFAULT_BOX_KEY_GRACE_MS = 7 * 24 * 60 * 60 * 1000;
/** Sealed boxes larger than this are refused before any crypto (a key is a few KiB at most). */
export const MAX_SEALED_BOX_BYTES = 64 * 1024;
const ID_RE = /^[0-9a-f]{16}$/;

interface BoxKeyRecord {
  pk: string;
  kid: string;
  nonce: string;
  sk: string;
  created_at: string;
  retired_at?: string;
}
interface BoxKeysDoc {
  v: 1;
  current: string | null;
  keys: Record<string, BoxKeyRecord>;
}

export interface BoxPublicKey {
  id: string;
  publicKey: Uint8Array;
}

function boxAd(kid: string, id: string, pk: string): string {
  return `byok:box:v1|${kid}|${id}|${pk}`;
}

function stale(): ByokError {
  return new ByokError('stale_key_id', 'the form was sealed with an outdated key; reload the page and submit again');
}

function unavailable(id: string, kid: string, ring: MasterKeyring): ByokError {
  return new ByokError(
    'master_key_unavailable',
    `the secure-form key pair ${id} is sealed under master key ${kid}, which this process does not have (its master key is ${ring.current.id}); set the same BYOK_MASTER_KEY on every process`,
    { box_key_id: id, kid },
  );
}

interface OpenedKeypair {
  /** The stored record's identity: kid, nonce, sealed sk and pk. */
  ident: string;
  sk: Uint8Array;
  pk: Uint8Array;
}

function identOf(rec: BoxKeyRecord): string {
  return `${rec.kid}|${rec.nonce}|${rec.sk}|${rec.pk}`;
}

export class BoxKeys {
  private readonly graceMs: number;
  private readonly now: () => number;
  private readonly opened = new Map<string, OpenedKeypair>();

  constructor(
    private readonly store: Store,
    private readonly ring: MasterKeyring,
    opts: { graceMs?: number; now?: () => number } = {},
  ) {
    this.graceMs = opts.graceMs ?? DEFAULT_BOX_KEY_GRACE_MS;
    this.now = opts.now ?? Date.now;
  }

  /** The public key browsers seal to; created on first use. */
  async current(): Promise<BoxPublicKey> {
    const s = await getSodium();
    const found = this.usableCurrent(s, this.sweep(s, await this.store.getDoc<BoxKeysDoc>(SYSTEM_SCOPE, BOX_KEYS_DOC)));
    if (found) return found;
    return this.store.updateDoc<BoxKeysDoc, BoxPublicKey>(SYSTEM_SCOPE, BOX_KEYS_DOC, (cur) => {
      const again = this.usableCurrent(s, cur);
      if (again) return { value: cur, result: again };
      const next = this.withNewKeypair(s, cur);
      return { value: next.doc, result: next.current };
    });
  }

  /**
   * Opens a sealed box posted with key id `id`. Returns the plaintext (the caller wipes it).
   * Unknown, pruned or expired id → ByokError('stale_key_id'); a key pair sealed under a
   * master key this process lacks → ByokError('master_key_unavailable') (retry elsewhere);
   * a box that does not open → ByokError('invalid_input').
   */
  async open(id: string, sealedBox: Uint8Array): Promise<Uint8Array> {
    const s = await getSodium();
    if (typeof id !== 'string' || !ID_RE.test(id)) throw stale();
    if (!(sealedBox instanceof Uint8Array) || sealedBox.length <= s.crypto_box_SEALBYTES) {
      throw new ByokError('invalid_input', 'the sealed submission is malformed');
    }
    if (sealedBox.length > MAX_SEALED_BOX_BYTES) throw new ByokError('too_large', 'the sealed submission is too large');
    const doc = this.sweep(s, await this.store.getDoc<BoxKeysDoc>(SYSTEM_SCOPE, BOX_KEYS_DOC));
    const rec = doc?.keys && Object.hasOwn(doc.keys, id) ? doc.keys[id] : undefined;
    if (!rec || this.expired(rec)) throw stale();
    if (!this.ring.byId(rec.kid)) throw unavailable(id, rec.kid, this.ring);
    const kp = this.keypair(s, id, rec);
    try {
      return s.crypto_box_seal_open(sealedBox, kp.pk, kp.sk);
    } catch {
      throw new ByokError('invalid_input', 'the sealed submission does not open with this key; reload the page and submit again');
    }
  }

  /** Wipes every cached secret key (shutdown). Later calls open them again from the store. */
  wipe(): void {
    for (const kp of this.opened.values()) kp.sk.fill(0);
    this.opened.clear();
  }

  /** Drops (and wipes) cached keypairs whose stored record changed or is gone. */
  private sweep(s: Sodium, doc: BoxKeysDoc | undefined): BoxKeysDoc | undefined {
    for (const [id, kp] of this.opened) {
      const rec = doc?.keys && Object.hasOwn(doc.keys, id) ? doc.keys[id] : undefined;
      if (!rec || identOf(rec) !== kp.ident) {
        s.memzero(kp.sk);
        this.opened.delete(id);
      }
    }
    return doc;
  }

  /**
   * The opened keypair of a stored record (cached; owned by this instance: callers must not
   * wipe or keep it). Throws when the record was altered or its master key is not configured.
   */
  private keypair(s: Sodium, id: string, rec: BoxKeyRecord): OpenedKeypair {
    const ident = identOf(rec);
    const cached = this.opened.get(id);
    // The master key must still be configured and not wiped (subkey() throws once wiped).
    const mk = this.ring.byId(rec.kid);
    if (!mk) throw unavailable(id, rec.kid, this.ring);
    mk.subkey('box');
    if (cached && cached.ident === ident) return cached;
    const sk = this.openSecret(s, id, rec);
    const kp: OpenedKeypair = { ident, sk, pk: unb64(s, rec.pk) };
    if (cached) s.memzero(cached.sk);
    this.opened.set(id, kp);
    return kp;
  }

  /**
   * Makes a new current keypair; the previous one stays openable for the grace period.
   * Also prunes keypairs past their grace period.
   */
  async rotate(): Promise<BoxPublicKey & { retired?: string }> {
    const s = await getSodium();
    return this.store.updateDoc<BoxKeysDoc, BoxPublicKey & { retired?: string }>(SYSTEM_SCOPE, BOX_KEYS_DOC, (cur) => {
      const retired = cur?.current ?? undefined;
      const next = this.withNewKeypair(s, cur);
      return { value: next.doc, result: { ...next.current, retired } };
    });
  }

  /**
   * Part of `byok rotate-master-key`: re-seals the secret keys still under an older master
   * key with the current one. Keypairs under a master key that is not configured are kept
   * as they are (whoever has that key may still need them) and counted as `unopenable`; an
   * unopenable current keypair stops being current (a new one is made on next use).
   */
  async resealUnderCurrentMasterKey(): Promise<{ resealed: number; unopenable: number }> {
    const s = await getSodium();
    const mk = this.ring.current;
    return this.store.updateDoc<BoxKeysDoc, { resealed: number; unopenable: number }>(SYSTEM_SCOPE, BOX_KEYS_DOC, (cur) => {
      if (!cur?.keys) return { value: cur, result: { resealed: 0, unopenable: 0 } };
      const keys: Record<string, BoxKeyRecord> = {};
      const usable = new Set<string>();
      let resealed = 0;
      let unopenable = 0;
      for (const [id, rec] of Object.entries(cur.keys)) {
        if (!ID_RE.test(id) || !this.ring.byId(rec.kid)) {
          keys[id] = rec;
          unopenable++;
          continue;
        }
        usable.add(id);
        if (rec.kid === mk.id) {
          keys[id] = rec;
          continue;
        }
        const sk = this.openSecret(s, id, rec);
        try {
          keys[id] = { ...rec, ...this.sealSecret(s, id, rec.pk, sk) };
        } finally {
          s.memzero(sk);
        }
        resealed++;
      }
      const current = cur.current && usable.has(cur.current) ? cur.current : null;
      return { value: { v: 1, current, keys }, result: { resealed, unopenable } };
    });
  }

  private expired(rec: BoxKeyRecord): boolean {
    if (!rec.retired_at) return false;
    const t = Date.parse(rec.retired_at);
    return !Number.isFinite(t) || t + this.graceMs <= this.now();
  }

  /** The current keypair's public key, authenticated; undefined when a new one is needed. */
  private usableCurrent(s: Sodium, doc: BoxKeysDoc | undefined): BoxPublicKey | undefined {
    if (!doc || doc.v !== 1 || !doc.current || !doc.keys || !Object.hasOwn(doc.keys, doc.current)) return undefined;
    const id = doc.current;
    const rec = doc.keys[id];
    // Sealed under a master key this process lacks: replacing it would take the form key away
    // from the processes that have it (and they would replace it back).
    if (!this.ring.byId(rec.kid)) throw unavailable(id, rec.kid, this.ring);
    // Throws (refusing to publish) when the record was tampered with.
    const kp = this.keypair(s, id, rec);
    return { id, publicKey: kp.pk.slice() };
  }

  private withNewKeypair(s: Sodium, cur: BoxKeysDoc | undefined): { doc: BoxKeysDoc; current: BoxPublicKey } {
    const nowIso = new Date(this.now()).toISOString();
    const curRec = cur?.current && cur.keys && Object.hasOwn(cur.keys, cur.current) ? cur.keys[cur.current] : undefined;
    if (curRec && !this.ring.byId(curRec.kid)) throw unavailable(cur!.current!, curRec.kid, this.ring);
    const keys: Record<string, BoxKeyRecord> = {};
    for (const [id, rec] of Object.entries(cur?.keys ?? {})) {
      if (!ID_RE.test(id) || !this.ring.byId(rec.kid)) {
        keys[id] = rec; // never drop what this process cannot open: others may need it
        continue;
      }
      const r = id === cur?.current && !rec.retired_at ? { ...rec, retired_at: nowIso } : rec;
      if (!this.expired(r)) keys[id] = r;
    }
    const kp = s.crypto_box_keypair();
    try {
      const id = s.to_hex(s.crypto_generichash(8, kp.publicKey, null));
      const pk = b64(s, kp.publicKey);
      keys[id] = { pk, ...this.sealSecret(s, id, pk, kp.privateKey), created_at: nowIso };
      return { doc: { v: 1, current: id, keys }, current: { id, publicKey: kp.publicKey } };
    } finally {
      s.memzero(kp.privateKey);
    }
  }

  private sealSecret(s: Sodium, id: string, pk: string, sk: Uint8Array): { kid: string; nonce: string; sk: string } {
    const mk = this.ring.current;
    const nonce = s.randombytes_buf(s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(sk, utf8(boxAd(mk.id, id, pk)), null, nonce, mk.subkey('box'));
    return { kid: mk.id, nonce: b64(s, nonce), sk: b64(s, ct) };
  }

  /** The secret key (caller wipes). Throws when the record was altered. */
  private openSecret(s: Sodium, id: string, rec: BoxKeyRecord): Uint8Array {
    const mk = this.ring.byId(rec.kid);
    if (!mk) throw unavailable(id, rec.kid, this.ring);
    try {
      return s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, unb64(s, rec.sk), utf8(boxAd(rec.kid, id, rec.pk)), unb64(s, rec.nonce), mk.subkey('box'));
    } catch {
      throw new ByokError('internal', `the worker's box key ${id} does not open (the stored record was altered); refusing to use it`);
    }
  }
}
