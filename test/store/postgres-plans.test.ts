/**
 * The plans of the PostgreSQL store's hot and periodic statements on large tables: none may
 * scan a whole batches, chunks or events table, so their cost cannot grow with history
 * (DESIGN.md, "keep plans stable as tables grow and churn").
 */

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statements } from '../../src/store/postgres/statements.js';
import { lease, rows, submit } from '../helpers/factory.js';
import { freshStore, pgUrl } from '../helpers/stores.js';

type PlanNode = { 'Node Type': string; 'Relation Name'?: string; Plans?: PlanNode[] };

function seqScans(node: PlanNode, found: string[] = []): string[] {
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name']) found.push(node['Relation Name']);
  for (const child of node.Plans ?? []) seqScans(child, found);
  return found;
}

describe.skipIf(!pgUrl)('postgres plans on large tables', () => {
  let store: Awaited<ReturnType<typeof freshStore>>;
  let client: pg.Client;
  let sql: ReturnType<typeof statements>;
  let open: string;
  let leased: { chunkId: number; leaseNo: number };
  let snapshot: string;

  beforeAll(async () => {
    store = await freshStore('postgres');
    const s = `"${store.location.schema}"`;
    sql = statements(s);
    client = new pg.Client({ connectionString: pgUrl! });
    await client.connect();
    // History: 200,000 finished batches with 100,000 done chunks and 200,000 events.
    await client.query(`
      INSERT INTO ${s}.batches (id, tenant, type, status, total, succeeded, created_at, started_at, finished_at)
      SELECT gen_random_uuid(), 'tenant' || (g % 50), 't', 'completed', 10, 10, now() - g * interval '1 s', now() - g * interval '1 s', now() - g * interval '1 s'
        FROM generate_series(1, 200000) g`);
    await client.query(`
      INSERT INTO ${s}.chunks (batch_id, seq0, n, payloads, state, done, succeeded, status, attempt, lease_no)
      SELECT id, 0, 10, '[1,2,3,4,5,6,7,8,9,10]', '[]', 10, 10, 'done', 1, 1 FROM ${s}.batches LIMIT 100000`);
    // Events of 200,000 past transactions (one bulk insert would give them all one txid).
    await client.query(`
      INSERT INTO ${s}.events (txid, batch_id, tenant, type, data)
      SELECT (pg_current_xact_id()::text::bigint - 400000 + row_number() OVER ())::text::xid8, id, tenant, 'batch:completed', '{}'
        FROM ${s}.batches`);
    // Open work: a few batches with pending chunks, one chunk leased.
    for (let i = 0; i < 3; i++) open = (await submit(store, rows(5_000))).id;
    const [chunk] = await lease(store, { maxItems: 500 });
    leased = { chunkId: chunk!.chunkId, leaseNo: chunk!.leaseNo };
    await client.query(`ANALYZE ${s}.batches; ANALYZE ${s}.chunks; ANALYZE ${s}.events`);
    snapshot = (await client.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]!.s;
  }, 120_000);

  afterAll(async () => {
    await client?.end();
    await store?.dispose();
  });

  const plan = async (text: string, params: unknown[]) => {
    await client.query('BEGIN');
    try {
      const result = await client.query(`EXPLAIN (FORMAT JSON) ${text}`, params);
      return (result.rows[0]['QUERY PLAN'] as { Plan: PlanNode }[])[0]!.Plan;
    } finally {
      await client.query('ROLLBACK');
    }
  };

  it.each([
    ['LEASE_CANDIDATES', () => [sql.LEASE_CANDIDATES, [['t'], []]]],
    ['LEASE_CANDIDATES passing one over', () => [sql.LEASE_CANDIDATES, [['t'], [open]]]],
    ['LEASE_PENDING_CHUNKS', () => [sql.LEASE_PENDING_CHUNKS, [open]]],
    ['CHUNKS_LEASE', () => [sql.CHUNKS_LEASE, [[leased.chunkId], 'w', 1000, JSON.stringify({ [leased.chunkId]: 10 })]]],
    ['BATCH_LOCK', () => [sql.BATCH_LOCK, [open]]],
    ['BATCH_MARK_LEASED', () => [sql.BATCH_MARK_LEASED, [open, 1]]],
    ['CHUNKS_FENCE', () => [sql.CHUNKS_FENCE, [[leased.chunkId]]]],
    ['CHUNKS_WRITE', () => [sql.CHUNKS_WRITE, [JSON.stringify([{ id: leased.chunkId, state: [], done: 0, succeeded: 0, failed: 0, cancelled: 0, status: 'leased', attempt: 1, error: null }])]]],
    ['BATCH_APPLY', () => [sql.BATCH_APPLY, [open, 1, 0, 0, 1, '{"sum":"1.00"}']]],
    ['CHUNKS_RENEW', () => [sql.CHUNKS_RENEW, [[leased.chunkId], [leased.leaseNo], 1000]]],
    ['CHUNKS_EXPIRED', () => [sql.CHUNKS_EXPIRED, [100, null]]],
    ['CHUNKS_EXPIRED of a batch', () => [sql.CHUNKS_EXPIRED, [100, open]]],
    ['BATCHES_FINALIZE', () => [sql.BATCHES_FINALIZE, []]],
    ['BATCHES_RECENT', () => [sql.BATCHES_RECENT, [new Date(Date.now() - 60_000), 1000, null]]],
    ['BATCHES_RECENT after a page', () => [sql.BATCHES_RECENT, [new Date(Date.now() - 60_000), 1000, open]]],
    ['BATCH_LEASES', () => [sql.BATCH_LEASES, [open]]],
    ['BATCH_STATUSES', () => [sql.BATCH_STATUSES, [[open]]]],
    ['BATCH_CANCEL_PENDING', () => [sql.BATCH_CANCEL_PENDING, [open]]],
    ['BATCH_GET', () => [sql.BATCH_GET, [open, null]]],
    ['BATCH_LIST', () => [sql.BATCH_LIST, ['tenant7', null, null, null, 50, null]]],
    ['BATCH_COUNT of a tenant', () => [sql.BATCH_COUNT, ['tenant7', null, null, null]]],
    ['ITEMS_CONTIGUOUS_CHUNKS', () => [sql.ITEMS_CONTIGUOUS_CHUNKS, [open, null, -1, -1, 0, 32]]],
    ['EVENTS_FOLLOW', () => [sql.EVENTS_FOLLOW, [snapshot, snapshot, null, null, null, null, 500]]],
    ['CANCELLED_SWEEP', () => [sql.CANCELLED_SWEEP, [null]]],
    ['CANCELLED_SWEEP_BATCH', () => [sql.CANCELLED_SWEEP_BATCH, [open]]],
    ['BATCH_LEASES_LOCKED', () => [sql.BATCH_LEASES_LOCKED, [open]]],
    ['EVENTS_LIST of a batch', () => [sql.EVENTS_LIST, [0, open, null, null, 500]]],
    ['BATCHES_PRUNE_CANDIDATES', () => [sql.BATCHES_PRUNE_CANDIDATES, [new Date(Date.now() - 86_400_000), null, 100]]],
    ['BATCHES_PRUNE_CANDIDATES of a tenant', () => [sql.BATCHES_PRUNE_CANDIDATES, [new Date(Date.now() - 86_400_000), 'tenant7', 100]]],
    ['CHUNKS_LOCK_OF_BATCHES', () => [sql.CHUNKS_LOCK_OF_BATCHES, [[open]]]],
    ['BATCHES_PRUNE', () => [sql.BATCHES_PRUNE, [[open], new Date(), null]]],
  ] as const)('%s scans no whole table', async (_name, make) => {
    const [text, params] = make() as [string, unknown[]];
    expect(seqScans(await plan(text, params))).toEqual([]);
  });
});
