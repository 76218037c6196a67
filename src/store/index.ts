import type { Config } from '../config.ts';
import { FileStore } from './file-store.ts';
import { RedisStore } from './redis-store.ts';
import type { Store } from './types.ts';

export { FileStore } from './file-store.ts';
export { RedisStore } from './redis-store.ts';
export * from './types.ts';

/**
 * The Redis store when `REDIS_URL` is set (shared by every process; a single node or, with
 * `redis+cluster://`, a Redis Cluster: see src/redis.ts), else files under the data dir.
 */
export function createStore(config: Pick<Config, 'dataDir' | 'redisUrl' | 'redisPrefix'>): Store {
  if (config.redisUrl) return new RedisStore(config.redisUrl, config.redisPrefix);
  return new FileStore(config.dataDir);
}
