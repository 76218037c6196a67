import { splitMessage } from '../../src/chat/split.ts';
import { BudgetSkipped } from './budget.ts';

/** How a painted stream reaches the chat (the adapter's drafts or edits). */
export interface StreamOps {
  /** Shows `text` as the preview of the current part; BudgetSkipped when the budget is short. */
  preview(text: string): Promise<void>;
  /** Sends the final form of one part; `shown` is the preview on screen ('' when none). */
  finalize(text: string, shown: string): Promise<void>;
}

export interface PaintOptions {
  intervalMs: number;
  partMax: number;
  ops: StreamOps;
  /** Abort: stop reading, finalize what arrived, resolve with `aborted: true`. */
  signal?: AbortSignal;
  onPreviewError?: (e: unknown) => void;
}

/**
 * Streams an answer into a chat without ever awaiting the Bot API per chunk: a reader
 * appends chunks to a buffer as fast as the vendor sends them; a painter shows the latest
 * text at most once per interval (one send in flight at a time; whatever arrived meanwhile
 * is coalesced into the next). Parts that outgrew the message limit are finalised as soon
 * as the text has moved past them. A vendor error rethrows after painting stops (the
 * caller reports it); the preview shown so far stays.
 */
export async function paintStream(chunks: AsyncIterable<string>, o: PaintOptions): Promise<{ text: string; aborted: boolean }> {
  const it = chunks[Symbol.asyncIterator]();
  let full = '';
  let ended = false;
  let failed = false;
  let failure: unknown;
  const aborted = () => o.signal?.aborted === true;

  let kick: (() => void) | undefined;
  const wake = () => {
    const k = kick;
    kick = undefined;
    k?.();
  };
  /** Resolves on the next wake (new text, end, abort) or after `ms`. */
  const pause = (ms?: number) =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(wake, ms);
      kick = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  o.signal?.addEventListener('abort', wake, { once: true });

  void (async () => {
    try {
      for (;;) {
        const r = await it.next();
        if (r.done || aborted()) break;
        full += r.value;
        wake();
      }
    } catch (e) {
      failed = true;
      failure = e;
    } finally {
      ended = true;
      wake();
    }
  })();

  let done = 0; // parts finalised in their own messages
  let shown = ''; // the preview of the current part
  /** Paints `text`; false when a preview was skipped for budget (the next tick tries again). */
  const paint = async (text: string, final: boolean): Promise<boolean> => {
    const parts = splitMessage(text, o.partMax);
    while (done < parts.length - 1) {
      await o.ops.finalize(parts[done], shown);
      done += 1;
      shown = '';
    }
    const tail = parts[done] ?? '';
    if (final) {
      if (tail) await o.ops.finalize(tail, shown);
      return true;
    }
    if (!tail || tail === shown) return true;
    try {
      await o.ops.preview(tail);
      shown = tail;
    } catch (e) {
      // Skipped for budget: the next tick shows whatever is newest. Other errors: a preview
      // is not worth failing the answer for; the final message reports real failures.
      if (e instanceof BudgetSkipped) return false;
      o.onPreviewError?.(e);
    }
    return true;
  };

  let nextAt = 0;
  let painted = ''; // the text of the last paint (a part boundary may move without the tail changing)
  while (!ended && !aborted()) {
    const wait = nextAt - Date.now();
    if (wait > 0) {
      await pause(wait);
      continue;
    }
    if (full === painted) {
      await pause();
      continue;
    }
    nextAt = Date.now() + o.intervalMs;
    const text = full;
    if (await paint(text, false)) painted = text;
  }
  o.signal?.removeEventListener('abort', wake);

  const wasAborted = aborted() && !(ended && !failed);
  if (wasAborted) {
    // Stop the vendor stream too; an async generator ends at its next chunk.
    void Promise.resolve()
      .then(() => it.return?.())
      .catch(() => undefined);
  } else if (failed) {
    throw failure;
  }
  const text = full;
  if (text) await paint(text, true);
  return { text, aborted: wasAborted };
}
