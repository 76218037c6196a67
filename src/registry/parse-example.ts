/**
 * parse_example: turns a vendor's API example (curl, Python, JavaScript) into a draft for
 * `add`. Keys found in the example are dropped: they never reach the draft, the warnings
 * or an error message. Nothing here evaluates code; literals are read by a small tolerant
 * parser, and every scan is linear in the input (the input is capped at 64 KB first).
 */
import { keyShapeRe } from '../secrets/key-kinds.ts';
import { fail, ok, type Result } from '../result.ts';
import type { ThinkingRule } from '../vendors/template-schema.ts';

export interface ExampleDraft {
  upstream_model: string;
  /** Without /chat/completions, /messages, /completions, /responses (anthropic: ends in /v1). */
  base_url: string;
  wire: 'openai' | 'anthropic' | 'azure-openai';
  /** Suggested vault name for the key. */
  api_key_env: string;
  /** Non-auth headers only. */
  headers: Record<string, string>;
  /** Vendor-specific body fields beyond the standard ones. */
  request_fields: Record<string, unknown>;
  thinking?: ThinkingRule;
  max_tokens?: number;
  /** Non-secret query parameters the endpoint needs (Azure `api-version`). */
  query?: Record<string, string>;
  source: 'curl' | 'python' | 'javascript';
}

export const MAX_EXAMPLE_BYTES = 64 * 1024;

export const KEY_DROPPED_WARNING =
  'An API key was found in the example and was dropped; it was not stored. If it is a real key, rotate it.';

// ---------------------------------------------------------------------------------------
// Values read from code

/** An expression we do not evaluate (a variable, a call, os.environ[...]). */
class Expr {
  constructor(readonly text: string) {}
}
/** A string with interpolation (f-string, template literal, concatenation). */
class Tpl {
  constructor(readonly text: string) {}
}
type Val = null | boolean | number | string | Val[] | { [k: string]: Val } | Expr | Tpl;
type Obj = { [k: string]: Val };

class ParseError extends Error {}

const MAX_DEPTH = 64;
const MAX_CALL_SITES = 8;
/** Loose (unstructured) key candidates remembered for scrubbing; bounds the scrub cost. */
const MAX_LOOSE_SECRETS = 256;
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Expr) && !(v instanceof Tpl);
}

type Mode = 'python' | 'js';

const IDENT_RE = /[A-Za-z_$][A-Za-z0-9_$]*/y;
const NUMBER_RE = /-?(?:\d[\d_]*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** A tolerant reader for Python / JavaScript literals. */
class Reader {
  i: number;
  constructor(
    readonly s: string,
    readonly mode: Mode,
    start = 0,
  ) {
    this.i = start;
  }

  peek(k = 0): string {
    return this.s[this.i + k] ?? '';
  }

  skipWs(stopAtNewline = false): void {
    const s = this.s;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === '\n' && stopAtNewline) return;
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
        this.i++;
      } else if (c === '\\' && s[this.i + 1] === '\n') {
        this.i += 2;
      } else if (c === '#' && this.mode === 'python') {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else if (c === '/' && s[this.i + 1] === '/') {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
      } else if (c === '/' && s[this.i + 1] === '*') {
        const end = s.indexOf('*/', this.i + 2);
        this.i = end < 0 ? s.length : end + 2;
      } else {
        return;
      }
    }
  }

  ident(): string | null {
    IDENT_RE.lastIndex = this.i;
    const m = IDENT_RE.exec(this.s);
    if (!m) return null;
    this.i += m[0].length;
    return m[0];
  }

  /** Skips a balanced expression up to a delimiter at depth 0; returns its text. */
  rawScan(stopAtNewline = false): string {
    const s = this.s;
    const start = this.i;
    let depth = 0;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === '"' || c === "'" || c === '`') {
        this.skipString(c);
        continue;
      }
      if (c === '(' || c === '[' || c === '{') depth++;
      else if (c === ')' || c === ']' || c === '}') {
        if (depth === 0) break;
        depth--;
      } else if (depth === 0 && (c === ',' || c === ';')) break;
      else if (depth === 0 && c === '\n' && stopAtNewline) break;
      this.i++;
    }
    return s.slice(start, this.i).trim();
  }

  /** Skips a quoted string starting at the current quote without interpreting it. */
  skipString(q: string): void {
    const s = this.s;
    const triple = q !== '`' && s.startsWith(q + q + q, this.i);
    const close = triple ? q + q + q : q;
    this.i += close.length;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (c === '\\') {
        this.i += 2;
        continue;
      }
      if (s.startsWith(close, this.i)) {
        this.i += close.length;
        return;
      }
      if (c === '\n' && !triple && q !== '`') return; // unterminated line string
      this.i++;
    }
  }

  /** Reads a quoted string literal at the current position (after any prefix letters). */
  readString(q: string, prefix: string): string | Tpl {
    const s = this.s;
    const raw = /r/i.test(prefix);
    const fmt = /f/i.test(prefix);
    const triple = q !== '`' && s.startsWith(q + q + q, this.i);
    const close = triple ? q + q + q : q;
    this.i += close.length;
    let out = '';
    let interpolated = false;
    while (this.i < s.length) {
      const c = s[this.i]!;
      if (s.startsWith(close, this.i)) {
        this.i += close.length;
        return interpolated ? new Tpl(out) : out;
      }
      if (c === '\n' && !triple && q !== '`') throw new ParseError('unterminated string');
      if (c === '\\' && !raw) {
        const n = s[this.i + 1] ?? '';
        this.i += 2;
        switch (n) {
          case 'n': out += '\n'; break;
          case 't': out += '\t'; break;
          case 'r': out += '\r'; break;
          case '\n': break;
          case 'u': {
            const hex = s.slice(this.i, this.i + 4);
            if (/^[0-9a-fA-F]{4}$/.test(hex)) {
              out += String.fromCharCode(parseInt(hex, 16));
              this.i += 4;
            } else out += 'u';
            break;
          }
          default: out += n;
        }
        continue;
      }
      if (q === '`' && c === '$' && s[this.i + 1] === '{') {
        interpolated = true;
        const end = this.scanBraces(this.i + 1);
        out += s.slice(this.i, end);
        this.i = end;
        continue;
      }
      if (fmt && c === '{') {
        if (s[this.i + 1] === '{') {
          out += '{';
          this.i += 2;
          continue;
        }
        interpolated = true;
        const end = this.scanBraces(this.i);
        out += s.slice(this.i, end);
        this.i = end;
        continue;
      }
      if (fmt && c === '}' && s[this.i + 1] === '}') {
        out += '}';
        this.i += 2;
        continue;
      }
      out += c;
      this.i++;
    }
    throw new ParseError('unterminated string');
  }

  /** From a `{` at `at`, returns the index after the matching `}` (no nesting of strings). */
  scanBraces(at: number): number {
    const s = this.s;
    let depth = 0;
    for (let j = at; j < s.length; j++) {
      const c = s[j];
      if (c === '{') depth++;
      else if (c === '}') {
        depth--;
        if (depth === 0) return j + 1;
      } else if (c === '\n' && depth > 0 && j - at > 400) break;
    }
    throw new ParseError('unterminated interpolation');
  }

  /** Parses one value; unknown expressions come back as Expr. */
  value(depth = 0, stopAtNewline = false): Val {
    if (depth > MAX_DEPTH) throw new ParseError('too deep');
    this.skipWs();
    const start = this.i;
    const v = this.primary(depth, stopAtNewline);
    // Binary continuation (`"Bearer " + key`, `"..." % x`, `"...".format(x)`): keep as text.
    const save = this.i;
    this.skipWs(true);
    const c = this.peek();
    if (c === '+' || c === '%' || c === '.' || c === '|' || c === '?' || (c === '(' && v instanceof Expr)) {
      this.i = start;
      const text = this.rawScan(stopAtNewline);
      return /["'`]/.test(text) ? new Tpl(text) : new Expr(text);
    }
    this.i = save;
    return v;
  }

  private primary(depth: number, stopAtNewline: boolean): Val {
    const c = this.peek();
    if (c === '{') return this.object(depth);
    if (c === '[') return this.list(depth, ']');
    if (c === '(') {
      // A tuple or parenthesised expression.
      return this.list(depth, ')');
    }
    if (c === '"' || c === "'" || c === '`') return this.readString(c, '');
    if (/[0-9-]/.test(c)) {
      NUMBER_RE.lastIndex = this.i;
      const m = NUMBER_RE.exec(this.s);
      if (m) {
        this.i += m[0].length;
        return Number(m[0].replace(/_/g, ''));
      }
    }
    const start = this.i;
    const id = this.ident();
    if (id !== null) {
      const q = this.peek();
      if (id.length <= 2 && /^[rRbBuUfF]{1,2}$/.test(id) && (q === '"' || q === "'")) return this.readString(q, id);
      if (this.peek() !== '.' && this.peek() !== '(' && this.peek() !== '[') {
        switch (id) {
          case 'True': case 'true': return true;
          case 'False': case 'false': return false;
          case 'None': case 'null': case 'undefined': return null;
        }
      }
      this.i = start;
      return new Expr(this.rawScan(stopAtNewline));
    }
    if (c === '.' && this.s.startsWith('...', this.i)) {
      this.i += 3;
      return new Expr('...' + this.rawScan(stopAtNewline));
    }
    if (c === '' ) throw new ParseError('end of input');
    const text = this.rawScan(stopAtNewline);
    if (text === '') throw new ParseError('unexpected character');
    return new Expr(text);
  }

  private list(depth: number, close: string): Val[] {
    this.i++;
    const out: Val[] = [];
    for (;;) {
      this.skipWs();
      if (this.peek() === close) {
        this.i++;
        return out;
      }
      if (this.peek() === '') throw new ParseError('unterminated list');
      out.push(this.value(depth + 1));
      this.skipWs();
      if (this.peek() === ',') this.i++;
      else if (this.peek() !== close) throw new ParseError('expected , in list');
    }
  }

  private object(depth: number): Obj {
    this.i++;
    const out: Obj = {};
    for (;;) {
      this.skipWs();
      const c = this.peek();
      if (c === '}') {
        this.i++;
        return out;
      }
      if (c === '') throw new ParseError('unterminated object');
      if (this.s.startsWith('...', this.i) || this.s.startsWith('**', this.i)) {
        this.rawScan();
      } else {
        let key: string;
        if (c === '"' || c === "'" || c === '`') {
          const k = this.readString(c, '');
          key = k instanceof Tpl ? k.text : k;
        } else if (c === '[') {
          this.i++;
          key = '[' + this.rawScan() + ']';
          if (this.peek() === ']') this.i++;
        } else {
          const id = this.ident();
          if (id === null) {
            NUMBER_RE.lastIndex = this.i;
            const m = NUMBER_RE.exec(this.s);
            if (!m) throw new ParseError('bad key');
            this.i += m[0].length;
            key = m[0];
          } else key = id;
        }
        this.skipWs();
        let v: Val;
        if (this.peek() === ':') {
          this.i++;
          v = this.value(depth + 1);
        } else if (this.peek() === ',' || this.peek() === '}') {
          v = new Expr(key); // JS shorthand `{ model }`
        } else if (this.peek() === '(') {
          v = new Expr(key + this.rawScan()); // method shorthand
        } else throw new ParseError('expected :');
        if (!UNSAFE_KEYS.has(key)) out[key] = v;
      }
      this.skipWs();
      if (this.peek() === ',') this.i++;
      else if (this.peek() !== '}') throw new ParseError('expected , in object');
    }
  }

  /** Reads call arguments with the reader on `(`. */
  args(): { pos: Val[]; kw: Obj } {
    const pos: Val[] = [];
    const kw: Obj = {};
    this.i++;
    for (;;) {
      this.skipWs();
      const c = this.peek();
      if (c === ')') {
        this.i++;
        return { pos, kw };
      }
      if (c === '') throw new ParseError('unterminated call');
      if (c === '*') {
        this.rawScan();
      } else {
        const save = this.i;
        const id = this.mode === 'python' ? this.ident() : null;
        this.skipWs();
        if (id !== null && this.peek() === '=' && this.s[this.i + 1] !== '=') {
          this.i++;
          const v = this.value(1);
          if (!UNSAFE_KEYS.has(id)) kw[id] = v;
        } else {
          this.i = save;
          pos.push(this.value(1));
        }
      }
      this.skipWs();
      if (this.peek() === ',') this.i++;
      else if (this.peek() !== ')') throw new ParseError('expected , in call');
    }
  }
}

/** Parses a value at `at`; on failure gives the raw text as an Expr. */
function parseValueAt(s: string, at: number, mode: Mode, stopAtNewline = false): Val {
  const r = new Reader(s, mode, at);
  try {
    return r.value(0, stopAtNewline);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    const r2 = new Reader(s, mode, at);
    r2.skipWs();
    return new Expr(r2.rawScan(stopAtNewline));
  }
}

function parseArgsAt(s: string, at: number, mode: Mode): { pos: Val[]; kw: Obj } | null {
  try {
    return new Reader(s, mode, at).args();
  } catch (e) {
    if (e instanceof ParseError) return null;
    throw e;
  }
}

/** Parses a JSON (or JSON-ish) body string. */
function parseBodyText(text: string): Val {
  const t = text.trim();
  try {
    return JSON.parse(t) as Val;
  } catch {
    return parseValueAt(t, 0, 'js');
  }
}

// ---------------------------------------------------------------------------------------
// Keys and placeholders

/** Keys by shape: every kind of the shared key-kinds table (secrets/key-kinds.ts). */
const keyPrefixRe = (): RegExp => keyShapeRe({ flags: 'g' });

const ENV_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

function isGoodEnvName(n: string | undefined): n is string {
  if (!n || !ENV_NAME_RE.test(n) || n.length > 64) return false;
  if (!/(KEY|TOKEN)$/.test(n)) return false;
  if (/^(YOUR|MY)_/.test(n)) return false;
  return !['API_KEY', 'KEY', 'TOKEN', 'APIKEY', 'ACCESS_TOKEN', 'AUTH_TOKEN'].includes(n);
}

/** Env var names that a key reference points at, best first. */
function envNamesIn(text: string): string[] {
  const out: string[] = [];
  const add = (n: string | undefined) => {
    if (isGoodEnvName(n) && !out.includes(n)) out.push(n);
  };
  const t = text.length > 400 ? text.slice(0, 400) : text;
  for (const m of t.matchAll(/process\.env(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["'`]([A-Za-z_][A-Za-z0-9_]*)["'`]\s*\])/g)) add(m[1] ?? m[2]);
  for (const m of t.matchAll(/(?:environ(?:\.get)?|getenv|env\.get|Getenv|env::var)\s*[[(]\s*["'`]([A-Za-z_][A-Za-z0-9_]*)["'`]/g)) add(m[1]);
  for (const m of t.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) add(m[1]);
  for (const m of t.matchAll(/<\s*([A-Z][A-Z0-9_]*)\s*>/g)) add(m[1]);
  const bare = t.trim().replace(/^Bearer\s+/i, '');
  add(bare);
  return out;
}

/** True when a literal key value is clearly not a real key. */
function isPlaceholderKey(value: string): boolean {
  const v = value.trim().replace(/^(Bearer|Basic|Token)\s+/i, '').trim();
  if (v.length < 12) return true;
  if (/[$<>{}\s]/.test(v)) return true;
  if (/x{3,}|X{3,}|\*{3,}|\.{3}|…|0{6,}|1234567/.test(v)) return true;
  if (/your|api[_-]?key|token|replace|insert|placeholder|example|dummy|changeme|redacted|secret_key/i.test(v)) return true;
  if (ENV_NAME_RE.test(v)) return true;
  if (/^(.)\1+$/.test(v)) return true;
  return false;
}

interface Ctx {
  source: ExampleDraft['source'];
  text: string;
  url?: string;
  /** The URL is an SDK base URL (paths are appended by the SDK). */
  sdk?: 'openai' | 'anthropic' | 'azure';
  /** Kind of call when known from an SDK method. */
  endpoint?: 'chat' | 'messages' | 'completions' | 'responses';
  headers: Array<[string, Val]>;
  body?: Obj;
  /** Values that carried a key (auth header, api_key=, apiKey:). */
  keyValues: Val[];
  /** Literal keys seen; never output. */
  secrets: Set<string>;
  realKeySeen: boolean;
  envFromKey: string[];
  warnings: string[];
  bodyUnreadable?: boolean;
}

function noteKey(ctx: Ctx, v: Val): void {
  ctx.keyValues.push(v);
  if (typeof v === 'string') {
    const bare = v.trim().replace(/^(Bearer|Basic|Token)\s+/i, '').trim();
    if (bare.length >= 6) ctx.secrets.add(bare);
    if (v.length >= 6) ctx.secrets.add(v);
    if (!isPlaceholderKey(v)) ctx.realKeySeen = true;
    for (const n of envNamesIn(v)) if (!ctx.envFromKey.includes(n)) ctx.envFromKey.push(n);
  } else if (v instanceof Expr || v instanceof Tpl) {
    for (const n of envNamesIn(v.text)) if (!ctx.envFromKey.includes(n)) ctx.envFromKey.push(n);
  }
}

const AUTH_HEADER_RE = /^(authorization|proxy-authorization|x-api-key|api-key|apikey|x-goog-api-key|cookie|set-cookie)$|key|token|secret|auth|cookie|session|password|signature/i;
const BOILERPLATE_HEADERS = new Set([
  'content-type', 'accept', 'content-length', 'host', 'accept-encoding', 'connection', 'user-agent',
]);

/** Scans the whole text for keys outside the structured places (exports, assignments). */
function scanLooseKeys(ctx: Ctx): void {
  const t = ctx.text;
  const cap = ctx.secrets.size + MAX_LOOSE_SECRETS;
  for (const m of t.matchAll(keyPrefixRe())) {
    if (ctx.secrets.size >= cap) break;
    ctx.secrets.add(m[0]);
    if (!isPlaceholderKey(m[0])) ctx.realKeySeen = true;
  }
  // NAME=value / NAME = "value" / name: "value" where the name says key/token/secret.
  const assign = /\b([A-Za-z_][A-Za-z0-9_]{0,63})["']?\s*[:=]\s*["']?([A-Za-z0-9_\-.+/=]{8,256})/g;
  for (const m of t.matchAll(assign)) {
    const name = m[1]!;
    const value = m[2]!;
    if (!/key|token|secret|password/i.test(name)) continue;
    if (/^(os|process|environ|getenv)\b/.test(value) || /^\d+$/.test(value)) continue;
    if (ENV_NAME_RE.test(value) && isGoodEnvName(value)) continue;
    if (ctx.secrets.size >= cap) {
      ctx.realKeySeen ||= !isPlaceholderKey(value);
      continue;
    }
    ctx.secrets.add(value);
    if (!isPlaceholderKey(value)) ctx.realKeySeen = true;
  }
}

// ---------------------------------------------------------------------------------------
// Source detection

const JS_MARKERS = [
  /\bfetch\s*\(/, /\bnew\s+(?:openai\.)?(?:OpenAI|Anthropic|AzureOpenAI)\s*\(/, /JSON\.stringify\s*\(/,
  /(?:^|[\s;])(?:const|let|var)\s+[A-Za-z_$]/, /\brequire\s*\(/, /^[ \t]*import[ \t]+[\w{*][^\n]*[ \t]from[ \t]+["']/m,
  /\baxios\b/, /=>/, /\bconsole\.log\s*\(/, /\bprocess\.env\b/, /\bbaseURL\s*:/, /\bapiKey\s*:/, /\.create\s*\(\s*\{/,
];
const PY_MARKERS = [
  /^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]/m, /^[ \t]*import[ \t]+[\w.]+[ \t]*(?:,[ \t]*[\w.]+[ \t]*)*$/m,
  /\brequests\.\w+\s*\(/, /\bhttpx\.\w+\s*\(/, /\bos\.(?:environ|getenv)\b/, /\b(?:True|False|None)\b/,
  /\bprint\s*\(/, /^[ \t]*(?:async[ \t]+)?def[ \t]/m, /\bbase_url\s*=/, /\bapi_key\s*=/, /\.create\s*\(\s*\w+\s*=/,
  /\bextra_body\s*=/,
];
function countMatches(t: string, res: RegExp[]): number {
  let n = 0;
  for (const re of res) if (re.test(t)) n++;
  return n;
}

function detectSource(t: string): ExampleDraft['source'] | null {
  if (/(?:^|[\n;&|(])[ \t]*(?:\$[ \t]+|>[ \t]+|%[ \t]+)?curl(?:\.exe)?\s/.test(t)) return 'curl';
  const js = countMatches(t, JS_MARKERS);
  const py = countMatches(t, PY_MARKERS);
  if (js === 0 && py === 0) return null;
  return py > js ? 'python' : 'javascript';
}

// ---------------------------------------------------------------------------------------
// curl

interface ShellTok {
  text: string;
}

/** Tokenises the shell command starting at `at`, stopping at the end of that command. */
function shellTokens(s: string, at: number): ShellTok[] {
  const toks: ShellTok[] = [];
  let i = at;
  let cur = '';
  let has = false;
  const push = () => {
    if (has) toks.push({ text: cur });
    cur = '';
    has = false;
  };
  while (i < s.length) {
    const c = s[i]!;
    if ((c === '\\' || c === '^' || c === '`') && (s[i + 1] === '\n' || (s[i + 1] === '\r' && s[i + 2] === '\n'))) {
      i += s[i + 1] === '\r' ? 3 : 2;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      push();
      i++;
      continue;
    }
    if (c === '\n' || c === ';' || c === '|' || (c === '&' && s[i + 1] === '&')) {
      push();
      // A newline right after a finished option may still be followed by `-H` in sloppy
      // pastes; only stop when the next line does not start with an option.
      if (c === '\n') {
        let j = i + 1;
        while (j < s.length && (s[j] === ' ' || s[j] === '\t')) j++;
        if (s[j] === '-' && toks.length > 0) {
          i = j;
          continue;
        }
      }
      break;
    }
    if (c === '#' && !has) {
      while (i < s.length && s[i] !== '\n') i++;
      continue;
    }
    if (c === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new ParseError('unterminated quote');
      cur += s.slice(i + 1, end);
      has = true;
      i = end + 1;
      continue;
    }
    if (c === '$' && s[i + 1] === "'") {
      // ANSI-C quoting: $'...' with backslash escapes.
      i += 2;
      while (i < s.length && s[i] !== "'") {
        if (s[i] === '\\' && i + 1 < s.length) {
          const n = s[i + 1]!;
          cur += n === 'n' ? '\n' : n === 't' ? '\t' : n;
          i += 2;
        } else cur += s[i++];
      }
      if (i >= s.length) throw new ParseError('unterminated quote');
      i++;
      has = true;
      continue;
    }
    if (c === '"') {
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) {
          const n = s[i + 1]!;
          if (n === '\n') {
            i += 2;
            continue;
          }
          if (n === '"' || n === '\\' || n === '$' || n === '`') {
            cur += n;
            i += 2;
            continue;
          }
        }
        cur += s[i++];
      }
      if (i >= s.length) throw new ParseError('unterminated quote');
      i++;
      has = true;
      continue;
    }
    if (c === '\\' && i + 1 < s.length) {
      cur += s[i + 1];
      has = true;
      i += 2;
      continue;
    }
    cur += c;
    has = true;
    i++;
  }
  push();
  return toks;
}

const CURL_ARG_OPTS = new Set([
  '-X', '--request', '-o', '--output', '-m', '--max-time', '--connect-timeout', '-A', '--user-agent',
  '-e', '--referer', '-x', '--proxy', '--retry', '-w', '--write-out', '--cacert', '--cert', '--key',
  '-b', '--cookie', '-c', '--cookie-jar', '-T', '--upload-file', '-F', '--form', '--resolve',
]);

function parseCurl(ctx: Ctx): void {
  const t = ctx.text;
  const m = /(?:^|[\n;&|(])[ \t]*(?:\$[ \t]+|>[ \t]+|%[ \t]+)?(curl(?:\.exe)?)\s/.exec(t);
  if (!m) return;
  const at = m.index + m[0].lastIndexOf('curl');
  let toks: ShellTok[];
  try {
    toks = shellTokens(t, at);
  } catch {
    throw new ExampleError('The curl command has an unterminated quote. Paste the whole command, including the closing quote of the JSON body.', 'example_unterminated_quote');
  }
  const bodies: string[] = [];
  for (let k = 1; k < toks.length; k++) {
    let a = toks[k]!.text;
    let val: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const next = () => val ?? toks[++k]?.text;
    if (a === '-H' || a === '--header') {
      const h = next();
      if (h !== undefined) addHeaderLine(ctx, h);
    } else if (a.startsWith('-H') && a.length > 2 && !a.startsWith('--')) {
      addHeaderLine(ctx, a.slice(2));
    } else if (['-d', '--data', '--data-raw', '--data-binary', '--data-ascii', '--data-urlencode', '--json'].includes(a)) {
      const d = next();
      if (d !== undefined) bodies.push(d);
    } else if (a.startsWith('-d') && a.length > 2 && !a.startsWith('--')) {
      bodies.push(a.slice(2));
    } else if (a === '--url') {
      const u = next();
      if (u !== undefined && ctx.url === undefined) ctx.url = u;
    } else if (a === '-u' || a === '--user') {
      const u = next();
      if (u !== undefined) noteKey(ctx, u.includes(':') ? u.slice(u.indexOf(':') + 1) : u);
    } else if (CURL_ARG_OPTS.has(a)) {
      next();
    } else if (a.startsWith('-')) {
      // flag without argument (-s, -N, --location, --compressed, ...)
    } else if (ctx.url === undefined) {
      ctx.url = a;
    }
  }
  if (bodies.length > 0) {
    const text = bodies.join('');
    if (/^@/.test(text.trim())) {
      ctx.bodyUnreadable = true;
    } else {
      const v = parseBodyText(text);
      if (isObj(v)) ctx.body = v;
      else ctx.bodyUnreadable = true;
    }
  }
}

function addHeaderLine(ctx: Ctx, line: string): void {
  const c = line.indexOf(':');
  if (c <= 0) return;
  ctx.headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
}

// ---------------------------------------------------------------------------------------
// Python and JavaScript

/** Resolves `NAME = <value>` / `const NAME = <value>` in the text. */
function resolveVar(text: string, name: string, mode: Mode, seen = 0): Val | undefined {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) || seen > 3) return undefined;
  const esc = name.replace(/\$/g, '\\$');
  const re = new RegExp(`(?:^|[\\s;(])(?:const\\s+|let\\s+|var\\s+)?${esc}\\s*(?::\\s*[A-Za-z_][\\w.<>\\[\\]]*\\s*)?=(?!=)`, 'm');
  const m = re.exec(text);
  if (!m) return undefined;
  const v = parseValueAt(text, m.index + m[0].length, mode, true);
  if (v instanceof Expr && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(v.text)) return resolveVar(text, v.text, mode, seen + 1) ?? v;
  return v;
}

function resolve(ctx: Ctx, v: Val | undefined, mode: Mode): Val | undefined {
  if (v instanceof Expr) {
    const t = v.text;
    if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(t)) return resolveVar(ctx.text, t, mode) ?? v;
    const dumps = /^(?:json\.dumps|JSON\.stringify)\s*\(/.exec(t);
    if (dumps) {
      const inner = parseValueAt(t, dumps[0].length, mode);
      return resolve(ctx, inner, mode);
    }
  }
  return v;
}

function callSites(text: string, re: RegExp): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(re)) {
    out.push(m.index + m[0].length - 1); // position of `(`
    if (out.length >= MAX_CALL_SITES) break;
  }
  return out;
}

function strOf(v: Val | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Tpl) return v.text;
  return undefined;
}

function headersFrom(ctx: Ctx, v: Val | undefined, mode: Mode): void {
  const h = resolve(ctx, v, mode);
  if (!isObj(h)) return;
  for (const [k, val] of Object.entries(h)) ctx.headers.push([k, val]);
}

function mergeBody(ctx: Ctx, fields: Obj): void {
  ctx.body ??= {};
  for (const [k, v] of Object.entries(fields)) ctx.body[k] = v;
}

const SDK_CTOR_RE = /\b(?:openai\.|anthropic\.)?(Async)?(OpenAI|AzureOpenAI|Anthropic|AnthropicVertex|AnthropicBedrock)\s*\(/g;
const CREATE_RE = /\.(chat\.completions|messages|completions|responses)\.(?:create|stream|parse)\s*\(/g;

function parseCode(ctx: Ctx, mode: Mode): void {
  const t = ctx.text;
  const newCtor = mode === 'js' ? /\bnew\s+(?:openai\.)?(OpenAI|AzureOpenAI|Anthropic)\s*\(/g : SDK_CTOR_RE;

  // SDK client constructors.
  let tries = 0;
  for (const m of t.matchAll(newCtor)) {
    if (++tries > MAX_CALL_SITES) break;
    const kind = mode === 'js' ? m[1]! : m[2]!;
    ctx.sdk = kind.startsWith('Anthropic') ? 'anthropic' : kind === 'AzureOpenAI' ? 'azure' : 'openai';
    const a = parseArgsAt(t, m.index + m[0].length - 1, mode);
    if (!a) continue;
    const opts: Obj = mode === 'js' ? (isObj(a.pos[0]) ? (a.pos[0] as Obj) : {}) : a.kw;
    const base = resolve(ctx, opts.base_url ?? opts.baseURL ?? opts.azure_endpoint ?? opts.endpoint, mode);
    const bs = strOf(base);
    if (bs !== undefined) ctx.url = bs;
    else if (base instanceof Expr) {
      const u = firstUrl(base.text);
      if (u) ctx.url = u;
    }
    const key = opts.api_key ?? opts.apiKey;
    if (key !== undefined) noteKey(ctx, resolveKey(ctx, key, mode));
    headersFrom(ctx, opts.default_headers ?? opts.defaultHeaders, mode);
    const apiVersion = strOf(resolve(ctx, opts.api_version ?? opts.apiVersion, mode));
    if (apiVersion) ctx.azureApiVersion = apiVersion;
    const dep = strOf(resolve(ctx, opts.azure_deployment ?? opts.deployment, mode));
    if (dep) ctx.azureDeployment = dep;
    break;
  }

  // SDK create calls.
  tries = 0;
  for (const m of t.matchAll(CREATE_RE)) {
    if (++tries > MAX_CALL_SITES) break;
    const kind = m[1]!;
    ctx.endpoint = kind === 'chat.completions' ? 'chat' : (kind as Ctx['endpoint']);
    const a = parseArgsAt(t, m.index + m[0].length - 1, mode);
    if (!a) continue;
    let fields: Obj;
    if (mode === 'js') {
      const first = resolve(ctx, a.pos[0], mode);
      fields = isObj(first) ? { ...first } : {};
    } else fields = { ...a.kw };
    const extraBody = resolve(ctx, fields.extra_body, mode);
    const extraHeaders = fields.extra_headers;
    delete fields.extra_body;
    delete fields.extra_headers;
    delete fields.extra_query;
    delete fields.timeout;
    mergeBody(ctx, fields);
    if (isObj(extraBody)) mergeBody(ctx, extraBody);
    headersFrom(ctx, extraHeaders, mode);
    break;
  }

  // HTTP calls: requests/httpx (Python), fetch/axios (JS).
  const httpRe =
    mode === 'python'
      ? /\b(?:requests|httpx|session|client|s)\.(post|request)\s*\(/g
      : /\b(?:fetch|axios\.post|axios)\s*\(/g;
  for (const at of callSites(t, httpRe)) {
    const a = parseArgsAt(t, at, mode);
    if (!a) continue;
    let urlV: Val | undefined;
    let headers: Val | undefined;
    let body: Val | undefined;
    if (mode === 'python') {
      const isRequest = /request\s*\($/.test(t.slice(Math.max(0, at - 8), at + 1));
      const pos = isRequest ? a.pos.slice(1) : a.pos;
      urlV = a.kw.url ?? pos[0];
      headers = a.kw.headers;
      body = a.kw.json ?? a.kw.data ?? a.kw.content;
    } else {
      urlV = a.pos[0];
      const opts = resolve(ctx, a.pos[1], mode);
      const isAxios = /axios/.test(t.slice(Math.max(0, at - 12), at));
      if (isAxios) {
        body = a.pos[1];
        const cfg = resolve(ctx, a.pos[2], mode);
        if (isObj(cfg)) headers = cfg.headers;
      } else if (isObj(opts)) {
        headers = opts.headers;
        body = opts.body;
      }
    }
    const u = resolve(ctx, urlV, mode);
    const us = strOf(u);
    if (us === undefined || !/https?:\/\/|\$\{|\{/.test(us)) continue;
    ctx.url = us;
    ctx.sdk = undefined;
    headersFrom(ctx, headers, mode);
    let b = resolve(ctx, body, mode);
    if (typeof b === 'string' || b instanceof Tpl) b = parseBodyText(strOf(b)!);
    if (isObj(b)) {
      ctx.body = undefined;
      mergeBody(ctx, b);
    } else if (body !== undefined) ctx.bodyUnreadable = true;
    break;
  }
}

/** For an `api_key=` value that is a variable, look through to its assignment. */
function resolveKey(ctx: Ctx, v: Val, mode: Mode): Val {
  if (v instanceof Expr && /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(v.text)) {
    const r = resolveVar(ctx.text, v.text, mode);
    if (r !== undefined) return r;
  }
  return v;
}

interface Ctx {
  azureApiVersion?: string;
  azureDeployment?: string;
}

const URL_RE = /https?:\/\/[^\s"'`<>()[\]{},;\\]+/;

function firstUrl(text: string): string | undefined {
  return URL_RE.exec(text)?.[0];
}

// ---------------------------------------------------------------------------------------
// Draft assembly

/** A user-input problem with a stable reason (the chat translates by it). */
class ExampleError extends Error {
  constructor(message: string, readonly reason: string) {
    super(message);
  }
}

const OPENAI_STANDARD = new Set([
  'model', 'messages', 'max_tokens', 'max_completion_tokens', 'stream', 'stream_options', 'temperature', 'top_p', 'n',
  'stop', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'logprobs', 'top_logprobs', 'user', 'seed', 'tools',
  'tool_choice', 'parallel_tool_calls', 'response_format', 'functions', 'function_call', 'store', 'metadata',
  'modalities', 'audio', 'prediction', 'service_tier', 'reasoning_effort', 'verbosity', 'web_search_options', 'prompt',
  'input', 'instructions', 'max_output_tokens', 'safety_identifier', 'prompt_cache_key', 'suffix', 'echo', 'best_of',
]);
const ANTHROPIC_STANDARD = new Set([
  'model', 'messages', 'max_tokens', 'system', 'stop_sequences', 'stream', 'temperature', 'top_p', 'top_k', 'metadata',
  'tools', 'tool_choice', 'thinking', 'service_tier', 'container', 'mcp_servers',
]);

const EFFORTS = ['minimal', 'low', 'medium', 'high'] as const;
type Effort = (typeof EFFORTS)[number];
function effortOf(v: unknown): Effort | undefined {
  return typeof v === 'string' && (EFFORTS as readonly string[]).includes(v) ? (v as Effort) : undefined;
}
function posInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}

function detectThinking(body: Obj, wire: ExampleDraft['wire'], endpoint: Ctx['endpoint']): ThinkingRule | undefined {
  const th = body.thinking;
  if (isObj(th)) {
    const type = typeof th.type === 'string' ? th.type : undefined;
    const budget = posInt(th.budget_tokens);
    if (type === 'adaptive') {
      // Claude 4.6+: `{type: adaptive}` + `output_config.effort`, no budget (Opus 4.7+ refuse
      // `enabled`). Elsewhere (a proxy's own dialect) the field is kept verbatim, not rewritten.
      if (wire !== 'anthropic') return undefined;
      const oc = body.output_config;
      const eff = isObj(oc) ? effortOf(oc.effort) : undefined;
      return { style: 'anthropic_budget', adaptive: true, default_on: true, ...(eff ? { default_effort: eff } : {}) };
    }
    if (budget !== undefined) {
      return { style: 'anthropic_budget', budget_tokens: budget, ...(type ? { default_on: type === 'enabled' } : {}) };
    }
    // Anthropic requires budget_tokens with `enabled`: without one in the example the rule
    // has none, and the request gets one sized from max_tokens (see vendors/thinking.ts).
    if (wire === 'anthropic' && (type === 'enabled' || type === 'disabled')) return { style: 'anthropic_budget', default_on: type === 'enabled' };
    if (type) return { style: 'thinking_type', default_on: type !== 'disabled' };
  }
  if (typeof body.enable_thinking === 'boolean') {
    return { style: 'enable_thinking', param: 'enable_thinking', default_on: body.enable_thinking };
  }
  const ctk = body.chat_template_kwargs;
  if (isObj(ctk)) {
    const keys = Object.keys(ctk).filter((k) => typeof ctk[k] === 'boolean');
    const p = keys.find((k) => /think|reason/i.test(k)) ?? keys[0];
    if (p) return { style: 'nearai_chat_template', param: p, default_on: ctk[p] as boolean };
  }
  const r = body.reasoning;
  if (isObj(r)) {
    const eff = effortOf(r.effort);
    if (endpoint === 'responses' && wire !== 'anthropic') {
      return { style: 'reasoning_effort', ...(eff ? { default_effort: eff } : {}) };
    }
    const mt = posInt(r.max_tokens);
    return {
      style: 'openrouter_reasoning',
      ...(eff ? { default_effort: eff } : {}),
      ...(mt ? { budget_tokens: mt } : {}),
      ...(typeof r.enabled === 'boolean' ? { default_on: r.enabled } : {}),
    };
  }
  if (body.reasoning_effort !== undefined) {
    const eff = effortOf(body.reasoning_effort);
    return { style: 'reasoning_effort', ...(eff ? { default_effort: eff } : {}) };
  }
  return undefined;
}

/** Val -> JSON value; expressions are dropped (undefined). */
function toJson(v: Val, dropped: string[], path: string, depth = 0): unknown {
  if (depth > MAX_DEPTH) throw new ParseError('too deep');
  if (v instanceof Expr) {
    dropped.push(path);
    return undefined;
  }
  if (v instanceof Tpl) return v.text;
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const x of v) {
      const j = toJson(x, dropped, path, depth + 1);
      if (j !== undefined) out.push(j);
    }
    return out;
  }
  if (isObj(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const j = toJson(x, dropped, `${path}.${k}`, depth + 1);
      if (j !== undefined) out[k] = j;
    }
    return out;
  }
  return v;
}

const HOST_ENV: Array<[RegExp, string]> = [
  [/(^|\.)openai\.azure\.com$|(^|\.)cognitiveservices\.azure\.com$/, 'AZURE_OPENAI_API_KEY'],
  [/(^|\.)openai\.com$/, 'OPENAI_API_KEY'],
  [/(^|\.)anthropic\.com$/, 'ANTHROPIC_API_KEY'],
  [/(^|\.)aliyuncs\.com$/, 'DASHSCOPE_API_KEY'],
  [/(^|\.)moonshot\.(ai|cn)$/, 'MOONSHOT_API_KEY'],
  [/(^|\.)z\.ai$|(^|\.)bigmodel\.cn$/, 'ZAI_API_KEY'],
  [/(^|\.)x\.ai$/, 'XAI_API_KEY'],
  [/(^|\.)minimaxi?\.(io|com|chat)$/, 'MINIMAX_API_KEY'],
  [/(^|\.)near\.ai$/, 'NEARAI_API_KEY'],
  [/(^|\.)generativelanguage\.googleapis\.com$/, 'GEMINI_API_KEY'],
  [/(^|\.)huggingface\.(co|cloud)$|(^|\.)hf\.space$/, 'HF_TOKEN'],
  [/(^|\.)xiaomimimo\.com$/, 'MIMO_API_KEY'],
];

function envFromHost(host: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  for (const [re, env] of HOST_ENV) if (re.test(h)) return env;
  if (/^[\d.]+$/.test(h) || h.includes(':') || h === 'localhost') return 'LOCAL_API_KEY';
  const labels = h.split('.').filter(Boolean);
  let label = labels.length >= 2 ? labels[labels.length - 2]! : (labels[0] ?? 'custom');
  if (labels.length >= 3 && /^(com|co|net|org|ac|gov|edu)$/.test(label) && labels[labels.length - 1]!.length === 2) {
    label = labels[labels.length - 3]!;
  }
  const name = label.toUpperCase().replace(/[^A-Z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return `${/^[A-Z]/.test(name) ? name : 'CUSTOM_' + name}_API_KEY`;
}

const ENDPOINT_SUFFIX_RE = /\/(?:chat\/completions|messages|completions|responses|text\/chatcompletion_v2)$/;

function looksLikeKey(s: string, secrets: Set<string>): boolean {
  const re = keyPrefixRe();
  re.lastIndex = 0;
  if (re.test(s)) return true;
  for (const k of secrets) if (k.length >= 8 && s.includes(k)) return true;
  return false;
}

function build(ctx: Ctx): Result<{ draft: ExampleDraft; warnings: string[] }> {
  const warnings = ctx.warnings;
  const body: Obj = ctx.body ?? {};

  // --- URL
  let rawUrl = ctx.url;
  if (rawUrl === undefined) {
    const env = /\b[A-Z_]*BASE_URL\s*=\s*["']?(https?:\/\/[^\s"']+)/.exec(ctx.text);
    if (env) rawUrl = env[1];
    else if (ctx.sdk === 'openai') rawUrl = 'https://api.openai.com/v1';
    else if (ctx.sdk === 'anthropic') rawUrl = 'https://api.anthropic.com';
    else rawUrl = firstUrl(ctx.text);
  }
  if (rawUrl === undefined || rawUrl.trim() === '') {
    return fail(
      'invalid_input',
      'No endpoint URL was found in the example. Paste a curl, Python or JavaScript example that contains the full https:// URL of the API (or the SDK base_url).',
      { reason: 'example_no_url' },
    );
  }
  rawUrl = rawUrl.trim();
  if (/^[$%<{]/.test(rawUrl)) {
    return fail(
      'invalid_input',
      'The endpoint URL in the example starts with a placeholder or environment variable. Replace it with the real https:// address of the endpoint and paste the example again.',
      { reason: 'example_url_placeholder' },
    );
  }
  if (!/^https?:\/\//i.test(rawUrl) && /^[a-z0-9.-]+\.[a-z]{2,}(?::\d+)?(\/|$)/i.test(rawUrl)) rawUrl = 'https://' + rawUrl;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return fail(
      'invalid_input',
      'The endpoint URL in the example is not a valid http(s) URL (a placeholder in the host name?). Put the real address in and paste the example again.',
      { reason: 'example_url_invalid' },
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail('invalid_input', 'The endpoint URL in the example must start with https://.', { reason: 'example_url_scheme' });
  }
  if (/[{}<>$]|%7B|%7D|%3C|%3E|%24/i.test(url.hostname)) {
    return fail(
      'invalid_input',
      'The endpoint host in the example is a placeholder. Replace it with the real host name (for Azure, your resource name) and paste the example again.',
      { reason: 'example_host_placeholder' },
    );
  }
  // Query parameters: keep Azure's api-version; anything key-like counts as a key.
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (/^api-version$/i.test(k)) query['api-version'] = v;
    else if (/key|token|secret|sig/i.test(k)) noteKey(ctx, v);
  }
  if (ctx.azureApiVersion && !query['api-version']) query['api-version'] = ctx.azureApiVersion;
  let path = url.pathname.replace(/\/+$/, '');
  let suffix = '';
  const sm = ENDPOINT_SUFFIX_RE.exec(path);
  if (sm) {
    suffix = sm[0];
    path = path.slice(0, sm.index);
  }
  if (url.username || url.password) noteKey(ctx, decodeURIComponent(url.password || url.username));
  const host = url.hostname.toLowerCase();
  const isAzureHost = /(^|\.)openai\.azure\.com$|(^|\.)cognitiveservices\.azure\.com$/.test(host);
  if (ctx.sdk === 'anthropic' && !suffix && !/\/v1$/.test(path)) path += '/v1';
  // Azure (matches the azure-openai wire): a deployments URL becomes the resource root plus
  // upstream_model = deployment name; the v1 API keeps `<resource>/openai/v1`. The AzureOpenAI
  // SDK without api_version talks to v1.
  let azureDeployment: string | undefined;
  if (isAzureHost || ctx.sdk === 'azure') {
    const dm = /^(.*?)\/openai\/deployments\/([^/]+)/.exec(path);
    if (dm) {
      azureDeployment = safeDecode(dm[2]!);
      path = dm[1]!;
    } else if (ctx.sdk === 'azure' && !/\/openai(\/|$)/.test(path)) {
      if (ctx.azureDeployment) azureDeployment = ctx.azureDeployment;
      else if (Object.keys(query).length === 0) path += '/openai/v1';
    }
  }
  const base_url = `${url.protocol}//${url.host}${path}`;

  // --- wire
  const headerNames = ctx.headers.map(([k]) => k.toLowerCase());
  let wire: ExampleDraft['wire'];
  if (isAzureHost || ctx.sdk === 'azure') wire = 'azure-openai';
  else if (
    suffix === '/messages' ||
    ctx.sdk === 'anthropic' ||
    ctx.endpoint === 'messages' ||
    headerNames.includes('x-api-key') ||
    headerNames.includes('anthropic-version')
  )
    wire = 'anthropic';
  else wire = 'openai';

  // --- headers (auth dropped, boilerplate dropped)
  const headers: Record<string, string> = {};
  let placeholderHeader = false;
  for (const [name, v] of ctx.headers) {
    const lower = name.toLowerCase();
    if (AUTH_HEADER_RE.test(name)) {
      noteKey(ctx, ctx.source === 'curl' ? v : resolveKey(ctx, v, ctx.source === 'python' ? 'python' : 'js'));
      continue;
    }
    if (BOILERPLATE_HEADERS.has(lower)) continue;
    const s = strOf(v);
    if (s === undefined) {
      if (v instanceof Expr) placeholderHeader = true;
      continue;
    }
    if (UNSAFE_KEYS.has(name) || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) continue;
    headers[name] = s;
    if (/[$<>{}]/.test(s)) placeholderHeader = true;
  }
  if (placeholderHeader) {
    warnings.push('Some header values in the example are placeholders (e.g. your site URL or app name); edit them before use.');
  }

  // --- model
  let model: string | undefined;
  const mv = body.model;
  if (typeof mv === 'string') model = mv;
  else if (mv instanceof Expr && /^[A-Za-z_$][\w$]*$/.test(mv.text)) {
    const r = strOf(resolveVar(ctx.text, mv.text, ctx.source === 'python' ? 'python' : 'js'));
    if (r !== undefined) model = r;
  }
  if (azureDeployment !== undefined) {
    if (model !== undefined && model !== azureDeployment) {
      warnings.push('On Azure the deployment name in the URL selects the model; it was used as the model instead of the "model" field.');
    }
    model = azureDeployment;
  }
  model = model?.trim();
  if (!model) {
    return fail(
      'invalid_input',
      ctx.bodyUnreadable
        ? 'No model name was found: the request body in the example could not be read (is it in a separate file, e.g. -d @body.json?). Paste the example with the JSON body inline, including "model".'
        : 'No model name was found in the example: expected a "model" field in the request body (curl -d / json= / body:) or model=... in the SDK call. Add the model id and paste the example again.',
      { reason: ctx.bodyUnreadable ? 'example_body_unreadable' : 'example_no_model' },
    );
  }
  if (/^[$<{]|\$\{|<[^>]*>|\{\{/.test(model)) {
    return fail(
      'invalid_input',
      'The model name in the example is a placeholder. Replace it with the model id from the vendor (the "model" field of the request) and paste the example again.',
      { reason: 'example_model_placeholder' },
    );
  }
  if (model.length > 200) return fail('invalid_input', 'The model name in the example is too long to be a model id.', { reason: 'example_model_too_long' });

  // --- thinking, request fields, max_tokens
  const thinking = detectThinking(body, wire, ctx.endpoint ?? (suffix === '/responses' ? 'responses' : undefined));
  const standard = wire === 'anthropic' ? ANTHROPIC_STANDARD : OPENAI_STANDARD;
  const request_fields: Record<string, unknown> = {};
  const droppedVars: string[] = [];
  for (const [k, v] of Object.entries(body)) {
    if (standard.has(k) && !(k === 'thinking' && wire === 'anthropic' && thinking?.style !== 'anthropic_budget')) continue;
    if (ctx.endpoint === 'responses' && k === 'reasoning' && thinking?.style === 'reasoning_effort') continue;
    const j = toJson(v, droppedVars, k);
    if (j !== undefined) request_fields[k] = j;
  }
  // Adaptive thinking's effort lives in the rule (sent only while thinking is on).
  const oc = request_fields.output_config;
  if (thinking?.adaptive && thinking.default_effort && oc && typeof oc === 'object' && !Array.isArray(oc)) {
    const { effort: _effort, ...rest } = oc as Record<string, unknown>;
    if (Object.keys(rest).length) request_fields.output_config = rest;
    else delete request_fields.output_config;
  }
  if (droppedVars.length > 0) {
    warnings.push(
      `Some request fields refer to variables in the example and were not kept (${droppedVars.slice(0, 5).join(', ')}); set them by hand if you need them.`,
    );
  }
  const max_tokens =
    posInt(body.max_tokens) ?? posInt(body.max_completion_tokens) ?? posInt(body.max_output_tokens);

  // --- env var
  let api_key_env: string;
  const hostEnv = envFromHost(host);
  const named = ctx.envFromKey[0] ?? envHintsInText(ctx.text)[0];
  api_key_env = named ?? hostEnv;
  const otherVendor =
    (api_key_env === 'OPENAI_API_KEY' && hostEnv !== 'OPENAI_API_KEY') ||
    (api_key_env === 'ANTHROPIC_API_KEY' && hostEnv !== 'ANTHROPIC_API_KEY');
  if (otherVendor) {
    warnings.push(
      `The example reads the key from ${api_key_env}, but the endpoint is not that vendor's; the key will be kept as ${hostEnv} so it does not mix with another vendor's key.`,
    );
    api_key_env = hostEnv;
  }

  // --- keys: loose scan, then scrub anything key-like from the draft
  scanLooseKeys(ctx);
  for (const [k, v] of Object.entries(headers)) {
    if (looksLikeKey(v, ctx.secrets) || looksLikeKey(k, ctx.secrets)) {
      delete headers[k];
      ctx.realKeySeen = true;
    }
  }
  scrubFields(request_fields, ctx);

  const draft: ExampleDraft = {
    upstream_model: model,
    base_url,
    wire,
    api_key_env,
    headers,
    request_fields,
    ...(thinking ? { thinking } : {}),
    ...(max_tokens !== undefined ? { max_tokens } : {}),
    ...(Object.keys(query).length > 0 ? { query } : {}),
    source: ctx.source,
  };
  if (ctx.realKeySeen) warnings.unshift(KEY_DROPPED_WARNING);

  // Last line of defence: no collected secret may appear anywhere in the answer.
  const out = { draft, warnings };
  if (leaks(out, ctx.secrets)) {
    draft.headers = {};
    draft.request_fields = {};
    warnings.length = 0;
    warnings.push(KEY_DROPPED_WARNING, 'Headers and request fields were left out because they contained key material.');
    if (leaks(out, ctx.secrets)) {
      return fail('invalid_input', 'The example could not be turned into a draft without including key material. Remove the key from the example and paste it again.', { reason: 'example_key_material' });
    }
  }
  return ok(out);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function envHintsInText(text: string): string[] {
  const out: string[] = [];
  const re = /(?:export\s+|\$\{?|environ(?:\.get)?\s*[[(]\s*["']|getenv\s*\(\s*["']|process\.env\.)([A-Z][A-Z0-9_]*)/g;
  for (const m of text.matchAll(re)) {
    const n = m[1]!;
    if (isGoodEnvName(n) && !out.includes(n)) out.push(n);
    if (out.length >= 4) break;
  }
  return out;
}

function scrubFields(o: Record<string, unknown>, ctx: Ctx, depth = 0): void {
  for (const [k, v] of Object.entries(o)) {
    if (looksLikeKey(k, ctx.secrets)) {
      delete o[k];
      ctx.realKeySeen = true;
    } else if (typeof v === 'string') {
      if (looksLikeKey(v, ctx.secrets)) {
        delete o[k];
        ctx.realKeySeen = true;
      }
    } else if (Array.isArray(v)) {
      const kept = v.filter((x) => !(typeof x === 'string' && looksLikeKey(x, ctx.secrets)));
      if (kept.length !== v.length) ctx.realKeySeen = true;
      for (const x of kept) if (isObj(x) && depth < MAX_DEPTH) scrubFields(x as Record<string, unknown>, ctx, depth + 1);
      o[k] = kept;
    } else if (isObj(v) && depth < MAX_DEPTH) scrubFields(v as Record<string, unknown>, ctx, depth + 1);
  }
}

function leaks(out: unknown, secrets: Set<string>): boolean {
  const json = JSON.stringify(out);
  for (const s of secrets) {
    if (s.length < 8) continue;
    if (isPlaceholderKey(s)) continue;
    if (json.includes(s) || json.includes(JSON.stringify(s).slice(1, -1))) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------

/**
 * Reads a vendor's API example and proposes a draft for `add`. Never throws for user input;
 * never echoes the input (or any key in it) in an error.
 */
export function parseExample(apiExample: string): Result<{ draft: ExampleDraft; warnings: string[] }> {
  if (typeof apiExample !== 'string') return fail('invalid_input', 'The example must be text.', { reason: 'example_not_text' });
  if (apiExample.length > MAX_EXAMPLE_BYTES || Buffer.byteLength(apiExample, 'utf8') > MAX_EXAMPLE_BYTES) {
    return fail('too_large', 'The example is larger than 64 KB. Paste only the single request example (one curl command or one code snippet).', { reason: 'example_too_large' });
  }
  const text = apiExample.replace(/\r\n?/g, '\n').replace(/^\uFEFF/, '');
  if (text.trim() === '') {
    return fail('invalid_input', 'The example is empty. Paste the vendor\'s curl, Python or JavaScript example for a chat request.', { reason: 'example_empty' });
  }
  const source = detectSource(text);
  if (source === null) {
    return fail(
      'invalid_input',
      'The text was not recognised as a curl command, Python code (openai / anthropic SDK, requests) or JavaScript code (fetch, openai SDK). Paste the request example from the vendor\'s API docs.',
      { reason: 'example_unrecognised' },
    );
  }
  const ctx: Ctx = {
    source,
    text,
    headers: [],
    keyValues: [],
    secrets: new Set(),
    realKeySeen: false,
    envFromKey: [],
    warnings: [],
  };
  try {
    if (source === 'curl') parseCurl(ctx);
    else parseCode(ctx, source === 'python' ? 'python' : 'js');
    return build(ctx);
  } catch (e) {
    if (e instanceof ExampleError) return fail('invalid_input', e.message, { reason: e.reason });
    if (e instanceof ParseError || e instanceof RangeError) {
      return fail('invalid_input', 'The example could not be read (unbalanced brackets or quotes, or nested too deeply). Paste the complete example as the vendor shows it.', { reason: 'example_unreadable' });
    }
    return fail('internal', 'The example could not be read because of an internal error.');
  }
}
