import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ByokError } from './errors.ts';

/**
 * The one place ioredis clients are created. Each owner (the Redis store, the BullMQ
 * runner) creates and closes its own clients; nothing here is a process-wide singleton,
 * so tests and several runners in one process stay independent.
 *
 * `REDIS_URL` names one node (`redis://`, `rediss://`, as ioredis reads it) or the seed
 * nodes of one Redis Cluster: `redis+cluster://[user:password@]host1:7001,host2:7002`
 * (`rediss+cluster://` for TLS). Seeds only bootstrap: the client learns every node
 * from the cluster itself.
 */
export interface CreateRedisOptions extends RedisOptions {
  /** Called on connection errors (ioredis otherwise prints "Unhandled error event"). */
  onError?: (err: Error) => void;
}

/** A single node or a cluster client: both run the same commands, pipelines and scripts. */
export type RedisClient = Redis | Cluster;

export interface ClusterSeed {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: ClusterSeed[]; username?: string; password?: string; tls: boolean };

const DEFAULT_PORT = 6379;
const FORM = 'expected redis://host:6379 for one node or redis+cluster://host1:7001,host2:7002 for a cluster';

/**
 * Reads a `REDIS_URL`. Single-node URLs are passed on untouched (ioredis parses them);
 * cluster URLs are parsed here. Errors are ByokError('config') and never quote the
 * credentials (only host tokens, which come after the last `@`).
 */
export function parseRedisUrl(url: string): RedisTarget {
  const fail = (why: string): never => {
    throw new ByokError('config', `REDIS_URL: ${why}`);
  };
  const text = typeof url === 'string' ? url.trim() : '';
  if (!text) fail(`empty (${FORM})`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s.exec(text);
  if (!m) {
    // No scheme: a socket path or `host:port`, as ioredis has always accepted.
    return { kind: 'single', url: text };
  }
  const scheme = m[1]!.toLowerCase();
  const { userinfo, hosts, tail } = splitAuthority(m[2]!);
  if (scheme === 'redis' || scheme === 'rediss') {
    if (hosts.includes(',')) fail(`a ${scheme}:// URL names one node; list a cluster's seed nodes as ${scheme}+cluster://host1:port,host2:port`);
    return { kind: 'single', url: text };
  }
  if (scheme !== 'redis+cluster' && scheme !== 'rediss+cluster') fail(`unsupported scheme "${scheme.slice(0, 20)}://" (${FORM})`);

  if (tail && tail !== '/' && tail !== '/0') {
    if (/^\/\d+$/.test(tail)) fail('Redis Cluster has only database 0; remove the /<db> part');
    fail('a cluster URL takes no path or query parameters after the host list');
  }
  const nodes = hosts.split(',').map((token, i, all) => parseSeed(token.trim(), i, all.length, fail));

  const target: RedisTarget = { kind: 'cluster', nodes, tls: scheme === 'rediss+cluster' };
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    if (colon === -1) fail('credentials must be user:password@ or :password@ before the first host');
    const username = decode(userinfo.slice(0, colon), 'user name', fail);
    const password = decode(userinfo.slice(colon + 1), 'password', fail);
    if (!password) fail('the password before the first host is empty');
    if (username) target.username = username;
    target.password = password;
  }
  return target;
}

/** Splits `[userinfo@]hosts[/path?query#frag]`; the credentials end at the last `@`. */
function splitAuthority(rest: string): { userinfo?: string; hosts: string; tail: string } {
  const at = rest.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : rest.slice(0, at);
  const after = at === -1 ? rest : rest.slice(at + 1);
  const end = after.search(/[/?#]/);
  return end === -1 ? { userinfo, hosts: after, tail: '' } : { userinfo, hosts: after.slice(0, end), tail: after.slice(end) };
}

function parseSeed(token: string, i: number, n: number, fail: (why: string) => never): ClusterSeed {
  const where = n > 1 ? `seed node ${i + 1} of ${n}` : 'the seed node';
  if (!token) fail(`${where} is empty (${FORM})`);
  const shown = `"${token.slice(0, 80)}"`;
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(token);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const parts = token.split(':');
    if (parts.length > 2) fail(`${where} ${shown}: write an IPv6 address in brackets, e.g. [::1]:7001`);
    host = parts[0]!;
    portText = parts[1];
    if (!/^[A-Za-z0-9_.-]+$/.test(host)) fail(`${where} ${shown} is not a valid host name`);
  }
  if (portText === undefined) return { host, port: DEFAULT_PORT };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) fail(`${where} ${shown} has an invalid port (1-65535)`);
  return { host, port };
}

function decode(s: string, what: string, fail: (why: string) => never): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return fail(`the ${what} is not valid percent-encoding`);
  }
}

export function createRedis(url: string, opts: CreateRedisOptions = {}): RedisClient {
  const { onError, ...rest } = opts;
  const target = parseRedisUrl(url);
  const client = target.kind === 'cluster' ? newCluster(target, rest) : new Redis(url, rest);
  attachErrorHandler(client, onError);
  return client;
}

/** Is this URL a cluster (redis+cluster://)? Throws ByokError('config') when malformed. */
export function isClusterUrl(url: string): boolean {
  return parseRedisUrl(url).kind === 'cluster';
}

/**
 * Options meant for one connection go to every node (`redisOptions`); the few that are
 * the cluster client's own (auto-pipelining, offline queue, retry) stay at the top.
 */
function newCluster(target: Extract<RedisTarget, { kind: 'cluster' }>, opts: RedisOptions): Cluster {
  const {
    host: _host,
    port: _port,
    path: _path,
    sentinels: _sentinels,
    readOnly: _readOnly,
    enableAutoPipelining,
    autoPipeliningIgnoredCommands,
    lazyConnect,
    enableOfflineQueue,
    enableReadyCheck,
    retryStrategy,
    ...perNode
  } = opts as RedisOptions & { himportFieldsets?: unknown };
  delete (perNode as { himportFieldsets?: unknown }).himportFieldsets;
  const redisOptions: NonNullable<ClusterOptions['redisOptions']> = { ...perNode };
  if (target.username !== undefined) redisOptions.username = target.username;
  if (target.password !== undefined) redisOptions.password = target.password;
  if (target.tls) redisOptions.tls = { ...(typeof perNode.tls === 'object' ? perNode.tls : {}) };
  const clusterOpts: ClusterOptions = { redisOptions };
  if (enableAutoPipelining !== undefined) clusterOpts.enableAutoPipelining = enableAutoPipelining;
  if (autoPipeliningIgnoredCommands !== undefined) clusterOpts.autoPipeliningIgnoredCommands = autoPipeliningIgnoredCommands;
  if (lazyConnect !== undefined) clusterOpts.lazyConnect = lazyConnect;
  if (enableOfflineQueue !== undefined) clusterOpts.enableOfflineQueue = enableOfflineQueue;
  if (enableReadyCheck !== undefined) clusterOpts.enableReadyCheck = enableReadyCheck;
  if (retryStrategy !== undefined) clusterOpts.clusterRetryStrategy = retryStrategy;
  // TLS clusters (e.g. managed services) announce nodes by name: keep the name for the
  // certificate check instead of resolving it to an IP first (ioredis's advice).
  if (target.tls) clusterOpts.dnsLookup = (address, callback) => callback(null, address);
  return new Cluster(target.nodes.map((n) => ({ host: n.host, port: n.port })), clusterOpts);
}

/** Which of the given connection specs becomes a client we own (and must close). */
export type RedisConnectionSpec = string | RedisOptions | RedisClient;

export function isRedisClient(v: unknown): v is RedisClient {
  return (
    v instanceof Redis ||
    v instanceof Cluster ||
    (typeof v === 'object' && v !== null && typeof (v as Redis).duplicate === 'function' && typeof (v as Redis).quit === 'function')
  );
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster || (client as { isCluster?: unknown }).isCluster === true;
}

/** A new client from a URL or options object (never from an existing client). */
export function clientFromSpec(spec: string | RedisOptions, opts: CreateRedisOptions = {}): RedisClient {
  if (typeof spec === 'string') return createRedis(spec, opts);
  const { onError, ...rest } = opts;
  const client = new Redis({ ...spec, ...rest });
  attachErrorHandler(client, onError);
  return client;
}

/** Another client to the same server(s) with some per-connection options changed. */
export function duplicateRedis(client: RedisClient, overrides: RedisOptions): RedisClient {
  if (isCluster(client)) return client.duplicate(undefined, { redisOptions: overrides }) as Cluster;
  return client.duplicate(overrides);
}

/** Closes a client politely (QUIT) and waits until its sockets are gone; hard disconnect as fallback. */
export async function closeRedis(client: RedisClient): Promise<void> {
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

function attachErrorHandler(client: RedisClient, onError?: (err: Error) => void): void {
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
