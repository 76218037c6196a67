import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from './form.ts';

/**
 * Real processes for multi-process tests: bot/web processes (`npm start` = src/main.ts),
 * workers (`npm run worker` = worker/main.ts), a private redis-server the test may kill and
 * restart, and a small round-robin proxy standing in for the operator's load balancer.
 */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * `node --import tsx <script>`: one process, so a signal (SIGTERM, SIGKILL) reaches the
 * product itself. (The `tsx` command runs the script in a child of its own; a SIGKILL to
 * it would leave the product running.)
 */
const TSX_LOADER = 'tsx';

export interface ProcHandle {
  name: string;
  child: ChildProcess;
  /** Everything the process printed (stdout + stderr), for canary greps and debugging. */
  output(): string;
  /** Resolves with the exit code (or signal name) and how long after the call it came. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

export function startProcess(name: string, script: 'src/main.ts' | 'worker/main.ts', env: Record<string, string>): ProcHandle {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), NO_COLOR: '1', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    name,
    child,
    output: () => out,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Waits until the process printed `marker` (e.g. its "started" log line); fails early if it exits. */
export async function waitForOutput(p: ProcHandle, marker: string | RegExp, timeoutMs = 30_000): Promise<void> {
  let exited = false;
  void p.exited.then(() => (exited = true));
  await waitFor(
    () => {
      const text = p.output();
      if (typeof marker === 'string' ? text.includes(marker) : marker.test(text)) return true;
      if (exited) throw new Error(`${p.name} exited before printing ${String(marker)}:\n${text.slice(-3000)}`);
      return false;
    },
    timeoutMs,
    `${p.name} to print ${String(marker)}`,
  );
}

export interface PrivateRedis {
  port: number;
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A redis-server of the test's own on a free port, with an append-only file in a temp dir so
 * a restart keeps what was acknowledged (as an operator's Redis with persistence would).
 * Killing it never disturbs the shared Redis other test files use.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'byok-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    // Already running: nothing to do (a second server would fail on the port and orphan this one).
    if (child && child.exitCode === null && child.signalCode === null) return;
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir], {
      stdio: 'ignore',
    });
    child.once('error', (e) => {
      throw new Error(`redis-server could not be started (${e.message}); it is required for these tests`);
    });
    const { Redis } = await import('ioredis');
    await waitFor(
      async () => {
        const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          return (await c.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      },
      10_000,
      `private redis-server on ${port}`,
    );
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    stop,
    close: async () => {
      await stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RoundRobinProxy {
  url: string;
  port: number;
  /** Requests forwarded to each target, by index. */
  counts: number[];
  close(): Promise<void>;
}

/**
 * The operator's load balancer: each request goes to the next target in turn; a target
 * that refuses the connection is skipped for that request (as a health-checked LB would).
 */
export async function startRoundRobinProxy(targets: number[]): Promise<RoundRobinProxy> {
  let next = 0;
  const counts = targets.map(() => 0);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const first = next++ % targets.length;
      const attempt = (i: number) => {
        const idx = (first + i) % targets.length;
        const up = http.request(
          { host: '127.0.0.1', port: targets[idx], method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${targets[idx]}` }, agent },
          (r) => {
            counts[idx]++;
            res.writeHead(r.statusCode ?? 502, r.headers);
            r.pipe(res);
          },
        );
        up.on('error', (e: NodeJS.ErrnoException) => {
          if (!res.headersSent && i + 1 < targets.length && (e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET')) return attempt(i + 1);
          if (!res.headersSent) res.writeHead(502).end('bad gateway');
          else res.destroy();
        });
        up.end(body);
      };
      attempt(0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    counts,
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface ModuleChild {
  child: ChildProcess;
  /** Resolves once stdout matches `re`; fails early if the child exits. */
  waitOut(re: RegExp, ms: number): Promise<void>;
  /** SIGKILL, resolved once the process is gone. */
  killHard(): Promise<void>;
}

/**
 * ES module source run in a process of its own (`node --import tsx -e`), e.g. a job worker
 * a test kills mid-job. `cwd` is the repository, so the source can import project files.
 */
export function spawnModuleChild(source: string, env: Record<string, string>): ModuleChild {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, '--input-type=module', '-e', source], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b));
  child.stderr!.on('data', (b: Buffer) => (err += b));
  return {
    child,
    async waitOut(re, ms) {
      const end = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > end) throw new Error(`child never printed ${re}: stdout=${out} stderr=${err}`);
        if (child.exitCode !== null) throw new Error(`child exited ${child.exitCode}: ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async killHard() {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}
