import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { RedisStore } from '../../src/store/redis-store.ts';
import { connectTestRedis, deleteWithPrefix, dumpPrefix, newTestPrefix } from '../support/redis.ts';
import { vaultContract } from '../support/vault-contract.ts';

// The same vault contract as the file store, against real Redis: sealing, AD binding,
// rotation, fingerprints, box keys, and the canary check over every key and value.
let redis: Redis;
beforeAll(async () => {
  redis = await connectTestRedis();
});
afterAll(async () => {
  await redis.quit();
});

vaultContract('RedisStore', async () => {
  const prefix = newTestPrefix('vault');
  const stores: RedisStore[] = [];
  const make = () => {
    const s = new RedisStore(redis, prefix);
    stores.push(s);
    return s;
  };
  return {
    store: make(),
    async dumpRaw() {
      return [...(await dumpPrefix(redis, prefix)).values()].join('\n');
    },
    async secondStore() {
      return make();
    },
    async dispose() {
      for (const s of stores) await s.close();
      await deleteWithPrefix(redis, prefix);
    },
  };
});
