/**
 * Parsing and validating `templates/*.yaml` (yaml + the zod schema). Loaded only when the
 * build's snapshot (see templates.ts) does not match the files, and by the build script that
 * writes that snapshot, so a CLI start with an unchanged templates/ loads neither library.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { TemplateError } from './template-error.ts';
import { Template } from './template-schema.ts';

/**
 * Parses and validates the named files of `abs` (already sorted), checking ids against file
 * names and ids/aliases across files. `label` names the folder in errors.
 */
export function parseTemplates(abs: string, label: string, names: readonly string[]): Template[] {
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
      const key = normalizeName(value);
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
  return out;
}

/** Same as templates.ts normalize(); repeated here so this module does not import the loader. */
function normalizeName(s: string): string {
  return s.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
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
