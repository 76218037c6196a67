import { EventEmitter } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { backoffDelay, PuppetSupervisor, tcpProbe, type SupervisedPuppet } from '../../channels/wechat/connection.ts';
import { waitFor } from '../support/form.ts';

/** A puppet whose start fails while `down`; its gRPC manager can break its stream. */
class FakePuppet implements SupervisedPuppet {
  down = true;
  starts = 0;
  stops = 0;
  private active = false;
  gm = new EventEmitter();
  readonly state = { active: () => this.active };
  get grpcManager() {
    return this.gm;
  }
  async start() {
    this.starts++;
    if (this.down) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
    this.gm = new EventEmitter();
    this.active = true;
  }
  async stop() {
    this.stops++;
    this.active = false;
  }
}

const logger = () => {
  const lines: string[] = [];
  const rec = (_o: object, m?: string) => void lines.push(m ?? '');
  return { lines, log: { info: rec, warn: rec, error: rec, debug: rec } as never };
};

describe('WeChat connection supervisor', () => {
  it('backoff doubles up to the cap, with jitter within ±20 %', () => {
    const mid = () => 0.5;
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, { initialMs: 1000, maxMs: 15_000 }, mid))).toEqual([1000, 2000, 4000, 8000, 15000, 15000]);
    expect(backoffDelay(1, {}, () => 0)).toBe(800);
    expect(backoffDelay(1, {}, () => 1)).toBe(1200);
  });

  it('keeps retrying while the provider is down, connects once it is up, logs each state', async () => {
    const p = new FakePuppet();
    const { lines, log } = logger();
    const states: string[] = [];
    const sup = new PuppetSupervisor(p, { logger: log, backoff: { initialMs: 10, maxMs: 40 }, onState: (s) => states.push(s) });
    sup.afterStart();
    await waitFor(() => p.starts >= 5, 5000, 'retries');
    expect(sup.state).toBe('connecting');
    expect(sup.up).toBe(false);
    p.down = false;
    await waitFor(() => sup.state === 'connected', 5000, 'connected');
    sup.onLogin();
    expect(sup.up).toBe(true);
    expect(states).toEqual(['connecting', 'connected', 'logged_in']);
    expect(lines.filter((l) => l === 'wechat: provider unreachable; retrying').length).toBeGreaterThanOrEqual(4);
    await sup.stop();
    expect(sup.state).toBe('stopped');
  });

  it('a broken event stream is noticed at once and reconnected; a replayed login makes it ready again', async () => {
    const p = new FakePuppet();
    p.down = false;
    await p.start();
    const { log } = logger();
    const sup = new PuppetSupervisor(p, { logger: log, backoff: { initialMs: 10, maxMs: 20 } });
    sup.afterStart();
    sup.onLogin();
    p.down = true;
    p.gm.emit('status', { code: 1, details: 'Call cancelled' });
    expect(sup.state === 'disconnected' || sup.state === 'reconnecting').toBe(true);
    await waitFor(() => p.starts >= 4, 5000, 'reconnect attempts');
    expect(sup.state).toBe('reconnecting');
    // A local stop's logout is not an account logout.
    sup.onLogout('puppet stop()');
    expect(sup.state).toBe('reconnecting');
    p.down = false;
    await waitFor(() => sup.state === 'connected', 5000, 'reconnected');
    sup.onLogin();
    expect(sup.up).toBe(true);
    expect(sup.lastReconnectMs).toBeGreaterThanOrEqual(0);
    // The old stream's late events do not trigger another reconnect.
    const starts = p.starts;
    await new Promise((r) => setTimeout(r, 50));
    expect(p.starts).toBe(starts);
    // A real logout at the provider waits for a scan.
    sup.onLogout('logout()');
    expect(sup.state).toBe('waiting_for_scan');
    await sup.stop();
  });

  it('stop() ends the retry loop even in the middle of a long backoff', async () => {
    const p = new FakePuppet();
    const { log } = logger();
    const sup = new PuppetSupervisor(p, { logger: log, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    sup.afterStart();
    await waitFor(() => p.starts >= 1, 5000, 'first attempt');
    const t0 = Date.now();
    await sup.stop();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(p.starts).toBe(1);
  });

  it('probes host:port endpoints over TCP before a start; discovery endpoints are not probed', async () => {
    expect(tcpProbe(undefined)).toBeUndefined();
    expect(tcpProbe('wechaty://api.chatie.io/token')).toBeUndefined();
    const srv = net.createServer((s) => s.end());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await expect(tcpProbe(`127.0.0.1:${port}`)!()).resolves.toBeUndefined();
    await new Promise<void>((r) => srv.close(() => r()));
    await expect(tcpProbe(`127.0.0.1:${port}`)!()).rejects.toThrow();
  });
});
