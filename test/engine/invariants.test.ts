/**
 * DESIGN.md invariants 1-7, and cancel / pause / resume / retry-failed / delete, exercised
 * through the public Batchline API on both stores, with real workers in this process.
 */

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Batchline, ConflictError, PermanentError, RetryLaterError } from '../../src/index.js';
import { formatCents } from '../../src/core/decimal.js';
import { PRUNE_PAGE } from '../../src/engine/reconciler.js';
import { gate, nested, sleep, until } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

type Row = { i: number; amount: string };
const rowsOf = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ i, amount: (((i * 7919) % 100_000) / 100).toFixed(2) }));
const cents = (amount: string) => BigInt(amount.replace('.', ''));

describe.each(storeKinds)('engine invariants: %s', (kind) => {
  let location: Awaited<ReturnType<typeof freshDatabase>>;
  const open: Batchline[] = [];
  const openBl = async () => {
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    open.push(bl);
    return bl;
  };
  beforeEach(async () => {
    location = await freshDatabase(kind);
  });
  afterEach(async () => {
    for (const bl of open.splice(0)) await bl.close({ timeoutMs: 2_000 });
    await location.cleanup();
  });

  it('runs every item to a terminal status, counts each success once, and keeps counters equal to items at every commit (1, 2, 3, 4)', async () => {
    const bl = await openBl();
    const calls = new Map<string, number[]>();
    bl.define<Row>(
      'txn',
      async (row, ctx) => {
        calls.set(ctx.idempotencyKey, [...(calls.get(ctx.idempotencyKey) ?? []), ctx.attempt]);
        if (row.i % 97 === 0) throw new PermanentError(`row ${row.i} is invalid`);
        ctx.aggregate('balance', row.amount);
        if (row.i % 13 === 0 && ctx.attempt === 1) throw new Error('provider hiccup');
        if (row.i % 3 === 0) await sleep(1);
        return { i: row.i };
      },
      { maxAttempts: 3, backoff: { baseMs: 5, maxMs: 20 } },
    );
    const rows = rowsOf(5_000);
    const batch = await bl.submit('txn', rows);
    await bl.start({ concurrency: 16, checkpointMs: 20, targetLeaseMs: 50 });

    let checks = 0;
    let mismatches: unknown[] = [];
    while ((await bl.getBatch(batch.id)).remaining > 0) {
      mismatches = mismatches.concat(await counterMismatches(kind, location));
      checks++;
    }
    const done = await bl.wait(batch.id);
    expect(mismatches).toEqual([]);
    expect(checks).toBeGreaterThan(0);

    const invalid = rows.filter((r) => r.i % 97 === 0);
    expect(done).toMatchObject({ status: 'completed', total: 5_000, succeeded: 5_000 - invalid.length, failed: invalid.length, cancelled: 0, remaining: 0 });
    const expected = rows.filter((r) => r.i % 97 !== 0).reduce((sum, r) => sum + cents(r.amount), 0n);
    expect(done.aggregates.balance).toBe(formatCents(expected));
    expect(await counterMismatches(kind, location)).toEqual([]);

    // Invariant 4: a handler runs again only after a failure.
    for (const row of rows) {
      const attempts = calls.get(`${batch.id}:${row.i}`);
      if (row.i % 97 !== 0 && row.i % 13 === 0) expect(attempts).toEqual([1, 2]);
      else expect(attempts).toEqual([1]);
    }
    const failed = await bl.items(batch.id, { status: 'failed', limit: 100 });
    expect(failed.map((i) => i.seq)).toEqual(invalid.map((r) => r.i));
    expect(failed[0]!.error).toMatchObject({ kind: 'permanent', name: 'PermanentError', message: 'row 0 is invalid' });
    expect(failed[0]!.error!.at).toContain('invariants.test.ts');
    const retried = await bl.items(batch.id, { after: 12, limit: 1 });
    expect(retried[0]).toMatchObject({ seq: 13, status: 'succeeded', attempts: 2, result: { i: 13 } });
  });

  it('writes batch:completed once although several workers race to finish (5)', async () => {
    const a = await openBl();
    const b = await openBl();
    const seen: string[] = [];
    for (const bl of [a, b]) bl.define('noop', async () => {});
    a.on('batch:completed', (event) => seen.push(event.batchId!));
    const batches = [];
    for (let i = 0; i < 6; i++) batches.push(await a.submit('noop', rowsOf(700)));
    await Promise.all([a.start({ concurrency: 8, maxLeaseItems: 100 }), b.start({ concurrency: 8, maxLeaseItems: 100 })]);
    for (const batch of batches) expect((await a.wait(batch.id)).succeeded).toBe(700);
    for (const batch of batches) {
      const completed = await a.events({ batchId: batch.id, types: ['batch:completed'] });
      expect(completed).toHaveLength(1);
    }
    // The event stream follows committed transactions; on PostgreSQL a long transaction elsewhere
    // (another test file's bulk insert) delays it, so wait for it rather than sleeping a fixed time.
    const deadline = Date.now() + 20_000;
    while (seen.length < batches.length && Date.now() < deadline) await sleep(50);
    await sleep(200);
    expect(seen.sort()).toEqual(batches.map((b) => b.id).sort());
  });

  it('starts no item of a batch after cancel() returns, in this process or another (6)', async () => {
    const worker = await openBl();
    const steering = await openBl();
    const cancelledAt = new Map<string, number>();
    const lateStarts: string[] = [];
    worker.define<Row>('slow', async (row, ctx) => {
      if (Date.now() >= (cancelledAt.get(ctx.batchId) ?? Infinity)) lateStarts.push(`${ctx.batchId}:${row.i}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 20);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    });
    const local = await worker.submit('slow', rowsOf(2_000));
    const remote = await worker.submit('slow', rowsOf(2_000));
    await worker.start({ concurrency: 20, controlPollMs: 50 });
    while ((await worker.getBatch(local.id)).succeeded < 40 || (await worker.getBatch(remote.id)).succeeded < 40) await sleep(10);

    await worker.cancel(local.id);
    cancelledAt.set(local.id, Date.now());
    await sleep(150);
    expect((await worker.getBatch(remote.id)).status).toBe('running');

    // Cancel from an instance with no workers: the worker learns through its control poll (or NOTIFY).
    await steering.cancel(remote.id);
    cancelledAt.set(remote.id, Date.now());
    await sleep(300);
    expect(lateStarts).toEqual([]);

    for (const id of [local.id, remote.id]) {
      // Items running at the cancel stop at their abort; their chunk closes when the worker sees it.
      await until(async () => (await worker.getBatch(id)).remaining === 0);
      const batch = await worker.getBatch(id);
      expect(batch.status).toBe('cancelled');
      expect(batch.remaining).toBe(0);
      expect(batch.succeeded + batch.cancelled).toBe(2_000);
      expect(batch.cancelled).toBeGreaterThan(0);
    }
    expect(await counterMismatches(kind, location)).toEqual([]);
    await expect(worker.cancel(local.id)).rejects.toThrow(ConflictError);
    const events = await worker.events({ batchId: local.id, types: ['batch:cancelled', 'batch:completed'] });
    expect(events.map((e) => e.type)).toEqual(['batch:cancelled']);
  });

  it('keeps a batch within its concurrency cap across workers, and goes on as soon as the cap frees', async () => {
    // pollMs of a minute: a worker whose lease found the cap full must not wait for that poll.
    const a = await openBl();
    const b = await openBl();
    let running = 0;
    let most = 0;
    for (const bl of [a, b]) {
      bl.define('capped', async () => {
        most = Math.max(most, ++running);
        await sleep(20);
        running--;
      });
    }
    const batch = await a.submit('capped', rowsOf(60), { concurrency: 3 });
    await a.start({ concurrency: 8, pollMs: 60_000 });
    await b.start({ concurrency: 8, pollMs: 60_000 });
    expect(await a.wait(batch.id, { timeoutMs: 20_000 })).toMatchObject({ status: 'completed', succeeded: 60 });
    expect(most).toBe(3);
  });

  it.skipIf(kind !== 'postgres')('wakes a worker of another Batchline on the database when a capped batch frees room, rather than at its next poll', async () => {
    // a holds the capped batch's one slot until b has started and its first lease found the
    // cap full; b's poll is a minute, so it runs a capped item only if a commit that frees the
    // cap wakes it (NOTIFY). Without that, a runs all six between its long items.
    const a = await openBl();
    const b = await openBl();
    const ranBy = { a: 0, b: 0 };
    const bStarted = gate();
    a.define('capped', async () => {
      if (++ranBy.a === 1) await bStarted.passed;
      await sleep(300);
    });
    a.define('long', async () => sleep(1_000));
    b.define('capped', async () => {
      ranBy.b++;
      await sleep(300);
    });
    const capped = await a.submit('capped', rowsOf(6), { concurrency: 1 });
    await a.submit('long', rowsOf(10));
    await a.start({ concurrency: 1, pollMs: 60_000 });
    await until(() => ranBy.a === 1);
    await b.start({ concurrency: 1, pollMs: 60_000 });
    await sleep(500); // b's first lease has come back empty
    bStarted.open();
    expect(await b.wait(capped.id, { timeoutMs: 30_000 })).toMatchObject({ status: 'completed', succeeded: 6 });
    expect(ranBy.a + ranBy.b).toBe(6);
    // Which worker takes each freed slot is a race; b must have been woken to take one.
    expect(ranBy.b).toBeGreaterThanOrEqual(1);
  });

  it.skipIf(kind !== 'postgres')('does not have every idle worker lease on each announcement: those close together go as one lease', async () => {
    // One worker runs a capped batch, and each of its commits under the cap announces work.
    // Four others, for a type with nothing to do, lease on the first announcement after a
    // quiet spell and on those that follow at most every 100 ms; leasing on each would be at
    // least four empty leases per item.
    const runner = await openBl();
    runner.define('capped', async () => sleep(5));
    await runner.start({ concurrency: 1, reconciler: false });
    let idleLeases = 0;
    for (let i = 0; i < 4; i++) {
      const bl = await openBl();
      bl.define('other', async () => {});
      const lease = bl.store.chunksLease.bind(bl.store);
      bl.store.chunksLease = async (params) => (idleLeases++, lease(params));
      await bl.start({ concurrency: 1, reconciler: false });
    }
    idleLeases = 0;
    const started = Date.now();
    const batch = await runner.submit('capped', rowsOf(200), { concurrency: 1 });
    expect(await runner.wait(batch.id, { timeoutMs: 60_000 })).toMatchObject({ status: 'completed', succeeded: 200 });
    const seconds = (Date.now() - started) / 1000;
    // Each: at most 10 announced leases a second and 2 polls (500 ms), a few more at the edges.
    expect(idleLeases).toBeLessThanOrEqual(4 * (Math.ceil(seconds * 12) + 3));
  });

  it('records items running at a cancel as they ended: cancelled on their abort, failed with their own error', async () => {
    const bl = await openBl();
    bl.define<Row>('ends.late', async (row, ctx) => {
      // i 0 stops on its signal; the others end their own way once it fires (still running at
      // the cancel however slow the machine, then done within its grace).
      if (row.i === 0) {
        await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
      }
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      await sleep(50);
      if (row.i === 1) throw new Error('the ledger refused it');
      if (row.i === 2) throw new PermanentError('no such account');
      return { i: row.i };
    }, { maxAttempts: 5 });
    const batch = await bl.submit('ends.late', rowsOf(4));
    await bl.start({ concurrency: 4 });
    await until(async () => (await bl.items(batch.id, { status: 'running' })).length === 4);
    await bl.cancel(batch.id);
    const settled = await bl.wait(batch.id);
    expect(settled).toMatchObject({ status: 'cancelled', succeeded: 1, failed: 2, cancelled: 1, remaining: 0 });
    const items = await bl.items(batch.id);
    expect(items.map((item) => [item.status, item.attempts, item.error?.kind ?? null, item.error?.message ?? null])).toEqual([
      ['cancelled', 1, null, null],
      ['failed', 1, 'transient', 'the ledger refused it'],
      ['failed', 1, 'permanent', 'no such account'],
      ['succeeded', 1, null, null],
    ]);
    expect(await counterMismatches(kind, location)).toEqual([]);
  });

  it('pauses (no new starts, unstarted items handed back) and resumes to completion', async () => {
    const bl = await openBl();
    let started = 0;
    bl.define('slow', async () => {
      started++;
      await sleep(10);
    });
    const batch = await bl.submit('slow', rowsOf(600));
    await bl.start({ concurrency: 10 });
    while ((await bl.getBatch(batch.id)).succeeded < 30) await sleep(5);
    expect((await bl.pause(batch.id)).status).toBe('paused');
    await sleep(100);
    const atPause = started;
    await sleep(300);
    expect(started).toBe(atPause);
    // The items running at the pause finish, and the commit that records them hands the rest back.
    await until(async () => (await bl.items(batch.id, { status: 'running' })).length === 0);
    const paused = await bl.getBatch(batch.id);
    expect(paused.status).toBe('paused');
    const pending = await bl.items(batch.id, { status: 'pending', limit: 1_000 });
    expect(pending.length).toBe(paused.remaining);
    expect(pending.every((item) => item.attempts === 0)).toBe(true);
    expect((await bl.items(batch.id, { status: 'running' })).length).toBe(0);
    await bl.resume(batch.id);
    const done = await bl.wait(batch.id);
    expect(done).toMatchObject({ status: 'completed', succeeded: 600 });
    expect(started).toBe(600);
  });

  it('retry-failed re-runs only the failed items', async () => {
    const bl = await openBl();
    const runs = new Map<number, number>();
    let healthy = false;
    bl.define<Row>('flaky', async (row) => {
      runs.set(row.i, (runs.get(row.i) ?? 0) + 1);
      if (row.i % 10 === 0 && !healthy) throw new PermanentError('not yet');
    });
    const batch = await bl.submit('flaky', rowsOf(300));
    await bl.start({ concurrency: 8 });
    expect(await bl.wait(batch.id)).toMatchObject({ status: 'completed', succeeded: 270, failed: 30 });
    healthy = true;
    const { retried } = await bl.retryFailed(batch.id);
    expect(retried).toBe(30);
    const done = await bl.wait(batch.id);
    expect(done).toMatchObject({ status: 'completed', succeeded: 300, failed: 0 });
    for (const [i, count] of runs) expect(count).toBe(i % 10 === 0 ? 2 : 1);
    const completions = await bl.events({ batchId: batch.id, types: ['batch:completed', 'batch:retried'] });
    expect(completions.map((e) => e.type)).toEqual(['batch:completed', 'batch:retried', 'batch:completed']);
  });

  it('deletes a batch with its items and events, cancelling it first when it is open', async () => {
    const bl = await openBl();
    bl.define('slow', async () => sleep(5));
    const keep = await bl.submit('slow', rowsOf(10));
    const batch = await bl.submit('slow', rowsOf(500));
    await bl.start({ concurrency: 5 });
    await bl.wait(keep.id);
    await bl.deleteBatch(batch.id);
    await expect(bl.getBatch(batch.id)).rejects.toThrow(/not found/);
    expect(await bl.events({ batchId: batch.id })).toEqual([]);
    expect((await bl.listBatches()).map((b) => b.id)).toEqual([keep.id]);
    const { runSql } = await import('../helpers/sql.js');
    const left = await runSql(kind, location, `SELECT count(*) AS n FROM ${kind === 'postgres' ? 'batchline.' : ''}items WHERE batch_id = '${batch.id}'`);
    expect(Number(left[0]!.n)).toBe(0);
  });

  it('deletes a batch that another caller cancels at the same moment', async () => {
    const bl = await openBl();
    const batch = await bl.submit('nobody', rowsOf(10));
    // The cancel lands between delete's look at the batch and its own cancel.
    const get = bl.getBatch.bind(bl);
    bl.getBatch = async (id, options) => {
      const seen = await get(id, options);
      bl.getBatch = get;
      await bl.cancel(id);
      return seen;
    };
    await bl.deleteBatch(batch.id);
    await expect(get(batch.id)).rejects.toThrow(/not found/);
  });

  it('prunes finished batches past an age through every page, counting them first in a dry run', async () => {
    const bl = await openBl();
    bl.define('t', async () => {});
    const finished = [];
    for (let i = 0; i < 2 * PRUNE_PAGE + 50; i++) finished.push(await bl.submit('t', rowsOf(1), { idempotencyKey: `k${i}` }));
    await bl.start({ concurrency: 10 });
    for (const batch of finished) await bl.wait(batch.id);
    await bl.stop();
    const open = await bl.submit('t', rowsOf(2));
    await sleep(5);
    expect(await bl.prune({ olderThanMs: 3_600_000 })).toMatchObject({ batches: 0, dryRun: false });
    expect(await bl.prune({ olderThanMs: 0, dryRun: true })).toMatchObject({ batches: finished.length, dryRun: true });
    expect(await bl.countBatches()).toBe(finished.length + 1);
    // A budget stops it after the page it ran out in, saying more are left (each page is
    // made to take 5 ms, so a page finishing within the same millisecond cannot run a second).
    const prunePage = bl.store.batchesPrune.bind(bl.store);
    bl.store.batchesPrune = async (params) => (await sleep(5), prunePage(params));
    expect(await bl.prune({ olderThanMs: 0, budgetMs: 1 })).toMatchObject({ batches: PRUNE_PAGE, dryRun: false, more: true });
    bl.store.batchesPrune = prunePage;
    expect(await bl.prune({ olderThanMs: 0 })).toMatchObject({ batches: finished.length - PRUNE_PAGE, dryRun: false, more: false });
    expect((await bl.listBatches()).map((b) => b.id)).toEqual([open.id]);
    // A pruned batch's idempotency key is free again.
    expect((await bl.submit('t', rowsOf(1), { idempotencyKey: 'k0' })).created).toBe(true);
    await expect(bl.prune({ olderThanMs: -1 })).rejects.toThrow(expect.objectContaining({ code: 'invalid_options', message: 'olderThanMs must be a whole number of milliseconds, at least 0, got -1' }));
    await expect(bl.prune({ olderThanMs: 0, budgetMs: 0 })).rejects.toThrow(expect.objectContaining({ code: 'invalid_options', message: 'budgetMs must be a positive number of milliseconds, got 0' }));
  });

  it("measures a prune's cutoff on the store's clock, not the app's", async () => {
    const bl = await openBl();
    bl.define('t', async () => {});
    const done = await bl.submit('t', rowsOf(1));
    await bl.start({ concurrency: 1 });
    await bl.wait(done.id);
    await bl.stop();
    // This process's clock runs a day ahead of the database's. PostgreSQL wrote finished_at
    // with its now(), so the batch is seconds old there; SQLite's clock is this process's.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 86_400_000 });
    try {
      const result = await bl.prune({ olderThanMs: 3_600_000, dryRun: true });
      expect(result.batches).toBe(kind === 'postgres' ? 0 : 1);
      expect(await bl.prune({ olderThanMs: 3_600_000 })).toMatchObject({ batches: kind === 'postgres' ? 0 : 1 });
      if (kind === 'postgres') expect(result.finishedBefore.getTime()).toBeLessThan(Date.now() - 86_400_000);
    } finally {
      vi.useRealTimers();
    }
  });

  it('returns the first batch for a repeated idempotency key (7)', async () => {
    const bl = await openBl();
    const first = await bl.submit('t', rowsOf(50), { idempotencyKey: 'file-2026-11-22', tenant: 'acme' });
    const second = await bl.submit('t', rowsOf(50), { idempotencyKey: 'file-2026-11-22', tenant: 'acme' });
    expect(second).toMatchObject({ id: first.id, created: false });
    expect(await bl.listBatches()).toHaveLength(1);
    await expect(bl.submit('t', rowsOf(51), { idempotencyKey: 'file-2026-11-22', tenant: 'acme' })).rejects.toThrow(/different items/);
  });

  it('returns the first batch to submits racing with one idempotency key (7)', async () => {
    const bl = await openBl();
    // Items that arrive over time (a file, a request body): both submits pass the first key
    // check before either commits.
    async function* arriving(n: number) {
      for (let i = 0; i < n; i++) {
        if (i % 100 === 0) await sleep(1);
        yield { i };
      }
    }
    const [a, b] = await Promise.all([bl.submit('t', arriving(2_000), { idempotencyKey: 'same' }), bl.submit('t', arriving(2_000), { idempotencyKey: 'same' })]);
    expect(a.id).toBe(b.id);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(await bl.countBatches()).toBe(1);
  });

  it('refuses the same idempotency key for a file split differently (7)', async () => {
    const bl = await openBl();
    const file = join(mkdtempSync(join(tmpdir(), 'batchline-split-')), 'rows.jsonl');
    writeFileSync(file, rowsOf(10).map((row) => JSON.stringify(row)).join('\n'));
    const whole = await bl.submitFile('t', file, { idempotencyKey: 'file-k' });
    expect(whole.map((b) => [b.idempotencyKey, b.total])).toEqual([['file-k', 10]]);
    await expect(bl.submitFile('t', file, { idempotencyKey: 'file-k', batches: 2 })).rejects.toThrow(ConflictError);
    const other = await bl.submitFile('t', file, { idempotencyKey: 'file-j', batches: 2 });
    expect(other.map((b) => [b.idempotencyKey, b.total])).toEqual([['file-j', 5], ['file-j#2/2', 5]]);
    await expect(bl.submitFile('t', file, { idempotencyKey: 'file-j', batches: 5 })).rejects.toThrow(ConflictError);
    await expect(bl.submitFile('t', file, { idempotencyKey: 'file-j' })).rejects.toThrow(ConflictError);
    expect((await bl.submitFile('t', file, { idempotencyKey: 'file-j', batches: 2 })).map((b) => [b.id, b.created])).toEqual(other.map((b) => [b.id, false]));
    expect(await bl.countBatches()).toBe(3);
  });

  it('times out attempts through their signal, retries them, then fails them as timeouts', async () => {
    const bl = await openBl();
    const aborted: string[] = [];
    bl.define('hang', (_row, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => {
      aborted.push((ctx.signal.reason as Error).name);
      reject(ctx.signal.reason);
    })), { timeoutMs: 100, maxAttempts: 2, backoff: { baseMs: 10, maxMs: 10 } });
    const batch = await bl.submit('hang', rowsOf(3));
    await bl.start({ concurrency: 5 });
    const done = await bl.wait(batch.id, { timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'completed', failed: 3 });
    expect(aborted).toHaveLength(6);
    const [item] = await bl.items(batch.id, { limit: 1 });
    expect(item).toMatchObject({ status: 'failed', attempts: 2, error: { kind: 'timeout' } });
  });

  it('keeps a timed-out item\'s slot while its handler ignores the signal, for a grace period at most', async () => {
    const bl = await openBl();
    let running = 0;
    let most = 0;
    // Ignores its signal: returns 400 ms after starting, whatever the timeout says. Item 2 never returns.
    bl.define('stubborn', async (row: { i: number }) => {
      running++;
      most = Math.max(most, running);
      try {
        await new Promise((resolve) => (row.i === 2 ? undefined : setTimeout(resolve, 400)));
      } finally {
        running--;
      }
    }, { timeoutMs: 100, maxAttempts: 1 });
    const batch = await bl.submit('stubborn', rowsOf(5));
    await bl.start({ concurrency: 1, cancelGraceMs: 700 });
    const done = await bl.wait(batch.id, { timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'completed', failed: 5 });
    // One slot: a timed-out handler still running kept it, so no two handlers ran at once,
    // except after the grace period let the one that never returns go.
    const items = await bl.items(batch.id);
    expect(items.every((item) => item.error?.kind === 'timeout')).toBe(true);
    expect(most).toBe(2);
  });

  it('honours RetryLaterError delays and fails results that are not JSON, or that JSON would change', async () => {
    const bl = await openBl();
    const seen: number[] = [];
    bl.define<Row>('later', async (row, ctx) => {
      seen.push(Date.now());
      if (row.i === 0 && ctx.attempt === 1) throw new RetryLaterError('rate limited', { delayMs: 300 });
      if (row.i === 1) return { n: 1n };
      // JSON would store these changed: NaN as null, a Map as {}.
      if (row.i === 2) return { ratio: NaN };
      if (row.i === 3) return new Map([['a', 1]]);
      return 'ok';
    });
    const batch = await bl.submit('later', rowsOf(4));
    await bl.start({ concurrency: 2 });
    const done = await bl.wait(batch.id);
    expect(done).toMatchObject({ succeeded: 1, failed: 3 });
    const [first, second, third, fourth] = await bl.items(batch.id);
    expect(first).toMatchObject({ status: 'succeeded', attempts: 2, result: 'ok' });
    expect(second).toMatchObject({ status: 'failed', error: { kind: 'invalid_result' } });
    expect(third).toMatchObject({ status: 'failed', attempts: 1, error: { kind: 'invalid_result', message: 'the result has NaN at .ratio, which JSON stores as null; return values JSON keeps' } });
    expect(fourth).toMatchObject({ status: 'failed', attempts: 1, error: { kind: 'invalid_result', message: 'the result has a Map at the top, which JSON stores as {}; return values JSON keeps' } });
    expect(Math.max(...seen) - Math.min(...seen)).toBeGreaterThanOrEqual(250);
  });

  it('fails an item whose aggregate delta is too long for the stores at once, and the batch finishes', async () => {
    const bl = await openBl();
    bl.define<{ delta: string }>('sum', async (row, ctx) => {
      ctx.aggregate('total', row.delta === 'big' ? 10n ** 600n : row.delta);
    });
    const batch = await bl.submit('sum', [{ delta: '1.25' }, { delta: '1e-999' }, { delta: 'big' }, { delta: `${'9'.repeat(500)}` }]);
    await bl.start({ concurrency: 2 });
    const done = await bl.wait(batch.id, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'completed', succeeded: 2, failed: 2 });
    const [, tiny, big] = await bl.items(batch.id);
    expect(tiny).toMatchObject({ status: 'failed', attempts: 1, error: { kind: 'permanent', message: 'aggregate total: "1e-999" is 1001 characters as plain decimal text; the limit is 500' } });
    expect(big).toMatchObject({ status: 'failed', attempts: 1, error: { kind: 'permanent', message: expect.stringMatching(/^aggregate total: "10+" is 601 characters/) } });
    expect(done.aggregates.total).toBe(`1${'0'.repeat(500)}.25`);
  });

  it('refuses items nested deeper than 512 levels at submit and fails results nested deeper, so SQL reads every stored value', async () => {
    const bl = await openBl();
    // Echoes its input, as a handler that returns what it was given does; { deeper: n } returns a value nested n levels.
    bl.define<unknown>('echo', async (payload) => {
      const deeper = (payload as { deeper?: number } | null)?.deeper;
      return deeper === undefined ? payload : nested(deeper);
    });
    await expect(bl.submit('echo', [{ i: 0 }, nested(1_500)])).rejects.toThrow(/^item 2 \(seq 1\): item nests arrays and objects more than 512 levels deep; the limit is 512/);
    expect(await bl.countBatches()).toBe(0);

    const batch = await bl.submit('echo', [{ i: 0 }, { deeper: 1_500 }, nested(512), { deeper: 513 }]);
    await bl.start({ concurrency: 2 });
    expect(await bl.wait(batch.id)).toMatchObject({ status: 'completed', succeeded: 2, failed: 2 });
    const [first, second, third, fourth] = await bl.items(batch.id);
    expect(first).toMatchObject({ status: 'succeeded', result: { i: 0 } });
    const tooDeep = { kind: 'invalid_result', message: 'the result nests arrays and objects more than 512 levels deep; the limit is 512' };
    expect(second).toMatchObject({ status: 'failed', attempts: 1, error: tooDeep });
    expect(third).toMatchObject({ status: 'succeeded', result: nested(512) });
    expect(fourth).toMatchObject({ status: 'failed', attempts: 1, error: tooDeep });
    // The documented counter check runs SQL JSON functions over every chunk of the batch.
    expect(await counterMismatches(kind, location)).toEqual([]);
  });

  it('fails items whatever their handlers throw, and refuses a retry delay no store can hold', async () => {
    const bl = await openBl();
    bl.define<Row>(
      'odd.throw',
      async (row) => {
        // An Error whose message is an object, as some RPC clients build; one whose stack getter
        // throws; a frozen null-prototype object.
        if (row.i === 0) throw Object.assign(new Error('rpc failed'), { message: { code: -32000 } });
        if (row.i === 1) {
          const error = new Error('no stack');
          Object.defineProperty(error, 'stack', { get: () => { throw new Error('stack getter'); } });
          throw error;
        }
        throw Object.freeze(Object.create(null));
      },
      { maxAttempts: 1 },
    );
    const batch = await bl.submit('odd.throw', rowsOf(3));
    await bl.start({ concurrency: 3 });
    expect(await bl.wait(batch.id, { timeoutMs: 20_000 })).toMatchObject({ status: 'completed', failed: 3 });
    const errors = (await bl.items(batch.id)).map((item) => item.error?.message);
    expect(errors).toEqual(['{"code":-32000}', 'no stack', 'non-Error thrown: {}']);
    expect(() => new RetryLaterError('later', { delayMs: 1e300 })).toThrow(/from 0 to 2147483647/);
  });

  it('renews leases between CPU-bound items, so none runs twice', async () => {
    const bl = await openBl();
    const runs = new Map<number, number>();
    // Each item holds the event loop for 700 ms of a 1,000 ms lease.
    bl.define<Row>('cpu.bound', (row) => {
      runs.set(row.i, (runs.get(row.i) ?? 0) + 1);
      const started = Date.now();
      while (Date.now() - started < 700);
      return row.i;
    });
    const batch = await bl.submit('cpu.bound', rowsOf(4));
    await bl.start({ concurrency: 1, leaseMs: 1_000 });
    expect(await bl.wait(batch.id, { timeoutMs: 30_000 })).toMatchObject({ status: 'completed', succeeded: 4 });
    expect([...runs.values()]).toEqual([1, 1, 1, 1]);
    expect((await bl.items(batch.id)).map((item) => item.attempts)).toEqual([1, 1, 1, 1]);
  });

  it('records a failure that follows a shutdown abort as the shutdown', async () => {
    const bl = await openBl();
    bl.define(
      'abortable',
      (_row, ctx) => new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new DOMException('This operation was aborted', 'AbortError')))),
      { maxAttempts: 1 },
    );
    const batch = await bl.submit('abortable', rowsOf(1));
    await bl.start({ concurrency: 1 });
    while ((await bl.items(batch.id, { status: 'running' })).length === 0) await sleep(10);
    await bl.stop({ timeoutMs: 100 });
    const [item] = await bl.items(batch.id);
    expect(item).toMatchObject({ status: 'failed', error: { message: 'the worker is shutting down' } });
  });

  it('stores results and errors holding U+0000 or lone surrogates, and shrugs off a listener that throws', async () => {
    const bl = await openBl();
    bl.define<Row>('odd.text', async (row) => {
      if (row.i === 1) throw new PermanentError('bad byte \u0000 here');
      return { text: `nul \u0000, lone \ud800, pair \ud83d\ude00` };
    });
    bl.on('worker:item', () => {
      throw new Error('a metrics bug');
    });
    const batch = await bl.submit('odd.text', rowsOf(3));
    await bl.start({ concurrency: 2 });
    expect(await bl.wait(batch.id, { timeoutMs: 20_000 })).toMatchObject({ status: 'completed', succeeded: 2, failed: 1 });
    const [first, second] = await bl.items(batch.id);
    expect(first!.result).toEqual({ text: 'nul \ufffd, lone \ufffd, pair \ud83d\ude00' });
    expect(second!.error).toMatchObject({ kind: 'permanent', message: 'bad byte \ufffd here' });
    expect(await counterMismatches(kind, location)).toEqual([]);
  });

  it('commits the finished part of a long chunk before the chunk is done', async () => {
    const bl = await openBl();
    bl.define('slow', async () => sleep(40));
    const batch = await bl.submit('slow', rowsOf(60));
    await bl.start({ concurrency: 2, checkpointMs: 100, targetLeaseMs: 60_000 });
    // After the first two items show how long items take, one lease holds the other 58 (1.2 s of
    // work), so more than 5 succeeded before the end can only come from a checkpoint.
    await until(async () => (await bl.getBatch(batch.id)).succeeded > 5);
    const midway = await bl.getBatch(batch.id);
    expect(midway.remaining).toBeGreaterThan(0);
    const running = await bl.items(batch.id, { status: 'running', limit: 100 });
    expect(running.length).toBeGreaterThan(0); // a checkpoint may land between the two reads
    expect(running.length).toBeLessThanOrEqual(midway.remaining);
    expect(await counterMismatches(kind, location)).toEqual([]);
    expect(await bl.wait(batch.id)).toMatchObject({ succeeded: 60 });
  });

  it('leases slow items a few at a time, so every worker gets a share', async () => {
    const a = await openBl();
    const b = await openBl();
    const ran = { a: 0, b: 0 };
    // After its first four, a's items wait until b has started: however slowly b starts, a
    // cannot have run the batch alone meanwhile.
    const bStarted = gate();
    a.define('portfolio', async () => {
      if (++ran.a > 4) await bStarted.passed;
      await sleep(200);
    });
    b.define('portfolio', async () => {
      ran.b++;
      await sleep(200);
    });
    const batch = await a.submit('portfolio', rowsOf(40));
    // Items that take longer than a lease should last per slot (here 200 ms vs 100 ms) are leased
    // only into free slots, never prefetched: the same rule that shares 30-second portfolios.
    await a.start({ concurrency: 4, targetLeaseMs: 100 });
    await until(async () => (await a.getBatch(batch.id)).succeeded >= 4); // a has seen how long items take
    const held = await a.items(batch.id, { status: 'running', limit: 100 });
    expect(held.length).toBeLessThanOrEqual(4);
    // a holds four more (waiting); b gets a share of the rest only if a did not lease them all.
    await b.start({ concurrency: 4, targetLeaseMs: 100 });
    bStarted.open();
    expect(await a.wait(batch.id)).toMatchObject({ succeeded: 40 });
    expect(ran.a + ran.b).toBe(40);
    expect(ran.b).toBeGreaterThanOrEqual(8);
  });

  it('hands back what it leased by fast items of a type once they turn slow: others get a share, higher priority goes first', async () => {
    const a = await openBl();
    const b = await openBl();
    const ran = { a: 0, b: 0 };
    // Slow items started while the urgent batch waited: from its submit until its last item started.
    const urgent = { submitted: false, started: 0, slowMeanwhile: 0 };
    const handler = (who: 'a' | 'b') => async (row: { ms?: number; urgent?: boolean }) => {
      ran[who]++;
      if (row.urgent) urgent.started++;
      else if (row.ms && urgent.submitted && urgent.started < 10) urgent.slowMeanwhile++;
      if (row.ms) await sleep(row.ms);
    };
    a.define('varied', handler('a'));
    b.define('varied', handler('b'));
    await a.start({ concurrency: 4, targetLeaseMs: 100 });
    // Fast items first: the type's average says a lease may take thousands.
    await a.wait((await a.submit('varied', Array.from({ length: 2_000 }, () => ({})))).id);
    ran.a = 0;
    const slow = await a.submit('varied', Array.from({ length: 600 }, () => ({ ms: 20 })));
    await until(async () => (await a.getBatch(slow.id)).succeeded >= 8); // a has seen them slow
    // a keeps about two lease targets of work (40 items here) and hands the rest back.
    await until(async () => (await a.items(slow.id, { status: 'running', limit: 1_000 })).length <= 80);
    await b.start({ concurrency: 4, targetLeaseMs: 100 });
    const left = (await a.getBatch(slow.id)).remaining;
    urgent.submitted = true;
    const urgentBatch = await b.submit('varied', Array.from({ length: 10 }, () => ({ urgent: true })), { priority: 10 });
    await b.wait(urgentBatch.id);
    // The urgent batch waited only for slow items already leased (a keeps about 40, b leased
    // about 20), not behind the rest of the slow batch.
    expect(urgent.slowMeanwhile).toBeLessThanOrEqual(150);
    expect(await a.wait(slow.id)).toMatchObject({ status: 'completed', succeeded: 600 });
    expect(ran.a + ran.b).toBe(610);
    // Without the hand-back a would hold every slow item (its lease was sized by fast ones) and
    // b run none; with it, b runs about half of what was left when it started.
    expect(ran.b).toBeGreaterThanOrEqual((left - 80) / 4);
    expect(await counterMismatches(kind, location)).toEqual([]);
    const items = await a.items(slow.id, { limit: 1_000 });
    expect(items.every((item) => item.status === 'succeeded' && item.attempts === 1)).toBe(true);
  });

  it('stops gracefully: running items finish, unstarted ones are handed back unused', async () => {
    const bl = await openBl();
    let finished = 0;
    bl.define('slow', async () => {
      await sleep(30);
      finished++;
    });
    const batch = await bl.submit('slow', rowsOf(400));
    await bl.start({ concurrency: 10 });
    while ((await bl.getBatch(batch.id)).succeeded < 20) await sleep(5);
    await bl.stop();
    const stopped = await bl.getBatch(batch.id);
    expect(stopped.succeeded).toBe(finished);
    expect(await bl.items(batch.id, { status: 'running' })).toEqual([]);
    const pending = await bl.items(batch.id, { status: 'pending', limit: 1_000 });
    expect(pending.length).toBe(400 - finished);
    expect(pending.every((item) => item.attempts === 0)).toBe(true);
    expect(await bl.workers()).toEqual([]);
    await bl.start({ concurrency: 10 });
    expect(await bl.wait(batch.id)).toMatchObject({ status: 'completed', succeeded: 400 });
  });

  it('refuses what it cannot do rather than answer wrongly: a second define, a bad item or batch query, bad items, a second start, a call after close', async () => {
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    bl.define('t', async () => {});
    expect(() => bl.define('t', async () => {})).toThrow(expect.objectContaining({ code: 'already_defined', message: 'processor t is already defined; define each type once' }));
    const batch = await bl.submit('t', rowsOf(3));
    await expect(bl.items(batch.id, { status: 'weird' as never })).rejects.toThrow('status must be one of pending, running, succeeded, failed, cancelled, got "weird"');
    await expect(bl.items(batch.id, { limit: -1 })).rejects.toThrow('limit must be a whole number of at least 1, got -1');
    expect(await bl.items(batch.id, { after: -1, limit: 2 })).toHaveLength(2);
    // The same of listBatches and countBatches, alike on both stores.
    await expect(bl.listBatches({ limit: -5 })).rejects.toThrow(expect.objectContaining({ code: 'invalid_options', message: 'limit must be a whole number of at least 1, got -5' }));
    await expect(bl.listBatches({ before: 'no-such-id' })).rejects.toThrow('before must be the id of a batch (a UUID), got "no-such-id"');
    for (const call of [() => bl.listBatches({ status: ['bogus' as never] }), () => bl.countBatches({ status: ['bogus' as never] })]) {
      await expect(call()).rejects.toThrow('status must hold only queued, running, paused, completed, failed, cancelled, got "bogus"');
    }
    expect(await bl.countBatches({ status: ['queued'] })).toBe(1);
    // Items that are not a list of items, and swapped backoff bounds, say so and create nothing.
    for (const items of ['abc', 42, null, { a: 1 }]) {
      await expect(bl.submit('t', items as never)).rejects.toThrow(expect.objectContaining({ code: 'invalid_items' }));
    }
    await expect(bl.submit('t', rowsOf(1), { backoff: { baseMs: 5_000, maxMs: 10 } })).rejects.toThrow('backoff.maxMs: maxMs must be at least baseMs (the first delay)');
    expect(await bl.countBatches()).toBe(1);
    // Waiting on a batch no live worker can run says so when it times out.
    await expect(bl.wait(batch.id, { timeoutMs: 50 })).rejects.toThrow(`batch ${batch.id} is still queued after 50 ms (3 items left); no live worker runs type t: start one whose processors define it`);
    await bl.start({ concurrency: 1 });
    await expect(bl.start()).rejects.toThrow(expect.objectContaining({ code: 'already_started' }));
    await bl.close();
    for (const call of [() => bl.submit('t', rowsOf(1)), () => bl.getBatch(batch.id), () => bl.items(batch.id), () => bl.listBatches()]) {
      await expect(call()).rejects.toThrow(expect.objectContaining({ code: 'closed', message: 'this Batchline instance is closed; open another with Batchline.open()' }));
    }
  });
});
