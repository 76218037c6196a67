import pino, { type Logger } from 'pino';

/**
 * The one logger. Every string argument passes the key redactor before it is written,
 * so a key that slipped into a message or an error text never reaches the log.
 * The redactor is installed by the detector module at start-up (it lives in secrets/).
 */
let redactor: (s: string) => string = (s) => s;

export function setLogRedactor(fn: (s: string) => string): void {
  redactor = fn;
}

function scrub(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return redactor(v);
  if (depth > 4 || v === null || typeof v !== 'object') return v;
  if (v instanceof Error) return { type: v.name, message: redactor(v.message), code: (v as { code?: unknown }).code };
  if (v instanceof Uint8Array) return '[bytes]';
  if (Array.isArray(v)) return v.map((x) => scrub(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = /key|token|secret|password|authorization/i.test(k) && typeof x === 'string' ? '[REDACTED]' : scrub(x, depth + 1);
  return out;
}

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      base: undefined,
      hooks: {
        logMethod(args, method) {
          return method.apply(this, args.map((a) => scrub(a)) as Parameters<typeof method>);
        },
      },
    },
    opts.destination ?? pino.destination(2),
  );
}

export type { Logger };
