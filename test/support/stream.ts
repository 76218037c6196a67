import type { StreamEvent } from '../../src/vendors/types.ts';

/** Drains a wire's stream: the answer text, the reasoning text, and the usage and done events. */
export async function collect(it: AsyncIterable<StreamEvent>): Promise<{ text: string; reasoning: string; usage?: StreamEvent; done?: StreamEvent }> {
  let text = '';
  let reasoning = '';
  let usage: StreamEvent | undefined;
  let done: StreamEvent | undefined;
  for await (const e of it) {
    if (e.type === 'text') text += e.text;
    else if (e.type === 'reasoning') reasoning += e.text;
    else if (e.type === 'usage') usage = e;
    else done = e;
  }
  return { text, reasoning, usage, done };
}
