/**
 * Commits that fail, or succeed with the reply lost, are retried without losing or
 * double-counting anything: faults are injected at the store's boundary (the store itself is
 * real), on both stores.
 */

import { afterEach, describe, expect, it } from 'vitest';
import { formatCents } from '../../src/core/decimal.js';
import { Batchline, StoreUnavailableError } from '../../src/index.js';
import type { Store } from '../../src/store/store.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('commit faults: %s', (kind) => {
  let cleanup: (() => Promise<void>) | undefined;
  afterEach(async () => cleanup?.());

  it('retries failed and lost-reply commits, counting every item once', async () => {
    const location = await freshDatabase(kind);
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent', limits: { chunkItems: 25 } });
    cleanup = async () => {
      await bl.close();
      await location.cleanup();
    };
    const store: Store = bl.store;
    const commit = store.chunksCommit.bind(store);
    let calls = 0;
    let lostReplies = 0;
    let refused = 0;
    store.chunksCommit = async (params) => {
      calls++;
      if (calls % 5 === 0) {
        refused++;
        throw new StoreUnavailableError('injected: the database refused the commit');
      }
      const result = await commit(params);
      if (calls % 3 === 0) {
        lostReplies++;
        throw new StoreUnavailableError('injected: the commit landed but its reply was lost');
      }
      return result;
    };

    let expected = 0n;
    const rows = Array.from({ length: 3_000 }, (_, i) => {
      const cents = BigInt((i * 7919) % 100_000);
      expected += cents;
      return { i, amount: formatCents(cents) };
    });
    bl.define('sum', async (row: { i: number; amount: string }, ctx) => {
      await sleep(5 + (row.i % 10));
      ctx.aggregate('amount', row.amount);
    });
    const batch = await bl.submit('sum', rows);
    await bl.start({ concurrency: 16, checkpointMs: 10, maxLeaseItems: 50 });
    const done = await bl.wait(batch.id, { timeoutMs: 60_000 });
    expect(lostReplies).toBeGreaterThan(5);
    expect(refused).toBeGreaterThan(3);
    expect(done).toMatchObject({ status: 'completed', succeeded: 3_000, failed: 0 });
    expect(done.aggregates.amount).toBe(formatCents(expected));
    expect(await counterMismatches(kind, location)).toEqual([]);
  });
});
