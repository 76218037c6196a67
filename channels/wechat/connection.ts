import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../../src/log.ts';
import type { WechatyOptions } from 'wechaty';

/** The puppet a Wechaty bot runs on (a name, or an instance). */
export type PuppetInstance = Extract<WechatyOptions, { puppet?: unknown }>['puppet'];

/**
 * The WeChat connection's life: the provider may be down at start-up, drop the gRPC stream,
 * or ask for a new scan. Every change is logged once, and /readyz reads the current state.
 */
export type WechatState = 'starting' | 'connecting' | 'connected' | 'waiting_for_scan' | 'logged_in' | 'disconnected' | 'reconnecting' | 'stopped';

export interface BackoffOptions {
  /** First retry delay (default 1 s). */
  initialMs?: number;
  /** Longest delay between two attempts (default 15 s). */
  maxMs?: number;
  factor?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 1000, maxMs: 15_000, factor: 2 };

/** Delay before retry `attempt` (1-based): exponential, capped, ±20 % jitter so many bots do not retry in step. */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, rand: () => number = Math.random): number {
  const b = { ...DEFAULT_BACKOFF, ...opts };
  const base = Math.min(b.maxMs, b.initialMs * b.factor ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + 0.4 * rand()));
}

type Puppet = Exclude<PuppetInstance, string | undefined>;

/** The parts of a puppet the supervisor drives (a PuppetService, a PuppetMock, ...). */
export interface SupervisedPuppet {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly state: { active(): boolean | 'pending' };
  /** PuppetService only: the gRPC manager whose event stream carries everything. */
  readonly grpcManager?: { on(event: string, fn: (...args: unknown[]) => void): unknown };
}

/** The event the local puppet emits for its own stop (not an account logout at the provider). */
export const LOCAL_STOP_REASON = 'puppet stop()';

/**
 * A `wechaty-puppet-service` client that never stops the provider's puppet. The stock
 * client sends `Stop` to the provider on every local stop, which logs the WeChat account
 * out there: a restart or a reconnect would cost a new QR scan. This one only closes its own
 * stream and channel. Its contact/room cache lives in `cacheDir` (under BYOK_DATA_DIR), not
 * in `$HOME/.wechaty/<token>/`: the token never becomes a path.
 */
export async function createServicePuppet(opts: { token?: string; endpoint?: string; cacheDir: string; noTls?: boolean }): Promise<Puppet> {
  const { PuppetService } = await import('wechaty-puppet-service');
  type GrpcManagerLocal = { stopStream(): void; destroyClient(): void };
  class LocalStopPuppetService extends PuppetService {
    constructor() {
      super({
        ...(opts.token ? { token: opts.token } : {}),
        ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
        ...(opts.noTls ? { tls: { disable: true } } : {}),
      });
      // The store only joins its dir with the account id at login; set it before that.
      (this._payloadStore as unknown as { storeDir: string }).storeDir = opts.cacheDir;
    }

    override async onStop(): Promise<void> {
      this._cleanupCallbackList.map((fn) => setImmediate(fn));
      this._cleanupCallbackList.length = 0;
      const gm = this._grpcManager as unknown as GrpcManagerLocal | undefined;
      this._grpcManager = undefined;
      if (!gm) return;
      try {
        gm.stopStream();
      } finally {
        gm.destroyClient();
      }
    }
  }
  return new LocalStopPuppetService() as unknown as Puppet;
}

/** Cache dir of the puppet-service client: no token, no home dir. */
export function serviceCacheDir(dataDir: string): string {
  return path.join(dataDir, 'wechat-cache');
}

export interface SupervisorOptions {
  logger: Logger;
  backoff?: BackoffOptions;
  /** Each state change (after it is logged). */
  onState?: (state: WechatState, prev: WechatState) => void;
  /** How often to check that a started puppet is still running (default 5 s). */
  checkEveryMs?: number;
  /**
   * A cheap reachability check before each attempt (throws when unreachable): a failed
   * puppet start costs ~5 s inside the puppet's own state machine, a refused TCP connect 1 ms.
   */
  probe?: () => Promise<void>;
}

/**
 * TCP check of a `host:port` endpoint (WECHATY_PUPPET_SERVICE_ENDPOINT); undefined when
 * the endpoint is discovered through the token instead (nothing to check up front).
 */
export function tcpProbe(endpoint: string | undefined, timeoutMs = 3000): (() => Promise<void>) | undefined {
  const m = /^(?:[a-z]+:\/\/)?\[?([^\]/]+?)\]?:(\d{1,5})\/?$/i.exec(endpoint?.trim() ?? '');
  if (!m) return undefined;
  const [, host, port] = m;
  return () =>
    new Promise<void>((resolve, reject) => {
      const sock = net.connect({ host, port: Number(port) });
      const done = (e?: Error) => {
        sock.destroy();
        if (e) reject(e);
        else resolve();
      };
      sock.setTimeout(timeoutMs, () => done(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
      sock.once('connect', () => done());
      sock.once('error', (e) => done(e));
    });
}

/**
 * Keeps the puppet connected for as long as the process runs: retries the start with
 * backoff while the provider is unreachable, notices a broken gRPC event stream at once
 * (instead of Wechaty's 60 s watchdog) and reconnects, and tracks login/scan/logout.
 */
export class PuppetSupervisor {
  private current: WechatState = 'starting';
  private info?: string;
  private stopping = false;
  private reconnecting = false;
  private everConnected = false;
  private gen = 0;
  private wake?: () => void;
  private checker?: NodeJS.Timeout;
  private loop?: Promise<void>;
  /** Attempts of the running reconnect loop (0 while connected). */
  attempt = 0;
  /** When the last disconnection was noticed, and how long the last reconnect took. */
  lastDisconnectAt?: number;
  lastReconnectMs?: number;

  constructor(
    private readonly puppet: SupervisedPuppet,
    private readonly opts: SupervisorOptions,
  ) {}

  get state(): WechatState {
    return this.current;
  }

  get detail(): string | undefined {
    return this.info;
  }

  /** True while messages can flow (logged in on a live stream). */
  get up(): boolean {
    return this.current === 'logged_in';
  }

  set(state: WechatState, detail?: string): void {
    const prev = this.current;
    if (prev === state && this.info === detail) return;
    this.current = state;
    this.info = detail;
    if (prev !== state) {
      const log = state === 'disconnected' || state === 'reconnecting' ? this.opts.logger.warn.bind(this.opts.logger) : this.opts.logger.info.bind(this.opts.logger);
      log({ state, from: prev, ...(detail ? { detail } : {}) }, `wechat: ${state.replace(/_/g, ' ')}`);
      this.opts.onState?.(state, prev);
    }
  }

  /** After Wechaty's start(): the puppet runs, or (the provider was unreachable) keep trying in the background. */
  afterStart(): void {
    this.checker = setInterval(() => this.check(), this.opts.checkEveryMs ?? 5000);
    this.checker.unref();
    if (this.puppet.state.active() === true) this.connected();
    else this.startLoop('the provider did not answer at start-up');
  }

  /** The puppet said: scan / login / logout. */
  onScan(): void {
    if (!this.stopping) this.set('waiting_for_scan');
  }

  onLogin(): void {
    if (!this.stopping) this.set('logged_in');
  }

  onLogout(reason: string | undefined): void {
    if (this.stopping || this.reconnecting || reason === LOCAL_STOP_REASON) return;
    this.set('waiting_for_scan', 'logged out at the provider');
  }

  /** The event stream broke (provider gone, network cut): reconnect now. */
  streamBroken(why: string): void {
    if (this.stopping || this.reconnecting) return;
    this.lastDisconnectAt = Date.now();
    this.set('disconnected', why);
    this.startLoop(why);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.gen++;
    if (this.checker) clearInterval(this.checker);
    this.wake?.();
    await this.loop?.catch(() => undefined);
    this.set('stopped');
  }

  private connected(): void {
    this.everConnected = true;
    this.attempt = 0;
    if (this.current !== 'logged_in' && this.current !== 'waiting_for_scan') this.set('connected');
    this.watchStream();
  }

  private watchStream(): void {
    let gm: SupervisedPuppet['grpcManager'];
    try {
      gm = this.puppet.grpcManager;
    } catch {
      return; // not a service puppet, or not started
    }
    if (!gm) return;
    const g = ++this.gen;
    const broken = (why: string) => {
      if (g === this.gen) this.streamBroken(why);
    };
    gm.on('status', (...args: unknown[]) => {
      const s = args[0] as { code?: number; details?: string } | undefined;
      if (s && s.code !== 0) broken(`event stream closed (${s.code}${s.details ? `: ${s.details}` : ''})`);
    });
    gm.on('end', () => broken('event stream ended'));
    gm.on('error', (...args: unknown[]) => broken(`event stream error (${(args[0] as Error | undefined)?.message ?? 'unknown'})`));
  }

  /** A started puppet that is no longer running (a failed watchdog reset): reconnect. */
  private check(): void {
    if (this.stopping || this.reconnecting || this.current === 'starting') return;
    if (this.puppet.state.active() === false) this.streamBroken('the puppet stopped');
  }

  private startLoop(why: string): void {
    if (this.reconnecting || this.stopping) return;
    this.reconnecting = true;
    this.gen++;
    this.loop = this.reconnectLoop(why).finally(() => {
      this.reconnecting = false;
    });
  }

  private async reconnectLoop(why: string): Promise<void> {
    const t0 = Date.now();
    // Close what is left of the old connection locally (never a Stop to the provider).
    await this.puppet.stop().catch(() => undefined);
    let lastError = why;
    for (this.attempt = 1; !this.stopping; this.attempt++) {
      this.set(this.everConnected ? 'reconnecting' : 'connecting', `attempt ${this.attempt}${lastError ? `; last: ${lastError}` : ''}`);
      try {
        await this.opts.probe?.();
        await this.puppet.start();
        if (this.stopping) return;
        if (this.puppet.state.active() !== true) throw new Error('the puppet did not start');
        this.lastReconnectMs = Date.now() - t0;
        this.opts.logger.info({ attempts: this.attempt, ms: this.lastReconnectMs }, 'wechat: connected to the provider');
        this.connected();
        return;
      } catch (e) {
        lastError = (e as Error).message?.slice(0, 200) ?? String(e);
        if (this.puppet.state.active() !== false) await this.puppet.stop().catch(() => undefined);
      }
      const delay = backoffDelay(this.attempt, this.opts.backoff);
      this.opts.logger.warn({ attempt: this.attempt, retryInMs: delay, err: lastError }, 'wechat: provider unreachable; retrying');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        t.unref();
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}
