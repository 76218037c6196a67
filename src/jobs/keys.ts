import { Confirmations } from '../chat/confirmations.ts';
import type { ChannelRef } from '../queue/types.ts';
import { type Registry, MODEL_SELECTOR_PREFIX, type CustomModel } from '../registry/index.ts';
import { ENV_VAR_RE, isExpired, readVaultMeta, type KeyHealthStatus, type KeyMeta, type Vault } from '../secrets/vault.ts';
import type { Store } from '../store/types.ts';
import { findTemplate, getTemplate, loadTemplates } from '../vendors/templates.ts';
import type { Template } from '../vendors/template-schema.ts';

/**
 * A workspace's stored credentials as the user thinks of them: one entry per key, whatever
 * the number of vault records behind it (an AWS key pair is two names) and of models using
 * it (every model of one vendor shares its key). Built from the registry and the vault's
 * plain metadata; never opens a key (the masked form comes from the vault's sealed last-4).
 */
export interface KeyGroup {
  /** The name models reference (api_key_env); the first of env_vars. */
  env_var: string;
  /** Every vault name of this credential (AWS: access key id and secret). */
  env_vars: string[];
  /** Those stored now. */
  stored: string[];
  /** meta.kind, else the models' credential_kind, else api_key. */
  kind: string;
  /** Template id, `custom`, or '' for a key no model references. */
  vendor: string;
  /** Template name, else the endpoint host, else the key name. */
  vendor_name: string;
  host?: string;
  /** `****abcd` (null when read without the master key). */
  masked: string | null;
  updated_at?: string;
  /** The primary record's version (see recordVersion): meta updates apply only to this key. */
  version?: string;
  meta: KeyMeta;
  health: { status: KeyHealthStatus | 'unchecked'; checked_at?: string };
  /** The earliest expires_at of its stored names (the form sets one for all of them). */
  expires_at?: string;
  expired: boolean;
  /** Live (not removed) models using the key. */
  models: CustomModel[];
}

export interface KeyDeps {
  store: Store;
  registry: Pick<Registry, 'list_models' | 'set_key_status'>;
  /** With a vault, entries carry the masked key; without, masked is null (no master key needed). */
  vault?: { list(ws: string): Promise<Array<{ env_var: string; masked: string }>> };
}

function hostOf(url: string | undefined): string | undefined {
  try {
    return url ? new URL(url).host : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The template declaring a key name, and the names of that credential: `AWS_ACCESS_KEY_ID` →
 * bedrock's pair; a host-bound name (`…__HOST`) pairs with the same suffix.
 */
function declaredBy(envVar: string): { tpl: Template; env_vars: string[] } | undefined {
  const cut = envVar.indexOf('__');
  const base = cut < 0 ? envVar : envVar.slice(0, cut);
  const suffix = cut < 0 ? '' : envVar.slice(cut);
  for (const tpl of loadTemplates()) {
    const names = [tpl.env_var, ...tpl.extra_env_vars];
    if (names.includes(base)) return { tpl, env_vars: names.map((n) => n + suffix) };
    if (tpl.credential.alternative?.env_var === base) return { tpl, env_vars: [envVar] };
  }
  return undefined;
}

/** Every stored key of the workspace (sorted by vendor, then key name). */
export async function keyGroups(deps: KeyDeps, ws: string): Promise<KeyGroup[]> {
  const [metaEntries, listed, res] = await Promise.all([
    readVaultMeta(deps.store, ws),
    deps.vault ? deps.vault.list(ws) : Promise.resolve(undefined),
    deps.registry.list_models(ws, { include_removed: true }),
  ]);
  const stored = new Map(metaEntries.map((e) => [e.env_var, e]));
  const masked = new Map((listed ?? []).map((e) => [e.env_var, e.masked]));
  const models = res.ok ? res.models : [];
  // One group per primary key name; extra names (AWS secret) join their primary's group.
  const byPrimary = new Map<string, { env_vars: Set<string>; all: CustomModel[] }>();
  for (const m of models) {
    const g = byPrimary.get(m.api_key_env) ?? { env_vars: new Set([m.api_key_env]), all: [] };
    for (const x of m.extra_env_vars) g.env_vars.add(x);
    g.all.push(m);
    byPrimary.set(m.api_key_env, g);
  }
  const covered = new Set<string>();
  const out: KeyGroup[] = [];
  const make = (env_vars: string[], all: CustomModel[], declared?: Template): KeyGroup | undefined => {
    const have = env_vars.filter((v) => stored.has(v));
    if (!have.length) return undefined;
    for (const v of env_vars) covered.add(v);
    const primary = stored.get(env_vars[0]!) ?? stored.get(have[0]!)!;
    const meta = primary.meta ?? {};
    const expiries = have.map((v) => stored.get(v)!.meta?.expires_at).filter((x): x is string => !!x && Number.isFinite(Date.parse(x)));
    const expires_at = expiries.sort((a, b) => Date.parse(a) - Date.parse(b))[0];
    const live = all.filter((m) => m.status !== 'removed');
    const first = live[0] ?? all[0];
    const tpl = first && first.vendor !== 'custom' ? getTemplate(first.vendor) : declared;
    const host = hostOf(first?.base_url);
    return {
      env_var: env_vars[0]!,
      env_vars,
      stored: have,
      kind: meta.kind ?? first?.credential_kind ?? 'api_key',
      vendor: first?.vendor ?? declared?.id ?? '',
      // A vendor's key for another host (DASHSCOPE_API_KEY__DASHSCOPE_ALIYUNCS_COM) names that host.
      vendor_name: tpl ? (host && env_vars[0]!.includes('__') ? `${tpl.name} (${host})` : tpl.name) : (host ?? env_vars[0]!),
      ...(host && { host }),
      masked: listed ? (masked.get(primary.env_var) ?? '****') : null,
      updated_at: primary.updated_at,
      version: primary.version,
      meta,
      health: meta.health ? { status: meta.health.status, checked_at: meta.health.checked_at } : { status: 'unchecked' },
      ...(expires_at && { expires_at }),
      expired: isExpired({ expires_at }),
      models: live,
    };
  };
  for (const [primary, g] of byPrimary) {
    const grp = make([primary, ...[...g.env_vars].filter((v) => v !== primary)], g.all);
    if (grp) out.push(grp);
  }
  // Keys no model references (its models were deleted, moved to another host or switched to
  // the other credential, or stored by an older version): grouped and named by the template
  // that declares them, so an AWS pair stays one key under its vendor and is deleted whole.
  for (const e of metaEntries) {
    if (covered.has(e.env_var)) continue;
    const decl = declaredBy(e.env_var);
    const names = decl ? decl.env_vars.filter((v) => v === e.env_var || (stored.has(v) && !covered.has(v))) : [e.env_var];
    out.push(make(names, [], decl?.tpl)!);
  }
  return out.sort((a, b) => a.vendor_name.localeCompare(b.vendor_name) || a.env_var.localeCompare(b.env_var));
}

export type KeyTarget = { ok: true; group: KeyGroup } | { ok: false; code: 'not_found' | 'ambiguous'; candidates: KeyGroup[] };

/**
 * Which key `/byok key delete <query>` / `byok delete-key <query>` means: a key name (any of
 * a pair), a model id (`custom/` optional), a vendor (template id, alias or name) or a host.
 * A vendor with several keys (two endpoints) is ambiguous: the user names the key.
 */
export function resolveKeyTarget(groups: KeyGroup[], query: string): KeyTarget {
  const q = query.trim();
  if (!q) return { ok: false, code: 'not_found', candidates: [] };
  if (ENV_VAR_RE.test(q)) {
    const g = groups.find((x) => x.env_vars.includes(q));
    if (g) return { ok: true, group: g };
  }
  const id = q.startsWith(MODEL_SELECTOR_PREFIX) ? q.slice(MODEL_SELECTOR_PREFIX.length) : q;
  const byModel = groups.find((g) => g.models.some((m) => m.id === id));
  if (byModel) return { ok: true, group: byModel };
  const tpl = findTemplate(q);
  const hits = groups.filter((g) => (tpl && g.vendor === tpl.id) || (g.host && g.host.toLowerCase() === q.toLowerCase()));
  if (hits.length === 1) return { ok: true, group: hits[0]! };
  if (hits.length > 1) return { ok: false, code: 'ambiguous', candidates: hits };
  // Last: a key name typed in lower case.
  const loose = groups.find((g) => g.env_vars.includes(q.toUpperCase()));
  return loose ? { ok: true, group: loose } : { ok: false, code: 'not_found', candidates: [] };
}

export interface DeletedKey {
  /** Vault names that were stored and are gone. */
  deleted: string[];
  /** Models now waiting for a key (pending_key). */
  models: string[];
}

/**
 * Deletes a key (every name of the pair) and sets each live model that used it to
 * pending_key: the models stay registered, and the next message to one of them, or
 * `/byok key <id>`, brings the secure form. The vault goes first: a crash in between leaves
 * models that look ready but find no key, which the relay already answers with the form.
 */
export async function deleteKeyGroup(
  deps: { vault: Pick<Vault, 'deleteMany'>; registry: Pick<Registry, 'set_key_status'> },
  ws: string,
  env_vars: string[],
  reason: { code: string; message: string },
): Promise<DeletedKey> {
  const deleted = await deps.vault.deleteMany(ws, env_vars);
  const models = new Set<string>();
  for (const v of env_vars) {
    const r = await deps.registry.set_key_status(ws, v, 'pending_key', reason);
    if (r.ok) for (const m of r.models) models.add(m.id);
  }
  return { deleted, models: [...models].sort() };
}

/** The chat a workspace's notices go to when the key's meta names none. */
export function channelForWorkspace(ws: string): ChannelRef {
  let m: RegExpExecArray | null;
  if ((m = /^tg:group:(-?\d+)$/.exec(ws))) return { channel: 'telegram', chat_id: m[1]! };
  if ((m = /^tg:(-?\d+)$/.exec(ws))) return { channel: 'telegram', chat_id: m[1]!, user_id: m[1]! };
  if ((m = /^wx:(.+)$/.exec(ws))) return { channel: 'wechat', chat_id: m[1]!, user_id: m[1]! };
  return { channel: 'shell', chat_id: 'local', user_id: 'local' };
}

/** What "forget me" deleted, by kind (counts only). */
export interface ForgetReport {
  /** Vault records (an AWS pair counts two). */
  keys: number;
  /** Model entries, removed ones included. */
  models: number;
  /** Models with recorded usage. */
  usage: number;
  /** Pending secure-form links voided. */
  forms: number;
  /** Sealed submissions waiting for validation. */
  submissions: number;
  /** Messages of chat history. */
  chat_messages: number;
  /** Group chats whose model choice (made by this user) was cleared. */
  groups: number;
}

/** Documents of a workspace that forget removes (names as their modules store them). */
const DOCS = { models: 'custom_models', usage: 'usage', chat: 'chat', prefs: 'prefs', submissions: 'submissions', forms: 'env_input_requests' } as const;

/**
 * Forget me: every key, model, usage record, chat state and setting of a workspace, its
 * pending forms (their links answer 410 from now on) and sealed submissions, and its model
 * choice in groups. Each part is one atomic update; running it again finishes a run that
 * was cut short. A validation already running finds its submission gone and stores nothing.
 */
export async function forgetWorkspace(
  deps: { store: Store; vault: Pick<Vault, 'deleteAll'>; voidForm: (tokenHash: string) => Promise<boolean> },
  ws: string,
): Promise<ForgetReport> {
  const { store } = deps;
  const drop = <T, R>(name: string, count: (cur: T | undefined) => R) =>
    store.updateDoc<T, R>(ws, name, (cur) => ({ value: undefined, result: count(cur) }));
  // Links first: a form submitted during forget must not bring a key back.
  const forms = await drop<Record<string, { hash?: string }>, string[]>(DOCS.forms, (cur) =>
    Object.values(cur ?? {}).map((e) => e?.hash).filter((h): h is string => typeof h === 'string'),
  );
  let voided = 0;
  for (const h of forms) if (await deps.voidForm(h).catch(() => false)) voided++;
  const submissions = await drop<Record<string, unknown>, number>(DOCS.submissions, (cur) => Object.keys(cur ?? {}).length);
  const keys = await deps.vault.deleteAll(ws);
  const models = await drop<{ models?: unknown[] }, number>(DOCS.models, (cur) => (Array.isArray(cur?.models) ? cur.models.length : 0));
  const usage = await drop<{ models?: Record<string, unknown> }, number>(DOCS.usage, (cur) => Object.keys(cur?.models ?? {}).length);
  const chat_messages = await drop<{ history?: unknown[] }, number>(DOCS.chat, (cur) => (Array.isArray(cur?.history) ? cur.history.length : 0));
  await drop<unknown, void>(DOCS.prefs, () => undefined);
  await new Confirmations(store).cancel(ws);
  // Groups where this user chose one of their own models: the choice goes with the model.
  let groups = 0;
  for (const scope of await store.listScopes(DOCS.chat)) {
    if (scope === ws) continue;
    const doc = await store.getDoc<{ model_owner?: string }>(scope, DOCS.chat);
    if (doc?.model_owner !== ws) continue;
    const cleared = await store.updateDoc<{ model?: string; model_owner?: string }, boolean>(scope, DOCS.chat, (cur) => {
      if (!cur || cur.model_owner !== ws) return { value: cur, result: false };
      const next = { ...cur };
      delete next.model;
      delete next.model_owner;
      return { value: next, result: true };
    });
    if (cleared) groups++;
  }
  return { keys, models, usage, forms: voided, submissions, chat_messages, groups };
}
