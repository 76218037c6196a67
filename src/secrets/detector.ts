/**
 * The pasted-key detector.
 *
 * Every inbound chat message passes `detectKeys` before anything else. It recognises vendor API
 * keys by their public shapes (facts taken from the gitleaks / trufflehog rule sets and vendor
 * docs; the regexes and code here are our own), the user's own stored keys through the vault's
 * keyed-fingerprint hook, and a generic high-entropy token right after a key-ish word.
 *
 * Design, in order of cost:
 *  1. One `test` for characters that need normalising (zero-width, soft hyphen, bidi marks,
 *     full-width ASCII). Only when present is a normalised copy built; when it holds a key, an index
 *     map back to the original text is built too (so spans still point into the ORIGINAL text).
 *  2. One global regex over the text for every prefix-shaped format (`sk-`, `AIza`, `AKIA`, `ya29.`,
 *     `ABSK` ...). The formats, their rules and that regex are built from the one table of key
 *     kinds (key-kinds.ts), which the registry, parse-example and vendor-message redaction read
 *     too; they are rebuilt when the table changes. Hits are rare in ordinary chat; each hit is
 *     validated strictly (length, charset, entropy, placeholder rules) and, when too short,
 *     re-tried joined with the next whitespace- or line-break-separated fragments (a key wrapped
 *     across lines is still caught). A key right after a Chinese word (令牌hf_...) or after an
 *     escaped line break of JSON-encoded text (\nsk-...) has a boundary too.
 *  3. One case-insensitive global regex for key-ish words (key, token, secret, password, bearer,
 *     Authorization, 密钥, 令牌 ...). Only after such a word do we look at the next few tokens
 *     for a high-entropy value (generic_secret), and after an Azure word for a 32-hex key.
 *  4. When an `isKnownKey` hook is given, every token of 8+ characters is offered to it.
 *
 * Decisions (documented for the guard's users):
 *  - AWS: an access key id (AKIA/ASIA + 16) alone is refused: it is half a credential and names the
 *    account. A 40-character secret near it is included in the span. A lone 40-character secret
 *    is refused only after a key-ish word (generic_secret). The documented example pair
 *    (AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY) passes.
 *  - JWT-like strings (eyJ...) pass in ordinary discussion; after a key-ish word (token, bearer,
 *    Authorization: ...) they are refused as generic_secret, since a bearer JWT is a credential.
 *  - Azure OpenAI keys (32 hex) are recognised as such only near an Azure word (azure,
 *    openai.azure.com, cognitiveservices, AZURE_...) or as the value of Azure's `api-key` header
 *    (not Anthropic's x-api-key). A bare "endpoint" is not enough: request and trace ids are
 *    32-hex too. After another key word (`key:<hex>`, even glued) a 32-hex value is a generic_secret.
 *  - Google OAuth tokens (ya29. access, 1//0 refresh) and Bedrock API keys (ABSK..., and the
 *    short-term bedrock-api-key-... that runs past 1000 characters) are shapes of the table.
 *    Whole credential files (oauth_creds.json, .credentials.json) are caught field by field:
 *    by those shapes and the Claude Code sk-ant-oat01 / sk-ant-ort01 tokens, or after their
 *    access_token / refresh_token / id_token names (generic_secret).
 *  - A 40/64-hex string after a plain "key" (not "api key", "secret", "token" ...) or near a
 *    hash word (commit, sha, hash, digest, checksum, fingerprint) is treated as a hash, not a key.
 */

import {
  hasDigitAndLetter,
  keyKinds,
  keyKindsVersion,
  keySource,
  longestSegment,
  shannonEntropy,
  startSource,
  escapeRe,
  vendorOfKind,
  type KeyKindSpec,
  type LeftBoundary,
} from './key-kinds.ts';

export interface Detection {
  refused: boolean;
  kinds: string[];
  /** [start,end) offsets into the ORIGINAL text, for deletion/redaction only */
  spans: Array<[number, number]>;
}

export interface DetectOptions {
  /** returns true when a candidate token is one of this user's stored keys (keyed HMAC fingerprint check, done by the vault) */
  isKnownKey?: (candidate: string) => boolean;
}

/** Every kind this detector can report (stable strings): the key-kinds table's, then the word-based ones. */
export const KINDS: readonly string[] = [
  ...new Set(keyKinds().map((k) => k.kind)),
  'azure_openai',
  'private_key',
  'known_key',
  'generic_secret',
];
export type KeyKind = string;

/** The vendor template a detected key most probably belongs to (first kind that names one). */
export function vendorHintForKinds(kinds: string[]): string | undefined {
  for (const k of kinds) {
    const v = k === 'azure_openai' ? 'azure-openai' : vendorOfKind(k);
    if (v) return v;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// character helpers

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}
/** [A-Za-z0-9_-] */
function isTok(c: number): boolean {
  return isAlnum(c) || c === 95 || c === 45;
}
/** [A-Za-z0-9_] */
function isWordCh(c: number): boolean {
  return isAlnum(c) || c === 95;
}
function isHexLower(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}
/** generic secret charset: [A-Za-z0-9_\-+/=.~!@#$%^*], as a table: it runs on every character after each key-ish word */
const GEN_CH = new Uint8Array(128);
for (let c = 0; c < 128; c++) GEN_CH[c] = isTok(c) || '+/=.~!@#$%^*'.includes(String.fromCharCode(c)) ? 1 : 0;
function isGenCh(c: number): boolean {
  return c < 128 && GEN_CH[c] === 1;
}

export { shannonEntropy };

const PLACEHOLDER_WORD_RE = /x{4}|X{4}|\*{3}|\.\.\.|…|<|>|\{\{|\$\{|your|example|sample|placeholder|dummy|insert|replace|redacted|changeme|here/i;
const REPEAT_RE = /(.)\1{5}/;

function longestSequentialRun(s: string): number {
  let best = 1;
  let run = 1;
  for (let i = 1; i < s.length; i++) {
    const d = s.charCodeAt(i) - s.charCodeAt(i - 1);
    if (d === 1 || d === -1) {
      run++;
      if (run > best) best = run;
    } else run = 1;
  }
  return best;
}

/**
 * True for documented placeholders and obviously fake values: xxxx, ..., <...>, YOUR_..., repeated
 * characters, ascending/descending sequences, low entropy, few distinct characters.
 */
export function looksLikePlaceholder(full: string, body: string = full, minEntropy = 3.0): boolean {
  // a long random key (Bedrock's short-term ones run past 1000 characters) may spell "here" by chance
  // somewhere; a placeholder says so at its start
  if (PLACEHOLDER_WORD_RE.test(full.length > 160 ? full.slice(0, 80) : full)) return true;
  if (REPEAT_RE.test(body)) return true;
  if (longestSequentialRun(body) >= 7) return true;
  if (body.length >= 12) {
    if (shannonEntropy(body) < minEntropy) return true;
    const distinct = new Set(body).size;
    if (distinct < Math.min(10, body.length / 2)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// normalisation

/**
 * Characters that trigger the normalising path: invisible characters (zero-width, soft hyphen, bidi
 * marks, BOM) and the full-width forms of the characters keys are made of (letters, digits, - _ . : /).
 * Full-width punctuation such as ，：？ (everyday Chinese) needs no normalising: it is a separator
 * either way.
 */
const NEEDS_NORM_RE = /[\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF\uFF0D-\uFF1A\uFF21-\uFF3A\uFF3F\uFF41-\uFF5A]/;
const NORM_CHUNK_RE = /[\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF\uFF01-\uFF5E\u3000]/g;

interface View {
  s: string;
  /** the text s was normalised from, or null when s is the original text (identity map) */
  from: string | null;
}

/**
 * The normalised copy, when there is anything to normalise. The index map back to the original is
 * built only when a key was found (`toOriginal`): most messages with full-width punctuation such as
 * ： (everyday Chinese) are ordinary, and filling a map per character cost more than the scan.
 */
function normalise(text: string): View {
  if (!NEEDS_NORM_RE.test(text)) return { s: text, from: null };
  let out = '';
  let pos = 0;
  NORM_CHUNK_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = NORM_CHUNK_RE.exec(text)) !== null) {
    const i = m.index;
    out += text.slice(pos, i); // the plain run before it
    const c = text.charCodeAt(i);
    if (c >= 0xff01 && c <= 0xff5e) out += String.fromCharCode(c - 0xfee0); // full-width ASCII (what NFKC does)
    else if (c === 0x3000) out += ' '; // else: invisible, dropped
    pos = i + 1;
  }
  return { s: out + text.slice(pos), from: text };
}

/** map[i] = original offset of normalised s[i]; map[s.length] = original length (same walk as `normalise`) */
function buildMap(text: string): Int32Array {
  const map = new Int32Array(text.length + 1);
  let n = 0;
  let pos = 0;
  NORM_CHUNK_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = NORM_CHUNK_RE.exec(text)) !== null) {
    const i = m.index;
    for (let k = pos; k < i; k++) map[n++] = k;
    const c = text.charCodeAt(i);
    if ((c >= 0xff01 && c <= 0xff5e) || c === 0x3000) map[n++] = i; // kept as one character; invisible ones are dropped
    pos = i + 1;
  }
  for (let k = pos; k < text.length; k++) map[n++] = k;
  map[n] = text.length;
  return map.subarray(0, n + 1);
}

function toOriginal(map: Int32Array | null, start: number, end: number): [number, number] {
  if (!map) return [start, end];
  const s = map[start]!;
  const e = end > start ? map[end - 1]! + 1 : s;
  return [s, e];
}

// ---------------------------------------------------------------------------------------------
// prefix-shaped rules, built from the key-kinds table

interface Rule {
  kind: KeyKind;
  /** does a candidate starting at `i` belong to this rule (cheap prefix test) */
  starts: (s: string, i: number) => boolean;
  /** sticky regex matching the maximal first fragment at the candidate start */
  head: RegExp;
  /** charset of continuation fragments (after a line break / space inside the key) */
  cont: (c: number) => boolean;
  /** strict validation of the (possibly joined) candidate */
  strict: RegExp;
  /** length of the fixed prefix, excluded from the entropy / placeholder body */
  prefixLen: (cand: string) => number;
  /** exact-length formats never extend over further fragments */
  exact: boolean;
  /** extra check on the strict candidate */
  extra?: (cand: string) => boolean;
  minEntropy?: number;
  /** left boundary: the char before must not satisfy this */
  leftBad: (c: number) => boolean;
  /** a head this long or longer is a pathological run, not a key */
  maxRun: number;
}

const LEFT_BAD: Record<LeftBoundary, (c: number) => boolean> = {
  word: isWordCh,
  alnum: isAlnum,
  'alnum-dot-dash': (c) => isAlnum(c) || c === 46 || c === 45,
  any: () => false,
};

/** a regex character class body as a per-character table (the joiner calls it per character) */
function charsetTest(charset: string): (c: number) => boolean {
  const re = new RegExp(`^[${charset}]$`);
  const t = new Uint8Array(128);
  for (let c = 0; c < 128; c++) t[c] = re.test(String.fromCharCode(c)) ? 1 : 0;
  return (c) => c < 128 && t[c] === 1;
}

/** the union of character class bodies, as one class body of ASCII ranges */
function unionClass(charsets: string[]): string {
  const tests = charsets.map(charsetTest);
  const esc = (c: number) => (/[\\\]^-]/.test(String.fromCharCode(c)) ? '\\' : '') + String.fromCharCode(c);
  let out = '';
  for (let c = 0; c < 128; c++) {
    if (!tests.some((t) => t(c))) continue;
    let e = c;
    while (e + 1 < 128 && tests.some((t) => t(e + 1))) e++;
    out += e > c ? `${esc(c)}-${esc(e)}` : esc(c);
    c = e;
  }
  return out;
}

function ruleOf(spec: KeyKindSpec): Rule {
  const start = startSource(spec);
  const maxRun = spec.maxRun ?? 600;
  const lead = spec.lead ? new RegExp(spec.lead, 'y') : null;
  const prefixes = spec.prefixes;
  const starts = lead
    ? (s: string, i: number) => {
        lead.lastIndex = i;
        return lead.test(s);
      }
    : prefixes.length === 1
      ? (s: string, i: number) => s.startsWith(prefixes[0]!, i)
      : (s: string, i: number) => prefixes.some((p) => s.startsWith(p, i));
  const fixedLen = (cand: string): number => {
    if (lead) {
      lead.lastIndex = 0;
      const m = lead.exec(cand);
      return m ? m[0].length : 0;
    }
    for (const p of prefixes) if (cand.startsWith(p)) return p.length;
    return 0;
  };
  return {
    kind: spec.kind,
    starts,
    head: new RegExp(`${start}[${spec.charset}]{0,${maxRun}}`, 'y'),
    cont: charsetTest(spec.charset),
    strict: new RegExp(`^(?:${keySource(spec)})$`),
    prefixLen: spec.prefixLen ?? fixedLen,
    exact: spec.max !== undefined,
    extra: spec.check,
    minEntropy: spec.minEntropy,
    leftBad: LEFT_BAD[spec.left ?? 'word'],
    maxRun,
  };
}

/** case-insensitive spelling of an ASCII word as character classes (no `i` flag: it is slower) */
function ci(word: string): string {
  return word.replace(/[a-z]/g, (c) => `[${c}${c.toUpperCase()}]`);
}

/**
 * The scan alternatives for the table's literal prefixes, factored by first character
 * (s(?:k-|k_live_|...)) so the regex engine dispatches on it. A prefix that extends a shorter one
 * (sk-ant- after sk-) is left out: every rule starting at a hit is tried anyway. Each is followed
 * by a character (three after a prefix of three) of its kinds' charsets, so a bare prefix in prose
 * costs no dispatch; still short, so a key wrapped right after its prefix reaches the joiner.
 */
function prefixTrie(specs: readonly KeyKindSpec[]): string {
  const byPrefix = new Map<string, Set<string>>();
  for (const s of specs) for (const p of s.prefixes) {
    const cs = byPrefix.get(p) ?? new Set<string>();
    cs.add(s.charset);
    byPrefix.set(p, cs);
  }
  const all = [...byPrefix.keys()];
  const minimal = all.filter((p) => !all.some((o) => o !== p && p.startsWith(o)));
  const charsets = (p: string) => {
    const u: string[] = [];
    for (const [q, cs] of byPrefix) if (q.startsWith(p)) u.push(...cs);
    return unionClass(u);
  };
  const byFirst = new Map<string, string[]>();
  for (const p of minimal.sort()) {
    // short, common prefixes (sk-, hf_) want a few body characters before a dispatch
    const alt = escapeRe(p.slice(1)) + `[${charsets(p)}]` + (p.length <= 3 ? '{3}' : '');
    byFirst.set(p[0]!, [...(byFirst.get(p[0]!) ?? []), alt]);
  }
  const out: string[] = [];
  for (const [first, rests] of byFirst) out.push(escapeRe(first) + (rests.length === 1 ? rests[0] : `(?:${rests.join('|')})`));
  return out.join('|');
}

/**
 * Case-insensitive alternation of words, factored into a trie (api|app|access|auth -> a(?:p(?:i|p)|...)):
 * the scan regex tries it after every boundary character, and shared initials are then tested once.
 * The words of each list are prefix-free, so at most one can match at a position: the factoring
 * changes neither what matches nor where.
 */
function ciTrie(words: string[]): string {
  const byFirst = new Map<string, string[]>();
  for (const w of words) {
    if (words.some((o) => o !== w && o.startsWith(w))) throw new Error(`ciTrie: ${w} is a prefix of another word`);
    const rest = byFirst.get(w[0]!) ?? [];
    rest.push(w.slice(1));
    byFirst.set(w[0]!, rest);
  }
  const alts: string[] = [];
  for (const [first, rests] of byFirst) alts.push(ci(first) + (rests.length === 1 ? ci(rests[0]!) : `(?:${ciTrie(rests)})`));
  return alts.join('|');
}

/** key-ish words, optionally glued to a qualifier (apiKey, accessToken, clientSecret, X-Api-Key) */
const KW_SRC =
  '(?:' +
  ciTrie(['api', 'access', 'secret', 'private', 'auth', 'app', 'client', 'bot', 'refresh', 'session']) +
  ')?[\\s_.-]?(?:' +
  ciTrie(['key', 'secret', 'token', 'passw', 'pwd', 'bearer', 'authoriz', 'credential', 'azure', 'cognitiveservices']) +
  ')';
const CJK_KW_SRC = '密钥|秘钥|令牌|密码|口令|凭证|凭据';
/** ASCII initials a KW match can begin with, in either case, and the separators [\s_.-] */
const KW_INITIALS = 'aspcbrkt';

interface Compiled {
  version: number;
  rules: Rule[];
  /**
   * The one pass over every message: a boundary character, then a key prefix (group 1) or a key-ish
   * word (group 2); or a Chinese key word (group 3) anywhere.
   */
  scan: RegExp;
  /** the same at offset 0 (no boundary character before) */
  scanStart: RegExp;
  /**
   * ASCII characters a prefix or KW match can begin with (a superset is fine: it only saves an exec
   * per message).
   */
  canStartAt0: Uint8Array;
}

let compiled: Compiled | null = null;

/** The rules and scan regexes for the current key-kinds table (rebuilt only when it changes). */
function current(): Compiled {
  const v = keyKindsVersion();
  if (compiled && compiled.version === v) return compiled;
  const specs = keyKinds();
  const leads = specs.filter((s) => s.lead).map((s) => `${s.lead}[${s.charset}]`);
  const trie = [prefixTrie(specs), ...new Set(leads), '-----BEGIN'].join('|');
  const canStartAt0 = new Uint8Array(128);
  for (let c = 0; c < 128; c++) {
    const ch = String.fromCharCode(c);
    const kw = KW_INITIALS.includes(ch.toLowerCase()) || /[\s_.-]/.test(ch);
    const prefix = specs.some((s) => s.prefixes.some((p) => p[0] === ch));
    // lead kinds start with a digit or hex
    canStartAt0[c] = kw || prefix || /[0-9a-f]/.test(ch) ? 1 : 0;
  }
  compiled = {
    version: v,
    rules: specs.map(ruleOf),
    scan: new RegExp(`[^A-Za-z0-9](?:(${trie})|(${KW_SRC}))|(${CJK_KW_SRC})`, 'g'),
    scanStart: new RegExp(`(?:(${trie})|(${KW_SRC}))`, 'y'),
    canStartAt0,
  };
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// joining fragments split by whitespace / line breaks

interface Piece {
  start: number;
  end: number;
}

/**
 * The next fragment after `pos` separated by at most one line break (with indentation / a quote
 * marker) or 1-2 spaces. Returns null when there is none.
 */
function nextPiece(s: string, pos: number, cont: (c: number) => boolean): (Piece & { newline: boolean }) | null {
  let i = pos;
  let nl = 0;
  let sp = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 10) nl++;
    else if (c === 32 || c === 9) sp++;
    else if (c !== 13) break;
    i++;
  }
  if (i === pos || nl > 1 || (nl === 0 && sp > 2) || sp > 16) return null;
  let j = i;
  while (j < n && cont(s.charCodeAt(j))) j++;
  if (j - i < 2) return null;
  return { start: i, end: j, newline: nl === 1 };
}

function looksRandomFragment(frag: string): boolean {
  if (frag.length < 6) return false;
  let up = 0;
  let lo = 0;
  let dg = 0;
  for (let i = 0; i < frag.length; i++) {
    const c = frag.charCodeAt(i);
    if (c >= 65 && c <= 90) up++;
    else if (c >= 97 && c <= 122) lo++;
    else if (c >= 48 && c <= 57) dg++;
  }
  return dg > 0 || (up > 0 && lo > 0 && up + lo >= 8);
}

const MAX_JOINS = 8;

interface Hit {
  kind: KeyKind;
  start: number;
  end: number;
}

function validate(rule: Rule, cand: string): boolean {
  if (!rule.strict.test(cand)) return false;
  if (rule.extra && !rule.extra(cand)) return false;
  const body = cand.slice(Math.max(0, rule.prefixLen(cand)));
  return !looksLikePlaceholder(cand, body, rule.minEntropy ?? 3.0);
}

/** length of the longest head the last `handlePrefix` tried (a failed long head is skipped whole) */
let longestHead = 0;

/** Try one rule at s[i]: the fragment alone, then joined with following fragments. */
function tryRule(rule: Rule, s: string, i: number): Hit | null {
  rule.head.lastIndex = i;
  const m = rule.head.exec(s);
  if (!m) return null;
  if (m[0].length > longestHead) longestHead = m[0].length;
  if (m[0].length >= rule.maxRun) return null; // no key of this kind is that long: a pathological run, not a key
  let end = i + m[0].length;
  // right boundary for the head: a format whose charset stops earlier than a token does
  const after = s.charCodeAt(end);
  if (rule.exact && end < s.length && isTok(after)) return null;
  let cand = m[0];
  if (validate(rule, cand)) {
    // a long first line may already validate: extend over wrapped continuation lines for the span
    if (!rule.exact) {
      for (let k = 0; k < MAX_JOINS; k++) {
        const p = nextPiece(s, end, rule.cont);
        if (!p || !p.newline) break;
        const frag = s.slice(p.start, p.end);
        if (!looksRandomFragment(frag) || (p.end < s.length && !/\s/.test(s[p.end]!))) break;
        if (!validate(rule, cand + frag)) break;
        cand += frag;
        end = p.end;
      }
    }
    return { kind: rule.kind, start: i, end };
  }
  // too short: join with the following fragments (key wrapped across lines / grouped by spaces)
  if (end < s.length && !/\s/.test(s[end]!)) return null;
  for (let k = 0; k < MAX_JOINS; k++) {
    const p = nextPiece(s, end, rule.cont);
    if (!p) return null;
    cand += s.slice(p.start, p.end);
    end = p.end;
    if (cand.length > 400) return null;
    if (validate(rule, cand)) return { kind: rule.kind, start: i, end };
    if (end < s.length && !/\s/.test(s[end]!)) return null;
  }
  return null;
}

/**
 * JSON-encoded text (a chat export, a log line) writes a line break as `\n`: the key after it follows
 * the letter n, which is no boundary. The scan reads a copy with the letter blanked (same length, so
 * offsets are unchanged); built only when the text has a backslash at all.
 */
const ESCAPED_BREAK_RE = /\\[nrt]/g;
function blankEscapedBreaks(s: string): string {
  return s.indexOf('\\') < 0 ? s : s.replace(ESCAPED_BREAK_RE, '\\ ');
}

/** A prefix-shaped candidate at s[i]. Returns where scanning may resume. */
function handlePrefix(s: string, i: number, head: string, hits: Hit[]): number {
  if (head.startsWith('-----BEGIN')) {
    const m = /^-----BEGIN[A-Z ]{0,24} PRIVATE KEY-----/.exec(s.slice(i, i + 48));
    if (!m) return i + 1;
    const endMarker = s.indexOf('-----END', i + m[0].length);
    let end = endMarker < 0 ? Math.min(s.length, i + 4096) : s.indexOf('-----', endMarker + 8);
    end = end < 0 ? s.length : end + 5;
    const body = s.slice(i + m[0].length, endMarker < 0 ? end : endMarker).replace(/\s+/g, '');
    if (body.length >= 40 && !looksLikePlaceholder(body)) {
      hits.push({ kind: 'private_key', start: i, end });
      return end;
    }
    return i + 1;
  }
  // a pathological run (most keys are under 600 characters): only kinds allowed that long are
  // tried, and a failed long run is skipped whole, keeping the scan linear
  let run = i;
  const cap = Math.min(s.length, i + 600);
  while (run < cap && isTok(s.charCodeAt(run))) run++;
  const longRun = run - i >= 600;
  const before = i > 0 ? s.charCodeAt(i - 1) : -1;
  longestHead = 0;
  for (const rule of current().rules) {
    if (longRun && rule.maxRun <= 600) continue;
    if (!rule.starts(s, i)) continue;
    if (before >= 0 && rule.leftBad(before)) continue;
    const hit = tryRule(rule, s, i);
    if (hit) {
      hits.push(hit);
      return Math.max(hit.end, i + 1);
    }
  }
  if (longRun) {
    while (run < s.length && isTok(s.charCodeAt(run))) run++;
    return run;
  }
  return longestHead >= 600 ? i + longestHead : i + 1;
}

interface ScanState {
  lastAzureScan: number;
}

/**
 * Handle one scan match; returns the position scanning may resume from (the char before a candidate
 * is its boundary). A module function, not a closure made per call: under tsx (esbuild keepNames)
 * every named closure is wrapped in __name(), a defineProperty per message.
 */
function dispatchMatch(s: string, m: RegExpExecArray, base: number, hits: Hit[], st: ScanState): number {
  if (m[1] !== undefined) return handlePrefix(s, base, m[1], hits) - 1;
  const kw = m[2] ?? m[3]!;
  handleKeyword(s, base, base + kw.length, hits, st);
  // resume right after the keyword: a prefixed key in its value is still classified by its own rule.
  // A Chinese word's last character is itself the boundary a key glued to it (令牌hf_...) needs.
  return m[3] !== undefined ? base + kw.length - 1 : base + kw.length;
}

function scanAll(s: string, hits: Hit[]): void {
  const st: ScanState = { lastAzureScan: -1 };
  const c = current();
  const re = c.scan;
  re.lastIndex = 0;
  // offset 0 has no boundary character before it; most messages start with a letter no match can start with
  const c0 = s.charCodeAt(0);
  if (c0 >= 128 || c.canStartAt0[c0] === 1) {
    c.scanStart.lastIndex = 0;
    const m0 = c.scanStart.exec(s);
    if (m0) re.lastIndex = Math.max(0, dispatchMatch(s, m0, 0, hits, st));
  }
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const base = m[3] !== undefined ? m.index : m.index + 1;
    const next = dispatchMatch(s, m, base, hits, st);
    re.lastIndex = Math.max(next, m.index + 1);
  }
}

// ---------------------------------------------------------------------------------------------
// AWS secret next to an access key id

const AWS_SECRET_RE = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])/g;

function extendAws(s: string, hits: Hit[]): void {
  const ids = hits.filter((h) => h.kind === 'aws_access_key');
  for (const h of ids) {
    const from = Math.max(0, h.start - 200);
    const to = Math.min(s.length, h.end + 200);
    AWS_SECRET_RE.lastIndex = from;
    let m: RegExpExecArray | null;
    while ((m = AWS_SECRET_RE.exec(s)) !== null && m.index < to) {
      const tok = m[0];
      if (!hasDigitAndLetter(tok) || looksLikePlaceholder(tok, tok, 3.5) || /^[0-9a-f]+$/.test(tok)) continue;
      hits.push({ kind: 'aws_access_key', start: m.index, end: m.index + tok.length });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// key-ish words: generic secrets and Azure keys

const HASH_WORD_RE = /commit|sha\d*|hash|digest|checksum|fingerprint|\brev\b|merge|cherry|integrity|etag|md5/i;
const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HEX_RE = /^[0-9a-fA-F]+$/;
const ENV_NAME_RE = /^\$?\{?[A-Z][A-Z0-9_]*\}?$/;

const GEN_WINDOW = 48;
const AZURE_WINDOW = 120;

/*
 * End of the run of word / generic-secret characters at i (bounded: a run longer than 1024 is cut
 * there). Two specialised loops rather than one taking a predicate: they run on every character
 * after each key-ish word, and a predicate parameter is an indirect call per character.
 */
function wordRunEnd(s: string, i: number): number {
  let j = i;
  const max = Math.min(s.length, i + 1024);
  while (j < max && isWordCh(s.charCodeAt(j))) j++;
  return j;
}
function genRunEnd(s: string, i: number): number {
  let j = i;
  const max = Math.min(s.length, i + 1024);
  while (j < max && isGenCh(s.charCodeAt(j))) j++;
  return j;
}

/** `\s` of a JS regex for one UTF-16 code unit, without making a one-character string */
function isJsSpace(c: number): boolean {
  if (c < 128) return c === 32 || (c >= 9 && c <= 13);
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/** does s[from, to) end with the lower-case ASCII word w, ignoring ASCII case? (c | 32 folds A-Z onto a-z only) */
function endsWithCI(s: string, from: number, to: number, w: string): boolean {
  const at = to - w.length;
  if (at < from) return false;
  for (let k = 0; k < w.length; k++) if ((s.charCodeAt(at + k) | 32) !== w.charCodeAt(k)) return false;
  return true;
}

/** Is s[start,end) a generic high-entropy secret? */
function genericSecretOk(s: string, start: number, tok: string): boolean {
  // trim sentence punctuation
  while (tok.length && /[.!,#*^%@~]$/.test(tok) && !tok.endsWith('==')) tok = tok.slice(0, -1);
  if (tok.length < 20) return false;
  const pre = s.slice(Math.max(0, start - 8), start);
  // (a drive letter is one letter: key:<hex> and api-key:<hex> are a key glued to its word)
  if (/:\/\/$|@$|base64,$|(?:sha\d+|md5)[:-]$|(?:^|[^A-Za-z])[A-Za-z]:\\?$/i.test(pre)) return false;
  if (/^(?:sha\d+|md5)[-:]/i.test(tok)) return false;
  if (tok.includes('://') || /^[/.~]/.test(tok)) return false;
  if (/@[A-Za-z0-9-]+\.[A-Za-z]{2,}/.test(tok)) return false; // e-mail
  if (/=[^=]/.test(tok)) return false; // a=b query-ish (base64 padding only at the end)
  if (ENV_NAME_RE.test(tok) || tok.startsWith('$')) return false;
  if (UUID_RE.test(tok)) return false;
  if (!hasDigitAndLetter(tok)) return false;
  // identifier / slug / path made of short parts: my-app-prod-2024, src/foo/bar_baz.ts
  const segs = tok.split(/[-_./]/);
  if (segs.length >= 3 && longestSegment(tok, /[-_./]/) < 16) return false;
  if (/\.(?:js|ts|py|go|rs|json|ya?ml|md|html|css|png|jpe?g|svg|txt|log|sh|toml|lock)$/i.test(tok)) return false;
  let up = 0;
  let lo = 0;
  let dg = 0;
  let sym = 0;
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    if (c >= 65 && c <= 90) up++;
    else if (c >= 97 && c <= 122) lo++;
    else if (c >= 48 && c <= 57) dg++;
    else sym++;
  }
  const hexOnly = HEX_RE.test(tok);
  if (hexOnly) {
    if (tok.length < 32) return false;
    const around = s.slice(Math.max(0, start - 60), start);
    if (HASH_WORD_RE.test(around)) return false;
  } else {
    if (dg < 2) return false;
    if (!(up > 0 && lo > 0) && sym === 0 && !(dg >= 6 && up + lo >= 6)) return false;
  }
  if (looksLikePlaceholder(tok, tok, 3.3)) return false;
  return true;
}

/** A 32-hex value after Azure's own header name `api-key` (not Anthropic's x-api-key) is an Azure key. */
function azureHeaderValue(s: string, kwStart: number, kwEnd: number, tok: string): boolean {
  if (tok.length !== 32 || !HEX_RE.test(tok)) return false;
  if (kwEnd - kwStart !== 7 || !endsWithCI(s, kwStart, kwEnd, 'api-key')) return false;
  return kwStart === 0 || s.charCodeAt(kwStart - 1) !== 45;
}

/** A key-ish word at s[kwStart, kwEnd): look for a secret value right after it (or an Azure key around it). */
function handleKeyword(s: string, kwStart: number, kwEnd: number, hits: Hit[], st: ScanState): void {
  // (the keyword is ASCII letters and at most one separator, so no lower-cased copy is needed)
  if (endsWithCI(s, kwStart, kwEnd, 'azure') || endsWithCI(s, kwStart, kwEnd, 'cognitiveservices')) {
    if (kwStart > st.lastAzureScan) {
      scanAzure(s, kwStart, kwEnd, hits);
      st.lastAzureScan = kwEnd + AZURE_WINDOW;
    }
    return;
  }
  // skip the rest of the keyword's word (keys, token_count, password_hash ...); a Chinese word is
  // whole, and what is glued to it (密钥sk-...) is the value
  let i = s.charCodeAt(kwEnd - 1) < 128 ? wordRunEnd(s, kwEnd) : kwEnd;
  const limit = Math.min(s.length, i + GEN_WINDOW);
  let tokens = 0;
  while (i < limit && tokens < 6) {
    // skip separators
    while (i < limit && !isGenCh(s.charCodeAt(i))) i++;
    if (i >= limit) break;
    const j = genRunEnd(s, i);
    tokens++;
    // KEY=value, token:value: the value starts after the '=' run
    while (i < j && s.charCodeAt(i) === 61) i++;
    if (i >= j) continue;
    if (j - i < 8) {
      i = j; // too short to be a value or to start a wrapped one: skip without copying it
      continue;
    }
    let tok = s.slice(i, j);
    let end = j;
    if (tok.length >= 8 && tok.length < 20 && (j >= s.length || isJsSpace(s.charCodeAt(j)))) {
      // a value wrapped across lines: join the next fragments
      for (let k = 0; k < MAX_JOINS && tok.length < 20; k++) {
        const p = nextPiece(s, end, isGenCh);
        if (!p || !p.newline) break;
        tok += s.slice(p.start, p.end);
        end = p.end;
      }
    }
    if (tok.length >= 20 && genericSecretOk(s, i, tok)) {
      hits.push({ kind: azureHeaderValue(s, kwStart, kwEnd, tok) ? 'azure_openai' : 'generic_secret', start: i, end });
      return;
    }
    i = Math.max(j, i + 1);
  }
}

const AZURE_HEX_RE = /(?<![A-Za-z0-9-])(?:[0-9a-f]{32}|[0-9A-F]{32}|[A-Za-z0-9]{84})(?![A-Za-z0-9-])/g;

function scanAzure(s: string, kwStart: number, kwEnd: number, hits: Hit[]): void {
  const from = Math.max(0, kwStart - AZURE_WINDOW);
  const to = Math.min(s.length, kwEnd + AZURE_WINDOW);
  AZURE_HEX_RE.lastIndex = from;
  let m: RegExpExecArray | null;
  while ((m = AZURE_HEX_RE.exec(s)) !== null && m.index < to) {
    const tok = m[0];
    if (tok.length === 84 && !hasDigitAndLetter(tok)) continue;
    if (looksLikePlaceholder(tok, tok, 3.0)) continue;
    hits.push({ kind: 'azure_openai', start: m.index, end: m.index + tok.length });
  }
  // a 32-hex key wrapped across two lines
  const HALF = /(?<![A-Za-z0-9-])[0-9a-f]{8,31}(?=[ \t]*\r?\n)/g;
  HALF.lastIndex = from;
  while ((m = HALF.exec(s)) !== null && m.index < to) {
    const p = nextPiece(s, m.index + m[0].length, isHexLower);
    if (!p || !p.newline) continue;
    const joined = m[0] + s.slice(p.start, p.end);
    if (joined.length === 32 && (p.end >= s.length || !isTok(s.charCodeAt(p.end))) && !looksLikePlaceholder(joined)) {
      hits.push({ kind: 'azure_openai', start: m.index, end: p.end });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// the user's stored keys

const KNOWN_TOKEN_RE = /[^\s"'`<>()[\]{},;|]{8,}/g;

function scanKnown(s: string, isKnownKey: (candidate: string) => boolean, hits: Hit[]): void {
  const seen = new Set<string>();
  const offer = (cand: string, start: number): boolean => {
    if (cand.length < 8 || seen.has(cand)) return false;
    seen.add(cand);
    if (seen.size > 4000) return false;
    let ok = false;
    try {
      ok = isKnownKey(cand);
    } catch {
      ok = false;
    }
    if (ok) hits.push({ kind: 'known_key', start, end: start + cand.length });
    return ok;
  };
  KNOWN_TOKEN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = KNOWN_TOKEN_RE.exec(s)) !== null) {
    const tok = m[0];
    if (offer(tok, m.index)) continue;
    // trailing sentence punctuation, KEY=value, key:value
    const trimmed = tok.replace(/[.,!?:]+$/, '');
    if (trimmed !== tok && offer(trimmed, m.index)) continue;
    const sep = trimmed.search(/[=:]/);
    if (sep >= 0 && sep < trimmed.length - 1) {
      const rest = trimmed.slice(sep + 1).replace(/^[=:]+/, '');
      offer(rest, m.index + (trimmed.length - rest.length));
    }
  }
  // a stored key wrapped across two lines
  const lines = s.split('\n');
  if (lines.length > 1 && lines.length < 200) {
    let off = 0;
    for (let li = 0; li < lines.length - 1; li++) {
      const a = lines[li]!.trimEnd().split(/\s+/).pop() ?? '';
      const b = lines[li + 1]!.trimStart().split(/\s+/)[0] ?? '';
      if (a.length >= 4 && b.length >= 4) {
        const start = off + lines[li]!.trimEnd().length - a.length;
        if (isKnownKeySafe(isKnownKey, a + b)) {
          const bStart = off + lines[li]!.length + 1 + (lines[li + 1]!.length - lines[li + 1]!.trimStart().length);
          hits.push({ kind: 'known_key', start, end: bStart + b.length });
        }
      }
      off += lines[li]!.length + 1;
    }
  }
}

function isKnownKeySafe(fn: (c: string) => boolean, c: string): boolean {
  try {
    return fn(c);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// public API

/** overlap priority: specific kinds first, then the user's stored keys, then generic secrets */
function rankOf(k: KeyKind): number {
  return k === 'generic_secret' ? 2 : k === 'known_key' ? 1 : 0;
}

/** Scan one message. Never throws; never returns the key itself (only kinds and offsets). */
export function detectKeys(text: string, opts: DetectOptions = {}): Detection {
  if (typeof text !== 'string' || text.length === 0) return { refused: false, kinds: [], spans: [] };
  const view = normalise(text);
  const s = view.s;
  const hits: Hit[] = [];
  const scanned = blankEscapedBreaks(s);
  scanAll(scanned, hits);
  if (hits.length > 0 && hits.some((h) => h.kind === 'aws_access_key')) extendAws(scanned, hits);
  if (opts.isKnownKey) scanKnown(s, opts.isKnownKey, hits);
  if (hits.length === 0) return { refused: false, kinds: [], spans: [] };

  // specific kinds win over generic ones on overlapping spans
  hits.sort((a, b) => rankOf(a.kind) - rankOf(b.kind) || a.start - b.start);
  const kept: Hit[] = [];
  for (const h of hits) {
    const overlaps = kept.some((k) => h.start < k.end && k.start < h.end);
    if (overlaps && h.kind !== 'known_key') continue;
    kept.push(h);
  }
  kept.sort((a, b) => a.start - b.start);
  const kinds: string[] = [];
  for (const h of kept) if (!kinds.includes(h.kind)) kinds.push(h.kind);
  // merge spans, mapped back to the original text
  const spans: Array<[number, number]> = [];
  const map = view.from === null ? null : buildMap(view.from);
  for (const h of kept) {
    const [a, b] = toOriginal(map, h.start, h.end);
    const last = spans[spans.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else spans.push([a, b]);
  }
  spans.sort((x, y) => x[0] - y[0]);
  const merged: Array<[number, number]> = [];
  for (const sp of spans) {
    const last = merged[merged.length - 1];
    if (last && sp[0] <= last[1]) last[1] = Math.max(last[1], sp[1]);
    else merged.push([sp[0], sp[1]]);
  }
  return { refused: true, kinds, spans: merged };
}

/** Replace each detected key by "[REDACTED]" (used by the logger). */
export function redactKeys(text: string, opts: DetectOptions = {}): string {
  if (typeof text !== 'string' || text.length === 0) return text;
  const d = detectKeys(text, opts);
  if (!d.refused) return text;
  let out = '';
  let pos = 0;
  for (const [a, b] of d.spans) {
    out += text.slice(pos, a) + '[REDACTED]';
    pos = b;
  }
  return out + text.slice(pos);
}
