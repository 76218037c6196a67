import { ByokError } from '../errors.ts';
import type { ChannelRef } from '../queue/types.ts';
import { isValidWorkspace, SYSTEM_SCOPE, type Store } from '../store/types.ts';
import { last4Bytes, maskKey, maskLast4 } from './mask.ts';
import type { MasterKey, MasterKeyring } from './master-key.ts';
import { b64, getSodium, unb64, utf8, type Sodium } from './sodium.ts';

/**
 * The sealed vault: a workspace's API keys, kept in the document `vault` of the workspace's
 * scope as `{ [ENV_VAR]: SealedRecord }`.
 *
 * Format (v1):
 *  - `ct` = XChaCha20-Poly1305-IETF(plaintext, AD, nonce, K_vault) with a random 24-byte
 *    nonce, AD = `byok:v1|<kid>|<workspace>|<ENV_VAR>`. The AD binds the format version, the
 *    master key id and the record's place: a record copied to another workspace or name
 *    (or relabelled with another kid) does not open. None of the AD parts can contain `|`
 *    (workspace ids and env var names are validated), so the encoding is unambiguous.
 *  - `K_vault`, `K_fp` are independent subkeys of the master key from crypto_kdf (BLAKE2b);
 *    the raw master key is never used with two primitives.
 *  - `fp` = BLAKE2b-256 keyed with K_fp over `byok:fp:v1|<workspace>|` + key bytes: a keyed
 *    fingerprint (MAC), so the chat detector can recognise the user's own key when pasted,
 *    without the store holding anything an offline guesser could test keys against. It is
 *    bound to the workspace so the same key in two workspaces cannot be correlated.
 *  - `last4` is NOT stored in clear: it is sealed on its own (same subkey, own nonce, AD
 *    `byok:v1:last4|<kid>|<workspace>|<ENV_VAR>`) and opened by `list`. Four characters are a
 *    piece of the plaintext, and the design says no plaintext key in Redis or the data dir;
 *    clear last4 would also let a store reader correlate keys across workspaces. Opening
 *    4 bytes costs microseconds and `list` runs where the master key is anyway, and it
 *    never brings the key itself into memory. `null` for keys under 12 characters (masked as
 *    `****` alone) or whose tail is not printable ASCII.
 *
 * Plaintext keys only ever exist as `Uint8Array`s: `withKey` hands the opened key to a
 * callback and zeroes it afterwards; nothing here converts a key into a JS string.
 */
export const VAULT_DOC = 'vault';
export const ENV_VAR_RE = /^[A-Z][A-Z0-9_]{0,127}$/;
/** Big enough for JSON service-account credentials, small enough to refuse junk. */
export const MAX_KEY_BYTES = 16 * 1024;

export interface SealedRecord {
  v: 1;
  /** Id of the master key that sealed the record. */
  kid: string;
  nonce: string; // base64url
  ct: string; // base64url
  fp: string; // base64url
  /** Sealed last-4 hint: base64url(nonce || ciphertext), or null (see above). */
  last4: string | null;
  updated_at: string;
  /** Plain metadata about the credential (never key material); see KeyMeta. */
  meta?: KeyMeta;
}

/**
 * What is known about a stored credential besides the secret: not sealed (none of it is key
 * material) so listing, expiry sweeps and health checks never open a key.
 */
export interface KeyMeta {
  /** The credential kind the template declared (api_key, aws_keypair, bearer, oauth_json). */
  kind?: string;
  /** When the vendor last accepted it (validation or a health check). */
  validated_at?: string;
  /** When it is deleted by the expiry sweep; absent or null: never. */
  expires_at?: string | null;
  /** Where the key was submitted from: expiry and health notices go there. */
  channel?: ChannelRef;
  /** The last periodic health check (src/jobs/key-health.ts); absent: never checked. */
  health?: KeyHealth;
  /** expires_at of the key the "expires tomorrow" notice was queued for (sent once per expiry). */
  expiry_warned?: string;
}

/** Definite answers of a health probe; transient ones (rate limits, outages) are not recorded. */
export type KeyHealthStatus = 'ok' | 'invalid_key' | 'quota_exceeded';
export interface KeyHealth {
  status: KeyHealthStatus;
  checked_at: string;
  /** When the status last changed (names the notice of that change, so it is sent once). */
  since?: string;
}
export type VaultDoc = Record<string, SealedRecord>;

export interface PutOptions {
  /** Store only when the current record has this version (see recordVersion); else ByokError 'conflict'. */
  ifVersion?: string;
  /**
   * The bytes whose last 4 the listing shows, when that is not the secret itself: an OAuth
   * credentials file is listed by its refresh token's last 4, never by the end of its JSON.
   */
  maskFrom?: Uint8Array;
}

/** A record's version: its random nonce, new on every seal (never key material). */
export function recordVersion(rec: SealedRecord | undefined): string | undefined {
  return rec && typeof rec === 'object' && typeof rec.nonce === 'string' ? rec.nonce : undefined;
}

/**
 * Every stored key of a workspace with its metadata, without the master key (no last-4): for
 * readers that must not load or create one (`byok list` on a fresh data dir) and the sweeps.
 */
export async function readVaultMeta(store: Pick<Store, 'getDoc'>, ws: string): Promise<VaultMetaEntry[]> {
  checkWorkspace(ws);
  const doc = await store.getDoc<VaultDoc>(ws, VAULT_DOC);
  if (!doc || typeof doc !== 'object') return [];
  const out: VaultMetaEntry[] = [];
  for (const envVar of Object.keys(doc).sort()) {
    const rec = doc[envVar];
    if (!ENV_VAR_RE.test(envVar) || !isRecord(rec)) continue;
    out.push({ env_var: envVar, updated_at: rec.updated_at, version: rec.nonce, ...(rec.meta && { meta: { ...rec.meta } }) });
  }
  return out;
}

export interface VaultEntry {
  env_var: string;
  masked: string;
  updated_at: string;
  /** Plain metadata (kind, validated_at, expires_at, channel, health), when recorded. */
  meta?: KeyMeta;
}

/** A record whose meta.expires_at has passed: treated as absent until the sweep deletes it. */
export function isExpired(meta: KeyMeta | undefined, now = Date.now()): boolean {
  const at = meta?.expires_at ? Date.parse(meta.expires_at) : NaN;
  return Number.isFinite(at) && at <= now;
}

/** A stored key as the sweeps and listings see it without the master key (no last-4). */
export interface VaultMetaEntry {
  env_var: string;
  updated_at: string;
  /** recordVersion: changes whenever the key is sealed again (replaced, refreshed, rotated). */
  version: string;
  meta?: KeyMeta;
}

/** What the registry, probe and relay need: existence, and scoped access to the key. */
export interface KeySource {
  has(ws: string, envVar: string): Promise<boolean>;
  /** Undefined when no key is stored; the key is wiped when `fn` settles. */
  withKey<T>(ws: string, envVar: string, fn: (key: Uint8Array) => Promise<T>): Promise<T | undefined>;
}

export function vaultAd(kid: string, ws: string, envVar: string): string {
  return `byok:v1|${kid}|${ws}|${envVar}`;
}
function last4Ad(kid: string, ws: string, envVar: string): string {
  return `byok:v1:last4|${kid}|${ws}|${envVar}`;
}

function checkWorkspace(ws: string): void {
  if (ws === SYSTEM_SCOPE || !isValidWorkspace(ws)) throw new ByokError('invalid_input', `invalid workspace id "${String(ws).slice(0, 80)}"`);
}

function checkPlace(ws: string, envVar: string): void {
  checkWorkspace(ws);
  if (!ENV_VAR_RE.test(envVar)) throw new ByokError('invalid_input', `invalid key name "${String(envVar).slice(0, 80)}" (expected an env var name such as OPENAI_API_KEY)`);
}

function recordOf(doc: VaultDoc | undefined, envVar: string): SealedRecord | undefined {
  if (!doc || typeof doc !== 'object' || !Object.hasOwn(doc, envVar)) return undefined;
  return doc[envVar];
}

function isRecord(r: unknown): r is SealedRecord {
  const x = r as SealedRecord;
  return (
    !!x &&
    typeof x === 'object' &&
    x.v === 1 &&
    typeof x.kid === 'string' &&
    typeof x.nonce === 'string' &&
    typeof x.ct === 'string' &&
    typeof x.fp === 'string' &&
    (x.last4 === null || x.last4 === undefined || typeof x.last4 === 'string')
  );
}

function fingerprint(s: Sodium, mk: MasterKey, ws: string, key: Uint8Array): Uint8Array {
  const prefix = utf8(`byok:fp:v1|${ws}|`);
  const msg = new Uint8Array(prefix.length + key.length);
  msg.set(prefix);
  msg.set(key, prefix.length);
  try {
    return s.crypto_generichash(32, msg, mk.subkey('fingerprint'));
  } finally {
    s.memzero(msg);
  }
}

export class Vault implements KeySource {
  constructor(
    private readonly store: Store,
    private readonly ring: MasterKeyring,
  ) {}

  /** Seals and stores a key (replacing any previous one). Does not wipe `key`: the caller owns it. */
  async put(ws: string, envVar: string, key: Uint8Array, meta?: KeyMeta, opts?: PutOptions): Promise<{ masked: string; updated_at: string }> {
    checkPlace(ws, envVar);
    if (!(key instanceof Uint8Array) || key.length === 0) throw new ByokError('invalid_input', 'the key is empty');
    if (key.length > MAX_KEY_BYTES) throw new ByokError('too_large', `the key is longer than ${MAX_KEY_BYTES} bytes`);
    const s = await getSodium();
    const updated_at = new Date().toISOString();
    const tail = opts?.maskFrom ? (last4Bytes(opts.maskFrom) ?? null) : undefined;
    const rec: SealedRecord = { ...this.seal(s, ws, envVar, key, updated_at, tail), ...(meta && { meta: { ...meta } }) };
    await this.store.updateDoc<VaultDoc, void>(ws, VAULT_DOC, (cur) => {
      // Compare-and-set (OAuth refresh): the record must still be the one the caller read.
      if (opts?.ifVersion !== undefined && recordVersion(recordOf(cur, envVar)) !== opts.ifVersion) {
        throw new ByokError('conflict', `the stored ${envVar} changed meanwhile; it was not overwritten`, { env_var: envVar });
      }
      return { value: { ...(cur ?? {}), [envVar]: rec }, result: undefined };
    });
    return { masked: opts?.maskFrom ? maskKey(opts.maskFrom) : maskKey(key), updated_at };
  }

  /** False for a key past its expires_at too: it is never used again, even before the sweep deletes it. */
  async has(ws: string, envVar: string): Promise<boolean> {
    checkPlace(ws, envVar);
    const rec = recordOf(await this.store.getDoc<VaultDoc>(ws, VAULT_DOC), envVar);
    return rec !== undefined && !isExpired(rec.meta);
  }

  /** Removes a key; true when one was stored. The document goes when its last key does. */
  async delete(ws: string, envVar: string): Promise<boolean> {
    checkPlace(ws, envVar);
    return this.store.updateDoc<VaultDoc, boolean>(ws, VAULT_DOC, (cur) => {
      if (!recordOf(cur, envVar)) return { value: cur, result: false };
      const next = { ...cur } as VaultDoc;
      delete next[envVar];
      return { value: Object.keys(next).length ? next : undefined, result: true };
    });
  }

  /** Removes several keys in one update (a key pair such as AWS's); returns the names that were stored. */
  async deleteMany(ws: string, envVars: string[]): Promise<string[]> {
    for (const v of envVars) checkPlace(ws, v);
    return this.store.updateDoc<VaultDoc, string[]>(ws, VAULT_DOC, (cur) => {
      const gone = [...new Set(envVars)].filter((v) => recordOf(cur, v));
      if (!gone.length) return { value: cur, result: [] };
      const next = { ...cur } as VaultDoc;
      for (const v of gone) delete next[v];
      return { value: Object.keys(next).length ? next : undefined, result: gone };
    });
  }

  /** Removes every key of a workspace (forget me); returns how many were stored. */
  async deleteAll(ws: string): Promise<number> {
    checkWorkspace(ws);
    return this.store.updateDoc<VaultDoc, number>(ws, VAULT_DOC, (cur) => ({ value: undefined, result: Object.keys(cur ?? {}).length }));
  }

  /**
   * Changes a key's plain metadata without touching the sealed part (no re-seal; the key is
   * never opened). `fn` gets a copy of the current meta and returns the new one. False when
   * no such key is stored, or when `ifVersion` (see recordVersion) no longer matches: the key
   * was replaced meanwhile and what was learnt about the old one does not apply to it.
   */
  async updateMeta(ws: string, envVar: string, fn: (meta: KeyMeta) => KeyMeta, opts?: { ifVersion?: string }): Promise<boolean> {
    checkPlace(ws, envVar);
    return this.store.updateDoc<VaultDoc, boolean>(ws, VAULT_DOC, (cur) => {
      const rec = recordOf(cur, envVar);
      if (!rec || !isRecord(rec) || (opts?.ifVersion !== undefined && recordVersion(rec) !== opts.ifVersion)) return { value: cur, result: false };
      return { value: { ...cur, [envVar]: { ...rec, meta: fn({ ...(rec.meta ?? {}) }) } }, result: true };
    });
  }

  /** Stored key names with their masked form and metadata; never opens a key. */
  async list(ws: string): Promise<VaultEntry[]> {
    checkWorkspace(ws);
    const doc = await this.store.getDoc<VaultDoc>(ws, VAULT_DOC);
    if (!doc) return [];
    const s = await getSodium();
    const out: VaultEntry[] = [];
    for (const envVar of Object.keys(doc).sort()) {
      const rec = doc[envVar];
      if (!ENV_VAR_RE.test(envVar) || !isRecord(rec)) continue;
      out.push({ env_var: envVar, masked: maskLast4(this.openLast4(s, ws, envVar, rec)), updated_at: rec.updated_at, ...(rec.meta && { meta: { ...rec.meta } }) });
    }
    return out;
  }

  /**
   * The only way to read a key: opens it, calls `fn`, and zeroes the plaintext when `fn`
   * settles (`fn` must not keep the array or copies of it). Undefined when none is stored
   * or it is past its expires_at; throws ByokError when the record does not open (altered,
   * copied, unknown master key).
   */
  async withKey<T>(ws: string, envVar: string, fn: (key: Uint8Array) => Promise<T> | T): Promise<T | undefined> {
    checkPlace(ws, envVar);
    const rec = recordOf(await this.store.getDoc<VaultDoc>(ws, VAULT_DOC), envVar);
    if (rec === undefined || isExpired(rec.meta)) return undefined;
    const s = await getSodium();
    const key = this.openRecord(s, ws, envVar, rec);
    try {
      return await fn(key);
    } finally {
      s.memzero(key);
    }
  }

  /**
   * A synchronous matcher for the chat detector: true when `candidate` is one of the keys
   * stored in this workspace. Compares keyed fingerprints in constant time (per stored key);
   * the candidate's bytes are wiped after hashing. Snapshot of the vault at call time.
   */
  async fingerprintMatcher(ws: string): Promise<(candidate: string | Uint8Array) => boolean> {
    checkWorkspace(ws);
    const doc = await this.store.getDoc<VaultDoc>(ws, VAULT_DOC);
    const s = await getSodium();
    const stored: { mk: MasterKey; fp: Uint8Array }[] = [];
    for (const [envVar, rec] of Object.entries(doc ?? {})) {
      if (!ENV_VAR_RE.test(envVar) || !isRecord(rec)) continue;
      const mk = this.ring.byId(rec.kid);
      if (!mk) continue;
      try {
        stored.push({ mk, fp: unb64(s, rec.fp) });
      } catch {
        /* malformed fp: cannot match */
      }
    }
    if (stored.length === 0) return () => false;
    const kids = [...new Set(stored.map((x) => x.mk))];
    const encoder = new TextEncoder();
    return (candidate) => {
      const bytes = typeof candidate === 'string' ? encoder.encode(candidate.trim()) : candidate;
      if (bytes.length === 0 || bytes.length > MAX_KEY_BYTES) return false;
      let found = false;
      try {
        for (const mk of kids) {
          const fp = fingerprint(s, mk, ws, bytes);
          for (const x of stored) {
            if (x.mk !== mk || x.fp.length !== fp.length) continue;
            found = s.memcmp(fp, x.fp) || found; // no early exit
          }
        }
      } finally {
        if (typeof candidate === 'string') s.memzero(bytes);
      }
      return found;
    };
  }

  async isKnownKey(ws: string, candidate: string | Uint8Array): Promise<boolean> {
    return (await this.fingerprintMatcher(ws))(candidate);
  }

  /**
   * Re-seals every record of every workspace still under an older master key with the
   * current one (new nonce, new fingerprint, same updated_at). Idempotent; stops with a
   * clear error at a record whose key id is not configured (that workspace is left as it
   * was; workspaces done before stay re-sealed, so a rerun continues). Once it returns, the
   * previous keys can be removed from BYOK_MASTER_KEY_PREVIOUS. (The worker's box keys are
   * sealed under the master key too: see BoxKeys.resealUnderCurrentMasterKey.)
   */
  async rotate(): Promise<{ resealed: number; workspaces: number }> {
    const s = await getSodium();
    const current = this.ring.current;
    const listed = (await this.store.listScopes(VAULT_DOC)).filter((ws) => ws !== SYSTEM_SCOPE);
    // A workspace that cannot be read back is not silently skipped: once the old master key
    // is removed its keys would never open again.
    const unreadable = listed.filter((ws) => !isValidWorkspace(ws));
    if (unreadable.length) {
      throw new ByokError('internal', `rotation not started: the store lists ${unreadable.length} vault scope(s) that are not workspace ids (${unreadable.slice(0, 3).join(', ')}); keep the previous master key and report this`);
    }
    const scopes = listed;
    let resealed = 0;
    for (const ws of scopes) {
      resealed += await this.store.updateDoc<VaultDoc, number>(ws, VAULT_DOC, (cur) => {
        if (!cur) return { value: cur, result: 0 };
        const next: VaultDoc = { ...cur };
        let n = 0;
        for (const [envVar, rec] of Object.entries(cur)) {
          if (!ENV_VAR_RE.test(envVar) || (isRecord(rec) && rec.kid === current.id)) continue;
          const key = this.openRecord(s, ws, envVar, rec);
          // The listed last 4 move as they were (an OAuth file's are its refresh token's, not its own).
          const shown = this.openLast4(s, ws, envVar, rec);
          try {
            next[envVar] = { ...this.seal(s, ws, envVar, key, rec.updated_at, shown ? utf8(shown) : null), ...(isRecord(rec) && rec.meta && { meta: rec.meta }) };
          } finally {
            s.memzero(key);
          }
          n++;
        }
        return { value: next, result: n };
      });
    }
    return { resealed, workspaces: scopes.length };
  }

  /** `tailOf`: the last-4 bytes to seal for the listing (null: none; absent: the key's own). Wiped here. */
  private seal(s: Sodium, ws: string, envVar: string, key: Uint8Array, updated_at: string, tailOf?: Uint8Array | null): SealedRecord {
    const mk = this.ring.current;
    const nonce = s.randombytes_buf(s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    const ct = s.crypto_aead_xchacha20poly1305_ietf_encrypt(key, utf8(vaultAd(mk.id, ws, envVar)), null, nonce, mk.subkey('vault'));
    const fp = fingerprint(s, mk, ws, key);
    let last4: string | null = null;
    const tail = tailOf === undefined ? last4Bytes(key) : (tailOf ?? undefined);
    if (tail) {
      const n2 = s.randombytes_buf(s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
      const c2 = s.crypto_aead_xchacha20poly1305_ietf_encrypt(tail, utf8(last4Ad(mk.id, ws, envVar)), null, n2, mk.subkey('vault'));
      s.memzero(tail);
      const both = new Uint8Array(n2.length + c2.length);
      both.set(n2);
      both.set(c2, n2.length);
      last4 = b64(s, both);
    }
    return { v: 1, kid: mk.id, nonce: b64(s, nonce), ct: b64(s, ct), fp: b64(s, fp), last4, updated_at };
  }

  private openRecord(s: Sodium, ws: string, envVar: string, rec: unknown): Uint8Array {
    const where = `the stored key ${envVar} of workspace ${ws}`;
    if (!isRecord(rec)) throw new ByokError('internal', `${where} is not a sealed record this version understands`);
    const mk = this.ring.byId(rec.kid);
    if (!mk) {
      throw new ByokError(
        'config',
        `${where} was sealed under master key ${rec.kid}, which is not configured (current key ${this.ring.current.id}); add the old key to BYOK_MASTER_KEY_PREVIOUS and run \`byok rotate-master-key\``,
        { workspace: ws, env_var: envVar, kid: rec.kid },
      );
    }
    try {
      return s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, unb64(s, rec.ct), utf8(vaultAd(rec.kid, ws, envVar)), unb64(s, rec.nonce), mk.subkey('vault'));
    } catch {
      throw new ByokError(
        'internal',
        `${where} does not open: the record was altered, or copied from another workspace or key name (sealed records are bound to their place); store the key again`,
        { workspace: ws, env_var: envVar, reason: 'unseal_failed' },
      );
    }
  }

  /** The last-4 hint as display text, or undefined (short key, unknown kid, altered record). */
  private openLast4(s: Sodium, ws: string, envVar: string, rec: SealedRecord): string | undefined {
    if (!rec.last4) return undefined;
    const mk = this.ring.byId(rec.kid);
    if (!mk) return undefined;
    try {
      const both = unb64(s, rec.last4);
      const npub = s.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
      const tail = s.crypto_aead_xchacha20poly1305_ietf_decrypt(null, both.subarray(npub), utf8(last4Ad(rec.kid, ws, envVar)), both.subarray(0, npub), mk.subkey('vault'));
      // Display text by design (`****` + last 4): the only part of a key that becomes a string.
      const text = String.fromCharCode(...tail);
      s.memzero(tail);
      return text;
    } catch {
      return undefined;
    }
  }
}
