import type { Transformer } from 'grammy';

export interface ApiCall {
  method: string;
  payload: Record<string, any>;
  at: number;
}

export type StubResult = { ok: true; result: unknown } | { ok: false; error_code: number; description: string };
export type StubHandler = (payload: Record<string, any>, calls: ApiCall[]) => StubResult | Promise<StubResult>;

/**
 * A grammY API transformer that records every call and answers the methods in `stubs`
 * itself (the rest go on to the real/emulated Bot API unless `passThrough` is false).
 * Install it last (outermost) through TelegramChannel's `transformers` option.
 */
export function apiRecorder(stubs: Record<string, StubHandler | StubResult> = {}, opts: { passThrough?: boolean; getUpdatesDelayMs?: number } = {}) {
  const calls: ApiCall[] = [];
  let nextId = 1000;
  const transformer: Transformer = async (prev, method, payload, signal) => {
    if (method === 'getUpdates') {
      await new Promise((r) => setTimeout(r, opts.getUpdatesDelayMs ?? 50));
      return prev(method, payload, signal);
    }
    calls.push({ method, payload: JSON.parse(JSON.stringify(payload ?? {})), at: Date.now() });
    const stub = stubs[method];
    if (stub) {
      const r = typeof stub === 'function' ? await stub((payload ?? {}) as Record<string, any>, calls) : stub;
      return r as never;
    }
    if (opts.passThrough === false) {
      if (method === 'sendMessage') {
        const p = payload as Record<string, any>;
        return { ok: true, result: { message_id: nextId++, date: Math.floor(Date.now() / 1000), chat: { id: Number(p.chat_id), type: 'private' }, text: p.text } } as never;
      }
      return { ok: true, result: true } as never;
    }
    return prev(method, payload, signal);
  };
  return {
    transformer,
    calls,
    of: (method: string) => calls.filter((c) => c.method === method),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
