import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detectKeys, redactKeys, vendorHintForKinds } from '../../src/secrets/detector.ts';
import { runGuard } from '../../src/secrets/guard-cli.ts';
import { keyKinds } from '../../src/secrets/key-kinds.ts';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/guard');
const readJsonl = <T>(name: string): T[] =>
  readFileSync(join(fixtures, name), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);

const keys = readJsonl<{ kind: string; text: string }>('keys.jsonl');
const ordinary = readJsonl<{ text: string }>('ordinary.jsonl');


/** Each pathological input is scanned and redacted in under 2 s (no catastrophic backtracking). */
function expectFast(inputs: string[]): void {
  for (const input of inputs) {
    const t0 = performance.now();
    detectKeys(input);
    redactKeys(input);
    const ms = performance.now() - t0;
    expect(ms, `${JSON.stringify(input.slice(0, 20))}: ${ms.toFixed(0)} ms`).toBeLessThan(2000);
  }
}

describe('guard corpus', () => {
  it('has the promised size', () => {
    expect(keys.length).toBeGreaterThanOrEqual(1000);
    expect(new Set(keys.map((k) => k.kind)).size).toBeGreaterThanOrEqual(29);
    expect(ordinary.length).toBeGreaterThanOrEqual(1290);
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

  it('no false positive on ordinary.jsonl (tricky shapes included)', () => {
    const fps = ordinary.filter((o) => detectKeys(o.text).refused);
    console.log(`guard false positives: ${fps.length}/${ordinary.length}`);
    expect(fps.map((o) => o.text.slice(0, 80))).toEqual([]);
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
    expectFast(inputs);
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

// ---------------------------------------------------------------------------------------------
// Families the guard used to miss, in every wrapping a key is pasted in (all keys random, fake).

/** deterministic PRNG (mulberry32), so a failure names the same key every run */
function prng(seed: number): (n: number, al: string) => string {
  let st = seed;
  const next = () => {
    st = (st + 0x6d2b79f5) | 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return (n, al) => {
    for (;;) {
      let out = '';
      for (let i = 0; i < n; i++) out += al[Math.floor(next() * al.length)];
      if (!/x{4}|X{4}|your|example|sample|here|dummy|insert|replace|redacted|changeme|placeholder|(.)\1{4}/i.test(out)) return out;
    }
  };
}
const rnd = prng(0x7e57);
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const URLSAFE = ALNUM + '-_';
const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const HEX = '0123456789abcdef';
const b64 = (t: string) => Buffer.from(t).toString('base64');

const MISSED: Array<{ name: string; kind: string; key: string }> = [
  { name: 'Google OAuth access token', kind: 'google_oauth', key: 'ya29.a0' + rnd(180, URLSAFE) },
  { name: 'Google OAuth refresh token', kind: 'google_oauth', key: '1//0g' + rnd(98, URLSAFE) },
  { name: 'Bedrock API key (long-term)', kind: 'bedrock_api_key', key: 'ABSK' + b64(`BedrockAPIKey-${rnd(4, HEX)}-at-${rnd(12, '0123456789')}:${rnd(40, ALNUM + '+/')}`) },
  {
    name: 'Bedrock API key (short-term)',
    kind: 'bedrock_api_key',
    key:
      'bedrock-api-key-' +
      b64(`bedrock.amazonaws.com/?Action=CallWithBearerToken&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA${rnd(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')}%2F20251101%2Fus-east-1%2Fbedrock%2Faws4_request&X-Amz-Security-Token=${rnd(600, URLSAFE)}&X-Amz-Signature=${rnd(64, HEX)}&Version=1`),
  },
  { name: 'Hugging Face token', kind: 'huggingface', key: 'hf_' + rnd(34, LETTERS) },
  { name: 'Hugging Face token starting with a digit', kind: 'huggingface', key: 'hf_7' + rnd(33, ALNUM) },
  { name: 'Claude Code OAuth access token', kind: 'anthropic', key: 'sk-ant-oat01-' + rnd(93, URLSAFE) + 'AA' },
  { name: 'Claude Code OAuth refresh token', kind: 'anthropic', key: 'sk-ant-ort01-' + rnd(93, URLSAFE) + 'AA' },
  { name: 'Fireworks key without digits', kind: 'fireworks', key: 'fw_' + rnd(24, LETTERS) },
  { name: 'xAI key, 24 characters', kind: 'xai', key: 'xai-' + rnd(24, ALNUM) },
  { name: 'Groq key, 24 characters', kind: 'groq', key: 'gsk_' + rnd(24, ALNUM) },
  { name: 'MiMo Token Plan key', kind: 'mimo', key: 'tp-' + rnd(48, 'abcdefghijklmnopqrstuvwxyz0123456789') },
];

const WRAPS: Array<[string, (k: string) => string]> = [
  ['bare', (k) => k],
  ['JSON', (k) => `{"api_key": "${k}", "model": "m"}`],
  ['.env', (k) => `BASE_URL=https://api.example.com/v1\nAPI_KEY=${k}\nDEBUG=1`],
  ['curl -H', (k) => `curl https://api.example.com/v1/chat/completions -H 'Authorization: Bearer ${k}' -d '{}'`],
  ['curl -H glued', (k) => `curl -H "x-api-key:${k}" https://api.example.com/v1/models`],
  ['URL ?key=', (k) => `https://api.example.com/v1/models?key=${k}`],
  ['URL ?api_key=', (k) => `https://api.example.com/v1/models?api_key=${k}&limit=5`],
  ['Markdown fence', (k) => '```\n' + k + '\n```'],
  ['Markdown fence with a language', (k) => '```bash\nexport TOKEN=' + k + '\n```'],
  ['Markdown fence, glued', (k) => '```' + k + '```'],
  ['inline code', (k) => `set \`${k}\` please`],
  ['single quotes', (k) => `key='${k}'`],
  ['double quotes', (k) => `"${k}"`],
  ['Chinese quotes', (k) => `我的密钥“${k}”，帮我看看`],
  ['Chinese corner brackets', (k) => `密钥：「${k}」`],
  ['Chinese parentheses', (k) => `新的 key（${k}）`],
  ['after a Chinese sentence', (k) => `我刚生成了一个新的，你帮我配置一下吧${k}`],
  ['glued to a Chinese key word', (k) => `我的令牌${k}`],
  ['JSON-encoded chat text (\\n before the key)', (k) => JSON.stringify({ role: 'user', content: `here you go:\n${k}` })],
];

describe('families the guard missed, in every wrapping', () => {
  for (const f of MISSED) {
    it.each(WRAPS)(`${f.name}: %s`, (_w, wrap) => {
      const text = wrap(f.key);
      const d = detectKeys(text);
      expect(d.kinds).toContain(f.kind);
      const out = redactKeys(text);
      expect(out).not.toContain(f.key.slice(-24));
      expect(detectKeys(out).refused).toBe(false);
    });
  }
});

describe('Azure keys glued to their word', () => {
  const hex = rnd(32, HEX);
  const cases: Array<[string, string]> = [
    [`key:${hex}`, 'generic_secret'],
    [`api-key:${hex}`, 'azure_openai'],
    [`curl "$ENDPOINT/openai/deployments/gpt4o/chat/completions?api-version=2024-06-01" -H "api-key:${hex}"`, 'azure_openai'],
    [`AZURE_OPENAI_API_KEY=${hex}`, 'azure_openai'],
    ['```\nAZURE_OPENAI_API_KEY=' + hex + '\n```', 'azure_openai'],
    [`{"api-key":"${hex}"}`, 'azure_openai'],
    [`Azure 密钥：「${hex}」`, 'azure_openai'],
  ];
  it.each(cases)('%s', (text, kind) => {
    expect(detectKeys(text).kinds).toEqual([kind]);
    expect(redactKeys(text)).not.toContain(hex);
  });
  it("Anthropic's x-api-key header is not Azure's", () => {
    expect(detectKeys(`x-api-key:${hex}`).kinds).toEqual(['generic_secret']);
  });
  it('a drive letter still is not a key word', () => {
    expect(detectKeys(`the secret file is at C:\\${rnd(32, HEX)}`).refused).toBe(false);
  });
});

describe('whole credential files', () => {
  const jwt = 'eyJhbGciOiJSUzI1NiIsImtpZCI6I' + rnd(40, URLSAFE) + '.eyJ' + rnd(200, URLSAFE) + '.' + rnd(342, URLSAFE);
  const gemini = {
    access_token: 'ya29.a0' + rnd(180, URLSAFE),
    scope: 'https://www.googleapis.com/auth/cloud-platform openid',
    token_type: 'Bearer',
    id_token: jwt,
    expiry_date: 1760000000000,
    refresh_token: '1//0e' + rnd(98, URLSAFE),
  };
  const qwen = { access_token: rnd(43, URLSAFE), token_type: 'Bearer', refresh_token: rnd(43, URLSAFE), resource_url: 'portal.qwen.ai', expiry_date: 1760000000000 };
  const claude = { claudeAiOauth: { accessToken: 'sk-ant-oat01-' + rnd(93, URLSAFE) + 'AA', refreshToken: 'sk-ant-ort01-' + rnd(93, URLSAFE) + 'AA', expiresAt: 1760000000000, scopes: ['user:inference'] } };
  const files: Array<[string, object, string]> = [
    ['Gemini CLI oauth_creds.json', gemini, 'google_oauth'],
    ['Qwen Code oauth_creds.json', qwen, 'generic_secret'],
    ['Claude Code .credentials.json', claude, 'anthropic'],
  ];
  it.each(files)('%s: every token field is redacted, compact and pretty-printed', (_name, obj, kind) => {
    for (const text of [JSON.stringify(obj), JSON.stringify(obj, null, 2), '```json\n' + JSON.stringify(obj, null, 2) + '\n```']) {
      expect(detectKeys(text).kinds).toContain(kind);
      const out = redactKeys(text);
      const fields = Object.entries(obj).flatMap(([k, x]) => (typeof x === 'object' ? Object.entries(x as object) : [[k, x]]));
      const tokens = fields.filter(([k, v]) => /token/i.test(k) && typeof v === 'string' && v !== 'Bearer');
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      for (const [, v] of tokens) expect(out).not.toContain((v as string).slice(-20));
    }
  });
  it('a JWT bearer token in an Authorization header', () => {
    for (const text of [`curl -H "Authorization: Bearer ${jwt}" https://api.example.com`, `{"headers": {"Authorization": "Bearer ${jwt}"}}`, `请求头 Authorization：Bearer ${jwt}`]) {
      expect(detectKeys(text).kinds).toEqual(['generic_secret']);
    }
  });
});

describe('new kinds keep the guard linear and quiet', () => {
  it('pathological runs of the long kinds return fast', () => {
    const inputs = [
      'ABSK'.repeat(250_000),
      '/ABSK'.repeat(200_000),
      ('/ABSK' + 'QmVk'.repeat(300)).repeat(800),
      'bedrock-api-key-'.repeat(62_500),
      (' bedrock-api-key-' + 'YmVk'.repeat(2000)).repeat(120),
      ' ya29.'.repeat(160_000),
      (' ya29.' + 'a0'.repeat(3000)).repeat(160),
      ' 1//0'.repeat(200_000),
      '令牌'.repeat(500_000),
    ];
    expectFast(inputs);
  });

  it('prose that names the prefixes passes', () => {
    for (const t of [
      'Google access tokens start with ya29. and refresh tokens with 1//0',
      'Bedrock API keys start with ABSK or bedrock-api-key-',
      'the tp-link router and sk-learn are not keys',
      'from huggingface_hub import hf_hub_download',
      'ya29.a0xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
      'ABSK' + 'Q'.repeat(60),
      'api-key: <your-azure-key>',
      'AZURE_OPENAI_API_KEY= is empty',
      'key: #ff00aa',
      'fw_RuleEngineHandlerImpl and xai-GrokClientFactoryBuilder are class names',
    ]) {
      expect(detectKeys(t), t).toEqual({ refused: false, kinds: [], spans: [] });
    }
  });

  it('every kind of the key-kinds table maps to a vendor hint when it names one', () => {
    for (const k of keyKinds()) if (k.vendor) expect(vendorHintForKinds([k.kind])).toBe(k.vendor);
  });
});
