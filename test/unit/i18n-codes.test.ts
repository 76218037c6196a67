import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorText } from '../../src/chat/registry-text.ts';
import { en } from '../../src/i18n/en.ts';
import { zh } from '../../src/i18n/zh.ts';
import { WHAT_TO_DO } from '../../src/vendors/classify.ts';

const ROOT = path.join(import.meta.dirname, '..', '..');
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), 'utf8');

/** The string members of a `type X = | 'a' | 'b'` union, read from its source (types vanish at runtime). */
function unionMembers(file: string, typeName: string): string[] {
  const src = read(file);
  const start = src.indexOf(`export type ${typeName} =`);
  expect(start, `${typeName} in ${file}`).toBeGreaterThanOrEqual(0);
  const body = src.slice(start, src.indexOf(';', start));
  return [...body.matchAll(/\|\s*'([a-z_]+)'/g)].map((m) => m[1]!);
}

/** Every `reason: '…'` (and ExampleError reason) the registry and the example parser emit. */
function registryReasons(): string[] {
  const dir = path.join(ROOT, 'src', 'registry');
  const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.ts'));
  const out = new Set<string>();
  for (const f of files) {
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const m of src.matchAll(/\breason:\s*(?:[^,}]*\?\s*)?'([a-z_]+)'(?:\s*:\s*'([a-z_]+)')?/g)) {
      // A module's own `{ ok: false, reason }` result is internal; only error details reach the chat.
      if (/ok:\s*false[,;]\s*$/.test(src.slice(Math.max(0, m.index! - 20), m.index))) continue;
      out.add(m[1]!);
      if (m[2]) out.add(m[2]);
    }
    for (const m of src.matchAll(/new ExampleError\([^;]*?,\s*'([a-z_]+)'\)/g)) out.add(m[1]!);
  }
  return [...out].sort();
}

const catalogues = { en: en as Record<string, string>, zh: zh as Record<string, string> };

describe('error and what-to-do codes have texts in both catalogues', () => {
  const codes = unionMembers('src/errors.ts', 'ErrorCode');

  it('reads the codes from the sources', () => {
    expect(codes).toContain('invalid_input');
    expect(codes).toContain('master_key_unavailable');
    expect(codes.length).toBeGreaterThan(20);
  });

  it('every ErrorCode has err.<code> in en and zh', () => {
    for (const [lang, cat] of Object.entries(catalogues)) {
      expect(codes.filter((c) => !cat[`err.${c}`]), `missing in ${lang}`).toEqual([]);
    }
  });

  it('every reason the registry emits has err.<code>.<reason> in en and zh', () => {
    const reasons = registryReasons();
    expect(reasons).toEqual(expect.arrayContaining(['template_disabled', 'name_taken', 'example_no_url', 'example_unterminated_quote', 'example_body_unreadable']));
    for (const [lang, cat] of Object.entries(catalogues)) {
      const missing = reasons.filter((r) => !codes.some((c) => cat[`err.${c}.${r}`]));
      expect(missing, `reasons without a text in ${lang}`).toEqual([]);
    }
  });

  it('every what-to-do code (and the form\'s open_new_form) has todo.<code> in en and zh', () => {
    const todos = [...new Set([...unionMembers('src/vendors/errors.ts', 'WhatToDo'), ...Object.values(WHAT_TO_DO), 'open_new_form'])];
    for (const [lang, cat] of Object.entries(catalogues)) {
      expect(todos.filter((c) => !cat[`todo.${c}`]), `missing in ${lang}`).toEqual([]);
    }
  });

  it('a result is shown by reason, then field, then code; Chinese never falls back to English', () => {
    const taken = { code: 'conflict', error: 'a model named "x" already exists', field: 'name', reason: 'name_taken', name: 'x', existing: 'custom/x-1a2b' };
    expect(errorText('zh', taken)).toBe('已有名为“x”的模型（custom/x-1a2b）：请给这个模型换个名称，或编辑、停用那个模型。');
    expect(errorText('en', taken)).toContain('A model named "x" already exists (custom/x-1a2b)');
    expect(errorText('zh', { code: 'invalid_input', error: 'base_url must use http://', field: 'base_url' })).toContain('base_url 不可用');
    expect(errorText('zh', { code: 'invalid_input', error: 'weird thing', field: 'color' })).toBe('color 的值无效。');
    // English without a precise text keeps the registry's own sentence (minus the workspace id).
    expect(errorText('en', { code: 'invalid_input', error: 'odd value in workspace tg:42.' })).toBe('odd value.');
    expect(errorText('zh', { code: 'no_such_code', error: 'x' })).toBe(zh['err.internal']);
  });
});
