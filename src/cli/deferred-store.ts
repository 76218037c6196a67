import type { Config } from '../config.ts';
import type { Store, TokenBucketOptions } from '../store/types.ts';

/**
 * The CLI's store, opened on its first call: the store module (and ioredis with it) is
 * imported only by a command that reads or writes data, never by `byok templates`.
 * Every Store method is asynchronous, so delegating after the import changes no behaviour;
 * `close()` of a store never opened does nothing.
 */
export class DeferredStore implements Store {
  readonly kind: Store['kind'];
  #store: Promise<Store> | undefined;

  constructor(
    private readonly config: Pick<Config, 'dataDir' | 'redisUrl' | 'redisPrefix'>,
    private readonly open: (config: Pick<Config, 'dataDir' | 'redisUrl' | 'redisPrefix'>) => Promise<Store> = async (c) =>
      (await import('../store/index.ts')).createStore(c),
  ) {
    this.kind = config.redisUrl ? 'redis' : 'file';
  }

  #get(): Promise<Store> {
    return (this.#store ??= this.open(this.config));
  }

  async getDoc<T>(scope: string, name: string): Promise<T | undefined> {
    return (await this.#get()).getDoc<T>(scope, name);
  }
  async updateDoc<T, R>(
    scope: string,
    name: string,
    mutate: (current: T | undefined) => Promise<{ value: T | undefined; result: R }> | { value: T | undefined; result: R },
  ): Promise<R> {
    return (await this.#get()).updateDoc<T, R>(scope, name, mutate);
  }
  async listScopes(name: string): Promise<string[]> {
    return (await this.#get()).listScopes(name);
  }
  async putEphemeral(key: string, value: string, ttlMs: number): Promise<void> {
    return (await this.#get()).putEphemeral(key, value, ttlMs);
  }
  async getEphemeral(key: string): Promise<string | undefined> {
    return (await this.#get()).getEphemeral(key);
  }
  async takeEphemeral(key: string): Promise<string | undefined> {
    return (await this.#get()).takeEphemeral(key);
  }
  async deleteEphemeral(key: string): Promise<void> {
    return (await this.#get()).deleteEphemeral(key);
  }
  async putEphemeralIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.#get()).putEphemeralIfAbsent(key, value, ttlMs);
  }
  async incr(key: string, ttlMs: number): Promise<number> {
    return (await this.#get()).incr(key, ttlMs);
  }
  async takeToken(bucket: string, opts: TokenBucketOptions): Promise<number> {
    return (await this.#get()).takeToken(bucket, opts);
  }
  async close(): Promise<void> {
    if (this.#store) await (await this.#store).close();
  }
}
