import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

/**
 * Real Redis for integration tests. Each test file gets its own key prefix
 * (`byoktest:<random>:`) and every key under it is deleted afterwards.
 * Redis being down is a FAILURE, never a skip: these tests are the proof that the
 * distributed backends work. `.ci/run` starts Redis when it is down.
 */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

export function newTestPrefix(tag = ''): string {
  return `byoktest:${tag ? `${tag}-` : ''}${randomBytes(6).toString('hex')}:`;
}

/** A connected client, or a loud error saying Redis is required. */
export async function connectTestRedis(): Promise<Redis> {
  const client = new Redis(TEST_REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 2_000,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  let cause: Error | undefined;
  client.on('error', (e: Error) => (cause ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    client.disconnect();
    throw new Error(
      `Redis is required for integration tests at ${TEST_REDIS_URL} and is not reachable (${(cause ?? (e as Error)).message}). ` +
        'Start it (e.g. `redis-server --daemonize yes`; .ci/run does this) — these tests do not skip.',
    );
  }
  return client;
}

export async function keysWithPrefix(redis: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return [...new Set(out)].sort();
}

export async function deleteWithPrefix(redis: Redis, prefix: string): Promise<number> {
  if (!prefix.startsWith('byoktest:')) throw new Error(`refusing to delete keys outside byoktest: (${prefix})`);
  const keys = await keysWithPrefix(redis, prefix);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  return keys.length;
}

/** Every value stored under the prefix, as text (strings, hashes, lists, sets, zsets, streams). */
export async function dumpPrefix(redis: Redis, prefix: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const key of await keysWithPrefix(redis, prefix)) {
    const type = await redis.type(key);
    let v: unknown;
    if (type === 'string') v = await redis.get(key);
    else if (type === 'hash') v = await redis.hgetall(key);
    else if (type === 'list') v = await redis.lrange(key, 0, -1);
    else if (type === 'set') v = await redis.smembers(key);
    else if (type === 'zset') v = await redis.zrange(key, '0', '-1', 'WITHSCORES');
    else if (type === 'stream') v = await redis.xrange(key, '-', '+');
    else v = `<${type}>`;
    out.set(key, `${key} ${type} ${JSON.stringify(v)}`);
  }
  return out;
}

export interface RedisTestContext {
  url: string;
  /** This file's prefix, e.g. `byoktest:3f9a…:`. */
  prefix: string;
  /** A fresh sub-prefix under the file's prefix (one per test keeps tests apart). */
  sub(tag: string): string;
  /** The admin client (connected in beforeAll). */
  readonly redis: Redis;
}

/**
 * Call at the top of a test file or inside a describe block: connects in beforeAll (failing every test of the file
 * when Redis is down) and deletes every key under the prefix in afterAll.
 */
export function useTestRedis(tag = ''): RedisTestContext {
  const prefix = newTestPrefix(tag);
  let client: Redis | undefined;
  let n = 0;
  beforeAll(async () => {
    client = await connectTestRedis();
  });
  afterAll(async () => {
    if (!client) return;
    try {
      await deleteWithPrefix(client, prefix);
    } finally {
      client.disconnect();
    }
  });
  return {
    url: TEST_REDIS_URL,
    prefix,
    sub: (t: string) => `${prefix}${t}${++n}:`,
    get redis(): Redis {
      if (!client) throw new Error('Redis test client is not connected (useTestRedis beforeAll did not run or failed)');
      return client;
    },
  };
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}
