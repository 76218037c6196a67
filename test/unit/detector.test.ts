import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detectKeys, redactKeys, vendorHintForKinds } from '../../src/secrets/detector.ts';
import { runGuard } from '../../src/secrets/guard-cli.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/guard');
const readJsonl = <T>(name: string): T[] =>
  readFileSync(join(fixtures, name), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);

const keys = readJsonl<{ kind: string; text: string }>('keys.jsonl');
const ordinary = readJsonl<{ text: string }>('ordinary.jsonl');

describe('guard corpus', () => {
  it('has the promised size', () => {
    expect(keys.length).toBeGreaterThanOrEqual(300);
    expect(new Set(keys.map((k) => k.kind)).size).toBeGreaterThanOrEqual(20);
    expect(ordinary.length).toBeGreaterThanOrEqual(1000);
  });

  it('recall is 100% with the right kind on keys.jsonl', () => {
    const missed: string[] = [];
    const wrongKind: string[] = [];
    for (const k of keys) {
      const d = detectKeys(k.text);
      if (!d.refused) missed.push(k.kind);
      else if (!d.kinds.includes(k.kind)) wrongKind.push(`${k.kind} -> ${d.kinds.join(',')}`);
    }
    console.log(`guard recall: ${keys.length - missed.length}/${keys.length}; wrong kind: ${wrongKind.length}`);
    expect(missed).toEqual([]);
    expect(wrongKind).toEqual([]);
  });

  it('spans cover the key and redaction removes it', () => {
    for (const k of keys) {
      const out = redactKeys(k.text);
      expect(out).toContain('[REDACTED]');
      // no 16-char run of the original key survives redaction
      const d = detectKeys(out);
      expect(d.refused, `still refused after redaction: ${k.kind}`).toBe(false);
    }
  });

  it('false positives on ordinary.jsonl are <= 0.5%', () => {
    const fps = ordinary.filter((o) => detectKeys(o.text).refused);
    const rate = fps.length / ordinary.length;
    console.log(`guard false positives: ${fps.length}/${ordinary.length} = ${(rate * 100).toFixed(2)}%`);
    expect(rate).toBeLessThanOrEqual(0.005);
  });
});

describe('placeholders and ordinary shapes pass', () => {
  const pass = [
    'sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
    'sk-...',
    'export OPENAI_API_KEY=sk-...',
    'sk-your-key-here',
    'api_key = "YOUR_API_KEY"',
    '"apiKey": "<OPENAI_API_KEY>"',
    'Authorization: Bearer $OPENAI_API_KEY',
    'AKIAIOSFODNN7EXAMPLE',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    'sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    'sk-1234567890abcdef1234567890abcdef',
    'sk-proj-XXXX',
    'sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
    'key: ${{ secrets.OPENAI_API_KEY }}',
    'request 550e8400-e29b-41d4-a716-446655440000 failed',
    'the api key id is 550e8400-e29b-41d4-a716-446655440000',
    'fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b',
    'the key commit is 3f786850e387550fdab836ed7e6dc881de23001b',
    'git checkout 3f78685',
    'https://example.com/search?q=hello+world&utm_source=x&page=2',
    'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
    'docker pull ghcr.io/org/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
    '"integrity": "sha512-K9pZ2Wq0y0eW8c1QjzX4hPz0mR3n5Q6tQ9xkT0Yb2iH8c4s7F1lLxJ6Y1T0cJ3nF5sQ8kT2hR9vA=="',
    'send to 0x52908400098527886E0F7030069857D2E4169EE7',
    'color: #ff00aa; background: rgb(1, 2, 3)',
    '/usr/local/lib/node_modules/npm/bin/npm-cli.js',
    '我的密钥应该在哪里填？谢谢 🙏',
    'the token count was 123456789 and the secret to pasta is salt',
  ];
  for (const t of pass) {
    it(`passes: ${t.slice(0, 60)}`, () => {
      expect(detectKeys(t)).toEqual({ refused: false, kinds: [], spans: [] });
    });
  }

  it('a JWT in discussion passes, after Authorization: Bearer it is refused', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFsaWNlIn0.Zk3b9Xq2Lw7Rt5Vy8Np1Qs4Mu6Jh0Gd3Fc2Ba9Ea7Dc';
    expect(detectKeys(`decoding ${jwt} shows the claims`).refused).toBe(false);
    expect(detectKeys(`Authorization: Bearer ${jwt}`).kinds).toEqual(['generic_secret']);
  });
});

describe('robustness', () => {
  const key = 'sk-proj-' + 'Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF3hJ5kL7nP9rS1uV3xY5zA7cE9gI1kM3oQ5' + 'T3BlbkFJ' + 'q2W4e6R8t0Y2u4I6o8P0a2S4d6F8g0H2j4K6l8Z0x2C4v6B8n0M2Q4w6E8r0T2y4U6i8';

  it('catches a key split by zero-width characters, and the span covers it', () => {
    const zw = key.slice(0, 10) + '\u200b' + key.slice(10, 40) + '\u2060\u00ad' + key.slice(40, 90) + '\ufeff' + key.slice(90);
    const text = `my key ${zw} thanks`;
    const d = detectKeys(text);
    expect(d.kinds).toEqual(['openai']);
    expect(d.spans).toEqual([[7, 7 + zw.length]]);
    expect(redactKeys(text)).toBe('my key [REDACTED] thanks');
  });

  it('catches a key wrapped across lines (short first line and long first line)', () => {
    for (const at of [11, 60, 120]) {
      const text = `here:\n${key.slice(0, at)}\n${key.slice(at)}\nthanks`;
      const d = detectKeys(text);
      expect(d.kinds).toEqual(['openai']);
      expect(redactKeys(text)).toBe('here:\n[REDACTED]\nthanks');
    }
  });

  it('catches a key with a space inside', () => {
    expect(detectKeys(`key ${key.slice(0, 30)} ${key.slice(30)}`).kinds).toEqual(['openai']);
  });

  it('catches a full-width key in a Chinese sentence', () => {
    const fw = key.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));
    const text = `我的密钥是${fw}，谢谢`;
    expect(detectKeys(text).kinds).toEqual(['openai']);
    expect(redactKeys(text)).toBe('我的密钥是[REDACTED]，谢谢');
  });

  it('AWS: the id alone is refused; a secret near it is included in the spans', () => {
    expect(detectKeys('AKIAZ7Q2MB4NX5KD3LWP').kinds).toEqual(['aws_access_key']);
    const text = 'id AKIAZ7Q2MB4NX5KD3LWP secret k9Vd2Lr8Qp3Xw7Zt1Ny5Hb6Mj4Fg0Sa+Ce/Ru2Ei8T';
    const out = redactKeys(text);
    expect(out).toBe('id [REDACTED] secret [REDACTED]');
    expect(vendorHintForKinds(detectKeys(text).kinds)).toBe('bedrock');
  });

  it('a 1 MB pathological input returns fast', () => {
    const inputs = [
      'sk-'.repeat(350_000),
      'a'.repeat(1_000_000),
      ('1234567890:' + 'A'.repeat(30) + ' ').repeat(24_000),
      ('key ' + 'aB3'.repeat(10) + ' ').repeat(28_000),
      'f'.repeat(999_999) + '.',
      ('\u200b' + 'x').repeat(500_000),
      ('sk-ab\n').repeat(170_000),
      '0123456789abcdef'.repeat(65_536),
    ];
    for (const input of inputs) {
      const t0 = performance.now();
      detectKeys(input);
      redactKeys(input);
      const ms = performance.now() - t0;
      expect(ms, `${JSON.stringify(input.slice(0, 20))}: ${ms.toFixed(0)} ms`).toBeLessThan(2000);
    }
  });
});

describe('isKnownKey hook', () => {
  it('refuses an arbitrary-shaped stored key, and only that', () => {
    const stored = 'my.Custom/Key+42=ok';
    const isKnownKey = (c: string) => c === stored;
    const text = `use ${stored}, please`;
    const d = detectKeys(text, { isKnownKey });
    expect(d.kinds).toEqual(['known_key']);
    expect(redactKeys(text, { isKnownKey })).toBe('use [REDACTED], please');
    expect(detectKeys(text).refused).toBe(false);
    expect(detectKeys(`KEY=${stored}`, { isKnownKey }).kinds).toEqual(['known_key']);
    expect(detectKeys(`my.Custom/Key\n+42=ok`, { isKnownKey }).kinds).toEqual(['known_key']);
    expect(detectKeys('nothing to see here', { isKnownKey }).refused).toBe(false);
  });
});

describe('vendorHintForKinds', () => {
  it('maps kinds to template vendors', () => {
    expect(vendorHintForKinds(['openai'])).toBe('openai');
    expect(vendorHintForKinds(['anthropic'])).toBe('anthropic');
    expect(vendorHintForKinds(['google_api_key'])).toBe('gemini');
    expect(vendorHintForKinds(['xai'])).toBe('xai');
    expect(vendorHintForKinds(['openrouter'])).toBe('openrouter');
    expect(vendorHintForKinds(['aws_access_key'])).toBe('bedrock');
    expect(vendorHintForKinds(['huggingface'])).toBe('huggingface');
    expect(vendorHintForKinds(['fireworks'])).toBe('fireworks');
    expect(vendorHintForKinds(['azure_openai'])).toBe('azure-openai');
    expect(vendorHintForKinds(['sk_generic'])).toBeUndefined();
    expect(vendorHintForKinds(['dashscope_or_deepseek'])).toBeUndefined();
    expect(vendorHintForKinds(['generic_secret', 'groq'])).toBe('groq');
  });
});

describe('runGuard', () => {
  async function run(lines: string[]): Promise<{ code: number; out: string }> {
    const input = new PassThrough();
    const output = new PassThrough();
    let out = '';
    output.on('data', (b: Buffer) => (out += b.toString('utf8')));
    const p = runGuard(input, output);
    input.end(lines.join('\n') + '\n');
    const code = await p;
    return { code, out };
  }

  it('prints one verdict per line and never the key', async () => {
    const sample = keys.slice(0, 40);
    const { code, out } = await run([...sample.map((k) => JSON.stringify(k.text)), JSON.stringify('hello there')]);
    expect(code).toBe(0);
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { refused: boolean; kinds: string[] });
    expect(rows).toHaveLength(41);
    rows.slice(0, 40).forEach((r, i) => {
      expect(r.refused).toBe(true);
      expect(r.kinds).toContain(sample[i]!.kind);
    });
    expect(rows[40]).toEqual({ refused: false, kinds: [] });
    for (const k of sample) {
      const d = detectKeys(k.text);
      for (const [a, b] of d.spans) expect(out).not.toContain(k.text.slice(a, b));
    }
  });

  it('reports malformed lines and exits 2', async () => {
    const { code, out } = await run([JSON.stringify('fine'), '{"text":"not a string"}', 'not json', JSON.stringify('also fine')]);
    expect(code).toBe(2);
    expect(out.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { refused: false, kinds: [] },
      { error: 'line 2 is not a JSON string' },
      { error: 'line 3 is not a JSON string' },
      { refused: false, kinds: [] },
    ]);
  });
});
