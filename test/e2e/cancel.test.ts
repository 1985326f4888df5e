/**
 * Cancel against a worker in another process that stalls: its handlers run synchronously for
 * longer than its lease, so its renewals come late. Once `cancel` returns, no item of the
 * batch starts (DESIGN.md invariant 6), however late the stalled worker gets to look.
 */

import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { exited, FIXTURE_PROCESSORS, spawnBatchline } from '../helpers/cli.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('cancel with a stalled worker: %s', (kind) => {
  it('starts no item after cancel returns', async () => {
    const location = await freshDatabase(kind);
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    // 300 ms items that never yield, five at a time, on 500 ms leases: the worker's event loop
    // is blocked for 1.5 s at a stretch, well past its lease.
    const worker = spawnBatchline([
      'worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '5', '--lease-ms', '500', '--log-level', 'warn', '--database', location.database,
    ]);
    try {
      const batch = await bl.submit('cpu.busy', Array.from({ length: 20 }, (_, i) => ({ i })));
      while (!worker.output().includes('started at')) await sleep(10);
      // A watcher waiting meanwhile sees the batch once its counters are final, not as soon as
      // its status reads cancelled while the stalled worker still holds items.
      const watched = bl.wait(batch.id, { timeoutMs: 20_000 });
      const cancelled = await bl.cancel(batch.id);
      const returnedAt = Date.now();
      expect(cancelled).toMatchObject({ status: 'cancelled', remaining: 0 });
      expect(await watched).toMatchObject({ status: 'cancelled', remaining: 0 });
      // Give the stalled worker time to come back, renew, and try to start more.
      await sleep(3_000);
      const starts = [...worker.output().matchAll(/item (\d+) started at (\d+)/g)].map((m) => ({ seq: Number(m[1]), at: Number(m[2]) }));
      expect(starts.length).toBeGreaterThan(0);
      expect(starts.filter((s) => s.at > returnedAt)).toEqual([]);
      const settled = await bl.getBatch(batch.id);
      expect(settled).toMatchObject({ status: 'cancelled', remaining: 0 });
      expect(settled.succeeded + settled.cancelled).toBe(20);
      expect(await counterMismatches(kind, location)).toEqual([]);
    } finally {
      worker.kill('SIGKILL');
      await exited(worker);
      await bl.close();
      await location.cleanup();
    }
  }, 30_000);
});
