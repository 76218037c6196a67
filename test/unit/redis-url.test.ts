import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ByokError } from '../../src/errors.ts';
import { hashTagged } from '../../src/queue/bullmq-runner.ts';
import { closeRedis, createRedis, isCluster, isClusterUrl, isRedisClient, parseRedisUrl } from '../../src/redis.ts';

const SECRET = 's3cr3t-P@ss/word';
const enc = encodeURIComponent(SECRET);

function configError(url: string): ByokError {
  try {
    parseRedisUrl(url);
  } catch (e) {
    expect(e).toBeInstanceOf(ByokError);
    expect((e as ByokError).code).toBe('config');
    return e as ByokError;
  }
  throw new Error(`parseRedisUrl accepted ${url}`);
}

describe('parseRedisUrl', () => {
  it('passes single-node URLs through untouched', () => {
    for (const url of ['redis://127.0.0.1:6379', 'rediss://:pw@cache.example.com:6380/2', 'redis://localhost', '/tmp/redis.sock', 'localhost:6379']) {
      expect(parseRedisUrl(url)).toEqual({ kind: 'single', url });
    }
    expect(isClusterUrl('redis://127.0.0.1:6379')).toBe(false);
  });

  it('reads the seed nodes of a cluster, with 6379 as the default port', () => {
    expect(parseRedisUrl('redis+cluster://host1:7001,host2:7002,10.0.0.3')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'host1', port: 7001 },
        { host: 'host2', port: 7002 },
        { host: '10.0.0.3', port: 6379 },
      ],
      tls: false,
    });
    expect(parseRedisUrl('redis+cluster://only-one/')).toEqual({ kind: 'cluster', nodes: [{ host: 'only-one', port: 6379 }], tls: false });
    expect(parseRedisUrl('REDIS+CLUSTER://a:1, b:2/0').kind).toBe('cluster');
    expect(parseRedisUrl('redis+cluster://[::1]:7001,[fe80::2]').kind === 'cluster' && parseRedisUrl('redis+cluster://[::1]:7001,[fe80::2]')).toMatchObject({
      nodes: [
        { host: '::1', port: 7001 },
        { host: 'fe80::2', port: 6379 },
      ],
    });
    expect(isClusterUrl('redis+cluster://a:1')).toBe(true);
  });

  it('reads credentials once before the first host, percent-decoded, and TLS from rediss+cluster', () => {
    expect(parseRedisUrl(`rediss+cluster://app:${enc}@h1:7001,h2:7002`)).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'h1', port: 7001 },
        { host: 'h2', port: 7002 },
      ],
      username: 'app',
      password: SECRET,
      tls: true,
    });
    // Password only (the `default` user).
    expect(parseRedisUrl(`redis+cluster://:${enc}@h1:7001`)).toMatchObject({ password: SECRET, tls: false });
    expect(parseRedisUrl(`redis+cluster://:${enc}@h1:7001`)).not.toHaveProperty('username');
  });

  it('refuses malformed URLs with a config error that names the problem', () => {
    expect(configError('').message).toMatch(/empty/);
    expect(configError('http://h1:7001').message).toMatch(/unsupported scheme "http:\/\/"/);
    expect(configError('redis://h1:7001,h2:7002').message).toMatch(/names one node.*redis\+cluster:\/\//);
    expect(configError('redis+cluster://h1:7001,,h3:7003').message).toMatch(/seed node 2 of 3 is empty/);
    expect(configError('redis+cluster://h1:70x1').message).toMatch(/"h1:70x1" has an invalid port/);
    expect(configError('redis+cluster://h1:0').message).toMatch(/invalid port/);
    expect(configError('redis+cluster://h1:65536').message).toMatch(/invalid port/);
    expect(configError('redis+cluster://h1:').message).toMatch(/invalid port/);
    expect(configError('redis+cluster://::1:7001').message).toMatch(/IPv6 address in brackets/);
    expect(configError('redis+cluster://h_1!:7001').message).toMatch(/not a valid host name/);
    expect(configError('redis+cluster://h1:7001/3').message).toMatch(/only database 0/);
    expect(configError('redis+cluster://h1:7001?tls=true').message).toMatch(/no path or query/);
    expect(configError('redis+cluster://').message).toMatch(/the seed node is empty/);
    expect(configError('redis+cluster://user@h1').message).toMatch(/user:password@/);
  });

  it('never echoes the password in an error', () => {
    const bad = [
      `redis+cluster://app:${SECRET}@h1:70x1`,
      `redis+cluster://app:${enc}@h1:7001,,h2`,
      `redis+cluster://app:${enc}@h1:7001/5`,
      `rediss+cluster://:${SECRET}@[::1:7001`,
      `redis+cluster://app:${SECRET}%ZZ@h1:7001`,
      `redis+cluster://app:@h1:7001`,
      `redis://app:${SECRET}@h1:7001,h2:7002`,
      `redis-cluster://app:${SECRET}@h1:7001`,
    ];
    for (const url of bad) {
      const msg = configError(url).message;
      expect(msg, url).toMatch(/^REDIS_URL: /);
      for (const part of [SECRET, enc, 's3cr3t']) expect(msg, url).not.toContain(part);
    }
    expect(configError(`redis+cluster://app:${SECRET}%ZZ@h1:7001`).message).toMatch(/password is not valid percent-encoding/);
  });
});

describe('createRedis', () => {
  it('builds a Cluster from a cluster URL: credentials, TLS and per-node options in redisOptions', async () => {
    const c = createRedis(`rediss+cluster://app:${enc}@h1:7001,h2:7002`, { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: null, connectTimeout: 1234 });
    try {
      expect(c).toBeInstanceOf(Cluster);
      expect(isCluster(c)).toBe(true);
      expect(isRedisClient(c)).toBe(true);
      const o = (c as Cluster).options;
      expect(o.enableAutoPipelining).toBe(true);
      expect(o.lazyConnect).toBe(true);
      expect(o.redisOptions).toMatchObject({ username: 'app', password: SECRET, tls: {}, maxRetriesPerRequest: null, connectTimeout: 1234 });
      expect(o.redisOptions).not.toHaveProperty('enableAutoPipelining');
    } finally {
      await closeRedis(c);
    }
    expect(c.status).toBe('end');
  });

  it('builds a plain Redis from a single-node URL', async () => {
    const r = createRedis('redis://127.0.0.1:1/0', { lazyConnect: true });
    try {
      expect(r).toBeInstanceOf(Redis);
      expect(isCluster(r)).toBe(false);
    } finally {
      await closeRedis(r);
    }
  });

  it('rejects a malformed cluster URL before creating anything', () => {
    expect(() => createRedis('redis+cluster://h1:99999')).toThrow(ByokError);
  });
});

describe('BullMQ prefix on a cluster', () => {
  it('wraps the prefix in a hash tag unless it already has one', () => {
    expect(hashTagged('byok')).toBe('{byok}');
    expect(hashTagged('byoktest:abc:q1')).toBe('{byoktest:abc:q1}');
    expect(hashTagged('{byok}')).toBe('{byok}');
    expect(hashTagged('app:{jobs}')).toBe('app:{jobs}');
    expect(hashTagged('odd{}')).toBe('{odd{}}');
  });
});
