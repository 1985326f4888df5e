/**
 * Races that only PostgreSQL has: its transactions interleave, SQLite's run one at a time. A
 * second connection holds a transaction open at the moment that matters, and the store must
 * wait for it and decide on what it then sees.
 */

import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../src/core/errors.js';
import { commitFor, gate, lease, rows, sleep, submit } from '../helpers/factory.js';
import type { PgConnection } from '../../src/store/postgres/connection.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { statements } from '../../src/store/postgres/statements.js';
import { freshStore, pgUrl } from '../helpers/stores.js';

describe.skipIf(!pgUrl)('postgres races', () => {
  let store: Awaited<ReturnType<typeof freshStore>>;
  let other: pg.Client;
  let s: string;

  beforeEach(async () => {
    store = await freshStore('postgres');
    s = `"${store.location.schema}"`;
    other = new pg.Client({ connectionString: pgUrl! });
    await other.connect();
  });
  afterEach(async () => {
    await other.end();
    await store.dispose();
  });

  it('refuses to delete a batch whose chunk a lease in flight is taking', async () => {
    const batch = await submit(store, rows(600));
    // A lease transaction half way: it has locked and leased one chunk, not yet committed.
    await other.query('BEGIN');
    const { rows: taken } = await other.query<{ id: string }>(
      `SELECT id FROM ${s}.chunks WHERE batch_id = $1 AND status = 'pending' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`,
      [batch.id],
    );
    await other.query(
      `UPDATE ${s}.chunks SET status = 'leased', attempt = attempt + 1, lease_no = lease_no + 1,
              lease_owner = 'w-race', lease_expires_at = now() + interval '1 minute' WHERE id = $1`,
      [taken[0]!.id],
    );
    const deleting = store.batchDelete({ id: batch.id }).then(
      () => 'deleted',
      (error: unknown) => error,
    );
    await sleep(300);
    expect(await Promise.race([deleting, sleep(0).then(() => 'waiting')])).toBe('waiting');
    await other.query('COMMIT');
    expect(await deleting).toBeInstanceOf(ConflictError);
    expect((await store.batchGet({ id: batch.id })).id).toBe(batch.id);
  });

  it('leases nothing of a batch while its delete holds the chunks', async () => {
    const batch = await submit(store, rows(600));
    // The delete half way: it has locked every chunk of the batch (BATCH_LEASES_LOCKED).
    await other.query('BEGIN');
    await other.query(`SELECT id FROM ${s}.chunks WHERE batch_id = $1 ORDER BY id FOR UPDATE`, [batch.id]);
    const leased = await lease(store, { maxItems: 100 });
    expect(leased).toEqual([]);
    await other.query('ROLLBACK');
  });

  it('renews leases in chunk id order, so a renewal and a commit of the same worker cannot deadlock', async () => {
    const sql = statements(s);
    await submit(store, rows(1), { type: 'x' });
    await submit(store, rows(1), { type: 'y' });
    // The worker leased y's chunk first, then x's (lower id): it renews them in that order.
    const [high] = await lease(store, { types: ['y'] });
    const [low] = await lease(store, { types: ['x'] });
    expect(low!.chunkId).toBeLessThan(high!.chunkId);
    // Its committer's flush has locked the lower chunk and is about to lock the higher one.
    await other.query('BEGIN');
    await other.query(sql.CHUNKS_FENCE, [[low!.chunkId]]);
    const renewing = store.chunksRenew({
      workerId: 'w1',
      leases: [high!, low!].map((c) => ({ chunkId: c.chunkId, leaseNo: c.leaseNo })),
      leaseMs: 30_000,
    });
    await sleep(200);
    const fenced = await other.query(sql.CHUNKS_FENCE, [[low!.chunkId, high!.chunkId]]).then(
      () => 'fenced',
      (error: { code?: string }) => `fence failed: ${error.code}`,
    );
    await other.query('COMMIT').catch(() => {});
    expect(fenced).toBe('fenced');
    expect((await renewing).lost).toEqual([]);
  });

  it('ends a transaction of ours left idle mid-way (a frozen worker), so the commits it blocked go on', async () => {
    const batch = await submit(store, rows(2));
    const [chunk] = await lease(store);
    // A second process's store, frozen half way through a transaction that locked the batch row.
    const frozen = await PostgresStore.connect({ url: pgUrl!, schema: store.location.schema!, display: 'frozen', txIdleLimitMs: 500 });
    const connection = (frozen as unknown as { c: PgConnection }).c;
    try {
      const locked = gate();
      const stuck = connection.tx(async (client) => {
        await client.query(`SELECT id FROM ${s}.batches WHERE id = $1 FOR UPDATE`, [batch.id]);
        locked.open();
        await sleep(5_000);
      });
      stuck.catch(() => {});
      await locked.passed;
      const started = Date.now();
      await store.chunksCommit({ commits: [commitFor(chunk!, () => 'succeeded')] });
      // Waited for the frozen one's session to be ended (0.5 s), not for it to wake (5 s).
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 2 });
      await expect(stuck).rejects.toThrow();
    } finally {
      await frozen.close();
    }
  });

  it("cancels a pending chunk that a lease was holding when the cancel's sweep came", async () => {
    const batch = await submit(store, rows(600));
    await store.batchCancel({ id: batch.id });
    // A chunk handed back after the cancel, and a lease transaction looking at it.
    await other.query(`UPDATE ${s}.chunks SET status = 'pending', cancelled = 0, done = 0 WHERE batch_id = $1 AND seq0 = 0`, [batch.id]);
    await other.query(`UPDATE ${s}.batches SET cancelled = cancelled - 500 WHERE id = $1`, [batch.id]);
    await other.query('BEGIN');
    await other.query(`SELECT id FROM ${s}.chunks WHERE batch_id = $1 AND status = 'pending' FOR UPDATE`, [batch.id]);
    const sweeping = store.batchesSweepCancelled({ id: batch.id });
    await sleep(200);
    await other.query('ROLLBACK');
    expect(await sweeping).toBe(500);
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'cancelled', cancelled: 600, remaining: 0 });
  });

  it('lists items from one snapshot while a commit moves one into a retry chunk', async () => {
    const batch = await submit(store, rows(100), { limits: { chunkItems: 10 } });
    const [chunk] = await lease(store, { maxItems: 10 });
    // The commit lands between the listing's contiguous-chunk and retry-chunk statements,
    // injected at the store's one query function.
    const c = (store as unknown as { c: { query: (...args: unknown[]) => Promise<unknown>; sql: Record<string, string> } }).c;
    const query = c.query.bind(c);
    let injected = false;
    c.query = async (...args: unknown[]) => {
      const result = await query(...args);
      if (!injected && args[1] === c.sql.ITEMS_CONTIGUOUS_CHUNKS) {
        injected = true;
        await store.chunksCommit({ commits: [commitFor(chunk!, (slot) => (slot === 3 ? 'moved' : null))] });
      }
      return result;
    };
    const items = await store.itemsList({ batchId: batch.id, limit: 100 });
    c.query = query;
    expect(injected).toBe(true);
    expect(items.map((item) => item.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });
});

