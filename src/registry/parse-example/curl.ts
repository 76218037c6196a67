/** curl: a shell tokeniser for the one curl command in an example, and its options. */
import { noteKey } from './keys.ts';
import { isObj, parseBodyText, ParseError } from './literal.ts';
import { ExampleError, type Ctx } from './types.ts';

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

export function parseCurl(ctx: Ctx): void {
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

export function addHeaderLine(ctx: Ctx, line: string): void {
  const c = line.indexOf(':');
  if (c <= 0) return;
  ctx.headers.push([line.slice(0, c).trim(), line.slice(c + 1).trim()]);
}
