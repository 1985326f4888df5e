/**
 * The store conformance suite: the same operations and expectations against the embedded
 * SQLite store and PostgreSQL. Every rule the engine relies on is pinned here.
 */

import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ConflictError, NotFoundError } from '../../src/core/errors.js';
import type { Store } from '../../src/store/store.js';
import { commitFor, itemCounts, lease, nested, rows, sleep, submit } from '../helpers/factory.js';
import { freshStore, storeKinds } from '../helpers/stores.js';

if (!inject('pgUrl')) console.warn(inject('pgSkipReason'));

describe.each(storeKinds)('store conformance: %s', (kind) => {
  let store: Awaited<ReturnType<typeof freshStore>>;
  beforeEach(async () => {
    store = await freshStore(kind);
  });
  afterEach(async () => {
    await store.dispose();
  });

  it('migrates down and up again', async () => {
    expect(await store.migrationStatus()).toEqual({ current: 3, latest: 3 });
    expect(await store.migrate({ direction: 'down', steps: 1 })).toEqual({ current: 2, latest: 3 });
    expect(await store.migrate({ direction: 'down', steps: 2 })).toEqual({ current: 0, latest: 3 });
    expect(await store.migrate({ direction: 'up' })).toEqual({ current: 3, latest: 3 });
    const batch = await submit(store, rows(3));
    expect(batch.total).toBe(3);
  });

  it('submits a batch whose items are all pending, in chunks', async () => {
    const batch = await submit(store, rows(1_234), { priority: 7, labels: { file: 'x.csv' }, maxAttempts: 4 });
    expect(batch).toMatchObject({ status: 'queued', total: 1_234, succeeded: 0, failed: 0, cancelled: 0, remaining: 1_234, priority: 7 });
    expect(batch.labels).toEqual({ file: 'x.csv' });
    expect(batch.options).toEqual({ maxAttempts: 4 });
    expect(await itemCounts(store, batch.id)).toEqual({ pending: 1_234 });
    const items = await store.itemsList({ batchId: batch.id, after: 499, limit: 3 });
    expect(items.map((i) => [i.seq, i.status, i.attempts, i.payload])).toEqual([
      [500, 'pending', 0, rows(501)[500]],
      [501, 'pending', 0, rows(502)[501]],
      [502, 'pending', 0, rows(503)[502]],
    ]);
    const events = await store.eventsList({ batchId: batch.id, limit: 10 });
    expect(events.map((e) => e.type)).toEqual(['batch:submitted']);
  });

  it('returns the first batch for a repeated idempotency key and creates nothing', async () => {
    const first = await submit(store, rows(10), { idempotencyKey: 'k1' });
    const again = await submit(store, rows(10), { idempotencyKey: 'k1' });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.id).toBe(first.id);
    expect(await store.batchList({ limit: 10 })).toHaveLength(1);
    await expect(submit(store, rows(11), { idempotencyKey: 'k1' })).rejects.toThrow(/already used for batch .* with different items/);
    // Another tenant may use the same key.
    const other = await submit(store, rows(10), { idempotencyKey: 'k1', tenant: 'other' });
    expect(other.created).toBe(true);
  });

  it('rejects a submission atomically when an item is bad', async () => {
    const items: unknown[] = [...rows(1_000), { bad: 1n }];
    await expect(submit(store, items)).rejects.toThrow(/item 1001 \(seq 1000\): item is not JSON-serialisable/);
    await expect(submit(store, [{ big: 'x'.repeat(2_000) }], { limits: { maxPayloadBytes: 1_000 } })).rejects.toThrow(/item 1 \(seq 0\): item is 2010 bytes/);
    await expect(submit(store, [])).rejects.toThrow(/no items/);
    // Bad after 100 chunks: PostgreSQL has had the first ones inserted, and rolls them back.
    const late = (function* () {
      yield* rows(50_000);
      yield { bad: Symbol('late') };
    })();
    await expect(submit(store, late)).rejects.toThrow(/item 50001 \(seq 50000\): item has a symbol/);
    expect(await store.batchList({ limit: 10 })).toEqual([]);
    const { runSql } = await import('../helpers/sql.js');
    expect(await runSql(kind, store.location, `SELECT count(*) AS n FROM ${kind === 'postgres' ? 'batchline.' : ''}chunks`)).toEqual([{ n: kind === 'postgres' ? '0' : 0 }]);
  });

  it('refuses an item nested deeper than 512 levels, naming it, and keeps one at the limit as given', async () => {
    await expect(submit(store, [...rows(2), nested(513)])).rejects.toThrow(/^item 3 \(seq 2\): item nests arrays and objects more than 512 levels deep/);
    // Nesting past what each store's JSON functions read: refused the same way, not by the database.
    await expect(submit(store, [nested(4_000)])).rejects.toThrow(/^item 1 \(seq 0\): item nests arrays and objects more than 512 levels deep/);
    expect(await store.batchList({ limit: 10 })).toEqual([]);

    // At the limit: stored, leased, committed with itself as its result, counted and listed.
    const batch = await submit(store, [...rows(2), nested(512)]);
    const [chunk] = await lease(store);
    const commit = commitFor(chunk!, () => 'succeeded');
    commit.state = JSON.stringify(chunk!.payloads.map((payload) => ({ s: 'succeeded', a: chunk!.attempt, r: payload })));
    expect((await store.chunksCommit({ commits: [commit] })).finished.map((b) => b.id)).toEqual([batch.id]);
    expect((await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches).toEqual([]);
    const [, , deep] = await store.itemsList({ batchId: batch.id, limit: 10 });
    expect(deep).toMatchObject({ seq: 2, status: 'succeeded', payload: nested(512), result: nested(512) });
  });

  it('leases each chunk to one worker and fences commits by lease number', async () => {
    const batch = await submit(store, rows(1_000));
    const a = await lease(store, { workerId: 'a', maxItems: 500 });
    const b = await lease(store, { workerId: 'b', maxItems: 500 });
    expect(a.map((c) => c.n - c.skip)).toEqual([500]);
    expect(b.map((c) => c.n - c.skip)).toEqual([500]);
    expect(a[0]!.chunkId).not.toBe(b[0]!.chunkId);
    expect(a[0]!.attempt).toBe(1);
    expect(await lease(store, { workerId: 'c' })).toEqual([]);
    expect((await store.batchGet({ id: batch.id })).status).toBe('running');
    expect(await itemCounts(store, batch.id)).toEqual({ running: 1_000 });

    const stale = { ...commitFor(a[0]!, () => 'succeeded'), leaseNo: a[0]!.leaseNo + 1 };
    expect((await store.chunksCommit({ commits: [stale] })).lost).toEqual([a[0]!.chunkId]);
    expect((await store.batchGet({ id: batch.id })).succeeded).toBe(0);

    const result = await store.chunksCommit({ commits: [commitFor(a[0]!, () => 'succeeded'), commitFor(b[0]!, () => 'succeeded')] });
    expect(result.lost).toEqual([]);
    expect(result.finished.map((f) => f.id)).toEqual([batch.id]);
    const done = await store.batchGet({ id: batch.id });
    expect(done).toMatchObject({ status: 'completed', succeeded: 1_000, remaining: 0 });
    expect(done.finishedAt).toBeInstanceOf(Date);
    // The same commit again (a retry after a lost reply) is recognised, not applied twice; a
    // further commit under the finished lease is fenced out.
    const retry = await store.chunksCommit({ commits: [commitFor(a[0]!, () => 'succeeded')] });
    expect(retry).toMatchObject({ lost: [], alreadyApplied: [a[0]!.chunkId] });
    expect((await store.chunksCommit({ commits: [commitFor(a[0]!, () => 'succeeded', { commitNo: 1 })] })).lost).toEqual([a[0]!.chunkId]);
    expect((await store.batchGet({ id: batch.id })).succeeded).toBe(1_000);
  });

  it('applies a checkpoint retried after it landed only once', async () => {
    const batch = await submit(store, rows(10));
    const [chunk] = await lease(store);
    const checkpoint = commitFor(chunk!, (slot) => (slot < 4 ? 'succeeded' : null), { aggregate: (p) => p.amount });
    await store.chunksCommit({ commits: [checkpoint] });
    const again = await store.chunksCommit({ commits: [checkpoint] });
    expect(again).toEqual({ lost: [], alreadyApplied: [chunk!.chunkId], finished: [] });
    const b = await store.batchGet({ id: batch.id });
    expect(b.succeeded).toBe(4);
    expect(b.aggregates.sum).toBe(checkpoint.aggregates.sum);
    const rest = commitFor(chunk!, (slot) => (slot >= 4 ? 'succeeded' : null), { commitNo: 1 });
    rest.state = JSON.stringify(JSON.parse(checkpoint.state).map((e: unknown, i: number) => e ?? JSON.parse(rest.state)[i]));
    rest.close = 'done';
    expect((await store.chunksCommit({ commits: [rest] })).finished.map((f) => f.id)).toEqual([batch.id]);
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 10 });
  });

  it('splits a chunk when a lease wants fewer items than it holds', async () => {
    const batch = await submit(store, rows(500));
    const first = await lease(store, { maxItems: 3 });
    expect(first).toHaveLength(1);
    expect(first[0]!.n - first[0]!.skip).toBe(3);
    expect(first[0]!.payloads.slice(first[0]!.skip)).toEqual(rows(3));
    const second = await lease(store, { maxItems: 4 });
    expect(second[0]!.payloads.slice(second[0]!.skip)).toEqual(rows(7).slice(3));
    const rest = await lease(store, { maxItems: 10_000 });
    expect(rest.reduce((n, c) => n + c.n - c.skip, 0)).toBe(493);
    await store.chunksCommit({ commits: [...first, ...second, ...rest].map((c) => commitFor(c, () => 'succeeded')) });
    const items = await store.itemsList({ batchId: batch.id, limit: 1_000 });
    expect(items.map((i) => i.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(items.every((i) => i.status === 'succeeded')).toBe(true);
  });

  it('keeps counters equal to items through partial commits, failures and retries', async () => {
    const batch = await submit(store, rows(20));
    const [chunk] = await lease(store);
    const outcomes = (slot: number) => (slot < 5 ? 'succeeded' : slot < 8 ? 'failed' : slot < 12 ? 'moved' : null);
    await store.chunksCommit({ commits: [commitFor(chunk!, outcomes, { aggregate: (p) => p.amount })] });
    let b = await store.batchGet({ id: batch.id });
    expect(b).toMatchObject({ status: 'running', succeeded: 5, failed: 3, cancelled: 0, remaining: 12 });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 5, failed: 3, pending: 4, running: 8 });
    const expected = rows(5).reduce((sum, r) => sum + Math.round(Number(r.amount) * 100), 0);
    expect(b.aggregates.sum).toBe((expected / 100).toFixed(2));

    // The moved items wait in a retry chunk as pending, with their attempt counted.
    const retried = (await store.itemsList({ batchId: batch.id, status: 'pending', limit: 100 })).map((i) => [i.seq, i.attempts]);
    expect(retried).toEqual([[8, 1], [9, 1], [10, 1], [11, 1]]);

    // Finish the first chunk, then the retry chunk on attempt 2.
    const rest = { ...commitFor(chunk!, (slot) => (slot >= 12 ? 'succeeded' : null), { commitNo: 1 }) };
    const stateAfterFirst = JSON.parse(commitFor(chunk!, outcomes).state);
    const restState = JSON.parse(rest.state);
    rest.state = JSON.stringify(stateAfterFirst.map((e: unknown, i: number) => e ?? restState[i]));
    rest.close = 'done';
    await store.chunksCommit({ commits: [rest] });
    const [retry] = await lease(store);
    expect(retry!.attempt).toBe(2);
    expect(retry!.seqs).toEqual([8, 9, 10, 11]);
    await store.chunksCommit({ commits: [commitFor(retry!, () => 'succeeded')] });
    b = await store.batchGet({ id: batch.id });
    expect(b).toMatchObject({ status: 'completed', succeeded: 17, failed: 3, remaining: 0 });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 17, failed: 3 });
    const completions = await store.eventsList({ batchId: batch.id, types: ['batch:completed'], limit: 10 });
    expect(completions).toHaveLength(1);
    expect((await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches).toEqual([]);
  });

  it('adds aggregates exactly, as decimals', async () => {
    const batch = await submit(store, rows(3));
    const [chunk] = await lease(store);
    const commit = commitFor(chunk!, () => 'succeeded');
    commit.aggregates = { balance: '0.10', tiny: '1e-9', big: '123456789012345678901234567890.01' };
    await store.chunksCommit({ commits: [commit] });
    const b = await store.batchGet({ id: batch.id });
    expect(b.aggregates).toEqual({ balance: '0.10', tiny: '0.000000001', big: '123456789012345678901234567890.01' });
    const batch2 = await submit(store, rows(2));
    const chunks = await lease(store, { maxItems: 1 });
    const c1 = commitFor(chunks[0]!, () => 'succeeded');
    c1.aggregates = { balance: '0.1' };
    const more = await lease(store, { maxItems: 1 });
    const c2 = commitFor(more[0]!, () => 'succeeded');
    c2.aggregates = { balance: '0.2' };
    await store.chunksCommit({ commits: [c1] });
    await store.chunksCommit({ commits: [c2] });
    expect((await store.batchGet({ id: batch2.id })).aggregates).toEqual({ balance: '0.3' });
  });

  it('serves the highest priority first, then the least recently served batch', async () => {
    const low = await submit(store, rows(1_000), { priority: 1 });
    const a = await submit(store, rows(1_000), { priority: 5 });
    const b = await submit(store, rows(1_000), { priority: 5 });
    const order: string[] = [];
    for (let i = 0; i < 4; i++) order.push((await lease(store, { maxItems: 500 }))[0]!.batchId);
    expect(order.slice(0, 4).sort()).toEqual([a.id, a.id, b.id, b.id].sort());
    expect(order[0]).not.toBe(order[1]);
    expect((await lease(store, { maxItems: 500 }))[0]!.batchId).toBe(low.id);
  });

  it('caps the items of a batch leased at once across workers', async () => {
    const batch = await submit(store, rows(100), { concurrency: 5 });
    const first = await lease(store, { workerId: 'a' });
    expect(first.reduce((n, c) => n + c.n - c.skip, 0)).toBe(5);
    expect(await lease(store, { workerId: 'b' })).toEqual([]);
    await store.chunksCommit({ commits: [commitFor(first[0]!, (slot) => (slot < first[0]!.skip + 2 ? 'succeeded' : null))] });
    const second = await lease(store, { workerId: 'b' });
    expect(second.reduce((n, c) => n + c.n - c.skip, 0)).toBe(2);
    expect((await store.batchGet({ id: batch.id })).succeeded).toBe(2);
  });

  it('keeps the cap with a partly done chunk bigger than the room left, leasing it once there is room', async () => {
    const batch = await submit(store, rows(10), { concurrency: 5 });
    // w1 takes 5 (split off the stored chunk), records 2, and dies: its chunk is pending again
    // with 3 items left and a state, so it cannot be split.
    const [partial] = await lease(store, { workerId: 'w1', maxItems: 5, leaseMs: 200 });
    await store.chunksCommit({ commits: [commitFor(partial!, (slot) => (slot < 2 ? 'succeeded' : null))] });
    await sleep(300);
    expect(await store.chunksReclaim({ limit: 100 })).toMatchObject({ requeued: 1 });
    // w2 takes the other 5 and records 2: 3 running, room for 2.
    const [rest] = await lease(store, { workerId: 'w2' });
    expect(rest!.n - rest!.skip).toBe(5);
    await store.chunksCommit({ commits: [commitFor(rest!, (slot) => (slot < rest!.skip + 2 ? 'succeeded' : null))] });
    // The partly done chunk (3) does not fit in 2: nothing is leased rather than 6 running.
    expect(await lease(store, { workerId: 'w3' })).toEqual([]);
    const recorded = { ...rest!, state: Array.from({ length: rest!.n }, (_, i) => (i >= rest!.skip && i < rest!.skip + 2 ? ({ s: 'succeeded', a: 1 } as const) : null)) };
    await store.chunksCommit({ commits: [commitFor(recorded, () => 'succeeded', { commitNo: 1, close: 'done' })] });
    const [later] = await lease(store, { workerId: 'w3' });
    expect(later).toMatchObject({ chunkId: partial!.chunkId, attempt: 2 });
    await store.chunksCommit({ commits: [commitFor(later!, () => 'succeeded', { close: 'done' })] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 10 });
  });

  it('serves the next batch while a capped batch has only a half-done chunk too big for its room', async () => {
    const capped = await submit(store, rows(6), { priority: 6, concurrency: 4 });
    const other = await submit(store, rows(6), { priority: 5 });
    // w1 takes 3 of the capped batch (split off its chunk), records 1 and hands the rest back:
    // a half-done chunk with 2 left. w2 takes the other 3 and holds them.
    const [head] = await lease(store, { workerId: 'w1', maxItems: 3 });
    expect(head!.batchId).toBe(capped.id);
    await store.chunksCommit({ commits: [commitFor(head!, (slot) => (slot === head!.skip ? 'succeeded' : null), { close: 'release' })] });
    const held = await lease(store, { workerId: 'w2', maxItems: 3 });
    expect(held.map((c) => [c.batchId, c.n - c.skip])).toEqual([[capped.id, 3]]);
    // Room for 1 under the cap; the capped batch's only pending chunk has 2 left and cannot be split.
    const next = await lease(store, { workerId: 'w4' });
    expect(next.map((c) => c.batchId)).toEqual([other.id]);
  });

  it('splits a chunk that was handed back with nothing recorded', async () => {
    await submit(store, rows(100));
    const [whole] = await lease(store, { maxItems: 100 });
    await store.chunksCommit({ commits: [commitFor(whole!, () => null, { close: 'release', unused: true })] });
    const [small] = await lease(store, { workerId: 'w2', maxItems: 2 });
    expect(small!.n - small!.skip).toBe(2);
    const rest = await lease(store, { workerId: 'w3' });
    expect(rest.reduce((n, c) => n + c.n - c.skip, 0)).toBe(98);
  });

  it('keeps the cap when many workers lease a capped batch at once', async () => {
    await submit(store, rows(2_000), { concurrency: 5 });
    const leases = await Promise.all(Array.from({ length: 8 }, (_, i) => lease(store, { workerId: `w${i}`, maxItems: 5 })));
    expect(leases.flat().reduce((n, c) => n + c.n - c.skip, 0)).toBe(5);
  });

  it('does not lease types the worker cannot run, nor future retries', async () => {
    await submit(store, rows(5), { type: 'other' });
    expect(await lease(store)).toEqual([]);
    const batch = await submit(store, rows(1));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, () => 'moved', { retryDelayMs: 60_000 })] });
    expect(await lease(store)).toEqual([]);
    expect((await store.batchGet({ id: batch.id })).remaining).toBe(1);
  });

  it('renews leases and reports lost ones; the reconciler hands expired leases back', async () => {
    const batch = await submit(store, rows(10));
    const [chunk] = await lease(store, { leaseMs: 200 });
    expect((await store.chunksRenew({ workerId: 'w1', leases: [{ chunkId: chunk!.chunkId, leaseNo: chunk!.leaseNo }], leaseMs: 200 })).lost).toEqual([]);
    await store.chunksCommit({ commits: [commitFor(chunk!, (slot) => (slot < 4 ? 'succeeded' : null))] });
    await sleep(300);
    const reclaimed = await store.chunksReclaim({ limit: 100 });
    expect(reclaimed).toMatchObject({ requeued: 1, cancelled: 0 });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 4, pending: 6 });
    expect((await store.chunksRenew({ workerId: 'w1', leases: [{ chunkId: chunk!.chunkId, leaseNo: chunk!.leaseNo }], leaseMs: 200 })).lost).toEqual([chunk!.chunkId]);
    const [again] = await lease(store);
    expect(again!.attempt).toBe(2);
    expect(again!.state!.slice(0, 4).every((e) => e?.s === 'succeeded')).toBe(true);
    await store.chunksCommit({ commits: [commitFor(again!, () => 'succeeded')] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 10 });
    const expiredEvents = await store.eventsList({ batchId: batch.id, types: ['batch:lease-expired'], limit: 10 });
    expect(expiredEvents.map((e) => e.data.items)).toEqual([6]);
  });

  it('does not renew an expired lease, even before the reconciler hands it back', async () => {
    const batch = await submit(store, rows(5));
    const [chunk] = await lease(store, { leaseMs: 200 });
    await sleep(300);
    // A cancel that saw the lease expired relies on it staying over.
    expect((await store.chunksRenew({ workerId: 'w1', leases: [{ chunkId: chunk!.chunkId, leaseNo: chunk!.leaseNo }], leaseMs: 30_000 })).lost).toEqual([chunk!.chunkId]);
    await store.batchCancel({ id: batch.id });
    expect(await store.chunksReclaim({ limit: 100, batchId: batch.id })).toMatchObject({ cancelled: 1 });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'cancelled', cancelled: 5, remaining: 0 });
  });

  it("hands the next lease the previous lease's start mark, and clears it", async () => {
    await submit(store, rows(10));
    const [chunk] = await lease(store, { leaseMs: 200 });
    expect(chunk!.startedBefore).toBeNull();
    const mark = { ...commitFor(chunk!, (slot) => (slot < 2 ? 'succeeded' : null)), startedBefore: 6 };
    await store.chunksCommit({ commits: [mark] });
    await sleep(300);
    expect(await store.chunksReclaim({ limit: 100 })).toMatchObject({ requeued: 1 });
    const [again] = await lease(store, { leaseMs: 200 });
    expect(again).toMatchObject({ attempt: 2, startedBefore: 6 });
    // Its own lease wrote no mark: after it expires, the next lease knows nothing.
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    const [third] = await lease(store);
    expect(third).toMatchObject({ attempt: 3, startedBefore: null });
  });

  it('starts a final-attempt lease with a start mark of 0: nothing started', async () => {
    // The batch allows 2 attempts; type `u` allows 1 by the worker's processors.
    await submit(store, rows(4), { maxAttempts: 2 });
    await submit(store, rows(4), { type: 'u' });
    const byType = { t: 5, u: 1 };
    const [first] = await lease(store, { leaseMs: 200, maxAttemptsByType: byType });
    expect(first).toMatchObject({ attempt: 1, startedBefore: null });
    const [once] = await lease(store, { leaseMs: 200, types: ['u'], maxAttemptsByType: byType });
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    // What each lease reports is its predecessor's mark: attempt 1 of 2 (the batch's setting
    // beats the processor's 5) was not final, so unknown; attempt 1 of 1 was, so 0; and the
    // third lease follows attempt 2 of 2, final again.
    const [second] = await lease(store, { leaseMs: 200, maxAttemptsByType: byType });
    expect(second).toMatchObject({ chunkId: first!.chunkId, attempt: 2, startedBefore: null });
    const [twice] = await lease(store, { leaseMs: 200, types: ['u'], maxAttemptsByType: byType });
    expect(twice).toMatchObject({ chunkId: once!.chunkId, attempt: 2, startedBefore: 0 });
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    const [third] = await lease(store, { maxAttemptsByType: byType });
    expect(third).toMatchObject({ chunkId: first!.chunkId, attempt: 3, startedBefore: 0 });
  });

  it('marks a final-attempt lease startable up to its budget, across chunks in the order returned', async () => {
    // Type `u` allows 1 attempt: every lease of it is final. Chunks of 500, 500 and 200 items.
    await submit(store, rows(1_200), { type: 'u' });
    const byType = { t: 5, u: 1 };
    const leased = await lease(store, { leaseMs: 200, types: ['u'], maxItems: 1_200, maxAttemptsByType: byType, startMarkByType: { u: 700 } });
    expect(leased.map((c) => [c.n, c.startLimit])).toEqual([[500, 500], [500, 200], [200, 0]]);
    expect(leased.map((c) => c.chunkId)).toEqual([...leased.map((c) => c.chunkId)].sort((a, b) => a - b));
    // A lease that is not final gets no mark, whatever the budget.
    await submit(store, rows(10));
    expect((await lease(store, { types: ['t'], maxAttemptsByType: byType, startMarkByType: { t: 700 } }))[0]).toMatchObject({ startLimit: null });
    // The lease's marks are what its successor finds, once it is lost. That successor is past
    // the final attempt: it starts nothing, so it has no limit, and it keeps the marks.
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    const again = await lease(store, { types: ['u'], maxItems: 1_200, maxAttemptsByType: byType, startMarkByType: { u: 700 }, leaseMs: 200 });
    expect(again.map((c) => [c.attempt, c.startedBefore, c.startLimit])).toEqual([[2, 500, null], [2, 200, null], [2, 0, null]]);
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    const third = await lease(store, { types: ['u'], maxItems: 1_200, maxAttemptsByType: byType });
    expect(third.map((c) => [c.attempt, c.startedBefore])).toEqual([[3, 500], [3, 200], [3, 0]]);
  });

  it('marks a split head like any chunk of a final lease', async () => {
    await submit(store, rows(500), { type: 'u' });
    const [head] = await lease(store, { types: ['u'], maxItems: 300, maxAttemptsByType: { u: 1 }, startMarkByType: { u: 120 } });
    expect(head).toMatchObject({ n: 300, startLimit: 120 });
    const [rest] = await lease(store, { types: ['u'], maxItems: 500, maxAttemptsByType: { u: 1 }, startMarkByType: { u: 1_000 } });
    expect(rest).toMatchObject({ n: 500, skip: 300, startLimit: 500 });
  });

  it('leases a chunk with a start mark whole, even into a smaller lease', async () => {
    await submit(store, rows(10));
    const [chunk] = await lease(store, { leaseMs: 200 });
    await store.chunksCommit({ commits: [{ ...commitFor(chunk!, () => null), startedBefore: 6 }] });
    await sleep(300);
    await store.chunksReclaim({ limit: 100 });
    const [again] = await lease(store, { maxItems: 4 });
    expect(again).toMatchObject({ n: 10, skip: 0, attempt: 2, startedBefore: 6 });
  });

  it('drops the start mark when a release gives the attempt back', async () => {
    await submit(store, rows(10));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [{ ...commitFor(chunk!, () => null), startedBefore: 3 }] });
    await store.chunksCommit({ commits: [{ ...commitFor(chunk!, () => null, { commitNo: 1 }), close: 'release', unused: true }] });
    const [again] = await lease(store);
    expect(again).toMatchObject({ attempt: 1, startedBefore: null });
  });

  it('reclaims safely when two reconcilers run at once', async () => {
    const batch = await submit(store, rows(5_000));
    const leased = await lease(store, { leaseMs: 100 });
    await sleep(200);
    const results = await Promise.all([store.chunksReclaim({ limit: 100 }), store.chunksReclaim({ limit: 100 })]);
    expect(results[0]!.requeued + results[1]!.requeued).toBe(leased.length);
    expect(await itemCounts(store, batch.id)).toEqual({ pending: 5_000 });
    const again = await lease(store);
    expect(again.reduce((n, c) => n + c.n - c.skip, 0)).toBe(5_000);
  });

  it('cancels pending items at once and closes leased chunks later', async () => {
    const batch = await submit(store, rows(1_000));
    const [held] = await lease(store, { maxItems: 500 });
    const result = await store.batchCancel({ id: batch.id });
    expect(result.batch).toMatchObject({ status: 'cancelled', cancelled: 500, remaining: 500 });
    expect(result.leased).toBe(1);
    expect(await lease(store)).toEqual([]);
    await store.chunksCommit({ commits: [commitFor(held!, (slot) => (slot < 10 ? 'succeeded' : null), { close: 'cancel', unused: false })] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'cancelled', succeeded: 10, cancelled: 990, remaining: 0 });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 10, cancelled: 990 });
    expect((await store.batchLeases({ id: batch.id })).leased).toBe(0);
    await expect(store.batchCancel({ id: batch.id })).rejects.toThrow(ConflictError);
    await expect(store.batchCancel({ id: batch.id })).rejects.toThrow(/is cancelled; cancel needs a batch that is queued, running, paused/);
  });

  it('cancels items a worker hands back or retries after the batch was cancelled', async () => {
    const batch = await submit(store, rows(20));
    const [chunk] = await lease(store, { maxItems: 20 });
    await store.batchCancel({ id: batch.id });
    // The worker had not heard yet: it records two retries and hands the rest back.
    const late = commitFor(chunk!, (slot) => (slot < 2 ? 'moved' : slot < 5 ? 'succeeded' : null), { close: 'release', unused: false });
    await store.chunksCommit({ commits: [late] });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 3, pending: 17 });
    expect(await lease(store)).toEqual([]);
    expect(await store.batchesSweepCancelled({ id: batch.id })).toBe(17);
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 3, cancelled: 17 });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'cancelled', succeeded: 3, cancelled: 17, remaining: 0 });
    expect(await store.batchesSweepCancelled({})).toBe(0);
    expect((await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches).toEqual([]);
  });

  it('pauses and resumes; paused batches are not leased', async () => {
    const batch = await submit(store, rows(10));
    expect((await store.batchPause({ id: batch.id })).status).toBe('paused');
    expect(await lease(store)).toEqual([]);
    await expect(store.batchPause({ id: batch.id })).rejects.toThrow(/is paused; pause needs/);
    expect((await store.batchResume({ id: batch.id })).status).toBe('queued');
    const [chunk] = await lease(store);
    await store.batchPause({ id: batch.id });
    // A worker hands the unstarted items back, giving the attempt back too.
    await store.chunksCommit({ commits: [commitFor(chunk!, (slot) => (slot < 3 ? 'succeeded' : null), { close: 'release', unused: true })] });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 3, pending: 7 });
    expect((await store.batchResume({ id: batch.id })).status).toBe('running');
    const [again] = await lease(store);
    expect(again!.attempt).toBe(1);
    await expect(store.batchResume({ id: batch.id })).rejects.toThrow(/is running; resume needs a batch that is paused/);
    const types = (await store.eventsList({ batchId: batch.id, limit: 20 })).map((e) => e.type);
    expect(types).toEqual(['batch:submitted', 'batch:paused', 'batch:resumed', 'batch:started', 'batch:paused', 'batch:progress', 'batch:resumed']);
  });

  it('retries only the failed items, with fresh attempts', async () => {
    const batch = await submit(store, rows(10));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, (slot) => (slot % 3 === 0 ? 'failed' : 'succeeded'))] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 6, failed: 4 });
    const { batch: reopened, retried } = await store.batchRetryFailed({ id: batch.id });
    expect(retried).toBe(4);
    expect(reopened).toMatchObject({ status: 'running', succeeded: 6, failed: 0, remaining: 4, finishedAt: null });
    const [retry] = await lease(store);
    expect(retry!.seqs).toEqual([0, 3, 6, 9]);
    expect(retry!.attempt).toBe(1);
    await store.chunksCommit({ commits: [commitFor(retry!, () => 'succeeded')] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 10, failed: 0 });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 10 });
    expect((await store.batchRetryFailed({ id: batch.id })).retried).toBe(0);
  });

  it('retries no failed item of a chunk a worker still holds', async () => {
    const batch = await submit(store, rows(10));
    const [chunk] = await lease(store);
    const checkpoint = commitFor(chunk!, (slot) => (slot < 3 ? 'failed' : null));
    await store.chunksCommit({ commits: [checkpoint] });
    expect((await store.batchRetryFailed({ id: batch.id })).retried).toBe(0);
    const rest = commitFor(chunk!, (slot) => (slot >= 3 ? 'succeeded' : null), { commitNo: 1 });
    rest.state = JSON.stringify(JSON.parse(checkpoint.state).map((e: unknown, i: number) => e ?? JSON.parse(rest.state)[i]));
    rest.close = 'done';
    await store.chunksCommit({ commits: [rest] });
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 7, failed: 3 });
    expect((await store.batchRetryFailed({ id: batch.id })).retried).toBe(3);
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 7, pending: 3 });
    expect((await store.itemsList({ batchId: batch.id, limit: 100 })).length).toBe(10);
  });

  it('fails items whose chunk closes with an error, and can retry them', async () => {
    const batch = await submit(store, rows(5));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [{ ...commitFor(chunk!, () => null), close: 'fail', unused: true, error: { kind: 'lease_lost', message: 'gone' } }] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', failed: 5 });
    const failed = await store.itemsList({ batchId: batch.id, status: 'failed', limit: 10 });
    expect(failed.map((i) => [i.seq, i.attempts, i.error?.kind])).toEqual([0, 1, 2, 3, 4].map((s) => [s, 0, 'lease_lost']));
    expect((await store.batchRetryFailed({ id: batch.id })).retried).toBe(5);
    expect(await itemCounts(store, batch.id)).toEqual({ pending: 5 });
  });

  it('deletes a batch with its chunks and events, but not while chunks are leased', async () => {
    const keep = await submit(store, rows(3));
    const batch = await submit(store, rows(600));
    const leased = await lease(store, { maxItems: 500 });
    expect(leased[0]!.batchId).toBe(keep.id);
    const other = await lease(store, { maxItems: 500 });
    expect(other[0]!.batchId).toBe(batch.id);
    await expect(store.batchDelete({ id: batch.id })).rejects.toThrow(ConflictError);
    await store.chunksCommit({ commits: [commitFor(other[0]!, () => null, { close: 'release', unused: true })] });
    await store.batchDelete({ id: batch.id });
    await expect(store.batchGet({ id: batch.id })).rejects.toThrow(NotFoundError);
    expect(await store.eventsList({ batchId: batch.id, limit: 10 })).toEqual([]);
    expect((await store.batchList({ limit: 10 })).map((b) => b.id)).toEqual([keep.id]);
    await expect(store.batchDelete({ id: batch.id })).rejects.toThrow(/not found/);
  });

  it('prunes finished batches older than the cutoff, oldest first, a page at a time, never open or leased ones', async () => {
    // Submitted and worked one at a time, each is the only runnable batch when it is leased.
    const finish = async (options: Parameters<typeof submit>[2] = {}) => {
      const batch = await submit(store, rows(600), options);
      const chunks = await lease(store);
      await store.chunksCommit({ commits: chunks.map((chunk) => commitFor(chunk, (slot) => (slot % 100 === 0 ? 'failed' : 'succeeded'))) });
      expect((await store.batchGet({ id: batch.id })).status).toBe('completed');
      await sleep(5);
      return batch;
    };
    const [a, b, c] = [await finish(), await finish(), await finish()];
    const acme = await finish({ tenant: 'acme' });
    const cancelled = await submit(store, rows(600));
    const [held] = await lease(store, { maxItems: 500 });
    await store.batchCancel({ id: cancelled.id });
    await sleep(20);
    const cutoff = new Date();
    await sleep(20);
    const late = await finish();
    const open = await submit(store, rows(3));

    expect(await store.batchesPrunable({ finishedBefore: cutoff })).toBe(4);
    expect(await store.batchesPrunable({ finishedBefore: cutoff, tenant: 'acme' })).toBe(1);
    const page = { finishedBefore: cutoff, limit: 10, maxItems: 10_000 };
    expect(await store.batchesPrune({ ...page, tenant: 'acme' })).toEqual({ deleted: [acme.id], more: false });
    // Pages are cut by items (600 a batch; a first batch bigger than the page goes alone) and by count.
    expect(await store.batchesPrune({ ...page, maxItems: 1_000 })).toEqual({ deleted: [a.id], more: true });
    expect(await store.batchesPrune({ ...page, maxItems: 100 })).toEqual({ deleted: [b.id], more: true });
    expect(await store.batchesPrune({ ...page, limit: 1 })).toEqual({ deleted: [c.id], more: true });
    expect(await store.batchesPrune({ ...page, limit: 1 })).toEqual({ deleted: [], more: false });
    const { runSql } = await import('../helpers/sql.js');
    const prefix = kind === 'postgres' ? 'batchline.' : '';
    for (const gone of [a, b, c, acme]) {
      await expect(store.batchGet({ id: gone.id })).rejects.toThrow(NotFoundError);
      expect(await store.eventsList({ batchId: gone.id, limit: 10 })).toEqual([]);
      const [chunks] = await runSql(kind, store.location, `SELECT count(*) AS n FROM ${prefix}chunks WHERE batch_id = '${gone.id}'`);
      expect(Number(chunks!.n)).toBe(0);
    }
    expect((await store.eventsList({ batchId: late.id, limit: 10 })).length).toBeGreaterThan(0);

    // Any cutoff: the open batch stays, and the cancelled one until its worker closes the lease.
    const later = new Date(Date.now() + 60_000);
    expect(await store.batchesPrunable({ finishedBefore: later })).toBe(1);
    expect(await store.batchesPrune({ ...page, finishedBefore: later })).toEqual({ deleted: [late.id], more: false });
    await store.chunksCommit({ commits: [commitFor(held!, () => null, { close: 'cancel', unused: true })] });
    expect(await store.batchesPrune({ ...page, finishedBefore: later })).toEqual({ deleted: [cancelled.id], more: false });
    expect((await store.batchList({ limit: 10 })).map((batch) => batch.id)).toEqual([open.id]);
    expect(await itemCounts(store, open.id)).toEqual({ pending: 3 });
  });

  it('dates a batch when its items have all arrived, however long they took', async () => {
    const started = Date.now();
    const slowly = async function* () {
      yield* rows(2);
      await sleep(300);
      yield* rows(2);
    };
    const batch = await submit(store, slowly());
    expect(batch.total).toBe(4);
    expect(batch.createdAt.getTime()).toBeGreaterThanOrEqual(started + 290);
    expect((await store.batchGet({ id: batch.id })).createdAt).toEqual(batch.createdAt);
  });

  it('prunes or retries a failed batch when both race, never half of each', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 10; round++) {
      const batch = await submit(store, rows(1_200));
      const chunks = await lease(store);
      await store.chunksCommit({ commits: chunks.map((chunk) => commitFor(chunk, (slot) => (slot % 3 === 0 ? 'failed' : 'succeeded'))) });
      const { status, failed } = await store.batchGet({ id: batch.id });
      expect(status).toBe('completed');
      // Either call goes first in turn: on SQLite, whose one connection runs them in the order
      // called, that covers both outcomes; on PostgreSQL they race either way.
      const retryCall = () => store.batchRetryFailed({ id: batch.id });
      const pruneCall = () => store.batchesPrune({ finishedBefore: new Date(Date.now() + 60_000), limit: 10, maxItems: 10_000 });
      const [retry, prune] =
        round % 2 === 0
          ? await Promise.allSettled([retryCall(), pruneCall()])
          : await Promise.allSettled([pruneCall(), retryCall()]).then(([p, r]) => [r, p] as const);
      expect(prune.status).toBe('fulfilled');
      const pruned = prune.status === 'fulfilled' ? prune.value.deleted : [];
      outcomes.add(pruned.includes(batch.id) ? 'pruned' : 'retried');
      if (pruned.includes(batch.id)) {
        expect(retry.status === 'rejected' ? retry.reason : null).toBeInstanceOf(NotFoundError);
        await expect(store.batchGet({ id: batch.id })).rejects.toThrow(NotFoundError);
      } else {
        expect(retry.status).toBe('fulfilled');
        expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 1_200 - failed, pending: failed });
        await store.batchDelete({ id: batch.id });
      }
    }
    if (kind === 'sqlite') expect([...outcomes].sort()).toEqual(['pruned', 'retried']);
  });

  it('says not found for unknown, malformed and other tenants\' batch ids', async () => {
    const batch = await submit(store, rows(1), { tenant: 'acme' });
    await expect(store.batchGet({ id: 'nope' })).rejects.toThrow(NotFoundError);
    await expect(store.batchGet({ id: '01900000-0000-7000-8000-000000000000' })).rejects.toThrow(NotFoundError);
    await expect(store.batchGet({ id: batch.id, tenant: 'globex' })).rejects.toThrow(NotFoundError);
    expect((await store.batchGet({ id: batch.id, tenant: 'acme' })).id).toBe(batch.id);
    await expect(store.itemsList({ batchId: batch.id, tenant: 'globex', limit: 1 })).rejects.toThrow(NotFoundError);
  });

  it('takes batch ids in any case, as UUIDs are', async () => {
    const batch = await submit(store, rows(3));
    const upper = batch.id.toUpperCase();
    expect((await store.batchGet({ id: upper })).id).toBe(batch.id);
    await lease(store);
    expect((await store.batchLeases({ id: upper })).leased).toBe(1);
    expect((await store.itemsList({ batchId: upper, limit: 10 })).map((item) => item.seq)).toEqual([0, 1, 2]);
    expect((await store.eventsList({ batchId: upper, limit: 10 })).map((event) => event.type)).toContain('batch:submitted');
  });

  it('lists batches newest first with filters and keyset pages', async () => {
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await submit(store, rows(1), { type: i % 2 ? 'odd' : 't', tenant: i < 4 ? 'a' : 'b' }));
    const ids = made.map((b) => b.id).reverse();
    expect((await store.batchList({ limit: 10 })).map((b) => b.id)).toEqual(ids);
    expect((await store.batchList({ limit: 2 })).map((b) => b.id)).toEqual(ids.slice(0, 2));
    expect((await store.batchList({ limit: 2, before: ids[1] })).map((b) => b.id)).toEqual(ids.slice(2, 4));
    expect((await store.batchList({ limit: 10, type: 'odd' })).map((b) => b.type)).toEqual(['odd', 'odd']);
    expect((await store.batchList({ limit: 10, tenant: 'b' })).map((b) => b.id)).toEqual([ids[0]]);
    expect(await store.batchList({ limit: 10, status: ['completed'] })).toEqual([]);
  });

  it('lists items by status after a seq, across chunks and retry chunks', async () => {
    const batch = await submit(store, rows(1_200));
    const chunks = await lease(store);
    await store.chunksCommit({ commits: chunks.map((c) => commitFor(c, (slot) => ((c.seq0! + slot) % 100 === 7 ? 'moved' : (c.seq0! + slot) % 50 === 0 ? 'failed' : 'succeeded'))) });
    const failed = await store.itemsList({ batchId: batch.id, status: 'failed', limit: 100 });
    expect(failed.map((i) => i.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i * 50));
    expect(failed[0]!.error).toMatchObject({ kind: 'permanent' });
    const pending = await store.itemsList({ batchId: batch.id, status: 'pending', after: 500, limit: 3 });
    expect(pending.map((i) => i.seq)).toEqual([507, 607, 707]);
    const page = await store.itemsList({ batchId: batch.id, after: 1_195, limit: 10 });
    expect(page.map((i) => i.seq)).toEqual([1196, 1197, 1198, 1199]);
    const succeeded = await store.itemsList({ batchId: batch.id, status: 'succeeded', limit: 2 });
    expect(succeeded.map((i) => [i.seq, i.result])).toEqual([[1, { slot: 1 }], [2, { slot: 2 }]]);
  });

  it('shows the same items through the SQL items view as through itemsList', async () => {
    const { runSql } = await import('../helpers/sql.js');
    const parse = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);
    const compare = async (batchId: string) => {
      const listed = await store.itemsList({ batchId, limit: 10_000 });
      const prefix = kind === 'postgres' ? 'batchline.' : '';
      const viewRows = await runSql(kind, store.location, `SELECT * FROM ${prefix}items WHERE batch_id = '${batchId}' ORDER BY seq`);
      expect(viewRows.map((r) => ({ seq: Number(r.seq), status: r.status, attempts: Number(r.attempts), payload: parse(r.payload), result: parse(r.result) ?? null, error: parse(r.error) ?? null })))
        .toEqual(listed.map(({ seq, status, attempts, payload, result, error }) => ({ seq, status, attempts, payload, result, error })));
      return new Set(listed.map((i) => i.status));
    };
    const batch = await submit(store, [...rows(1_299), null]);
    const [first] = await lease(store, { maxItems: 7 });
    await store.chunksCommit({ commits: [commitFor(first!, (slot) => (slot % 2 ? 'succeeded' : slot === 2 ? 'moved' : 'failed'))] });
    const [second] = await lease(store, { maxItems: 600 });
    const partial = commitFor(second!, (slot) => (slot < 100 ? 'succeeded' : null));
    await store.chunksCommit({ commits: [partial] });
    const [third] = await lease(store, { maxItems: 10 });
    await store.chunksCommit({ commits: [commitFor(third!, (slot) => (slot === third!.skip ? 'succeeded' : null))] });
    expect(await compare(batch.id)).toEqual(new Set(['succeeded', 'failed', 'pending', 'running']));
    await store.chunksCommit({ commits: [{ ...commitFor(second!, () => null, { commitNo: 1 }), state: partial.state, close: 'fail', error: { kind: 'lease_lost', message: 'x' } }] });
    await store.batchCancel({ id: batch.id });
    expect(await compare(batch.id)).toEqual(new Set(['succeeded', 'failed', 'cancelled', 'running']));
  });

  it('follows events in commit order from a cursor', async () => {
    const cursor = await store.eventsCursor();
    const batch = await submit(store, rows(2));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, () => 'succeeded')] });
    const { events, cursor: next } = await store.eventsFollow({ after: cursor, limit: 10 });
    expect(events.map((e) => e.type)).toEqual(['batch:submitted', 'batch:started', 'batch:completed']);
    expect(events[2]!.data).toMatchObject({ status: 'completed', succeeded: 2 });
    expect(events.every((e) => e.batchId === batch.id && e.tenant === 'default')).toBe(true);
    expect((await store.eventsFollow({ after: next, limit: 10 })).events).toEqual([]);
    expect((await store.eventsFollow({ after: events[2]!.cursor, limit: 10 })).events).toEqual([]);
    expect((await store.eventsFollow({ after: events[0]!.cursor, limit: 10 })).events.map((e) => e.type)).toEqual(['batch:started', 'batch:completed']);
    // Pages: a full page hands back the last event's cursor, and the rest follows.
    const first = await store.eventsFollow({ after: cursor, limit: 2 });
    expect(first.events.map((e) => e.type)).toEqual(['batch:submitted', 'batch:started']);
    expect((await store.eventsFollow({ after: first.cursor, limit: 2 })).events.map((e) => e.type)).toEqual(['batch:completed']);
    expect((await store.eventsList({ afterId: events[0]!.id, limit: 10 })).map((e) => e.type)).toEqual(['batch:started', 'batch:completed']);
    await expect(store.eventsFollow({ after: 'nonsense', limit: 10 })).rejects.toThrow(/is not an event cursor/);
    // Cursors no database gives: an event beyond the newest, snapshots PostgreSQL would not write.
    const beyond = events[2]!.cursor.replace(/\d+$/, (n) => String(Number(n) + 1_000_000));
    await expect(store.eventsFollow({ after: beyond, limit: 10 })).rejects.toThrow(/beyond the newest event/);
    for (const forged of ['10:5:', '10:20:9', '10:20:15,12', '10:20:12,', `${events[2]!.cursor},1`]) {
      await expect(store.eventsFollow({ after: forged, limit: 10 }), forged).rejects.toThrow(/is not an event cursor/);
    }
  });

  it('follows new events after the newest batch and its events were deleted', async () => {
    const start = await store.eventsCursor();
    const first = await submit(store, rows(1));
    const seen = await store.eventsFollow({ after: start, limit: 10 });
    expect(seen.events.map((e) => e.batchId)).toEqual([first.id]);
    await store.batchDelete({ id: first.id });
    const second = await submit(store, rows(1));
    expect((await store.eventsFollow({ after: seen.cursor, limit: 10 })).events.map((e) => [e.type, e.batchId])).toEqual([['batch:submitted', second.id]]);
  });

  it.skipIf(kind !== 'postgres')('follows commits in order around a transaction that commits late', async () => {
    const pg = (await import('pg')).default;
    const other = new pg.Client({ connectionString: (await import('../helpers/stores.js')).pgUrl! });
    await other.connect();
    try {
      const cursor = await store.eventsCursor();
      // A transaction that takes an event id first and commits last.
      await other.query('BEGIN');
      await other.query(`INSERT INTO "${store.location.schema}".events (type, data) VALUES ('batch:progress', '{"late":true}')`);
      const batch = await submit(store, rows(1));
      expect((await store.eventsList({ batchId: batch.id, limit: 10 })).map((e) => e.type)).toEqual(['batch:submitted']);
      // Later commits are not held up by the transaction still running...
      const first = await store.eventsFollow({ after: cursor, limit: 10 });
      expect(first.events.map((e) => e.type)).toEqual(['batch:submitted']);
      await other.query('COMMIT');
      // ...and its event, with a smaller id, is not missed when it commits.
      const second = await store.eventsFollow({ after: first.cursor, limit: 10 });
      expect(second.events.map((e) => [e.type, e.data])).toEqual([['batch:progress', { late: true }]]);
      expect((await store.eventsFollow({ after: second.cursor, limit: 10 })).events).toEqual([]);
    } finally {
      await other.end();
    }
  });

  it('completes stuck batches once', async () => {
    const batch = await submit(store, rows(1));
    const [chunk] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(chunk!, () => 'succeeded')] });
    expect(await store.batchesFinalize()).toEqual([]);
    expect((await store.batchGet({ id: batch.id })).status).toBe('completed');
  });

  it('repairs counters that disagree with the items', async () => {
    const batch = await submit(store, rows(4));
    const [chunk] = await lease(store);
    const commit = commitFor(chunk!, () => 'succeeded');
    commit.delta.succeeded = 3; // a wrong delta: the chunk records four successes
    await store.chunksCommit({ commits: [commit] });
    const { mismatches } = await store.batchesVerify({ since: new Date(0), limit: 10 });
    expect(mismatches).toEqual([{ batchId: batch.id, stored: { succeeded: 3, failed: 0, cancelled: 0 }, actual: { succeeded: 4, failed: 0, cancelled: 0 } }]);
    expect((await store.batchGet({ id: batch.id })).succeeded).toBe(4);
    expect((await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches).toEqual([]);
  });

  it('reopens a batch that finished on counters which over-counted, so its items still run', async () => {
    const batch = await submit(store, rows(4), { limits: { chunkItems: 2 } });
    const [first] = await lease(store, { maxItems: 2 });
    const commit = commitFor(first!, () => 'succeeded');
    commit.delta.succeeded = 4; // a wrong delta: the chunk records two successes
    await store.chunksCommit({ commits: [commit] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', remaining: 0 });
    await store.batchesVerify({ since: new Date(0), limit: 10 });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'running', succeeded: 2, remaining: 2, finishedAt: null });
    const repaired = await store.eventsList({ batchId: batch.id, types: ['batch:counters-repaired'], limit: 10 });
    expect(repaired.map((e) => e.data.reopened)).toEqual(['running']);
    const [second] = await lease(store);
    await store.chunksCommit({ commits: [commitFor(second!, () => 'succeeded')] });
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 4, remaining: 0 });
  });

  it('verifies batches a page at a time, newest first, every one once', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(store, rows(2))).id);
    const seen: string[][] = [];
    let before: string | undefined;
    for (let pages = 0; pages < 5; pages++) {
      const { next } = await store.batchesVerify({ since: new Date(0), limit: 2, ...(before ? { before } : {}) });
      seen.push(next === null ? [] : [next]);
      if (next === null) break;
      before = next;
    }
    // Pages of two, newest first: the second and fourth newest end the first two pages.
    expect(seen).toEqual([[ids[3]!], [ids[1]!], []]);
  });

  it('verifies a batch of many chunks, counting every chunk whatever its state', async () => {
    // 600 chunks of 2 items: counted in several slices; most are cancelled without entries.
    const batch = await submit(store, rows(1_200), { limits: { chunkItems: 2 } });
    const leased = await lease(store, { maxItems: 20 });
    const wrong = leased.map((c) => commitFor(c, (slot) => (slot === 0 ? 'succeeded' : 'failed')));
    wrong[0]!.delta.failed = 0; // a wrong delta: the chunk records one failure
    await store.chunksCommit({ commits: wrong });
    await store.batchCancel({ id: batch.id });
    const [mismatch] = (await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches;
    expect(mismatch).toEqual({ batchId: batch.id, stored: { succeeded: 10, failed: 9, cancelled: 1_181 }, actual: { succeeded: 10, failed: 10, cancelled: 1_180 } });
    expect((await store.batchesVerify({ since: new Date(0), limit: 10 })).mismatches).toEqual([]);
  });

  it('takes locks one owner at a time until they expire', async () => {
    expect(await store.lockTry({ name: 'r', owner: 'a', ttlMs: 1_000 })).toBe(true);
    expect(await store.lockTry({ name: 'r', owner: 'b', ttlMs: 1_000 })).toBe(false);
    expect(await store.lockTry({ name: 'r', owner: 'a', ttlMs: 1_000 })).toBe(true);
    await sleep(1_100);
    expect(await store.lockTry({ name: 'r', owner: 'b', ttlMs: 1_000 })).toBe(true);
    await store.lockRelease({ name: 'r', owner: 'b' });
    expect(await store.lockTry({ name: 'r', owner: 'a', ttlMs: 200 })).toBe(true);
  });

  it('keeps worker heartbeats and prunes stale ones', async () => {
    await store.workerHeartbeat({ id: 'w1', host: 'h', pid: 1, types: ['t'], concurrency: 4, processed: 10, inFlight: 4, batches: ['b1', 'b2'] });
    await store.workerHeartbeat({ id: 'w1', host: 'h', pid: 1, types: ['t'], concurrency: 4, processed: 20, inFlight: 1, batches: ['b2'] });
    const [w] = await store.workersList();
    expect(w).toMatchObject({ id: 'w1', processed: 20, types: ['t'], concurrency: 4, inFlight: 1, batches: ['b2'] });
    await sleep(50);
    expect(await store.workersPrune({ staleMs: 10 })).toBe(1);
    expect(await store.workersList()).toEqual([]);
  });

  it("releases a worker: expires its leases only, keeps its recorded items, and drops its row", async () => {
    const batch = await submit(store, rows(1_000));
    const [dead] = await lease(store, { workerId: 'dead', maxItems: 500, leaseMs: 60_000 });
    const [alive] = await lease(store, { workerId: 'alive', maxItems: 500, leaseMs: 60_000 });
    await store.chunksCommit({ commits: [commitFor(dead!, (slot) => (slot < dead!.skip + 3 ? 'succeeded' : null))] });
    await store.workerHeartbeat({ id: 'dead', host: 'h', pid: 1, types: ['t'], concurrency: 1, processed: 3, inFlight: 1, batches: [batch.id] });
    await store.workerHeartbeat({ id: 'alive', host: 'h', pid: 2, types: ['t'], concurrency: 1, processed: 0, inFlight: 1, batches: [batch.id] });

    expect(await store.workerRelease({ id: 'dead' })).toEqual({ chunks: 1, found: true });
    expect((await store.workersList()).map((w) => w.id)).toEqual(['alive']);
    expect(await store.chunksReclaim({ limit: 100 })).toMatchObject({ requeued: 1 });
    // The released lease is fenced off: the dead worker's late commit is lost, the live one's holds.
    expect((await store.chunksCommit({ commits: [commitFor(dead!, () => 'succeeded', { commitNo: 1 })] })).lost).toEqual([dead!.chunkId]);
    expect((await store.chunksRenew({ workerId: 'alive', leases: [{ chunkId: alive!.chunkId, leaseNo: alive!.leaseNo }], leaseMs: 60_000 })).lost).toEqual([]);
    expect(await itemCounts(store, batch.id)).toEqual({ succeeded: 3, pending: 497, running: 500 });
    const [again] = await lease(store, { workerId: 'new' });
    expect(again!.chunkId).toBe(dead!.chunkId);

    expect(await store.workerRelease({ id: 'dead' })).toEqual({ chunks: 0, found: false });
    // A worker with a row and no lease is found, and its row goes.
    await store.workerHeartbeat({ id: 'idle', host: 'h', pid: 3, types: ['t'], concurrency: 1, processed: 0, inFlight: 0, batches: [] });
    expect(await store.workerRelease({ id: 'idle' })).toEqual({ chunks: 0, found: true });
  });

  it('lists and counts batches by labels, all of which must match', async () => {
    const a = await submit(store, rows(1), { labels: { file: 'a.csv', env: 'prod' } });
    await submit(store, rows(1), { labels: { file: 'b.csv', env: 'prod' } });
    await submit(store, rows(1));
    expect((await store.batchList({ labels: { env: 'prod' }, limit: 10 })).length).toBe(2);
    expect((await store.batchList({ labels: { env: 'prod', file: 'a.csv' }, limit: 10 })).map((b) => b.id)).toEqual([a.id]);
    expect(await store.batchList({ labels: { env: 'dev' }, limit: 10 })).toEqual([]);
    expect(await store.batchCount({ labels: { env: 'prod' } })).toBe(2);
    expect(await store.batchCount({})).toBe(3);
    expect(await store.batchCount({ tenant: 'nobody' })).toBe(0);
  });

  it('counts batches by status', async () => {
    expect(await store.batchesCount()).toEqual({});
    await submit(store, rows(2));
    const second = await submit(store, rows(1));
    await store.batchCancel({ id: second.id });
    expect(await store.batchesCount()).toEqual({ queued: 1, cancelled: 1 });
  });

  it('stores API keys by hash, lists them without it, and revokes them once', async () => {
    expect(await store.keysExist()).toBe(false);
    const created = await store.keyCreate({ id: 'k1', name: 'ci', tenant: 'acme', admin: false, hash: 'h1' });
    expect(created).toMatchObject({ id: 'k1', name: 'ci', tenant: 'acme', admin: false, revokedAt: null });
    expect(created).not.toHaveProperty('hash');
    await store.keyCreate({ id: 'k2', name: 'ops', tenant: 'default', admin: true, hash: 'h2' });
    expect(await store.keysExist()).toBe(true);
    expect((await store.keysList()).map((k) => [k.id, k.admin])).toEqual(expect.arrayContaining([['k1', false], ['k2', true]]));
    expect(await store.keyFind({ id: 'k2' })).toMatchObject({ id: 'k2', admin: true, hash: 'h2' });
    expect(await store.keyFind({ id: 'nope' })).toBeNull();
    await expect(store.keyCreate({ id: 'k1', name: 'again', tenant: 'acme', admin: false, hash: 'h3' })).rejects.toThrow();
    const revoked = await store.keyRevoke({ id: 'k1' });
    expect(revoked.revokedAt).toBeInstanceOf(Date);
    expect((await store.keyRevoke({ id: 'k1' })).revokedAt).toEqual(revoked.revokedAt);
    await expect(store.keyRevoke({ id: 'nope' })).rejects.toBeInstanceOf(NotFoundError);
    // Revoked keys still count: an API that once had keys never opens up again.
    await store.keyRevoke({ id: 'k2' });
    expect(await store.keysExist()).toBe(true);
  });
});
