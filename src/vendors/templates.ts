/**
 * Curated vendor templates: load `templates/*.yaml`, validate them against the zod schema,
 * and look them up by id, alias, a phrase that mentions a vendor, or a typo.
 *
 * The build (`npm run build`, scripts/snapshot-templates.mjs) writes the parsed templates to
 * `<build>/templates.snapshot.json` with a sha256 of every YAML file and of the parser. When
 * those all match, the snapshot is used and neither yaml nor zod is loaded (a CLI start costs
 * far less); any edit of templates/ makes it a miss, and the files are parsed as before.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TemplateError } from './template-error.ts';
import type { Template, TemplateModel } from './template-schema.ts';

export type { Template, TemplateModel } from './template-schema.ts';
export { TemplateError } from './template-error.ts';

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

/** Where the build puts the snapshot: the build's root (dist/), two folders above this file. */
export const TEMPLATE_SNAPSHOT_FILE = fileURLToPath(new URL('../../templates.snapshot.json', import.meta.url));

/** What scripts/snapshot-templates.mjs writes. */
export interface TemplateSnapshot {
  /** sha256 of the parser modules (template-parse, template-schema) that produced `templates`. */
  parser: string;
  /** [file name, sha256 of its bytes], sorted by name: the folder's whole *.yaml list. */
  files: Array<[string, string]>;
  templates: Template[];
}

type Parser = typeof import('./template-parse.ts');
const EXT = extname(fileURLToPath(import.meta.url)); // .ts from the sources, .js from the build

/** sha256 of the parser modules next to this file, so a snapshot of an older schema is a miss. */
export function templateParserHash(): string {
  const h = createHash('sha256');
  for (const m of ['template-parse', 'template-schema']) h.update(readFileSync(fileURLToPath(new URL(`./${m}${EXT}`, import.meta.url))));
  return h.digest('hex');
}

/** The folder's *.yaml / *.yml files, sorted; throws TemplateError when there are none. */
export function templateFileNames(abs: string): string[] {
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
  return names;
}

/** [name, sha256] of each file; undefined when one cannot be read (the parser reports it). */
export function templateFileHashes(abs: string, names: readonly string[]): Array<[string, string]> | undefined {
  try {
    return names.map((n): [string, string] => [n, createHash('sha256').update(readFileSync(join(abs, n))).digest('hex')]);
  } catch {
    return undefined;
  }
}

let snapshotText: string | null | undefined; // null: no snapshot next to this code

/** The snapshot's templates when it describes exactly these files and this parser, else undefined. */
function fromSnapshot(abs: string, names: readonly string[]): Template[] | undefined {
  if (snapshotText === undefined) {
    try {
      snapshotText = readFileSync(TEMPLATE_SNAPSHOT_FILE, 'utf8');
    } catch {
      snapshotText = null;
    }
  }
  if (snapshotText === null) return undefined;
  try {
    const snap = JSON.parse(snapshotText) as TemplateSnapshot; // parsed per use: callers get objects of their own
    const files = templateFileHashes(abs, names);
    if (!files || snap.parser !== templateParserHash() || JSON.stringify(snap.files) !== JSON.stringify(files)) return undefined;
    return snap.templates;
  } catch {
    return undefined;
  }
}

/**
 * The parser, imported at start-up unless the snapshot matches the package's templates/ (so
 * the sources, which have no snapshot, and an edited templates/ load it as before). A later
 * miss (another folder, files edited after start) loads the built parser with require(), which
 * Node (>= 20.19) allows for ES modules: loadTemplates stays synchronous.
 */
let parser: Parser | undefined = await (async () => {
  try {
    const abs = resolve(DEFAULT_TEMPLATES_DIR);
    if (fromSnapshot(abs, templateFileNames(abs))) return undefined;
  } catch {
    // an unreadable folder is reported by loadTemplates
  }
  return import('./template-parse.ts');
})();

function loadParser(): Parser {
  parser ??= createRequire(import.meta.url)(fileURLToPath(new URL(`./template-parse${EXT}`, import.meta.url))) as Parser;
  return parser;
}

const cache = new Map<string, Template[]>();

/** Forget cached templates (all directories, or one). */
export function clearTemplateCache(dir?: string): void {
  if (dir === undefined) cache.clear();
  else cache.delete(resolve(dir));
  offeredCache.clear();
}

/**
 * Parses and validates every `*.yaml` / `*.yml` in `dir` (sorted by file name), cached per
 * directory, or takes them from the build's snapshot when it matches the files byte for byte.
 * Throws TemplateError on the first problem.
 */
export function loadTemplates(dir: string = DEFAULT_TEMPLATES_DIR): Template[] {
  const abs = resolve(dir);
  const hit = cache.get(abs);
  if (hit) return hit;

  const names = templateFileNames(abs);
  const out = fromSnapshot(abs, names) ?? loadParser().parseTemplates(abs, basename(abs), names);
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
