/**
 * Attempts after lost leases, as handlers see them (`ctx.attempt`): a worker that died on its
 * items' final attempt fails only what its start mark says may have run, and the items beyond
 * the mark run again with the attempts they really used.
 */

import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { commitFor, sleep } from '../helpers/factory.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('final attempts after lost leases: %s', (kind) => {
  /** Leases the batch's chunk as worker `workerId` would, with `maxAttempts: 2` known. */
  const leaseAs = async (bl: Batchline, workerId: string, extra: Record<string, unknown> = {}) => {
    const [chunk] = await bl.store.chunksLease({ workerId, types: ['count'], maxItems: 100, maxAttemptsByType: { count: 2 }, leaseMs: 200, ...extra });
    return chunk!;
  };
  const expire = async (bl: Batchline) => {
    await sleep(300);
    expect((await bl.store.chunksReclaim({ limit: 10 })).requeued).toBe(1);
  };

  /**
   * Runs `body` with a Batchline on a fresh store, a `count` processor (2 attempts) recording
   * the attempt each seq ran with, and a batch of `items` items; then closes and cleans up.
   */
  const withCounting = async (items: number, body: (bl: Batchline, batchId: string, ran: Map<number, number>) => Promise<void>) => {
    const location = await freshDatabase(kind);
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    try {
      const ran = new Map<number, number>();
      bl.define('count', async (_row, ctx) => void ran.set(ctx.seq, ctx.attempt), { maxAttempts: 2 });
      const batch = await bl.submit('count', Array.from({ length: items }, (_, i) => ({ i })));
      await body(bl, batch.id, ran);
    } finally {
      await bl.close();
      await location.cleanup();
    }
  };
  /** Seqs and the attempt they ran with, in seq order. */
  const attempts = (ran: Map<number, number>) => [...ran].sort(([a], [b]) => a - b);

  it("fails what the dead lease's start mark covers and gives the rest their attempt back", () =>
    withCounting(10, async (bl, batchId, ran) => {
      // Two workers die holding the chunk: on attempt 1, then on attempt 2 (the final one)
      // after writing a start mark of 3, so slots 0-2 may have started under it.
      expect(await leaseAs(bl, 'dies-on-attempt-1')).toMatchObject({ attempt: 1, n: 10, startedBefore: null });
      await expire(bl);
      const final = await leaseAs(bl, 'dies-on-attempt-2');
      expect(final).toMatchObject({ attempt: 2, startedBefore: null });
      await bl.store.chunksCommit({ commits: [{ ...commitFor(final, () => null), startedBefore: 3 }] });
      await expire(bl);

      await bl.start({ concurrency: 4 });
      const done = await bl.wait(batchId, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'completed', succeeded: 7, failed: 3 });
      const failed = await bl.items(batchId, { status: 'failed' });
      expect(failed.map((item) => [item.seq, item.error?.kind])).toEqual([0, 1, 2].map((seq) => [seq, 'lease_lost']));
      // Slots 3-9 never ran under the final lease: they have used one attempt, and run their second.
      expect(attempts(ran)).toEqual([3, 4, 5, 6, 7, 8, 9].map((seq) => [seq, 2]));
    }));

  it('keeps a start mark written at lease time when a smaller lease takes the chunk next', () =>
    withCounting(20, async (bl, batchId, ran) => {
      expect(await leaseAs(bl, 'dies-on-attempt-1')).toMatchObject({ attempt: 1, n: 20 });
      await expire(bl);
      // The final lease marks 2 slots startable itself and dies before any commit, so the
      // chunk has a mark and no recorded outcome.
      expect(await leaseAs(bl, 'dies-on-attempt-2', { startMarkByType: { count: 2 } })).toMatchObject({ attempt: 2, startLimit: 2 });
      await expire(bl);
      // A worker leasing 8 items at a time must not split the mark away.
      await bl.start({ concurrency: 8 });
      const done = await bl.wait(batchId, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'completed', succeeded: 18, failed: 2 });
      expect((await bl.items(batchId, { status: 'failed' })).map((item) => item.seq)).toEqual([0, 1]);
      expect(attempts(ran)).toEqual(Array.from({ length: 18 }, (_, i) => [i + 2, 2]));
    }));

  it('keeps the final lease\'s start mark when the lease after it dies too', () =>
    withCounting(10, async (bl, batchId, ran) => {
      await leaseAs(bl, 'dies-on-attempt-1');
      await expire(bl);
      expect(await leaseAs(bl, 'dies-on-attempt-2', { startMarkByType: { count: 3 } })).toMatchObject({ attempt: 2, startLimit: 3 });
      await expire(bl);
      // Past the final attempt: this lease would only fail slots 0-2 and move the rest, but it
      // dies first (with a budget that would mark more, were it allowed to).
      expect(await leaseAs(bl, 'dies-past-final', { startMarkByType: { count: 8 } })).toMatchObject({ attempt: 3, startedBefore: 3, startLimit: null });
      await expire(bl);
      await bl.start({ concurrency: 4 });
      const done = await bl.wait(batchId, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'completed', succeeded: 7, failed: 3 });
      expect(attempts(ran)).toEqual([3, 4, 5, 6, 7, 8, 9].map((seq) => [seq, 2]));
    }));
});
