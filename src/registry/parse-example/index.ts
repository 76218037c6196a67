/**
 * parse_example: turns a vendor's API example (curl, Python, JavaScript) into a draft for
 * `add`. Keys found in the example are dropped: they never reach the draft, the warnings
 * or an error message. Nothing here evaluates code; literals are read by a small tolerant
 * parser, and every scan is linear in the input (the input is capped at 64 KB first).
 */
import { fail, type Result } from '../../result.ts';
import { parseCode } from './code.ts';
import { parseCurl } from './curl.ts';
import { build } from './draft.ts';
import { ParseError } from './literal.ts';
import { ExampleError, MAX_EXAMPLE_BYTES, type Ctx, type ExampleDraft } from './types.ts';

export { KEY_DROPPED_WARNING, MAX_EXAMPLE_BYTES, type ExampleDraft } from './types.ts';

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
