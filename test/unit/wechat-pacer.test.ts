import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SendPacer } from '../../channels/wechat/pacer.ts';

/** Records when (fake ms since start) each send ran. */
function recorder() {
  const t0 = Date.now();
  const log: Array<{ chat: string; n: number; at: number }> = [];
  const send = (chat: string, n: number) => async () => {
    log.push({ chat, n, at: Date.now() - t0 });
    return `${chat}-${n}`;
  };
  return { log, send };
}

describe('wechat send pacer', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps one chat in order, at least the interval apart', async () => {
    const p = new SendPacer({ perChatIntervalMs: 1000, globalPerMinute: 0 });
    const { log, send } = recorder();
    const results = [p.schedule('a', send('a', 1)), p.schedule('a', send('a', 2)), p.schedule('a', send('a', 3))];
    await vi.advanceTimersByTimeAsync(0);
    expect(log.map((x) => x.n)).toEqual([1]);
    await vi.advanceTimersByTimeAsync(999);
    expect(log).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(log).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(results)).toEqual(['a-1', 'a-2', 'a-3']);
    expect(log.map((x) => [x.n, x.at])).toEqual([
      [1, 0],
      [2, 1000],
      [3, 2000],
    ]);
  });

  it('does not hold one chat back for another', async () => {
    const p = new SendPacer({ perChatIntervalMs: 1000, globalPerMinute: 0 });
    const { log, send } = recorder();
    void p.schedule('a', send('a', 1));
    void p.schedule('a', send('a', 2));
    void p.schedule('b', send('b', 1));
    await vi.advanceTimersByTimeAsync(0);
    expect(log.map((x) => `${x.chat}${x.n}@${x.at}`)).toEqual(['a1@0', 'b1@0']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(log.map((x) => `${x.chat}${x.n}@${x.at}`)).toEqual(['a1@0', 'b1@0', 'a2@1000']);
  });

  it('a later message after a quiet period leaves at once', async () => {
    const p = new SendPacer({ perChatIntervalMs: 1000, globalPerMinute: 0 });
    const { log, send } = recorder();
    await p.schedule('a', send('a', 1));
    await vi.advanceTimersByTimeAsync(5000);
    void p.schedule('a', send('a', 2));
    await vi.advanceTimersByTimeAsync(0);
    expect(log.map((x) => x.at)).toEqual([0, 5000]);
  });

  it('caps the account globally with a token bucket (burst, then the sustained rate)', async () => {
    // 60 per minute = one per second after a burst of 3.
    const p = new SendPacer({ perChatIntervalMs: 0, globalPerMinute: 60, burst: 3 });
    const { log, send } = recorder();
    for (let i = 1; i <= 6; i++) void p.schedule(`chat${i}`, send(`chat${i}`, i));
    await vi.advanceTimersByTimeAsync(0);
    expect(log.map((x) => x.n)).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(log.map((x) => [x.n, x.at])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 1000],
      [5, 2000],
      [6, 3000],
    ]);
  });

  it('refills the bucket while idle, up to the burst size', async () => {
    const p = new SendPacer({ perChatIntervalMs: 0, globalPerMinute: 60, burst: 2 });
    const { log, send } = recorder();
    void p.schedule('a', send('a', 1));
    void p.schedule('b', send('b', 2));
    await vi.advanceTimersByTimeAsync(60_000); // idle a minute: the bucket holds 2 again, not 60
    for (let i = 3; i <= 5; i++) void p.schedule(`c${i}`, send(`c${i}`, i));
    await vi.advanceTimersByTimeAsync(0);
    expect(log.map((x) => x.n)).toEqual([1, 2, 3, 4]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(log.map((x) => x.n)).toEqual([1, 2, 3, 4, 5]);
  });

  it('applies both limits at once', async () => {
    const p = new SendPacer({ perChatIntervalMs: 1500, globalPerMinute: 120, burst: 1 });
    const { log, send } = recorder();
    void p.schedule('a', send('a', 1));
    void p.schedule('a', send('a', 2));
    void p.schedule('b', send('b', 3));
    await vi.advanceTimersByTimeAsync(5000);
    // a1 at 0 takes the only token; b waits for the next (500 ms); a2 waits for its chat interval.
    expect(log.map((x) => [x.n, x.at])).toEqual([
      [1, 0],
      [3, 500],
      [2, 1500],
    ]);
  });

  it('a failed send rejects its caller only; the queue goes on', async () => {
    const p = new SendPacer({ perChatIntervalMs: 100, globalPerMinute: 0 });
    const { log, send } = recorder();
    const bad = p.schedule('a', async () => {
      throw new Error('puppet down');
    });
    const good = p.schedule('a', send('a', 2));
    const badSettled = expect(bad).rejects.toThrow('puppet down');
    await vi.advanceTimersByTimeAsync(100);
    await badSettled;
    expect(await good).toBe('a-2');
    expect(log.map((x) => x.at)).toEqual([100]);
  });

  it('forgets idle chats and refuses sends after close()', async () => {
    const p = new SendPacer({ perChatIntervalMs: 1000, globalPerMinute: 0 });
    const { send } = recorder();
    await p.schedule('a', send('a', 1));
    expect(p.activeChats).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(p.activeChats).toBe(0);
    p.close();
    await expect(p.schedule('a', send('a', 2))).rejects.toThrow('pacer closed');
  });

  it('defaults: one second per chat, a bounded global rate', () => {
    const p = new SendPacer();
    expect(p.opts.perChatIntervalMs).toBe(1000);
    expect(p.opts.globalPerMinute).toBeGreaterThan(0);
    expect(p.opts.burst).toBeGreaterThanOrEqual(1);
  });
});
