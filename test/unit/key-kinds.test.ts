/**
 * The one table of key kinds (src/secrets/key-kinds.ts) is what all four consumers read: the chat
 * guard, the registry's key-like field check, parse-example's key dropping and vendor-message
 * redaction. A kind added to the table is recognised by each; removed, by none. All keys are fake.
 */
import { describe, expect, it } from 'vitest';
import { detectKeys } from '../../src/secrets/detector.ts';
import { addKeyKind, keyKinds, keyShapeRe, type KeyKindSpec } from '../../src/secrets/key-kinds.ts';
import { KEY_DROPPED_WARNING, parseExample } from '../../src/registry/parse-example.ts';
import { looksLikeKey } from '../../src/registry/registry.ts';
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

// one fake key per built-in kind (random characters, typed once)
const SAMPLES: Record<string, string> = {
  anthropic: 'sk-ant-api03-Qz7vK2mR9tLp4Xw8Nc3Yb6Hd1Jf5Gs0Ae7Uk2Wm9Rt4Lp8Xv3Nb6Hc1Jd5Fg0Ae7Uk2Wm9Rt4LpAA',
  openrouter: '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',
  openai: 'sk-proj-Vr5lQOFB2MbqumpXNYmLBMEkrE6CJXnvio5n9H7BT3BlbkFJq2W4e6R8t0Y2u4I6o8P0a2S4d6F8',
  minimax: 'sk-api-Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm2Rt7Lp4Xv9Nb6Hc1Jd5Fg0Ae',
  sk_generic: 'sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0',
  mimo: 'tp-k3p8w2x7r4n9b6d1f5s0a3u8m2t7l4v9',
  google_api_key: 'AIzaSyB3kP8wQ2xV7rT4nL9bC6hD1jF5gS0aE3u',
  google_oauth: 'ya29.a0AfB_byC3kP8wQ2xV7rT4nL9bC6hD1jF5gS0aE3uK8mW2tR7lP4xV9nB6hC1jD5fG0aE3uK8mW2tR7lP4',
  xai: 'xai-Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm2Rt7Lp4Xv9Nb6Hc1Jd5Fg0Ae3Uk8Wm2Rt7Lp4Xv9Nb',
  groq: 'gsk_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm2Rt7Lp4Xv9Nb6',
  huggingface: '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',
  fireworks: 'fw_jIJuLcjMsGAiLBsvkzSylEcC',
  perplexity: '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',
  replicate: 'r8_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8W',
  aws_access_key: 'AKIAZ7Q2MB4NX5KD3LWP',
  bedrock_api_key: 'ABSKQmVkcm9ja0FQSUtleS1rM3A4LWF0LTQ4MjkxNzM2NTAyMTpaazNQcThXbTJYdjdSdDRMbjlCYzZIZDFKZjVHczBBZTNVazhXbQ==',
  github: 'ghp_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8',
  slack: 'xoxb-2847561930-3748291056-Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1',
  together: 'tgp_v1_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm2Rt7Lp4',
  venice: 'VENICE-INFERENCE-KEY-Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm',
  nvidia: 'nvapi-Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8Wm2Rt7Lp4Xv9Nb6Hc',
  cerebras: 'csk-k3p8w2x7r4n9b6d1f5s0a3u8m2t7l4v9n6c1j5g0e3',
  gitlab: 'glpat-Zk3Pq8Wm2Xv7Rt4Ln9Bc',
  stripe: 'sk_live_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1',
  npm: 'npm_Zk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3Uk8',
  telegram_bot_token: '7381946025:AAZk3Pq8Wm2Xv7Rt4Ln9Bc6Hd1Jf5Gs0Ae3',
  zai: '9f8e7d6c5b4a39281706f5e4d3c2b1a0.Zk3Pq8Wm2Xv7Rt4L',
};

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
