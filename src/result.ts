import { ByokError, type ErrorCode } from './errors.ts';

export type Ok<T extends object = object> = { ok: true } & T;
export type Fail = { ok: false; error: string; code: ErrorCode } & Record<string, unknown>;
export type Result<T extends object = object> = Ok<T> | Fail;

export function ok<T extends object>(value: T): Ok<T> {
  return { ok: true, ...value };
}

export function fail(code: ErrorCode, error: string, extra: Record<string, unknown> = {}): Fail {
  return { ok: false, error, code, ...extra };
}

/**
 * Runs `fn` and turns a thrown ByokError into a `{ ok: false }` result. Anything else is a
 * bug and is reported as `internal` without its message (it might carry request data).
 */
export async function guarded<T extends object>(fn: () => Promise<Result<T>> | Result<T>): Promise<Result<T>> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ByokError) return fail(e.code, e.message, e.details ?? {});
    return fail('internal', 'internal error (see the server log)');
  }
}
