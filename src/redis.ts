import { Redis, type RedisOptions } from 'ioredis';

/**
 * The one place ioredis clients are created. Each owner (the Redis store, the BullMQ
 * runner) creates and closes its own clients; nothing here is a process-wide singleton,
 * so tests and several runners in one process stay independent.
 */
export interface CreateRedisOptions extends RedisOptions {
  /** Called on connection errors (ioredis otherwise prints "Unhandled error event"). */
  onError?: (err: Error) => void;
}

export function createRedis(url: string, opts: CreateRedisOptions = {}): Redis {
  const { onError, ...rest } = opts;
  const client = new Redis(url, rest);
  attachErrorHandler(client, onError);
  return client;
}

/** Which of the given connection specs becomes a client we own (and must close). */
export type RedisConnectionSpec = string | RedisOptions | Redis;

export function isRedisClient(v: unknown): v is Redis {
  return v instanceof Redis || (typeof v === 'object' && v !== null && typeof (v as Redis).duplicate === 'function' && typeof (v as Redis).quit === 'function');
}

/** A new client from a URL or options object (never from an existing client). */
export function clientFromSpec(spec: string | RedisOptions, opts: CreateRedisOptions = {}): Redis {
  if (typeof spec === 'string') return createRedis(spec, opts);
  const { onError, ...rest } = opts;
  const client = new Redis({ ...spec, ...rest });
  attachErrorHandler(client, onError);
  return client;
}

/** Closes a client politely (QUIT) and waits until its socket is gone; hard disconnect as fallback. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => {
    client.once('end', () => resolve());
    setTimeout(resolve, 2_000).unref();
  });
  try {
    if (client.status === 'ready') await client.quit();
    else client.disconnect();
  } catch {
    client.disconnect();
  }
  await ended;
  if ((client.status as string) !== 'end') client.disconnect();
}

function attachErrorHandler(client: Redis, onError?: (err: Error) => void): void {
  let last = '';
  client.on('error', (err: Error) => {
    if (onError) return onError(err);
    // Reconnect loops repeat the same error: print each distinct message once.
    if (err.message !== last) {
      last = err.message;
      process.stderr.write(`redis: ${err.message}\n`);
    }
  });
}
