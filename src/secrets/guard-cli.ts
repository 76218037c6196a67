/**
 * `byok guard`: operators test the pasted-key detector on their own corpus.
 *
 * Input: one JSON string per line (e.g. `"my key is sk-..."`). Output: one JSON line per input
 * line, `{"refused":true|false,"kinds":[...]}`, never the text or the key itself. A line that is
 * not a JSON string gets `{"error":"line N is not a JSON string"}`; blank lines are skipped.
 * Exit code: 0, or 2 when any line was malformed.
 */
import { createInterface } from 'node:readline';
import { detectKeys } from './detector.ts';

export async function runGuard(input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<number> {
  const rl = createInterface({ input, crlfDelay: Infinity, terminal: false });
  let lineNo = 0;
  let malformed = 0;
  const write = async (obj: unknown): Promise<void> => {
    const ok = output.write(JSON.stringify(obj) + '\n');
    if (!ok) await new Promise<void>((resolve) => output.once('drain', () => resolve()));
  };
  for await (const line of rl) {
    lineNo++;
    if (line.trim() === '') continue;
    let text: unknown;
    try {
      text = JSON.parse(line);
    } catch {
      text = undefined;
    }
    if (typeof text !== 'string') {
      malformed++;
      await write({ error: `line ${lineNo} is not a JSON string` });
      continue;
    }
    const d = detectKeys(text);
    await write({ refused: d.refused, kinds: d.kinds });
  }
  return malformed > 0 ? 2 : 0;
}
