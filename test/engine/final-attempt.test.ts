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
  it("fails what the dead lease's start mark covers and gives the rest their attempt back", async () => {
    const location = await freshDatabase(kind);
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    try {
      const ran = new Map<number, number>();
      bl.define('count', async (_row, ctx) => void ran.set(ctx.seq, ctx.attempt), { maxAttempts: 2 });
      const batch = await bl.submit('count', Array.from({ length: 10 }, (_, i) => ({ i })));

      // Two workers die holding the chunk: on attempt 1, then on attempt 2 (the final one)
      // after writing a start mark of 3, so slots 0-2 may have started under it.
      const leaseAs = async (workerId: string) => {
        const [chunk] = await bl.store.chunksLease({ workerId, types: ['count'], maxItems: 100, maxAttemptsByType: { count: 2 }, leaseMs: 200 });
        return chunk!;
      };
      const expire = async () => {
        await sleep(300);
        expect((await bl.store.chunksReclaim({ limit: 10 })).requeued).toBe(1);
      };
      expect(await leaseAs('dies-on-attempt-1')).toMatchObject({ attempt: 1, n: 10, startedBefore: null });
      await expire();
      const final = await leaseAs('dies-on-attempt-2');
      expect(final).toMatchObject({ attempt: 2, startedBefore: null });
      await bl.store.chunksCommit({ commits: [{ ...commitFor(final, () => null), startedBefore: 3 }] });
      await expire();

      await bl.start({ concurrency: 4 });
      const done = await bl.wait(batch.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'completed', succeeded: 7, failed: 3 });
      const failed = await bl.items(batch.id, { status: 'failed' });
      expect(failed.map((item) => [item.seq, item.error?.kind])).toEqual([0, 1, 2].map((seq) => [seq, 'lease_lost']));
      // Slots 3-9 never ran under the final lease: they have used one attempt, and run their second.
      expect([...ran].sort(([a], [b]) => a - b)).toEqual([3, 4, 5, 6, 7, 8, 9].map((seq) => [seq, 2]));
    } finally {
      await bl.close();
      await location.cleanup();
    }
  });
});
