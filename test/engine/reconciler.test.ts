/**
 * The reconciler's counter check across many open batches: a page per pass, newest first,
 * going on at the next pass until every batch was checked, so the oldest open batch is not
 * left out however many there are. And its retention: finished batches past retainFinishedMs
 * deleted page after page for up to a second per pass, then looked for once a minute.
 */

import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PRUNE_PAGE, pruneFinished, Reconciler } from '../../src/engine/reconciler.js';
import { commitFor, lease, rows, sleep, submit } from '../helpers/factory.js';
import { freshStore, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('reconciler: %s', (kind) => {
  let store: Awaited<ReturnType<typeof freshStore>>;
  afterEach(async () => store.dispose());

  it('checks the counters of every open batch, a page per pass, the oldest included', async () => {
    store = await freshStore(kind);
    // The oldest batch's counters under-count its items (a wrong delta, as a bug would write).
    const oldest = await submit(store, rows(2), { priority: 9 });
    const [chunk] = await lease(store);
    expect(chunk!.batchId).toBe(oldest.id);
    const commit = commitFor(chunk!, (slot) => (slot === 0 ? 'succeeded' : null));
    commit.delta.succeeded = 0;
    await store.chunksCommit({ commits: [commit] });
    for (let i = 0; i < 4; i++) await submit(store, rows(2));

    const reconciler = new Reconciler(store, pino({ level: 'silent' }), { verifyPageSize: 2, verifyEveryMs: 3_600_000 });
    const repaired = [];
    for (let pass = 0; pass < 3; pass++) repaired.push((await reconciler.pass()).repaired);
    expect(repaired).toEqual([0, 0, 1]);
    expect((await store.batchGet({ id: oldest.id })).succeeded).toBe(1);
    // The rotation is over: the next check waits for verifyEveryMs.
    expect((await reconciler.pass()).repaired).toBe(0);
  });

  it('deletes finished batches past retainFinishedMs page after page, then not for a minute, and none without it', async () => {
    store = await freshStore(kind);
    for (let i = 0; i < PRUNE_PAGE + 5; i++) await submit(store, rows(2));
    for (let leased = await lease(store); leased.length > 0; leased = await lease(store)) {
      await store.chunksCommit({ commits: leased.map((chunk) => commitFor(chunk, () => 'succeeded')) });
    }
    const open = await submit(store, rows(2));
    await sleep(5);
    const silent = pino({ level: 'silent' });
    expect((await new Reconciler(store, silent).pass()).pruned).toBe(0);
    expect(await store.batchCount({})).toBe(PRUNE_PAGE + 6);

    const reconciler = new Reconciler(store, silent, { retainFinishedMs: 0 });
    // Page after page within the pass's budget; after a short page, the next prune is a minute on.
    expect((await reconciler.pass()).pruned).toBe(PRUNE_PAGE + 5);
    expect((await store.batchList({ limit: 10 })).map((batch) => batch.id)).toEqual([open.id]);
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, () => 'succeeded')] });
    await sleep(5);
    expect((await reconciler.pass()).pruned).toBe(0);
    expect((await store.batchGet({ id: open.id })).status).toBe('completed');
    expect(() => new Reconciler(store, silent, { retainFinishedMs: -1 })).toThrow(/retainFinishedMs must be a whole number/);
  });

  it('runs every step of a pass when one fails: a failing counter check skips neither worker clean-up nor retention', async () => {
    store = await freshStore(kind);
    const batch = await submit(store, rows(2));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, () => 'succeeded')] });
    await store.workerHeartbeat({ id: 'gone', host: 'h', pid: 1, types: ['t'], concurrency: 1, processed: 0, inFlight: 0, batches: [] });
    await sleep(5);
    const broken = new Proxy(store, {
      get(target, key) {
        if (key === 'batchesVerify') return async () => Promise.reject(new Error('verify broke'));
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const logs: { msg: string; step?: string; err?: { message: string } }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => logs.push(JSON.parse(line)) });

    const result = await new Reconciler(broken, logger, { retainFinishedMs: 0, workerStaleMs: 1 }).pass();
    expect(result).toMatchObject({ pruned: 1, failed: ['verify counters'] });
    expect(logs).toMatchObject([{ msg: 'reconciler step failed', step: 'verify counters', err: { message: 'verify broke' } }]);
    expect(await store.workersList()).toEqual([]);
    await expect(store.batchGet({ id: batch.id })).rejects.toThrow(/not found/);
  });

  it('lets two prunes at once both get to the end, together deleting every batch once', async () => {
    store = await freshStore(kind);
    for (let i = 0; i < 2 * PRUNE_PAGE + 30; i++) await submit(store, rows(2));
    for (let leased = await lease(store); leased.length > 0; leased = await lease(store)) {
      await store.chunksCommit({ commits: leased.map((chunk) => commitFor(chunk, () => 'succeeded')) });
    }
    await sleep(5);
    const filter = { finishedBefore: new Date() };
    const [one, two] = await Promise.all([pruneFinished(store, filter), pruneFinished(store, filter)]);
    expect(one.batches + two.batches).toBe(2 * PRUNE_PAGE + 30);
    expect([one.more, two.more]).toEqual([false, false]);
    expect(await store.batchCount({})).toBe(0);
  });
});
