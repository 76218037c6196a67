import { afterEach, describe, expect, it } from 'vitest';
import type { FinalFailure, HookedJobRunner } from '../../src/queue/inprocess-runner.ts';
import { UnrecoverableJobError, type JobContext, type RetryPolicy } from '../../src/queue/types.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const FAST: RetryPolicy = { attempts: 3, backoffMs: 20, maxBackoffMs: 1_000 };

export type MakeRunner = (opts: { retry: RetryPolicy; concurrency: number }) => HookedJobRunner;

export function runnerContract(name: string, make: MakeRunner): void {
  describe(`JobRunner contract: ${name}`, () => {
    let runners: HookedJobRunner[] = [];
    const open = (retry: RetryPolicy = FAST, concurrency = 4) => {
      const r = make({ retry, concurrency });
      runners.push(r);
      return r;
    };
    afterEach(async () => {
      await Promise.all(runners.map((r) => r.close()));
      runners = [];
    });

    it('runs a job with its payload and context', async () => {
      const r = open();
      const seen: Array<{ data: unknown; ctx: JobContext }> = [];
      r.register<{ workspace: string }>('validate-key', async (data, ctx) => {
        seen.push({ data, ctx });
      });
      await r.start();
      const id = await r.enqueue('validate-key', { workspace: 'tg:1', submission_id: 'sub1' });
      await r.drain();
      expect(seen).toEqual([{ data: { workspace: 'tg:1', submission_id: 'sub1' }, ctx: { attempt: 1, maxAttempts: 3, jobId: id } }]);
    });

    it('retries with exponential backoff, then succeeds', async () => {
      const r = open({ attempts: 4, backoffMs: 20, maxBackoffMs: 1_000 });
      const attempts: Array<{ attempt: number; at: number }> = [];
      const finals: FinalFailure[] = [];
      r.onFinalFailure((f) => void finals.push(f));
      r.register('flaky', async (_d, ctx) => {
        attempts.push({ attempt: ctx.attempt, at: Date.now() });
        if (ctx.attempt < 3) throw new Error(`vendor 503 (attempt ${ctx.attempt})`);
      });
      await r.start();
      await r.enqueue('flaky', { n: 1 });
      await r.drain();
      expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
      // Backoff 20 ms then 40 ms (small timer slack allowed).
      expect(attempts[1].at - attempts[0].at).toBeGreaterThanOrEqual(15);
      expect(attempts[2].at - attempts[1].at).toBeGreaterThanOrEqual(35);
      expect(finals).toEqual([]);
    });

    it("waits at least a vendor's Retry-After before the next try", async () => {
      const r = open({ attempts: 3, backoffMs: 20, maxBackoffMs: 1_000 });
      const at: number[] = [];
      r.register('limited', async (_d, ctx) => {
        at.push(Date.now());
        if (ctx.attempt === 1) throw Object.assign(new Error('vendor 429'), { retryAfterMs: 300 });
      });
      await r.start();
      await r.enqueue('limited', { n: 1 });
      await r.drain();
      expect(at).toHaveLength(2);
      expect(at[1] - at[0]).toBeGreaterThanOrEqual(280); // not the 20 ms backoff
    });

    it('does not retry an UnrecoverableJobError, and reports it as final', async () => {
      const r = open({ attempts: 5, backoffMs: 20, maxBackoffMs: 1_000 });
      let calls = 0;
      const finals: FinalFailure[] = [];
      r.onFinalFailure((f) => void finals.push(f));
      r.register('definite', async () => {
        calls++;
        throw new UnrecoverableJobError('invalid_key', 'invalid_key');
      });
      await r.start();
      const id = await r.enqueue('definite', { model_id: 'm1' });
      await r.drain();
      await sleep(100); // a retry would have happened by now
      expect(calls).toBe(1);
      expect(finals).toHaveLength(1);
      expect(finals[0]).toMatchObject({ name: 'definite', jobId: id, data: { model_id: 'm1' }, attempts: 1, maxAttempts: 5, unrecoverable: true });
      expect(finals[0].error.message).toBe('invalid_key');
      // Both runners hand the hook the handler's own error (BullMQ's stand-in is unwrapped).
      expect(finals[0].error).toBeInstanceOf(UnrecoverableJobError);
      expect((finals[0].error as UnrecoverableJobError).code).toBe('invalid_key');
    });

    it('fires the final-failure hook once, after the last attempt', async () => {
      const r = open({ attempts: 3, backoffMs: 20, maxBackoffMs: 1_000 });
      const calls: number[] = [];
      const finals: FinalFailure[] = [];
      r.onFinalFailure(async (f) => {
        await sleep(30); // drain waits for an async hook too
        finals.push(f);
      });
      r.register('down', async (_d, ctx) => {
        calls.push(ctx.attempt);
        throw new Error('vendor unreachable');
      });
      await r.start();
      const id = await r.enqueue('down', { model_id: 'm2' });
      await r.drain();
      expect(calls).toEqual([1, 2, 3]);
      expect(finals).toHaveLength(1);
      expect(finals[0]).toMatchObject({ name: 'down', jobId: id, attempts: 3, maxAttempts: 3, unrecoverable: false });
      expect(finals[0].error.message).toBe('vendor unreachable');
      await sleep(100);
      expect(finals).toHaveLength(1);
    });

    it('treats a job with no handler as a definite failure', async () => {
      const r = open();
      const finals: FinalFailure[] = [];
      r.onFinalFailure((f) => void finals.push(f));
      await r.start();
      await r.enqueue('nobody-handles-this', {});
      await r.drain();
      expect(finals).toHaveLength(1);
      expect(finals[0]).toMatchObject({ name: 'nobody-handles-this', attempts: 1, unrecoverable: true });
    });

    it('dedupes by jobId while the job is pending', async () => {
      const r = open();
      const runs: string[] = [];
      r.register<{ v: number }>('once', async (d, ctx) => void runs.push(`${ctx.jobId}=${d.v}`));
      const a = await r.enqueue('once', { v: 1 }, { jobId: 'sub-abc' });
      const b = await r.enqueue('once', { v: 2 }, { jobId: 'sub-abc' });
      expect([a, b]).toEqual(['sub-abc', 'sub-abc']);
      await r.start();
      await r.drain();
      expect(runs).toEqual(['sub-abc=1']);
      // Finished jobs are removed, so the id may be used again.
      await r.enqueue('once', { v: 3 }, { jobId: 'sub-abc' });
      await r.drain();
      expect(runs).toEqual(['sub-abc=1', 'sub-abc=3']);
      // BullMQ's id rules hold for both runners.
      await expect(r.enqueue('once', { v: 4 }, { jobId: '123' })).rejects.toThrow(/integer/);
      await expect(r.enqueue('once', { v: 4 }, { jobId: 'a:b' })).rejects.toThrow(/":"/);
    });

    it('never runs more jobs at once than its concurrency', async () => {
      const r = open(FAST, 2);
      let running = 0;
      let peak = 0;
      let done = 0;
      r.register('slow', async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(40);
        running--;
        done++;
      });
      for (let i = 0; i < 8; i++) await r.enqueue('slow', { i });
      await r.start();
      await r.drain();
      expect(done).toBe(8);
      expect(peak).toBe(2);
    });

    it('drain waits for delayed jobs and pending retries', async () => {
      const r = open({ attempts: 2, backoffMs: 60, maxBackoffMs: 1_000 });
      const events: string[] = [];
      r.register<{ k: string }>('later', async (d, ctx) => {
        events.push(`${d.k}#${ctx.attempt}`);
        if (d.k === 'retry' && ctx.attempt === 1) throw new Error('transient');
      });
      await r.start();
      const t0 = Date.now();
      await r.enqueue('later', { k: 'delayed' }, { delayMs: 150 });
      await r.enqueue('later', { k: 'retry' });
      await r.drain();
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      expect(events.sort()).toEqual(['delayed#1', 'retry#1', 'retry#2']);
    });

    it('caps exponential backoff at maxBackoffMs', async () => {
      // Wide margins: a loaded machine delays a retry by a few hundred ms, never by the
      // 550 ms that separates the capped third wait (250) from the uncapped one (800).
      const r = open({ attempts: 4, backoffMs: 200, maxBackoffMs: 250 });
      const at: number[] = [];
      r.register('capped', async () => {
        at.push(Date.now());
        throw new Error('still down');
      });
      await r.start();
      await r.enqueue('capped', {});
      await r.drain();
      expect(at).toHaveLength(4);
      const gaps = at.slice(1).map((t, i) => t - at[i]);
      // 200, then min(400, 250), then min(800, 250): never near 800.
      expect(gaps[0]).toBeGreaterThanOrEqual(190);
      expect(gaps[2]).toBeGreaterThanOrEqual(240);
      expect(gaps[2]).toBeLessThan(650);
    });
  });
}
