/**
 * The workspace document `custom_models` (ModelsDoc): reading it, read-modify-writing it under
 * the store's per-workspace lock, which key names are stored, and "not found" answers with
 * suggestions.
 */
import { ByokError } from '../errors.ts';
import { fail, type Fail } from '../result.ts';
import type { Store } from '../store/types.ts';
import { MODELS_DOC, selectorOf, type KeySource, type ModelsDoc } from './contract.ts';
import { editDistance } from './slug.ts';
import type { CustomModel } from './types.ts';
import { looksLikeKey } from './validation.ts';

export interface ModelsDocAccess {
  readModels(ws: string): Promise<CustomModel[]>;
  /** Runs `fn` on copies of the entries and the key hosts under the lock, and writes them back. */
  mutateModels<R>(ws: string, fn: (models: CustomModel[], keyHosts: Record<string, string>) => R): Promise<R>;
  /** The models, the recorded key hosts, and which of their key names are stored (for bindingsOf). */
  keyState(ws: string): Promise<{ models: CustomModel[]; keyHosts: Record<string, string>; stored: Set<string> }>;
  keyStored(ws: string, envVars: string[]): Promise<boolean>;
  notFound(ws: string, query: string, models: CustomModel[]): Fail;
}

export function modelsDoc(store: Store, keys: KeySource): ModelsDocAccess {
  async function readModels(ws: string): Promise<CustomModel[]> {
    const doc = await store.getDoc<ModelsDoc>(ws, MODELS_DOC);
    return modelsOf(doc);
  }

  function modelsOf(doc: ModelsDoc | undefined): CustomModel[] {
    if (doc === undefined || doc === null) return [];
    if (typeof doc !== 'object' || !Array.isArray(doc.models)) {
      throw new ByokError('internal', 'custom_models.yaml of this workspace is malformed; fix or move it aside (it is never overwritten while malformed)');
    }
    return doc.models.filter((m): m is CustomModel => !!m && typeof m === 'object' && typeof m.id === 'string');
  }

  async function mutateModels<R>(ws: string, fn: (models: CustomModel[], keyHosts: Record<string, string>) => R): Promise<R> {
    return store.updateDoc<ModelsDoc, R>(ws, MODELS_DOC, (cur) => {
      const models = modelsOf(cur).map((m) => ({ ...m }));
      const keyHosts: Record<string, string> = { ...keyHostsOf(cur) };
      const result = fn(models, keyHosts);
      return { value: { version: 1, models, ...(Object.keys(keyHosts).length && { key_hosts: keyHosts }) }, result };
    });
  }

  function keyHostsOf(doc: ModelsDoc | undefined): Record<string, string> {
    const kh = doc?.key_hosts;
    if (!kh || typeof kh !== 'object' || Array.isArray(kh)) return {};
    return Object.fromEntries(Object.entries(kh).filter(([k, v]) => typeof v === 'string' && /^[A-Z][A-Z0-9_]{0,127}$/.test(k)));
  }

  /** The models, the recorded key hosts, and which of their key names are stored (for bindingsOf). */
  async function keyState(ws: string): Promise<{ models: CustomModel[]; keyHosts: Record<string, string>; stored: Set<string> }> {
    const doc = await store.getDoc<ModelsDoc>(ws, MODELS_DOC);
    const models = modelsOf(doc);
    const keyHosts = keyHostsOf(doc);
    const stored = new Set<string>();
    for (const v of new Set([...models.flatMap((m) => [m.api_key_env, ...m.extra_env_vars]), ...Object.keys(keyHosts)])) if (await keys.has(ws, v)) stored.add(v);
    return { models, keyHosts, stored };
  }

  async function keyStored(ws: string, envVars: string[]): Promise<boolean> {
    for (const v of envVars) if (!(await keys.has(ws, v))) return false;
    return true;
  }

  function notFound(ws: string, query: string, models: CustomModel[]): Fail {
    const live = models.filter((m) => m.status !== 'removed');
    const removed = models.find((m) => m.id === query && m.status === 'removed');
    if (removed) {
      return fail('not_found', `${selectorOf(removed)} (${removed.name}) was removed; add it again to reactivate it`, { suggestions: [], reason: 'removed', id: removed.id });
    }
    const shown = looksLikeKey(query) ? '…' : query.slice(0, 64);
    if (!live.length) {
      return fail('not_found', `no custom model "${shown}" in workspace ${ws}: none registered yet (add one with add_template or add)`, { suggestions: [], reason: 'none_registered' });
    }
    const q = query.toLowerCase();
    const scored = live
      .map((m) => {
        const base = m.id.replace(/-[0-9a-f]{4,12}$/, '');
        const contains = m.id.includes(q) || m.name.toLowerCase().includes(q) || (q.length >= 3 && q.includes(base));
        const d = contains ? 0 : Math.min(editDistance(q, m.id), editDistance(q, base), editDistance(q, m.name.toLowerCase()));
        return { m, d };
      })
      .sort((a, b) => a.d - b.d)
      .slice(0, 3);
    const suggestions = scored.map((s) => selectorOf(s.m));
    const names = scored.map((s) => `${selectorOf(s.m)} (${s.m.name})`).join(', ');
    return fail('not_found', `no custom model "${shown}" in workspace ${ws}. Closest: ${names}`, { suggestions, reason: 'no_match' });
  }

  return { readModels, mutateModels, keyState, keyStored, notFound };
}

export function clean<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}
