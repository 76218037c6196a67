import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

/**
 * A throwaway Redis Cluster (three masters, no replicas) on free ports of 127.0.0.1, for
 * one test file: started in beforeAll, killed and its temp dir removed in afterAll.
 * A missing `redis-server` / `redis-cli` is a FAILURE, never a skip.
 */
export interface RedisClusterContext {
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` */
  readonly url: string;
  readonly ports: number[];
  /** A plain client to one node (CLUSTER KEYSLOT, CLUSTER INFO…). */
  readonly node: Redis;
}

const MASTERS = 3;
const HOST = '127.0.0.1';

export function useRedisCluster(): RedisClusterContext {
  let started: StartedCluster | undefined;
  beforeAll(async () => {
    started = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await started?.stop();
  });
  const get = (): StartedCluster => {
    if (!started) throw new Error('the test Redis Cluster is not running (useRedisCluster beforeAll did not run or failed)');
    return started;
  };
  return {
    get url() {
      return get().url;
    },
    get ports() {
      return get().ports;
    },
    get node() {
      return get().node;
    },
  };
}

export interface StartedCluster extends RedisClusterContext {
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<StartedCluster> {
  await requireBinary('redis-server');
  await requireBinary('redis-cli');
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'byok-cluster-'));
  const servers: Array<{ port: number; child: ChildProcess }> = [];
  let node: Redis | undefined;
  const killAll = () => {
    for (const s of servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  };
  // A test worker that dies must not leave servers behind.
  process.once('exit', killAll);
  const stop = async () => {
    node?.disconnect();
    await Promise.all(
      servers.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
        await gone;
        clearTimeout(timer);
      }),
    );
    process.removeListener('exit', killAll);
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    const used = new Set<number>();
    for (let i = 0; i < MASTERS; i++) servers.push(await startServer(dir, used));
    const ports = servers.map((s) => s.port);
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitForClusterOk(ports);
    node = new Redis({ host: HOST, port: ports[0], maxRetriesPerRequest: 1 });
    await node.ping();
    return { url: `redis+cluster://${ports.map((p) => `${HOST}:${p}`).join(',')}`, ports, node, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function requireBinary(bin: string): Promise<void> {
  try {
    await run(bin, ['--version']);
  } catch (e) {
    throw new Error(
      `${bin} is required for the Redis Cluster tests and could not be run (${(e as Error).message}). ` +
        'Install Redis (e.g. `apt-get install redis-server`, which brings redis-cli) — these tests do not skip.',
    );
  }
}

/** One node on a random free port (and free bus port, port + 10000); retried when a port is taken. */
async function startServer(dir: string, used: Set<number>): Promise<{ port: number; child: ChildProcess }> {
  let lastError = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if (used.has(port) || used.has(port + 10_000) || used.has(port - 10_000)) continue;
    if (!(await isFree(port)) || !(await isFree(port + 10_000))) continue;
    const logfile = path.join(dir, `redis-${port}.log`);
    const child = spawn(
      'redis-server',
      [
        '--port', String(port),
        '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(dir, `nodes-${port}.conf`),
        '--save', '',
        '--appendonly', 'no',
        '--daemonize', 'no',
        '--bind', HOST,
        '--dir', dir,
        '--logfile', logfile,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(e.message));
      child.once('exit', (code, sig) => resolve(`exited (${code ?? sig})`));
    });
    const ready = await Promise.race([waitForPing(port, 10_000).then(() => ''), exited]);
    if (ready === '') {
      used.add(port);
      return { port, child };
    }
    child.kill('SIGKILL');
    lastError = `${ready}: ${(await fs.readFile(logfile, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join(' | ')}`;
  }
  throw new Error(`could not start a redis-server cluster node on a free port: ${lastError}`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

async function waitForPing(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const c = new Redis({ host: HOST, port, lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      c.disconnect();
    }
    if (Date.now() > end) throw new Error(`redis-server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every node reports cluster_state:ok with all slots assigned and all nodes known. */
async function waitForClusterOk(ports: number[]): Promise<void> {
  const end = Date.now() + 20_000;
  const clients = ports.map((port) => {
    const c = new Redis({ host: HOST, port, maxRetriesPerRequest: 1 });
    c.on('error', () => undefined);
    return c;
  });
  try {
    for (;;) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO') as Promise<string>));
      const ok = infos.every(
        (i) => /cluster_state:ok/.test(i) && /cluster_slots_ok:16384/.test(i) && new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(i),
      );
      if (ok) return;
      if (Date.now() > end) throw new Error(`cluster did not reach cluster_state:ok:\n${infos.join('\n---\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    for (const c of clients) c.disconnect();
  }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`.trim()));
      else resolve(stdout);
    });
  });
}
