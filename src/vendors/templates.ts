/**
 * Curated vendor templates: load `templates/*.yaml`, validate them against the zod schema,
 * and look them up by id, alias, a phrase that mentions a vendor, or a typo.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { Template, type TemplateModel } from './template-schema.ts';

export type { Template, TemplateModel } from './template-schema.ts';

/** A template file that cannot be used; the message names the file and the field path. */
export class TemplateError extends Error {
  readonly file: string;
  readonly field: string | undefined;

  constructor(file: string, field: string | undefined, detail: string) {
    super(field ? `${file}: ${field}: ${detail}` : `${file}: ${detail}`);
    this.name = 'TemplateError';
    this.file = file;
    this.field = field;
  }
}

/**
 * The package's `templates/` folder: the nearest folder above this file holding `templates/`
 * and `package.json`, so it is found from the sources (src/vendors/) and from the build
 * (dist/src/vendors/) alike; the build does not copy the YAML files.
 */
export const DEFAULT_TEMPLATES_DIR = ((): string => {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (let dir = here; ; ) {
    if (existsSync(join(dir, 'templates')) && existsSync(join(dir, 'package.json'))) return join(dir, 'templates/');
    const up = dirname(dir);
    if (up === dir) return fileURLToPath(new URL('../../templates/', import.meta.url)); // reported as unreadable when used
    dir = up;
  }
})();

const cache = new Map<string, Template[]>();

/** Forget cached templates (all directories, or one). */
export function clearTemplateCache(dir?: string): void {
  if (dir === undefined) cache.clear();
  else cache.delete(resolve(dir));
  offeredCache.clear();
}

/**
 * Parses and validates every `*.yaml` / `*.yml` in `dir` (sorted by file name), cached per
 * directory. Throws TemplateError on the first problem.
 */
export function loadTemplates(dir: string = DEFAULT_TEMPLATES_DIR): Template[] {
  const abs = resolve(dir);
  const hit = cache.get(abs);
  if (hit) return hit;

  const label = basename(abs);
  let names: string[];
  try {
    names = readdirSync(abs)
      .filter((n) => /\.ya?ml$/i.test(n))
      .filter((n) => statSync(join(abs, n)).isFile())
      .sort();
  } catch (err) {
    throw new TemplateError(label, undefined, `cannot read the templates folder (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (names.length === 0) throw new TemplateError(label, undefined, 'no *.yaml templates found');

  const out: Template[] = [];
  const owners = new Map<string, string>(); // normalized id/alias -> file that claimed it
  for (const name of names) {
    const file = `${label}/${name}`;
    const t = parseTemplateFile(join(abs, name), file);
    const stem = name.replace(/\.ya?ml$/i, '');
    if (t.id !== stem) throw new TemplateError(file, 'id', `"${t.id}" does not match the file name "${stem}"`);

    const seen = new Set<string>();
    const claims: Array<[string, string]> = [['id', t.id], ...t.aliases.map((a, i): [string, string] => [`aliases.${i}`, a])];
    for (const [field, value] of claims) {
      const key = normalize(value);
      if (!key) throw new TemplateError(file, field, `"${value}" has no letters or digits`);
      if (seen.has(key)) {
        if (field === 'id') continue;
        throw new TemplateError(file, field, `"${value}" is listed twice in this template`);
      }
      seen.add(key);
      const owner = owners.get(key);
      if (owner) throw new TemplateError(file, field, `"${value}" is already claimed by ${owner}`);
      owners.set(key, file);
    }
    const modelIds = new Set<string>();
    t.models.forEach((m, i) => {
      if (modelIds.has(m.id)) throw new TemplateError(file, `models.${i}.id`, `duplicate model id "${m.id}"`);
      modelIds.add(m.id);
    });
    out.push(t);
  }
  const frozen = Object.freeze(out) as Template[];
  cache.set(abs, frozen);
  return frozen;
}

/**
 * The operator's switch over curated templates: `BYOK_TEMPLATES` (comma-separated ids: only
 * these are offered; empty: all) and `BYOK_TEMPLATES_DISABLED` (ids switched off). An id that
 * names no template is a configuration error, so a typo never leaves a template on silently.
 * Models already registered from a switched-off template keep working; only new ones are refused.
 */
export interface TemplatePolicy {
  only: string[];
  disabled: string[];
}

export function templatePolicyFromEnv(env: NodeJS.ProcessEnv = process.env): TemplatePolicy {
  const ids = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  return { only: ids(env.BYOK_TEMPLATES), disabled: ids(env.BYOK_TEMPLATES_DISABLED) };
}

/** The templates the policy leaves on; throws TemplateError naming an unknown id. */
export function applyTemplatePolicy(all: readonly Template[], policy: TemplatePolicy): Template[] {
  const known = new Set(all.map((t) => t.id));
  for (const [name, list] of [['BYOK_TEMPLATES', policy.only], ['BYOK_TEMPLATES_DISABLED', policy.disabled]] as const) {
    const bad = list.find((id) => !known.has(id));
    if (bad) throw new TemplateError(name, undefined, `"${bad.slice(0, 40)}" is not a template id (see byok templates)`);
  }
  const only = new Set(policy.only);
  const off = new Set(policy.disabled);
  return all.filter((t) => (only.size === 0 || only.has(t.id)) && !off.has(t.id));
}

const offeredCache = new Map<string, Template[]>();

/** The repository's templates as this operator offers them (see TemplatePolicy); cached per setting. */
export function offeredTemplates(env: NodeJS.ProcessEnv = process.env): Template[] {
  const policy = templatePolicyFromEnv(env);
  const k = `${policy.only.join(',')}|${policy.disabled.join(',')}`;
  const hit = offeredCache.get(k);
  if (hit) return hit;
  const list = Object.freeze(applyTemplatePolicy(loadTemplates(), policy)) as Template[];
  offeredCache.set(k, list);
  return list;
}

function parseTemplateFile(path: string, file: string): Template {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TemplateError(file, undefined, `cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    const msg = e.message.split('\n')[0];
    throw new TemplateError(file, undefined, `invalid YAML${line ? ` at line ${line}` : ''}: ${msg}`);
  }
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new TemplateError(file, undefined, 'expected a YAML mapping at the top level');
  }
  const parsed = Template.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TemplateError(file, issuePath(issue), issueMessage(issue));
  }
  return parsed.data;
}

type Issue = z.core.$ZodIssue;

function issuePath(issue: Issue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path.push(issue.keys[0]!);
  return path.length ? path.join('.') : '(root)';
}

function issueMessage(issue: Issue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.length > 1 ? `unknown fields ${issue.keys.join(', ')}` : 'unknown field';
  }
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) return 'required';
  return issue.message.replace(/^Invalid input:\s*/i, '');
}

/** A template by exact id (case-insensitive). */
export function getTemplate(id: string, templates: readonly Template[] = offeredTemplates()): Template | undefined {
  const want = id.trim().toLowerCase();
  return templates.find((t) => t.id === want);
}

/** A model of a template by its upstream id (exact first, then case-insensitive). */
export function templateModel(t: Template, modelId?: string): TemplateModel | undefined {
  const id = modelId ?? t.default_model;
  return t.models.find((m) => m.id === id) ?? t.models.find((m) => m.id.toLowerCase() === id.trim().toLowerCase());
}

/* ------------------------------------------------------------------------------------------ */
/* Lookup                                                                                      */

/** Lowercase, NFKC, without spaces or punctuation: "Open Router" -> "openrouter". */
export function normalize(s: string): string {
  return s.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
}

/** The catch-all template; any vendor-specific mention in a phrase wins over it. */
const GENERIC_ID = 'openai-compatible';

const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

/** Words of a phrase; a run of CJK characters stays one word. */
function words(s: string): string[] {
  return s
    .normalize('NFKC')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);
}

function names(t: Template): string[] {
  return [t.id, ...t.aliases, t.name];
}

/**
 * The template a user means: an id, alias or name typed any way ("Open Router", "通义 千问"),
 * or a phrase that mentions one ("add my Claude key", "我的通义千问"). Longest mention wins.
 */
export function findTemplate(query: string, templates: readonly Template[] = offeredTemplates()): Template | undefined {
  const q = normalize(query);
  if (!q) return undefined;

  for (const t of templates) if (names(t).some((n) => normalize(n) === q)) return t;

  const qWords = words(query);
  // Joined runs of consecutive words, so "open router" and "near ai" match one-word aliases.
  const runs = new Set<string>();
  for (let i = 0; i < qWords.length; i++) {
    let acc = '';
    for (let j = i; j < Math.min(qWords.length, i + 4); j++) {
      acc += qWords[j];
      runs.add(acc);
    }
  }

  // A vendor named in the phrase beats the catch-all endpoint ("my custom qwen key" is qwen).
  let best: { t: Template; len: number; generic: boolean } | undefined;
  for (const t of templates) {
    const generic = t.id === GENERIC_ID;
    for (const n of [t.id, ...t.aliases]) {
      const a = normalize(n);
      if (!a) continue;
      // CJK aliases have no word boundaries: a substring is a mention.
      const hit = CJK.test(a) ? q.includes(a) : runs.has(a) || (a.length >= 5 && qWords.some((w) => !CJK.test(w) && isPossessiveOf(w, a)));
      if (!hit) continue;
      if (!best || (best.generic && !generic) || (best.generic === generic && a.length > best.len)) {
        best = { t, len: a.length, generic };
      }
    }
  }
  return best?.t;
}

/** "claude's" normalizes to "claudes"; accept a trailing s on long names. */
function isPossessiveOf(word: string, alias: string): boolean {
  return word === `${alias}s`;
}

/** Damerau-Levenshtein (optimal string alignment) distance. */
export function editDistance(a: string, b: string): number {
  // Names and ids are short; a long user input is compared by its start (bounded cost).
  const A = [...a].slice(0, 80);
  const B = [...b].slice(0, 80);
  const d: number[][] = Array.from({ length: A.length + 1 }, (_, i) => {
    const row = new Array<number>(B.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= B.length; j++) d[0]![j] = j;
  for (let i = 1; i <= A.length; i++) {
    for (let j = 1; j <= B.length; j++) {
      const cost = A[i - 1] === B[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && A[i - 1] === B[j - 2] && A[i - 2] === B[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[A.length]![B.length]!;
}

/**
 * Up to `n` templates closest to a mistyped vendor name ("anthropc", "deepsek"), best first.
 * Only reasonably close names are suggested; an unrelated word gets an empty list.
 */
export function suggestTemplates(query: string, n = 3, templates: readonly Template[] = offeredTemplates()): Template[] {
  const q = normalize(query);
  if (!q || n <= 0) return [];
  const scored: Array<{ t: Template; score: number; order: number }> = [];
  templates.forEach((t, order) => {
    let score = Infinity;
    for (const name of names(t)) {
      const a = normalize(name);
      if (!a) continue;
      const dist = editDistance(q, a);
      // Allow about one edit per three characters of the longer string (at least one).
      const limit = Math.max(1, Math.floor(Math.max(q.length, [...a].length) / 3));
      let s = dist <= limit ? dist / Math.max(q.length, [...a].length) : Infinity;
      // A prefix of a name ("openr", "deeps") is a good hint too.
      if (q.length >= 3 && a.startsWith(q)) s = Math.min(s, 0.5 * (1 - q.length / [...a].length));
      score = Math.min(score, s);
    }
    if (score < Infinity) scored.push({ t, score, order });
  });
  scored.sort((x, y) => x.score - y.score || x.order - y.order);
  return scored.slice(0, n).map((s) => s.t);
}
