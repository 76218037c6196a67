import { randomBytes } from 'node:crypto';

/** A model id: lowercase slug, 1–64 chars, no leading/trailing hyphen. */
export const MODEL_ID_RE = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;
const BASE_MAX = 40;

/**
 * Lowercase ASCII slug: accents folded, every run of other characters collapsed to `-`,
 * cut at a hyphen boundary to at most `max` chars. May be empty (e.g. an all-Chinese name).
 */
export function slugify(text: string, max = BASE_MAX): string {
  let s = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (s.length > max) {
    s = s.slice(0, max);
    const cut = s.lastIndexOf('-');
    if (cut >= max / 2) s = s.slice(0, cut);
    s = s.replace(/-+$/g, '');
  }
  return s;
}

/**
 * The slug base of a new model id: the display name when the user chose one, else the upstream
 * model's last path segment (`accounts/x/models/llama-v3` → `llama-v3`). Never empty.
 */
export function idBase(name: string | undefined, upstreamModel: string): string {
  const fromName = name ? slugify(name) : '';
  if (fromName) return fromName;
  const last = upstreamModel.split('/').filter(Boolean).pop() ?? upstreamModel;
  return slugify(last) || slugify(upstreamModel) || 'model';
}

export function randomSuffix(bytes = 2): string {
  return randomBytes(bytes).toString('hex');
}

/** `<base>-<4 hex>`, avoiding every id in `taken` (falls back to a longer suffix). */
export function newModelId(base: string, taken: (id: string) => boolean): string {
  for (let i = 0; i < 64; i++) {
    const id = `${base}-${randomSuffix(i < 32 ? 2 : 3)}`;
    if (!taken(id)) return id;
  }
  return `${base}-${randomSuffix(6)}`;
}

/**
 * Comparison key for display names: two names collide when their slugs are equal
 * (`Qwen Plus` vs `qwen-plus`); names without any ASCII letter or digit compare by their
 * case-folded, whitespace-collapsed text.
 */
export function nameKey(name: string): string {
  const s = slugify(name, 200);
  return s || name.normalize('NFKC').trim().toLowerCase().replace(/\s+/g, ' ');
}

/** Edit distance for suggestions: one implementation, shared with the template lookups. */
export { editDistance } from '../vendors/templates.ts';

/** Suggests an env var name for a key from an endpoint host: `api.fireworks.ai` → `FIREWORKS_API_KEY`. */
export function envVarFromHost(host: string): string {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (/^[\d.]+$/.test(h) || h.includes(':')) return 'CUSTOM_API_KEY';
  const generic = new Set(['api', 'www', 'gateway', 'llm', 'inference', 'openai', 'v1', 'chat', 'ai', 'app', 'cloud', 'models']);
  const labels = h.split('.').filter(Boolean);
  const body = labels.length > 1 ? labels.slice(0, -1) : labels;
  const pick = body.find((l) => !generic.has(l)) ?? body[body.length - 1] ?? 'custom';
  const name = pick.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  if (!name || !/^[A-Z]/.test(name)) return 'CUSTOM_API_KEY';
  return `${name.slice(0, 40)}_API_KEY`;
}
