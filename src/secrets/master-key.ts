import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ByokError } from '../errors.ts';
import { getSodium, utf8, type Sodium } from './sodium.ts';

/**
 * The master key seals everything at rest (vault records, the worker's box secret keys).
 *
 * Sources, in order:
 *  - `BYOK_MASTER_KEY`: 32 bytes, standard or URL-safe base64 (padding optional);
 *  - otherwise the embedded default `$BYOK_DATA_DIR/master.key`, generated once (mode 0600,
 *    the directory 0700) and reused on later starts; a malformed file refuses the start
 *    (it is never silently replaced: that would orphan every stored key). A missing file is
 *    generated only when the caller allows it (`mayGenerate`: the store holds nothing sealed)
 *    and never in distributed mode (`redisUrl`): each process would make its own key.
 * `BYOK_MASTER_KEY_PREVIOUS` (comma-separated, same format) lists retired keys that stay
 * readable until `byok rotate-master-key` has re-sealed everything under the current one.
 *
 * Key ids are the first 8 hex characters of a keyed BLAKE2b of a constant under the key
 * (a PRF output: 32 bits of it reveal nothing about the key). Records carry the id of the
 * key that sealed them.
 *
 * The raw master key is never used directly: each purpose gets its own subkey from
 * `crypto_kdf_derive_from_key` (BLAKE2b, context `byokmkv1`), so the AEAD key, the
 * fingerprint MAC key and the box-key wrapping key are independent of each other.
 */
export const MASTER_KEY_BYTES = 32;
export const MASTER_KEY_FILE = 'master.key';

export type SubkeyPurpose = 'vault' | 'fingerprint' | 'box';
const SUBKEY_IDS: Record<SubkeyPurpose, number> = { vault: 1, fingerprint: 2, box: 3 };
const KDF_CONTEXT = 'byokmkv1'; // exactly crypto_kdf_CONTEXTBYTES (8) characters

export class MasterKey {
  readonly id: string;
  #key: Uint8Array;
  readonly #subkeys = new Map<SubkeyPurpose, Uint8Array>();
  readonly #s: Sodium;

  /** Takes ownership of `key` (the ring wipes it). */
  constructor(s: Sodium, key: Uint8Array) {
    if (key.length !== MASTER_KEY_BYTES) throw new ByokError('config', `a master key must be ${MASTER_KEY_BYTES} bytes`);
    this.#s = s;
    this.#key = key;
    this.id = masterKeyId(s, key);
  }

  /** The subkey for one purpose. Owned by the ring: callers must not wipe or keep it. */
  subkey(purpose: SubkeyPurpose): Uint8Array {
    let k = this.#subkeys.get(purpose);
    if (!k) {
      if (this.#key.length === 0) throw new ByokError('internal', 'master key ring was wiped');
      k = this.#s.crypto_kdf_derive_from_key(32, SUBKEY_IDS[purpose], KDF_CONTEXT, this.#key);
      this.#subkeys.set(purpose, k);
    }
    return k;
  }

  wipe(): void {
    this.#s.memzero(this.#key);
    for (const k of this.#subkeys.values()) this.#s.memzero(k);
    this.#subkeys.clear();
    this.#key = new Uint8Array(0);
  }
}

export interface MasterKeyring {
  /** The key new seals use. */
  readonly current: MasterKey;
  /** Any configured key (current or previous) by id; undefined when not configured. */
  byId(id: string): MasterKey | undefined;
  /** Ids of every configured key, current first. */
  readonly ids: string[];
  /** Zeroes every key and subkey (shutdown, tests). */
  wipe(): void;
}

function masterKeyId(s: Sodium, key: Uint8Array): string {
  return s.to_hex(s.crypto_generichash(16, utf8('byok master key id v1'), key)).slice(0, 8);
}

/** A ring from raw keys (copied: the caller keeps and wipes its own arrays). */
export async function makeKeyring(current: Uint8Array, previous: Uint8Array[] = []): Promise<MasterKeyring> {
  const s = await getSodium();
  const cur = new MasterKey(s, current.slice());
  const byId = new Map<string, MasterKey>([[cur.id, cur]]);
  const seen: Uint8Array[] = [current];
  for (const p of previous) {
    if (p.length === MASTER_KEY_BYTES && seen.some((q) => s.memcmp(p, q))) continue; // listed twice: harmless
    const k = new MasterKey(s, p.slice());
    if (byId.has(k.id)) {
      k.wipe();
      for (const x of byId.values()) x.wipe();
      throw new ByokError('config', `two different master keys share the id ${k.id}; generate a new key`);
    }
    byId.set(k.id, k);
    seen.push(p);
  }
  return {
    current: cur,
    byId: (id) => byId.get(id),
    ids: [...byId.keys()],
    wipe: () => {
      for (const k of byId.values()) k.wipe();
    },
  };
}

/**
 * Parses one master key. The error never contains the value (nor a part of it).
 * `what` names the source for the message (`BYOK_MASTER_KEY`, a file path).
 */
export function parseMasterKey(s: Sodium, text: string, what: string): Uint8Array {
  const t = text.trim();
  const expect = `${what} must be ${MASTER_KEY_BYTES} random bytes in base64 (44 characters, standard or URL-safe; generate one with \`openssl rand -base64 32\`)`;
  let variant: number | undefined;
  const padded = t.endsWith('=');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(t)) variant = padded ? s.base64_variants.ORIGINAL : s.base64_variants.ORIGINAL_NO_PADDING;
  else if (/^[A-Za-z0-9_-]{43}=?$/.test(t)) variant = padded ? s.base64_variants.URLSAFE : s.base64_variants.URLSAFE_NO_PADDING;
  if (variant === undefined) {
    const hint = /^[0-9a-fA-F]{64}$/.test(t) ? '; the value looks like hex, which is not accepted' : '';
    throw new ByokError('config', `${expect}; the value given is not${hint}`);
  }
  let key: Uint8Array;
  try {
    key = s.from_base64(t, variant);
  } catch {
    throw new ByokError('config', `${expect}; the value given is not valid base64`);
  }
  if (key.length !== MASTER_KEY_BYTES) {
    s.memzero(key);
    throw new ByokError('config', `${expect}; the value given does not decode to ${MASTER_KEY_BYTES} bytes`);
  }
  if (s.is_zero(key)) throw new ByokError('config', `${expect}; the value given is all zero bytes`);
  return key;
}

export interface MasterKeyConfig {
  dataDir: string;
  /** Distributed mode: every process must share one key, so none is ever generated. */
  redisUrl?: string;
  /** `BYOK_MASTER_KEY`. */
  masterKey?: string;
  /** `BYOK_MASTER_KEY_PREVIOUS`; read from `env` when the config does not carry it. */
  masterKeyPrevious?: string;
}

export interface MasterKeyLogger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface LoadMasterKeysOptions {
  /**
   * May a missing master.key be generated? The caller says no when the store already holds
   * sealed data (a new key would open none of it). Default true; always false with `redisUrl`.
   */
  mayGenerate?: boolean;
  /** The master key id the store records as its sealing key, named in the refusal. */
  sealedBy?: string;
}

export const RESTORE_ADVICE = 'Refusing to start: restore the file from a backup (or set BYOK_MASTER_KEY); do not delete it while sealed keys exist';
export const DISTRIBUTED_ADVICE = 'distributed mode needs BYOK_MASTER_KEY, the same on every process; generate one with `openssl rand -base64 32`';

/** Loads the ring (see the module comment). Throws ByokError('config') on anything malformed or missing. */
export async function loadMasterKeys(
  config: MasterKeyConfig,
  logger: MasterKeyLogger,
  env: NodeJS.ProcessEnv = process.env,
  opts: LoadMasterKeysOptions = {},
): Promise<MasterKeyring> {
  const s = await getSodium();
  const owned: Uint8Array[] = [];
  try {
    const previousText = config.masterKeyPrevious ?? env.BYOK_MASTER_KEY_PREVIOUS ?? '';
    const previous = previousText
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)
      .map((p, i) => parseMasterKey(s, p, `BYOK_MASTER_KEY_PREVIOUS entry ${i + 1}`));
    owned.push(...previous);

    let current: Uint8Array;
    const file = path.join(config.dataDir, MASTER_KEY_FILE);
    if (config.masterKey !== undefined && config.masterKey !== '') {
      current = parseMasterKey(s, config.masterKey, 'BYOK_MASTER_KEY');
      owned.push(current);
      await warnOnOrphanedFile(s, file, masterKeyId(s, current), previous, logger);
    } else {
      const existing = await readKeyFile(s, file, logger);
      if (existing) current = existing;
      else if (config.redisUrl) {
        throw new ByokError('config', `REDIS_URL is set but BYOK_MASTER_KEY is not (and there is no ${file}): ${DISTRIBUTED_ADVICE}; no master key was generated`);
      } else if (opts.mayGenerate === false) {
        throw new ByokError(
          'config',
          `the master key file ${file} is missing, but the store already holds data sealed under master key ${opts.sealedBy ?? '(unknown id)'}; a new key could open none of it. ${RESTORE_ADVICE}`,
        );
      } else current = await loadOrCreateKeyFile(s, config.dataDir, file, logger);
      owned.push(current);
    }
    const ring = await makeKeyring(current, previous);
    if (previous.length) logger.info(`master key ${ring.current.id} in use; previous key(s) ${ring.ids.slice(1).join(', ') || '(same as current)'} stay readable until \`byok rotate-master-key\``);
    return ring;
  } finally {
    for (const k of owned) s.memzero(k);
  }
}

async function readKeyFile(s: Sodium, file: string, logger: MasterKeyLogger): Promise<Uint8Array | undefined> {
  let st;
  try {
    st = await fs.lstat(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ByokError('config', `cannot read the master key file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!st.isFile()) throw new ByokError('config', `the master key file ${file} is not a regular file; refusing to start`);
  if ((st.mode & 0o077) !== 0) {
    try {
      await fs.chmod(file, 0o600);
      logger.warn(`the master key file ${file} was readable by other users; its mode was set to 0600`);
    } catch {
      throw new ByokError('config', `the master key file ${file} is readable by other users and its mode cannot be fixed; run \`chmod 600 ${file}\``);
    }
  }
  const buf = await fs.readFile(file);
  try {
    return parseMasterKey(s, buf.toString('latin1'), `the master key file ${file}`);
  } catch (e) {
    throw new ByokError('config', `${(e as Error).message}. ${RESTORE_ADVICE}`);
  } finally {
    buf.fill(0);
  }
}

async function loadOrCreateKeyFile(s: Sodium, dataDir: string, file: string, logger: MasterKeyLogger): Promise<Uint8Array> {
  await fs.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const existing = await readKeyFile(s, file, logger);
  if (existing) return existing;

  const key = s.randombytes_buf(MASTER_KEY_BYTES);
  const text = s.to_base64(key, s.base64_variants.ORIGINAL) + '\n';
  const id = masterKeyId(s, key);
  s.memzero(key);
  // Written whole to a private temp file, then hard-linked into place: the link fails if
  // another process created the file first, and nobody ever reads a half-written key.
  const tmp = `${file}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`;
  let created = false;
  try {
    await fs.writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
    try {
      await fs.link(tmp, file);
      created = true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        // Filesystems without hard links: exclusive create, still never overwriting.
        try {
          await fs.writeFile(file, text, { mode: 0o600, flag: 'wx' });
          created = true;
        } catch (e2) {
          if ((e2 as NodeJS.ErrnoException).code !== 'EEXIST') throw e2;
        }
      }
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
  if (created) {
    await fs.chmod(file, 0o600);
    logger.info(
      `generated a new master key (id ${id}) in ${file} (mode 0600). Back this file up: without it the stored API keys cannot be opened. Set BYOK_MASTER_KEY to manage the key yourself.`,
    );
  }
  const loaded = await readKeyFile(s, file, logger);
  if (!loaded) throw new ByokError('config', `the master key file ${file} disappeared while starting`);
  return loaded;
}

/** BYOK_MASTER_KEY is set but an embedded master.key with another key is still there. */
async function warnOnOrphanedFile(s: Sodium, file: string, currentId: string, previous: Uint8Array[], logger: MasterKeyLogger): Promise<void> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch {
    return;
  }
  try {
    const k = parseMasterKey(s, buf.toString('latin1'), 'file');
    const id = masterKeyId(s, k);
    s.memzero(k);
    if (id !== currentId && !previous.some((p) => masterKeyId(s, p) === id)) {
      logger.warn(
        `BYOK_MASTER_KEY (id ${currentId}) is set, but ${file} holds another master key (id ${id}); keys sealed under it cannot be opened unless it is listed in BYOK_MASTER_KEY_PREVIOUS and \`byok rotate-master-key\` is run`,
      );
    }
  } catch {
    /* not our business when the env key is in use */
  } finally {
    buf.fill(0);
  }
}
