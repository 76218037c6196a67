import fs from 'node:fs';
/**
 * The one table of key kinds (src/secrets/key-kinds.ts) is what all four consumers read: the chat
 * guard, the registry's key-like field check, parse-example's key dropping and vendor-message
 * redaction. A kind added to the table is recognised by each; removed, by none. All keys are fake.
 */
import { describe, expect, it } from 'vitest';
import { detectKeys } from '../../src/secrets/detector.ts';
import { addKeyKind, keyKinds, keyShapeRe, type KeyKindSpec } from '../../src/secrets/key-kinds.ts';
import { KEY_DROPPED_WARNING, parseExample } from '../../src/registry/parse-example/index.ts';
import { looksLikeKey } from '../../src/registry/index.ts';
import { scrubVendorMessage } from '../../src/vendors/classify.ts';

/** What each consumer makes of a key (true = recognised as a key). */
function consumers(key: string): { guard: string[]; registry: boolean; parseExample: boolean; classify: boolean } {
  const r = parseExample(`curl https://api.acme.dev/v1/chat/completions -H "X-Trace: ${key}" -d '{"model":"m","user":"${key}"}'`);
  if (!r.ok) throw new Error(`parseExample failed: ${r.message}`);
  const dropped = r.warnings.includes(KEY_DROPPED_WARNING) && !JSON.stringify(r).includes(key);
  return {
    guard: detectKeys(`please use ${key} from now on`).kinds,
    registry: looksLikeKey(key),
    parseExample: dropped,
    classify: !scrubVendorMessage(`Incorrect API key provided: ${key}.`).includes(key.slice(-12)),
  };
}

describe('one table, four consumers', () => {
  // lowercase + digits, under 32 characters: none of the consumers' generic heuristics (mixed-case
  // runs, long hex, key words) catches it, only its shape in the table does
  const key = 'zqk_' + 'q7m2x9v4k1p8r3t6w0y5n2b7c4j9h1';
  const spec: KeyKindSpec = { kind: 'test_vendor', vendor: 'openai-compatible', prefixes: ['zqk_'], charset: 'a-z0-9', min: 28, strictness: 'prefix' };

  it('a kind added to the table is recognised by each consumer, and forgotten when removed', () => {
    expect(consumers(key)).toEqual({ guard: [], registry: false, parseExample: false, classify: false });
    const remove = addKeyKind(spec);
    try {
      expect(consumers(key)).toEqual({ guard: ['test_vendor'], registry: true, parseExample: true, classify: true });
    } finally {
      remove();
    }
    expect(consumers(key)).toEqual({ guard: [], registry: false, parseExample: false, classify: false });
  });

  it("the guard still judges entropy and placeholders for a table kind (the others don't need to)", () => {
    const remove = addKeyKind(spec);
    try {
      expect(detectKeys('zqk_' + 'a'.repeat(30)).refused).toBe(false);
      expect(looksLikeKey('zqk_' + 'a'.repeat(30))).toBe(true);
    } finally {
      remove();
    }
  });
});

// One fake key per built-in kind (random characters, typed once), kept with the other fakes.
const SAMPLES = JSON.parse(fs.readFileSync(new URL('../fixtures/guard/key-kind-samples.json', import.meta.url), 'utf8')) as Record<string, string>;

describe('every built-in kind is recognised by all four consumers', () => {
  it('has a sample for every kind of the table', () => {
    expect(Object.keys(SAMPLES).sort()).toEqual([...new Set(keyKinds().map((k) => k.kind))].sort());
  });
  for (const [kind, key] of Object.entries(SAMPLES)) {
    it(kind, () => {
      const c = consumers(key);
      expect(c.guard).toContain(kind);
      expect(c.registry).toBe(true);
      expect(c.parseExample).toBe(true);
      expect(c.classify).toBe(true);
    });
  }
});

describe('keyShapeRe', () => {
  it('is rebuilt when the table changes and never matches inside a longer token', () => {
    const before = keyShapeRe();
    const remove = addKeyKind({ kind: 't', prefixes: ['qqz-'], charset: 'a-z', min: 10, strictness: 'prefix' });
    try {
      expect(keyShapeRe()).not.toBe(before);
      expect(keyShapeRe().test('qqz-abcdefghij')).toBe(true);
      expect(keyShapeRe().test('xqqz-abcdefghij')).toBe(false);
    } finally {
      remove();
    }
    expect(keyShapeRe().test('qqz-abcdefghij')).toBe(false);
  });
});
