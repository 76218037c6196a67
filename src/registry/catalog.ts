/** The vendor templates the registry works with: the real ones, or an injected list (tests). */
import { ByokError } from '../errors.ts';
import type { Template } from '../vendors/template-schema.ts';
import { findTemplate, loadTemplates, normalize, offeredTemplates, suggestTemplates, TemplateError } from '../vendors/templates.ts';
import { invalid, looksLikeKey } from './validation.ts';

export interface Catalog {
  /** Templates users may add (the operator's policy applied). */
  all(): Template[];
  /** Every template, for models already registered. */
  any(): Template[];
  find(q: string): Template | undefined;
  suggest(q: string, n: number): string[];
  /** The template a user named, or a ByokError (unknown with suggestions, or switched off). */
  orFail(vendor: unknown): Template;
  /** A template by exact id, switched off or not (for models already registered). */
  byId(id: string): Template | undefined;
}

export function makeCatalog(list?: Template[]): Catalog {
  const catalog = baseCatalog(list);

  function templateOrFail(vendor: unknown): Template {
    if (typeof vendor !== 'string' || !vendor.trim()) throw invalid('vendor is required (e.g. qwen, anthropic); see templates()', { field: 'vendor' });
    const q = vendor.trim().slice(0, 100);
    // Named exactly but switched off: say so (a fuzzy match would pick a neighbour: "claude-code" → anthropic).
    const nq = normalize(q);
    const off = catalog.any().find((x) => [x.id, x.name, ...x.aliases].some((n) => normalize(n) === nq));
    if (off && !catalog.all().includes(off)) throw new ByokError('forbidden', `${off.name} (${off.id}) is switched off on this bot by its operator.`, { reason: 'template_disabled', vendor: off.id });
    const t = catalog.find(q);
    if (t) return t;
    const suggestions = catalog.suggest(q, 3);
    const hint = suggestions.length ? ` Did you mean ${suggestions.join(', ')}?` : '';
    throw new ByokError(
      'unknown_vendor',
      `unknown vendor "${looksLikeKey(q) ? '…' : q.slice(0, 40)}".${hint} For any other OpenAI-compatible endpoint use openai-compatible (add_template) or parse_example + add.`,
      { suggestions },
    );
  }

  function templateById(id: string): Template | undefined {
    return catalog.any().find((t) => t.id === id);
  }

  return { ...catalog, orFail: templateOrFail, byId: templateById };
}

/** The templates of `templates/*.yaml` (loaded and cached by vendors/templates.ts), or an injected list. */
function baseCatalog(list?: Template[]): Omit<Catalog, 'orFail' | 'byId'> {
  // Every template, switched off or not: existing models and host ownership still need them.
  const any = () => {
    if (list) return list;
    try {
      return loadTemplates();
    } catch (e) {
      if (e instanceof TemplateError) throw new ByokError('config', e.message);
      throw e;
    }
  };
  // What users may add: the operator's BYOK_TEMPLATES / BYOK_TEMPLATES_DISABLED applied.
  const all = () => {
    if (list) return list;
    try {
      return offeredTemplates();
    } catch (e) {
      // A broken template names its file and field; that is for the operator, and holds no secret.
      if (e instanceof TemplateError) throw new ByokError('config', e.message);
      throw e;
    }
  };
  return {
    all,
    any,
    find: (q) => findTemplate(q, all()),
    suggest: (q, n) => suggestTemplates(q, n, all()).map((t) => t.id),
  };
}
