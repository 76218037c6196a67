/**
 * No silent chat while a vendor thinks (or hangs): the "typing" action at once and every few
 * seconds until the first text, one "still waiting for <vendor>…" notice when no text has come
 * after a while, and a give-up when the vendor has sent nothing at all for the idle timeout.
 */

import { getTemplate } from '../vendors/templates.ts';
import { templateName } from '../vendors/template-name.ts';
import type { Lang } from '../i18n/index.ts';

/** Thrown through the answer's stream when the vendor went quiet for `idleMs`. */
export class VendorIdleTimeout extends Error {
  readonly code = 'vendor_idle_timeout';
  constructor(readonly idleMs: number) {
    super(`the vendor sent nothing for ${Math.round(idleMs / 1000)} s`);
    this.name = 'VendorIdleTimeout';
  }
}

export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Telegram shows a chat action for about 5 s: renewed a little sooner. */
export const TYPING_EVERY_MS = 4_000;
export const WAIT_NOTICE_MS = 8_000;

export interface WatchOptions {
  /** Nothing from the vendor for this long: abort and throw VendorIdleTimeout (0: never). */
  idleTimeoutMs: number;
  /** "Still waiting" after this long without text; default min(8 s, half the idle timeout), so it always comes first. */
  noticeAfterMs?: number;
  typingEveryMs?: number;
  /** The channel's typing indicator (optional capability); failures are ignored. */
  typing?: () => Promise<unknown>;
  /** Sends the one "still waiting for <vendor>…" message. */
  notice: () => Promise<unknown>;
  /** Cancels the vendor request (the wire's AbortController). */
  abort: () => void;
}

/** When the "still waiting" notice is due for an idle timeout. */
export function noticeDelay(idleTimeoutMs: number): number {
  return idleTimeoutMs > 0 ? Math.min(WAIT_NOTICE_MS, Math.floor(idleTimeoutMs / 2)) : WAIT_NOTICE_MS;
}

/**
 * Passes `events` through, watching them. `isText` tells which events are visible text (the
 * typing indicator and the notice stop at the first); any event resets the idle clock. The
 * clock runs only while waiting on the vendor, not while the consumer paints.
 */
export async function* watchVendor<T>(events: AsyncIterable<T>, isText: (ev: T) => boolean, o: WatchOptions): AsyncGenerator<T> {
  const it = events[Symbol.asyncIterator]();
  let sawText = false;
  const quiet = (p: Promise<unknown> | undefined) => void p?.catch(() => undefined);
  const typing = () => {
    if (!sawText) quiet(o.typing?.());
  };
  typing();
  const typingTimer = o.typing ? setInterval(typing, o.typingEveryMs ?? TYPING_EVERY_MS) : undefined;
  const noticeTimer = setTimeout(() => {
    if (!sawText) quiet(o.notice());
  }, o.noticeAfterMs ?? noticeDelay(o.idleTimeoutMs));
  let idleTimer: NodeJS.Timeout | undefined;
  let finished = false;
  try {
    for (;;) {
      const next = it.next();
      let r: IteratorResult<T>;
      if (o.idleTimeoutMs > 0) {
        const idle = new Promise<'idle'>((resolve) => (idleTimer = setTimeout(() => resolve('idle'), o.idleTimeoutMs)));
        const first = await Promise.race([next, idle]);
        clearTimeout(idleTimer);
        if (first === 'idle') {
          // The pending read fails once the request is aborted: nobody waits for it any more.
          quiet(next);
          o.abort();
          throw new VendorIdleTimeout(o.idleTimeoutMs);
        }
        r = first;
      } else {
        r = await next;
      }
      if (r.done) {
        finished = true;
        return;
      }
      if (isText(r.value)) {
        sawText = true;
        clearInterval(typingTimer);
        clearTimeout(noticeTimer);
      }
      yield r.value;
    }
  } finally {
    clearInterval(typingTimer);
    clearTimeout(noticeTimer);
    clearTimeout(idleTimer);
    // Stopped early (timeout, the consumer gave up): end the vendor stream too, without waiting on it.
    if (!finished) quiet(Promise.resolve().then(() => it.return?.()));
  }
}

/** How the waiting messages name who is slow: the vendor, a custom endpoint's host, a platform model's name. */
export function vendorLabel(model: { vendor: string; name: string; base_url?: string }, lang: Lang = 'en'): string {
  if (model.vendor === 'platform') return model.name;
  const tpl = getTemplate(model.vendor);
  // "Qwen (Alibaba Cloud Model Studio / DashScope)" → "Qwen" (通义千问（…） → 通义千问): a waiting line stays short.
  // A template without a base URL (openai-compatible, Azure, HF endpoints) is the user's own
  // endpoint: its host says who is slow, not "Any OpenAI-compatible endpoint".
  if (tpl && tpl.base_url !== null) {
    const name = templateName(tpl, lang);
    return name.replace(/\s*[(（].*[)）]\s*$/, '') || name;
  }
  try {
    return model.base_url ? new URL(model.base_url).host : model.name;
  } catch {
    return model.name;
  }
}
