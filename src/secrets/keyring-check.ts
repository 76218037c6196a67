import { ByokError, isByokError } from '../errors.ts';
import { SYSTEM_SCOPE, type Store } from '../store/types.ts';
import { BOX_KEYS_DOC } from './box-keys.ts';
import { loadMasterKeys, type MasterKeyConfig, type MasterKeyLogger, type MasterKeyring } from './master-key.ts';
import { VAULT_DOC } from './vault.ts';

/**
 * One master key per store. The `_system` document `master_key` records which master key
 * sealed the shared store (its id, a PRF output, never the key), so a process configured
 * with another key refuses to start instead of sealing beside (or deleting) what the
 * others sealed. `byok rotate-master-key` moves the record after re-sealing.
 *
 * Stores from before the record: the kids of what is sealed (form key pairs, vault records)
 * decide; when they are all in the ring the record is written (race-safe: the write re-checks
 * inside `updateDoc`, so of two processes with different keys starting at once one refuses).
 */
export const MASTER_KEY_DOC = 'master_key';

export interface MasterKeyRecord {
  id: string;
  created_at: string;
  rotated_at?: string;
}

type Kids = Map<string, string>; // kid -> where it was seen (for the message)

/** What the store says before any key is loaded: the recorded id, and whether anything is sealed. */
export async function storeSealState(store: Store): Promise<{ recordId?: string; sealed: boolean; kids: Kids }> {
  const rec = await store.getDoc<MasterKeyRecord>(SYSTEM_SCOPE, MASTER_KEY_DOC);
  if (rec && typeof rec.id === 'string') return { recordId: rec.id, sealed: true, kids: new Map() };
  const kids = await sealedKids(store);
  return { sealed: kids.size > 0, kids };
}

/** Kids of every sealed thing in a store that predates the record. */
async function sealedKids(store: Store): Promise<Kids> {
  const kids: Kids = new Map();
  const box = await store.getDoc<{ keys?: Record<string, { kid?: unknown }> }>(SYSTEM_SCOPE, BOX_KEYS_DOC);
  for (const rec of Object.values(box?.keys ?? {})) {
    if (typeof rec?.kid === 'string' && !kids.has(rec.kid)) kids.set(rec.kid, 'a secure-form key pair');
  }
  for (const ws of await store.listScopes(VAULT_DOC)) {
    if (ws === SYSTEM_SCOPE) continue;
    const doc = await store.getDoc<Record<string, { kid?: unknown }>>(ws, VAULT_DOC);
    for (const [envVar, rec] of Object.entries(doc ?? {})) {
      if (typeof rec?.kid === 'string' && !kids.has(rec.kid)) kids.set(rec.kid, `the stored key ${envVar} of workspace ${ws}`);
    }
  }
  return kids;
}

function advice(redis: boolean): string {
  return redis
    ? 'Set the same BYOK_MASTER_KEY on every process'
    : 'Restore the master key this store was sealed with (the master.key file from a backup, or BYOK_MASTER_KEY)';
}

function mismatch(storeId: string, ring: MasterKeyring, redis: boolean, what = 'this store was sealed'): ByokError {
  const others = ring.ids.length > 1 ? ` (previous: ${ring.ids.slice(1).join(', ')})` : '';
  return new ByokError(
    'config',
    `${what} under master key ${storeId}, but this process has master key ${ring.current.id}${others}. ` +
      `Refusing to start: nothing it seals could be opened by the others, and it cannot open what they sealed. ` +
      `${advice(redis)}; or, to change the master key, list the old one (id ${storeId}) in BYOK_MASTER_KEY_PREVIOUS and run \`byok rotate-master-key\`.`,
    { store_key_id: storeId, key_id: ring.current.id },
  );
}

/**
 * Throws ByokError('config') when the store was sealed under a master key the ring does not
 * hold; otherwise makes sure the record exists. A ring whose previous keys hold the recorded
 * one is mid-rotation: allowed (with a warning) until `byok rotate-master-key` moves the record.
 */
export async function checkMasterKeyMatchesStore(
  store: Store,
  ring: MasterKeyring,
  opts: { redis: boolean; logger?: MasterKeyLogger },
): Promise<{ id: string; created: boolean }> {
  const judge = (rec: MasterKeyRecord): { id: string; created: boolean } => {
    if (!ring.byId(rec.id)) throw mismatch(rec.id, ring, opts.redis);
    if (rec.id !== ring.current.id) {
      opts.logger?.warn(`the store is sealed under master key ${rec.id} (listed in BYOK_MASTER_KEY_PREVIOUS); run \`byok rotate-master-key\` to re-seal it under ${ring.current.id}`);
    }
    return { id: rec.id, created: false };
  };
  const rec = await store.getDoc<MasterKeyRecord>(SYSTEM_SCOPE, MASTER_KEY_DOC);
  if (rec) return judge(rec);

  const kids = await sealedKids(store);
  const unknown = [...kids].filter(([kid]) => !ring.byId(kid));
  if (unknown.length) {
    const [kid, where] = unknown[0];
    const more = unknown.length > 1 ? ` (and ${unknown.length - 1} other master key id(s): ${unknown.slice(1).map(([k]) => k).join(', ')})` : '';
    throw mismatch(kid, ring, opts.redis, `${where} was sealed${more}`);
  }
  return store.updateDoc<MasterKeyRecord, { id: string; created: boolean }>(SYSTEM_SCOPE, MASTER_KEY_DOC, (cur) => {
    if (cur) return { value: cur, result: judge(cur) };
    return { value: { id: ring.current.id, created_at: new Date().toISOString() }, result: { id: ring.current.id, created: true } };
  });
}

/** After `byok rotate-master-key` re-sealed everything: the store is now under the current key. */
export async function recordRotation(store: Store, ring: MasterKeyring): Promise<MasterKeyRecord> {
  const now = new Date().toISOString();
  return store.updateDoc<MasterKeyRecord, MasterKeyRecord>(SYSTEM_SCOPE, MASTER_KEY_DOC, (cur) => {
    const next: MasterKeyRecord = { id: ring.current.id, created_at: cur?.created_at ?? now, rotated_at: now };
    return { value: next, result: next };
  });
}

/**
 * The one way a process gets its ring: loads it (never generating a key in distributed mode
 * or beside sealed data) and checks it against the store. Wipes the ring when refusing.
 */
export async function loadCheckedMasterKeys(
  store: Store,
  config: MasterKeyConfig,
  logger: MasterKeyLogger,
  env: NodeJS.ProcessEnv = process.env,
): Promise<MasterKeyring> {
  const redis = !!config.redisUrl;
  // Only an embedded start without BYOK_MASTER_KEY may generate a key: only it needs to look.
  const state = redis || config.masterKey ? undefined : await storeSealState(store);
  const ring = await loadMasterKeys(config, logger, env, {
    mayGenerate: !redis && !state?.sealed,
    sealedBy: state?.recordId ?? ([...(state?.kids.keys() ?? [])].join(', ') || undefined),
  });
  try {
    await checkMasterKeyMatchesStore(store, ring, { redis, logger });
  } catch (e) {
    ring.wipe();
    throw e;
  }
  return ring;
}

/** A stored key (or form key pair) whose master key this process does not have. */
export function isMasterKeyUnavailable(e: unknown): boolean {
  if (!isByokError(e)) return false;
  // The vault reports an unconfigured kid as a config error carrying the kid.
  return e.code === 'master_key_unavailable' || (e.code === 'config' && typeof e.details?.kid === 'string');
}
