/**
 * The one table of credential kinds the product knows by shape.
 *
 * Four places need to know what a key looks like, each for its own purpose:
 *  - the chat guard (secrets/detector.ts) refuses a message that carries one;
 *  - the registry (registry/key-like.ts) refuses key-like values in names, headers, URLs ...;
 *  - parse-example (registry/parse-example/) drops keys from pasted examples;
 *  - vendor error classification (vendors/classify.ts) redacts keys vendors echo back.
 * They used to keep four lists that disagreed (a key kind added to one was missed by another).
 * Now each derives what it needs from this table: the guard builds its prefix rules and its scan
 * regex from it, the other three use `keyShapeRe` (every kind, prefix + charset + length).
 *
 * Facts about shapes come from vendor docs and public rule sets (gitleaks / trufflehog); the
 * regexes here are our own. Kinds that are recognised only next to a key-ish word (Azure's 32-hex
 * keys, AWS secret access keys, JWT bearer tokens, oauth_creds.json fields) are not shapes: the
 * guard finds them through its key-word pass.
 */

export type LeftBoundary =
  /** no [A-Za-z0-9_] right before the key (default) */
  | 'word'
  /** no [A-Za-z0-9] right before it (Telegram: `bot123:...` in a URL path is still a token) */
  | 'alnum'
  /** no [A-Za-z0-9.-] right before it (Zhipu id.secret: not the tail of a longer hex/host) */
  | 'alnum-dot-dash'
  /** anything may stand before it (a host name inside a URL) */
  | 'any';

export interface KeyKindSpec {
  /** stable kind string the guard reports (several specs may share one kind) */
  kind: string;
  /** the vendor template a key of this kind belongs to */
  vendor?: string;
  /** literal starts of the key; empty when `lead` gives a non-literal start */
  prefixes: readonly string[];
  /** regex source for a start that is not a literal (digits, hex): used instead of `prefixes` */
  lead?: string;
  /** the characters after the prefix, as the body of a regex character class */
  charset: string;
  /** length of the part after the prefix; `max` set means an exact-length format (never extended over line breaks) */
  min: number;
  max?: number;
  /**
   * How much the shape alone proves:
   *  - 'prefix': the prefix is distinctive; prefix + charset + length is a key wherever it stands.
   *  - 'shape': the prefix is shared with ordinary text (`sk-`, digits, hex), so the full `shape`
   *    must match, and the guard applies `check` too.
   * Either way the guard also refuses placeholders and low-entropy bodies.
   */
  strictness: 'prefix' | 'shape';
  /** the whole key, anchored by the reader (regex source), when more specific than prefix + charset + length */
  shape?: string;
  /** guard only: a further check on the whole candidate (mostly one random run, not a slug) */
  check?: (key: string) => boolean;
  /** guard only: minimum Shannon entropy (bits/char) of the body; 3.0 when unset */
  minEntropy?: number;
  /** guard only: how many leading characters are fixed (excluded from the entropy body); default: the matched prefix */
  prefixLen?: (key: string) => number;
  /** guard only: what may not stand right before the key */
  left?: LeftBoundary;
  /** longest plausible key (the guard skips longer runs whole); 600 when unset */
  maxRun?: number;
}

// ---------------------------------------------------------------------------------------------
// small shape helpers (shared with the guard)

/** Shannon entropy in bits per character of s[from, to). */
export function shannonEntropy(s: string, from = 0, to = s.length): number {
  const n = to - from;
  if (n <= 0) return 0;
  const counts = new Map<number, number>();
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let h = 0;
  for (const k of counts.values()) {
    const p = k / n;
    h -= p * Math.log2(p);
  }
  return h;
}

export function hasDigitAndLetter(s: string): boolean {
  let d = false;
  let l = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) d = true;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122)) l = true;
    if (d && l) return true;
  }
  return false;
}

const CAMEL_WORDS_RE = /^[a-z]*(?:[A-Z][a-z]{2,})+$/;

/**
 * Digits, or both letter cases but not CamelCase words: what a random alnum run has (even one that
 * happens to hold no digit) and an identifier such as fw_RuleEngineHandler does not.
 */
function digitOrMixedCase(s: string): boolean {
  let up = false;
  let lo = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) return true;
    if (c >= 65 && c <= 90) up = true;
    else if (c >= 97 && c <= 122) lo = true;
  }
  return up && lo && !CAMEL_WORDS_RE.test(s);
}

export function longestSegment(s: string, seps: RegExp): number {
  let best = 0;
  for (const seg of s.split(seps)) if (seg.length > best) best = seg.length;
  return best;
}

const URLSAFE = 'A-Za-z0-9_-';
const B64 = 'A-Za-z0-9+/=';
const afterDash = (from: number) => (c: string) => c.indexOf('-', from) + 1;

// ---------------------------------------------------------------------------------------------
// the table (order = priority: the first spec whose shape matches names the kind)

const BUILTIN: KeyKindSpec[] = [
  // Anthropic API / admin keys, and Claude Code's OAuth access (oat) and refresh (ort) tokens
  { kind: 'anthropic', vendor: 'anthropic', prefixes: ['sk-ant-'], charset: URLSAFE, min: 60, strictness: 'prefix', shape: 'sk-ant-(?:api|admin|sid|oat|ort)\\d\\d-[A-Za-z0-9_-]{60,}', prefixLen: afterDash(7) },
  { kind: 'openrouter', vendor: 'openrouter', prefixes: ['sk-or-'], charset: URLSAFE, min: 67, max: 67, strictness: 'prefix', shape: 'sk-or-v\\d-[0-9a-f]{64}', prefixLen: () => 9 },
  { kind: 'openai', vendor: 'openai', prefixes: ['sk-proj-', 'sk-svcacct-', 'sk-admin-', 'sk-None-'], charset: URLSAFE, min: 24, strictness: 'prefix', check: (c) => digitOrMixedCase(c.slice(c.indexOf('-', 3) + 1)) },
  // legacy user keys: sk- + 20 + T3BlbkFJ + 20
  { kind: 'openai', vendor: 'openai', prefixes: ['sk-'], charset: URLSAFE, min: 24, strictness: 'shape', shape: 'sk-[A-Za-z0-9_-]{8,}T3BlbkFJ[A-Za-z0-9_-]{8,}', prefixLen: () => 3 },
  { kind: 'minimax', vendor: 'minimax', prefixes: ['sk-api-', 'sk-cp-'], charset: URLSAFE, min: 40, strictness: 'prefix' },
  // DeepSeek / DashScope / Moonshot / SiliconFlow / NEAR / MiMo ...: sk- + 32+ random
  {
    kind: 'sk_generic',
    prefixes: ['sk-'],
    charset: URLSAFE,
    min: 32,
    strictness: 'shape',
    // mostly one random run: a slug such as sk-learn-compatible-... is not a key
    check: (c) => {
      const body = c.slice(3);
      if (longestSegment(body, /[-_]/) < 24) return false;
      // alnum with digits, or a long single-case random run (SiliconFlow: 48 lowercase letters)
      return hasDigitAndLetter(body) || (body.length >= 40 && shannonEntropy(body) >= 4.0);
    },
    minEntropy: 3.2,
  },
  // Xiaomi MiMo Token Plan keys
  { kind: 'mimo', vendor: 'mimo', prefixes: ['tp-'], charset: 'A-Za-z0-9', min: 32, strictness: 'shape', check: (c) => hasDigitAndLetter(c.slice(3)), minEntropy: 3.5 },
  { kind: 'google_api_key', vendor: 'gemini', prefixes: ['AIza'], charset: URLSAFE, min: 35, max: 35, strictness: 'prefix' },
  // Google OAuth access tokens (Gemini CLI's oauth_creds.json, gcloud); service-account ones run past 1000 chars
  { kind: 'google_oauth', vendor: 'gemini', prefixes: ['ya29.'], charset: 'A-Za-z0-9_.-', min: 30, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(5)), maxRun: 4096 },
  // Google OAuth refresh tokens: 1//0 + ~100
  { kind: 'google_oauth', vendor: 'gemini', prefixes: ['1//0'], charset: URLSAFE, min: 30, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(4)), minEntropy: 3.5 },
  { kind: 'xai', vendor: 'xai', prefixes: ['xai-'], charset: 'A-Za-z0-9_', min: 20, strictness: 'prefix', check: (c) => digitOrMixedCase(c.slice(4)) },
  { kind: 'groq', vendor: 'groq', prefixes: ['gsk_'], charset: 'A-Za-z0-9', min: 20, strictness: 'prefix', check: (c) => digitOrMixedCase(c.slice(4)) },
  { kind: 'huggingface', vendor: 'huggingface', prefixes: ['hf_', 'api_org_'], charset: 'A-Za-z0-9', min: 30, strictness: 'prefix' },
  { kind: 'fireworks', vendor: 'fireworks', prefixes: ['fw_'], charset: 'A-Za-z0-9', min: 16, strictness: 'prefix', check: (c) => digitOrMixedCase(c.slice(3)) },
  { kind: 'perplexity', vendor: 'perplexity', prefixes: ['pplx-'], charset: 'A-Za-z0-9', min: 32, strictness: 'prefix' },
  { kind: 'replicate', vendor: 'replicate', prefixes: ['r8_'], charset: URLSAFE, min: 30, strictness: 'prefix' },
  { kind: 'aws_access_key', vendor: 'bedrock', prefixes: ['AKIA', 'ASIA', 'ABIA', 'ACCA'], charset: 'A-Z0-9', min: 16, max: 16, strictness: 'prefix', check: (c) => !c.endsWith('EXAMPLE'), minEntropy: 2.5 },
  // Bedrock API keys: long-term ABSK + base64("BedrockAPIKey-..."); short-term bedrock-api-key- + base64(presigned URL)
  { kind: 'bedrock_api_key', vendor: 'bedrock', prefixes: ['ABSK'], charset: B64, min: 40, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(4)), minEntropy: 3.5, maxRun: 1024 },
  { kind: 'bedrock_api_key', vendor: 'bedrock', prefixes: ['bedrock-api-key-'], charset: B64, min: 40, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(16)), minEntropy: 3.5, maxRun: 8192 },
  { kind: 'github', prefixes: ['github_pat_'], charset: 'A-Za-z0-9_', min: 60, strictness: 'prefix' },
  { kind: 'github', prefixes: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'], charset: 'A-Za-z0-9', min: 36, strictness: 'prefix' },
  { kind: 'slack', prefixes: ['xoxa-', 'xoxb-', 'xoxe-', 'xoxo-', 'xoxp-', 'xoxr-', 'xoxs-', 'xapp-'], charset: 'A-Za-z0-9-', min: 20, strictness: 'prefix', check: (c) => /\d/.test(c.slice(5)) },
  {
    kind: 'slack',
    prefixes: ['hooks.slack.com/'],
    charset: 'A-Za-z0-9_/+-',
    min: 24,
    strictness: 'prefix',
    shape: 'hooks\\.slack\\.com\\/(?:services|workflows|triggers)\\/[A-Za-z0-9_/+-]{20,}',
    prefixLen: (c) => c.indexOf('/', 16) + 1,
    left: 'any',
  },
  { kind: 'together', vendor: 'together', prefixes: ['tgp_v1_'], charset: URLSAFE, min: 40, strictness: 'prefix' },
  { kind: 'venice', vendor: 'venice', prefixes: ['VENICE-'], charset: URLSAFE, min: 24, strictness: 'prefix', shape: 'VENICE-(?:INFERENCE|ADMIN)-KEY-[A-Za-z0-9_-]{20,}', prefixLen: (c) => c.indexOf('-KEY-') + 5 },
  { kind: 'nvidia', vendor: 'nvidia', prefixes: ['nvapi-'], charset: URLSAFE, min: 40, strictness: 'prefix' },
  { kind: 'cerebras', vendor: 'cerebras', prefixes: ['csk-'], charset: 'A-Za-z0-9', min: 40, strictness: 'prefix' },
  { kind: 'gitlab', prefixes: ['glpat-'], charset: URLSAFE, min: 20, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(6)) },
  { kind: 'stripe', prefixes: ['sk_live_', 'rk_live_'], charset: 'A-Za-z0-9', min: 20, strictness: 'prefix' },
  { kind: 'npm', prefixes: ['npm_'], charset: 'A-Za-z0-9', min: 36, max: 36, strictness: 'prefix', check: (c) => hasDigitAndLetter(c.slice(4)) },
  { kind: 'telegram_bot_token', prefixes: [], lead: '\\d{8,10}:', charset: URLSAFE, min: 35, max: 35, strictness: 'shape', left: 'alnum' },
  // Zhipu / Z.ai: <32 hex id>.<16 alnum secret>
  { kind: 'zai', vendor: 'zai', prefixes: [], lead: '[0-9a-f]{32}\\.', charset: 'A-Za-z0-9', min: 16, max: 16, strictness: 'shape', left: 'alnum-dot-dash' },
];

// ---------------------------------------------------------------------------------------------
// the live table: readers cache what they derive and rebuild when the version moves

const table: KeyKindSpec[] = [...BUILTIN];
let version = 1;

/** The table, in priority order. Do not mutate: use `addKeyKind`. */
export function keyKinds(): readonly KeyKindSpec[] {
  return table;
}

/** Bumped on every change of the table; readers rebuild their derived regexes when it moves. */
export function keyKindsVersion(): number {
  return version;
}

/**
 * Adds a kind (first in priority, so a more specific shape wins over a generic one) and returns a
 * function that removes it again. Every reader picks it up on its next call.
 */
export function addKeyKind(spec: KeyKindSpec): () => void {
  table.unshift(spec);
  version++;
  return () => {
    const i = table.indexOf(spec);
    if (i >= 0) {
      table.splice(i, 1);
      version++;
    }
  };
}

/** The template a kind belongs to, when the table names one. */
export function vendorOfKind(kind: string): string | undefined {
  for (const s of table) if (s.kind === kind && s.vendor) return s.vendor;
  return undefined;
}

export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The start of a key of this kind (regex source): its prefixes, or its lead. */
export function startSource(spec: KeyKindSpec): string {
  if (spec.lead) return spec.lead;
  return spec.prefixes.length === 1 ? escapeRe(spec.prefixes[0]!) : `(?:${spec.prefixes.map(escapeRe).join('|')})`;
}

/** The whole key (regex source, unanchored): its `shape`, or start + charset + length. */
export function keySource(spec: KeyKindSpec, minBody?: number): string {
  if (spec.shape && minBody === undefined) return spec.shape;
  const min = minBody === undefined ? spec.min : Math.min(minBody, spec.min);
  const max = minBody === undefined && spec.max !== undefined ? String(spec.max) : '';
  return `${startSource(spec)}[${spec.charset}]{${min},${max}}`;
}

const shapeCache = new Map<string, { v: number; re: RegExp }>();

/**
 * One regex for every kind of the table (prefix + charset + length, or the kind's full shape), not
 * preceded by a token character. For places where no key belongs at all (names, headers, example
 * code, vendor error text): no entropy or placeholder judgement, the caller adds its own.
 * `minBody` lowers every kind's length floor (vendor messages echo truncated keys); `flags` as for RegExp.
 */
export function keyShapeRe(opts: { minBody?: number; flags?: string } = {}): RegExp {
  const id = `${opts.minBody ?? ''}/${opts.flags ?? ''}`;
  const hit = shapeCache.get(id);
  if (hit && hit.v === version) {
    hit.re.lastIndex = 0;
    return hit.re;
  }
  const alts = table.map((s) => keySource(s, opts.minBody));
  const re = new RegExp(`(?<![A-Za-z0-9_-])(?:${alts.join('|')})`, opts.flags ?? '');
  shapeCache.set(id, { v: version, re });
  return re;
}
