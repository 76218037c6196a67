/**
 * Values read from code: a small tolerant parser for Python / JavaScript literals. Nothing
 * is evaluated; what it cannot read becomes an Expr holding the raw text.
 */
/** An expression we do not evaluate (a variable, a call, os.environ[...]). */
export class Expr {
  constructor(readonly text: string) {}
}
/** A string with interpolation (f-string, template literal, concatenation). */
export class Tpl {
  constructor(readonly text: string) {}
}
export type Val = null | boolean | number | string | Val[] | { [k: string]: Val } | Expr | Tpl;
export type Obj = { [k: string]: Val };

export class ParseError extends Error {}

export const MAX_DEPTH = 64;
export const MAX_CALL_SITES = 8;
/** Loose (unstructured) key candidates remembered for scrubbing; bounds the scrub cost. */
export const MAX_LOOSE_SECRETS = 256;
export const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Expr) && !(v instanceof Tpl);
}

export type Mode = 'python' | 'js';

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
export function parseValueAt(s: string, at: number, mode: Mode, stopAtNewline = false): Val {
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

export function parseArgsAt(s: string, at: number, mode: Mode): { pos: Val[]; kw: Obj } | null {
  try {
    return new Reader(s, mode, at).args();
  } catch (e) {
    if (e instanceof ParseError) return null;
    throw e;
  }
}

/** Parses a JSON (or JSON-ish) body string. */
export function parseBodyText(text: string): Val {
  const t = text.trim();
  try {
    return JSON.parse(t) as Val;
  } catch {
    return parseValueAt(t, 0, 'js');
  }
}
