/**
 * The PostgreSQL store (`pg`): the production and distributed store. Any number of processes
 * on any number of machines share one database; everything lives in one schema (default
 * `batchline`). Leases use `FOR UPDATE SKIP LOCKED`, commits are fenced by lease numbers, exact
 * totals are `numeric`, and LISTEN/NOTIFY wakes idle workers and announces cancels.
 *
 * Transactions that deadlock or fail to serialise (40P01, 40001) are retried here; connection
 * failures become StoreUnavailableError, which the engine retries with backoff.
 */

import pg from 'pg';
import { mergeAggregates } from '../../core/decimal.js';
import { NotFoundError, StoreUnavailableError } from '../../core/errors.js';
import { isBatchId, newBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import { BATCH_ACTIONS, canApply, type BatchStatus } from '../../core/statuses.js';
import type { Batch, BatchEvent, EventType, Item, WorkerInfo } from '../../core/types.js';
import { listItemsPaged, seqOf } from '../chunk-items.js';
import {
  closeChunk,
  confirmDuplicate,
  finishedEventData,
  optionColumns,
  partialDuplicate,
  progressEventData,
  RETRY_CHUNK_ITEMS,
  statusConflict,
  toBatch,
  toEvent,
  type BatchRowBase,
} from '../shared.js';
import type {
  BatchCancelResult,
  BatchesSubmitParams,
  BatchesSubmitResult,
  BatchLeases,
  BatchListParams,
  BatchRef,
  ChunkCommit,
  ChunkRow,
  ChunksCommitResult,
  ChunksLeaseParams,
  ChunksRenewParams,
  CounterMismatch,
  EventsListParams,
  ItemsListParams,
  LeasedChunk,
  MigrationStatus,
  ReclaimResult,
  Store,
} from '../store.js';
import { PG_MIGRATIONS } from './migrations.js';
import { statements, type PgStatements } from './statements.js';

type BatchRow = BatchRowBase & { submit_digest: string | null; leased_items: number };
type Queryable = pg.Pool | pg.PoolClient;

interface ChunkDbRow {
  id: string;
  batch_id: string;
  seq0: number | null;
  seqs: number[] | null;
  skip: number;
  n: number;
  payloads: unknown[];
  state: (ItemStateEntry | null)[] | null;
  status: ChunkRow['status'];
  attempt: number;
  error: ChunkRow['error'];
}

const toChunkRow = (r: ChunkDbRow): ChunkRow => ({
  id: Number(r.id),
  batchId: r.batch_id,
  seq0: r.seq0,
  seqs: r.seqs,
  skip: r.skip,
  n: r.n,
  status: r.status,
  attempt: r.attempt,
  payloads: r.payloads,
  state: r.state,
  error: r.error,
});

/** Error codes worth retrying the whole transaction for. */
const RETRY_CODES = new Set(['40001', '40P01']);
/** Error codes (and socket errors) that mean the database is unreachable or going away. */
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300', '3D000', '28P01', '28000']);
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE', 'EAI_AGAIN']);

interface NewEvent {
  batch_id: string | null;
  tenant: string | null;
  type: EventType;
  data: Record<string, unknown>;
}

export interface PostgresStoreOptions {
  url: string;
  schema: string;
  /** Human-readable location (no password), for messages. */
  display: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

/** The PostgreSQL store. See the module comment. */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly description: string;
  private readonly sql: PgStatements;
  private readonly schema: string;
  private readonly quoted: string;
  private readonly listeners = new Set<(topic: 'work' | 'control') => void>();
  private listener: pg.Client | null = null;
  private closed = false;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly options: PostgresStoreOptions,
  ) {
    this.schema = options.schema;
    this.quoted = `"${options.schema}"`;
    this.sql = statements(this.quoted);
    this.description = options.display;
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => {});
  }

  /** Connects (checking the database answers) and returns the store. */
  static async connect(options: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10, connectionTimeoutMillis: 10_000 });
    const store = new PostgresStore(pool, options);
    try {
      await pool.query('SELECT 1');
    } catch (error) {
      await pool.end().catch(() => {});
      throw store.translate(error);
    }
    return store;
  }

  /** Driver error → our error: unreachable databases become StoreUnavailableError. */
  private translate(error: unknown): unknown {
    const code = (error as { code?: string }).code;
    if (code && (UNAVAILABLE_CODES.has(code) || SOCKET_CODES.has(code))) {
      return new StoreUnavailableError(`cannot use ${this.description}: ${(error as Error).message}`, { cause: error });
    }
    return error;
  }

  private async query<R extends pg.QueryResultRow>(db: Queryable, text: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await db.query<R>(text, params)).rows;
    } catch (error) {
      throw this.translate(error);
    }
  }

  /** Runs `fn` in a transaction, retrying deadlocks and serialisation failures. */
  private async tx<T>(fn: (client: pg.PoolClient) => Promise<T>, isolation = 'READ COMMITTED'): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.translate(error);
      }
      try {
        await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        const code = (error as { code?: string }).code;
        if (code && RETRY_CODES.has(code) && attempt < 8) {
          await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
          continue;
        }
        throw this.translate(error);
      } finally {
        client.release();
      }
    }
  }

  private async events(db: Queryable, events: NewEvent[]): Promise<void> {
    if (events.length > 0) await this.query(db, this.sql.EVENTS_INSERT, [JSON.stringify(events)]);
  }

  private async notify(db: Queryable, topic: 'work' | 'control'): Promise<void> {
    await this.query(db, `SELECT pg_notify($1, $2)`, [`${this.schema}_${topic}`, topic]);
  }

  private async batchRow(db: Queryable, ref: BatchRef): Promise<BatchRow> {
    const rows = isBatchId(ref.id) ? await this.query<BatchRow>(db, this.sql.BATCH_GET, [ref.id, ref.tenant ?? null]) : [];
    if (!rows[0]) throw new NotFoundError(`batch ${ref.id} not found`);
    return rows[0];
  }

  // -------------------------------------------------------------------------- migrations

  async migrate(params: { direction: 'up' | 'down'; steps?: number }): Promise<MigrationStatus> {
    await this.tx(async (client) => {
      // Serialise migrations of this schema across processes starting at once.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`batchline.migrate.${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.quoted}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.quoted}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const current = await this.currentVersion(client);
      const todo =
        params.direction === 'up'
          ? PG_MIGRATIONS.filter((m) => m.version > current)
          : PG_MIGRATIONS.filter((m) => m.version <= current).reverse().slice(0, params.steps ?? 1);
      for (const m of todo) {
        if (params.direction === 'up') {
          await client.query(m.up(this.quoted));
          await client.query(`INSERT INTO ${this.quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        } else {
          await client.query(m.down(this.quoted));
          await client.query(`DELETE FROM ${this.quoted}.schema_migrations WHERE version = $1`, [m.version]);
        }
      }
    });
    return this.migrationStatus();
  }

  private async currentVersion(db: Queryable): Promise<number> {
    const exists = await this.query<{ t: string | null }>(db, `SELECT to_regclass($1) AS t`, [`${this.quoted}.schema_migrations`]);
    if (!exists[0]?.t) return 0;
    const rows = await this.query<{ v: number | null }>(db, `SELECT max(version) AS v FROM ${this.quoted}.schema_migrations`);
    return rows[0]?.v ?? 0;
  }

  async migrationStatus(): Promise<MigrationStatus> {
    return { current: await this.currentVersion(this.pool), latest: PG_MIGRATIONS.at(-1)!.version };
  }

  // -------------------------------------------------------------------------- batches

  private async findByKeys(db: Queryable, params: BatchesSubmitParams): Promise<{ batch: Batch; digest: string | null }[]> {
    const keyed = params.batches.filter((b) => b.idempotencyKey);
    if (keyed.length === 0) return [];
    const rows = await this.query<BatchRow>(db, this.sql.BATCH_BY_KEYS, [keyed.map((b) => b.tenant), keyed.map((b) => b.idempotencyKey)]);
    if (rows.length > 0 && rows.length !== params.batches.length) throw partialDuplicate(params.batches, rows.length);
    const byKey = new Map(rows.map((r) => [`${r.tenant}\u0000${r.idempotency_key}`, r]));
    return rows.length === 0
      ? []
      : params.batches.map((b) => {
          const row = byKey.get(`${b.tenant}\u0000${b.idempotencyKey}`)!;
          return { batch: toBatch(row), digest: row.submit_digest };
        });
  }

  async batchesSubmit(params: BatchesSubmitParams): Promise<BatchesSubmitResult> {
    const existing = await this.findByKeys(this.pool, params);
    if (existing.length > 0) return { batches: await confirmDuplicate(params, existing), created: false };
    try {
      const batches = await this.tx(async (client) => {
        const ids = params.batches.map(() => newBatchId());
        for (const [i, b] of params.batches.entries()) {
          await this.query(client, this.sql.BATCH_INSERT, [
            ids[i], b.tenant, b.type, b.priority, JSON.stringify(b.labels), b.idempotencyKey, ...optionColumns(b.options),
          ]);
        }
        const totals = params.batches.map(() => 0);
        let rows: unknown[] = [];
        let bytes = 0;
        const flush = async () => {
          if (rows.length === 0) return;
          await this.query(client, this.sql.CHUNKS_INSERT(rows.length / 4), rows);
          rows = [];
          bytes = 0;
        };
        for await (const chunk of params.chunks) {
          rows.push(ids[chunk.batchIndex], chunk.seq0, chunk.n, chunk.payloads);
          totals[chunk.batchIndex]! += chunk.n;
          bytes += chunk.payloads.length;
          if (rows.length >= 4 * 1_000 || bytes >= 8 << 20) await flush();
        }
        await flush();
        const digests = params.digests();
        const created: Batch[] = [];
        for (const [i, b] of params.batches.entries()) {
          const [row] = await this.query<BatchRow>(client, this.sql.BATCH_FINISH_SUBMIT, [ids[i], totals[i], digests[i]]);
          created.push(toBatch(row!));
          await this.events(client, [{ batch_id: ids[i]!, tenant: b.tenant, type: 'batch:submitted', data: { type: b.type, total: totals[i], priority: b.priority } }]);
        }
        await this.notify(client, 'work');
        return created;
      });
      return { batches, created: true };
    } catch (error) {
      // A concurrent submit with the same key won the unique index: return its batches.
      if ((error as { code?: string }).code !== '23505') throw error;
      return { batches: await confirmDuplicate(params, await this.findByKeys(this.pool, params)), created: false };
    }
  }

  async batchGet(ref: BatchRef): Promise<Batch> {
    return toBatch(await this.batchRow(this.pool, ref));
  }

  async batchList(params: BatchListParams): Promise<Batch[]> {
    const before = params.before && isBatchId(params.before) ? params.before : null;
    const rows = await this.query<BatchRow>(this.pool, this.sql.BATCH_LIST, [
      params.tenant ?? null, params.type ?? null, params.status?.length ? params.status : null, before, params.limit,
    ]);
    return rows.map(toBatch);
  }

  async batchesStatus(params: { ids: string[] }): Promise<Map<string, BatchStatus>> {
    const ids = params.ids.filter(isBatchId);
    const rows = await this.query<{ id: string; status: BatchStatus }>(this.pool, this.sql.BATCH_STATUSES, [ids]);
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  async batchCancel(ref: BatchRef): Promise<BatchCancelResult> {
    const batch = await this.tx(async (client) => {
      const current = await this.batchRow(client, ref);
      if (!canApply('cancel', current.status)) throw statusConflict(current, 'cancel');
      const [{ items }] = (await this.query<{ items: number }>(client, this.sql.BATCH_CANCEL_PENDING, [current.id])) as [{ items: number }];
      const [row] = await this.query<BatchRow>(client, this.sql.BATCH_CANCEL, [current.id, items]);
      if (!row) throw statusConflict(await this.batchRow(client, ref), 'cancel');
      const batch = toBatch(row);
      await this.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:cancelled', data: { ...finishedEventData(batch), cancelledPending: items } }]);
      await this.notify(client, 'control');
      return batch;
    });
    const leases = await this.batchLeases(ref);
    return { batch, leased: leases.leased, leaseDeadline: leases.leaseDeadline };
  }

  async batchLeases(ref: BatchRef): Promise<BatchLeases> {
    const [row] = await this.query<{ leased: number; deadline: Date | null; now: Date }>(this.pool, this.sql.BATCH_LEASES, [ref.id]);
    return { leased: row!.leased, leaseDeadline: row!.deadline, now: row!.now };
  }

  private async transition(ref: BatchRef, action: 'pause' | 'resume', status: string, event: EventType): Promise<Batch> {
    return this.tx(async (client) => {
      const current = await this.batchRow(client, ref);
      const [row] = await this.query<BatchRow>(client, this.sql.BATCH_TRANSITION, [current.id, status, BATCH_ACTIONS[action]]);
      if (!row) throw statusConflict(await this.batchRow(client, ref), action);
      const batch = toBatch(row);
      await this.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: event, data: progressEventData(batch) }]);
      await this.notify(client, action === 'resume' ? 'work' : 'control');
      return batch;
    });
  }

  async batchPause(ref: BatchRef): Promise<Batch> {
    return this.transition(ref, 'pause', 'paused', 'batch:paused');
  }

  async batchResume(ref: BatchRef): Promise<Batch> {
    return this.transition(ref, 'resume', 'resume', 'batch:resumed');
  }

  async batchRetryFailed(ref: BatchRef): Promise<{ batch: Batch; retried: number }> {
    return this.tx(async (client) => {
      const current = await this.batchRow(client, ref);
      if (!canApply('retryFailed', current.status)) throw statusConflict(current, 'retryFailed');
      const seqs: number[] = [];
      const payloads: string[] = [];
      for (const raw of await this.query<ChunkDbRow>(client, this.sql.BATCH_FAILED_CHUNKS, [current.id])) {
        const chunk = toChunkRow(raw);
        const state = chunk.state ?? new Array<ItemStateEntry | null>(chunk.n).fill(null);
        let moved = 0;
        for (let i = chunk.skip; i < chunk.n; i++) {
          const entry = state[i];
          if (!(entry ? entry.s === 'failed' : chunk.status === 'failed')) continue;
          state[i] = { s: 'moved', a: entry?.a ?? chunk.attempt };
          seqs.push(seqOf(chunk, i));
          payloads.push(JSON.stringify(chunk.payloads[i]));
          moved++;
        }
        await this.query(client, this.sql.CHUNK_MOVE_FAILED, [chunk.id, JSON.stringify(state), moved]);
      }
      if (seqs.length === 0) return { batch: toBatch(current), retried: 0 };
      for (let i = 0; i < seqs.length; i += RETRY_CHUNK_ITEMS) {
        const part = seqs.slice(i, i + RETRY_CHUNK_ITEMS);
        await this.query(client, this.sql.CHUNK_INSERT, [current.id, null, part, part.length, `[${payloads.slice(i, i + RETRY_CHUNK_ITEMS).join(',')}]`, 0, 0]);
      }
      const [row] = await this.query<BatchRow>(client, this.sql.BATCH_REOPEN, [current.id, seqs.length, BATCH_ACTIONS.retryFailed]);
      if (!row) throw statusConflict(await this.batchRow(client, ref), 'retryFailed');
      const batch = toBatch(row);
      await this.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:retried', data: { items: seqs.length } }]);
      await this.notify(client, 'work');
      return { batch, retried: seqs.length };
    });
  }

  async batchDelete(ref: BatchRef): Promise<void> {
    await this.tx(async (client) => {
      const row = await this.batchRow(client, ref);
      const [leases] = await this.query<{ leased: number }>(client, this.sql.BATCH_LEASES, [row.id]);
      if (leases!.leased > 0) throw statusConflict(row, 'delete');
      await this.query(client, this.sql.EVENTS_DELETE_BATCH, [row.id]);
      await this.query(client, this.sql.BATCH_DELETE, [row.id]);
      await this.notify(client, 'control');
    });
  }

  // -------------------------------------------------------------------------- leasing

  async chunksLease(params: ChunksLeaseParams): Promise<LeasedChunk[]> {
    return this.tx(async (client) => {
      const candidates = await this.query<BatchRow>(client, this.sql.LEASE_CANDIDATES, [params.types]);
      for (const batch of candidates) {
        const maxItems = params.maxItemsByType?.[batch.type] ?? params.maxItems;
        const room = batch.concurrency === null ? maxItems : Math.min(maxItems, batch.concurrency - batch.leased_items);
        if (room <= 0) continue;
        type Pending = { id: string; seq0: number | null; seqs: number[] | null; skip: number; n: number; done: number; attempt: number; partial: boolean };
        const ids: string[] = [];
        let items = 0;
        for (const c of await this.query<Pending>(client, this.sql.LEASE_PENDING_CHUNKS, [batch.id])) {
          const live = c.n - c.skip - c.done;
          if (items + live <= room || (ids.length === 0 && c.partial)) {
            ids.push(c.id);
            items += live;
            continue;
          }
          if (ids.length === 0) {
            ids.push(await this.splitHead(client, batch.id, c, room));
            items += room;
          }
          break;
        }
        if (ids.length === 0) continue;
        type Leased = ChunkDbRow & { lease_no: number; lease_expires_at: Date };
        const rows = await this.query<Leased>(client, this.sql.CHUNKS_LEASE, [ids, params.workerId, params.leaseMs]);
        const [marked] = await this.query<{ old_status: BatchStatus }>(client, this.sql.BATCH_MARK_LEASED, [batch.id, items]);
        if (marked?.old_status === 'queued') {
          await this.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:started', data: {} }]);
        }
        const options = toBatch(batch).options;
        return rows.map((row) => ({
          chunkId: Number(row.id), batchId: batch.id, tenant: batch.tenant, type: batch.type, leaseNo: row.lease_no,
          attempt: row.attempt, seq0: row.seq0, seqs: row.seqs, skip: row.skip, n: row.n,
          payloads: row.payloads, state: row.state, options, expiresAt: row.lease_expires_at,
        }));
      }
      return [];
    });
  }

  /** Moves the first `k` unrecorded slots of an untouched, locked chunk into a new chunk. */
  private async splitHead(
    client: pg.PoolClient,
    batchId: string,
    c: { id: string; seq0: number | null; seqs: number[] | null; skip: number; attempt: number },
    k: number,
  ): Promise<string> {
    const [row] = await this.query<{ payloads: string }>(client, this.sql.CHUNK_PAYLOADS, [c.id]);
    const head = (JSON.parse(row!.payloads) as unknown[]).slice(c.skip, c.skip + k);
    const seqs = c.seqs === null ? null : c.seqs.slice(c.skip, c.skip + k);
    const seq0 = c.seq0 === null ? null : c.seq0 + c.skip;
    const [inserted] = await this.query<{ id: string }>(client, this.sql.CHUNK_INSERT, [batchId, seq0, seqs, k, JSON.stringify(head), c.attempt, 0]);
    await this.query(client, this.sql.CHUNK_ADVANCE_SKIP, [c.id, k]);
    return inserted!.id;
  }

  // -------------------------------------------------------------------------- committing

  async chunksCommit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult> {
    return this.tx(async (client) => {
      type Fence = { id: string; n: number; skip: number; done: number; attempt: number; lease_no: number; status: string };
      const fences = new Map(
        (await this.query<Fence>(client, this.sql.CHUNKS_FENCE, [params.commits.map((c) => c.chunkId)])).map((f) => [Number(f.id), f]),
      );
      const lost: number[] = [];
      const writes: string[] = [];
      const retryRows: { batchId: string; r: ChunkCommit['retries'][number] }[] = [];
      const perBatch = new Map<string, { succeeded: number; failed: number; cancelled: number; leased: number; aggregates: Record<string, string>[] }>();
      for (const c of params.commits) {
        const f = fences.get(c.chunkId);
        if (!f || f.status !== 'leased' || f.lease_no !== c.leaseNo) {
          lost.push(c.chunkId);
          continue;
        }
        const w = closeChunk(f, c);
        // The state is embedded as raw JSON text: it is already JSON, so nothing is re-encoded.
        writes.push(
          `{"id":${c.chunkId},"state":${c.state},"done":${w.done},"succeeded":${c.delta.succeeded},` +
            `"failed":${c.delta.failed + w.inheritedFailed},"cancelled":${c.delta.cancelled + w.inheritedCancelled},` +
            `"status":"${w.status}","attempt":${w.attempt},"error":${c.close === 'fail' ? JSON.stringify(c.error ?? null) : 'null'}}`,
        );
        for (const r of c.retries) retryRows.push({ batchId: c.batchId, r });
        const acc = perBatch.get(c.batchId) ?? { succeeded: 0, failed: 0, cancelled: 0, leased: 0, aggregates: [] };
        acc.succeeded += c.delta.succeeded;
        acc.failed += c.delta.failed + w.inheritedFailed;
        acc.cancelled += c.delta.cancelled + w.inheritedCancelled;
        acc.leased += w.unleased;
        acc.aggregates.push(c.aggregates);
        perBatch.set(c.batchId, acc);
      }
      if (writes.length > 0) await this.query(client, this.sql.CHUNKS_WRITE, [`[${writes.join(',')}]`]);
      for (const { batchId, r } of retryRows) {
        await this.query(client, this.sql.CHUNK_INSERT, [batchId, null, r.seqs, r.seqs.length, r.payloads, r.attempt, r.delayMs]);
      }
      const finished: Batch[] = [];
      const events: NewEvent[] = [];
      for (const batchId of [...perBatch.keys()].sort()) {
        const acc = perBatch.get(batchId)!;
        const aggregates = acc.aggregates.reduce(mergeAggregates, {});
        const [row] = await this.query<BatchRow & { completes: boolean; progress: boolean }>(client, this.sql.BATCH_APPLY, [
          batchId, acc.succeeded, acc.failed, acc.cancelled, acc.leased, JSON.stringify(aggregates),
        ]);
        if (!row) continue;
        const batch = toBatch(row);
        if (row.completes) {
          finished.push(batch);
          events.push({ batch_id: batch.id, tenant: batch.tenant, type: 'batch:completed', data: finishedEventData(batch) });
        } else if (row.progress) {
          events.push({ batch_id: batch.id, tenant: batch.tenant, type: 'batch:progress', data: progressEventData(batch) });
        }
      }
      await this.events(client, events);
      if (retryRows.length > 0) await this.notify(client, 'work');
      return { lost, finished };
    });
  }

  async chunksRenew(params: ChunksRenewParams): Promise<{ lost: number[] }> {
    const rows = await this.query<{ id: string }>(this.pool, this.sql.CHUNKS_RENEW, [
      params.leases.map((l) => l.chunkId), params.leases.map((l) => l.leaseNo), params.leaseMs,
    ]);
    const renewed = new Set(rows.map((r) => Number(r.id)));
    return { lost: params.leases.map((l) => l.chunkId).filter((id) => !renewed.has(id)) };
  }

  // -------------------------------------------------------------------------- reconciling

  async chunksReclaim(params: { limit: number }): Promise<ReclaimResult> {
    return this.tx(async (client) => {
      type Expired = { id: string; batch_id: string; n: number; skip: number; done: number; attempt: number; lease_owner: string; batch_status: BatchStatus };
      const expired = await this.query<Expired>(client, this.sql.CHUNKS_EXPIRED, [params.limit]);
      const result: ReclaimResult = { requeued: 0, cancelled: 0, finished: [] };
      const perBatch = new Map<string, { leased: number; cancelled: number; tenant: string | null }>();
      const events: NewEvent[] = [];
      for (const c of expired) {
        const remaining = c.n - c.skip - c.done;
        const acc = perBatch.get(c.batch_id) ?? { leased: 0, cancelled: 0, tenant: null };
        acc.leased += remaining;
        if (c.batch_status === 'cancelled') {
          await this.query(client, this.sql.CHUNK_CLOSE_CANCELLED, [c.id]);
          acc.cancelled += remaining;
          result.cancelled++;
        } else {
          await this.query(client, this.sql.CHUNK_REQUEUE, [c.id]);
          result.requeued++;
        }
        perBatch.set(c.batch_id, acc);
        events.push({ batch_id: c.batch_id, tenant: null, type: 'batch:lease-expired', data: { chunk: Number(c.id), worker: c.lease_owner, items: remaining, attempt: c.attempt } });
      }
      for (const batchId of [...perBatch.keys()].sort()) {
        const acc = perBatch.get(batchId)!;
        await this.query(client, this.sql.BATCH_UNLEASE, [batchId, acc.leased, acc.cancelled]);
      }
      if (events.length > 0) {
        const tenants = new Map((await this.query<{ id: string; tenant: string }>(client, `SELECT id, tenant FROM ${this.quoted}.batches WHERE id = ANY($1::uuid[])`, [[...perBatch.keys()]])).map((r) => [r.id, r.tenant]));
        for (const e of events) e.tenant = tenants.get(e.batch_id!) ?? null;
        await this.events(client, events);
        if (result.requeued > 0) await this.notify(client, 'work');
      }
      return result;
    });
  }

  async batchesFinalize(): Promise<Batch[]> {
    return this.tx(async (client) => {
      const batches = (await this.query<BatchRow>(client, this.sql.BATCHES_FINALIZE)).map(toBatch);
      await this.events(client, batches.map((b) => ({ batch_id: b.id, tenant: b.tenant, type: 'batch:completed', data: finishedEventData(b) })));
      return batches;
    });
  }

  async batchesVerify(params: { since: Date; limit: number }): Promise<CounterMismatch[]> {
    const ids = await this.query<{ id: string }>(this.pool, this.sql.BATCHES_RECENT, [params.since, params.limit]);
    const mismatches: CounterMismatch[] = [];
    for (const { id } of ids) {
      // One snapshot for the row and its items; a repair that races a commit fails to serialise and is retried.
      const mismatch = await this.tx(async (client) => {
        const rows = await this.query<BatchRow>(client, this.sql.BATCH_GET, [id, null]);
        if (!rows[0]) return null;
        const actual = { succeeded: 0, failed: 0, cancelled: 0 };
        for (const r of await this.query<{ status: string; n: number }>(client, this.sql.ITEMS_COUNT_BY_STATUS, [id])) {
          if (r.status in actual) actual[r.status as keyof typeof actual] = r.n;
        }
        const stored = { succeeded: rows[0].succeeded, failed: rows[0].failed, cancelled: rows[0].cancelled };
        if (stored.succeeded === actual.succeeded && stored.failed === actual.failed && stored.cancelled === actual.cancelled) return null;
        await this.query(client, this.sql.BATCH_SET_COUNTERS, [id, actual.succeeded, actual.failed, actual.cancelled]);
        await this.events(client, [{ batch_id: id, tenant: rows[0].tenant, type: 'batch:counters-repaired', data: { stored, actual } }]);
        return { batchId: id, stored, actual };
      }, 'REPEATABLE READ');
      if (mismatch) mismatches.push(mismatch);
    }
    return mismatches;
  }

  // -------------------------------------------------------------------------- items, events

  async itemsList(params: ItemsListParams): Promise<Item[]> {
    const batch = await this.batchRow(this.pool, { id: params.batchId, tenant: params.tenant });
    const status = params.status ?? null;
    return listItemsPaged(
      params,
      async () => (await this.query<ChunkDbRow>(this.pool, this.sql.ITEMS_SCATTERED_CHUNKS, [batch.id, status])).map(toChunkRow),
      async (cursor, pageSize) =>
        (await this.query<ChunkDbRow>(this.pool, this.sql.ITEMS_CONTIGUOUS_CHUNKS, [batch.id, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize])).map(toChunkRow),
    );
  }

  async eventsList(params: EventsListParams): Promise<BatchEvent[]> {
    const [txid, id] = (params.after ?? '0:0').split(':');
    const batchId = params.batchId && isBatchId(params.batchId) ? params.batchId : null;
    if (params.batchId && !batchId) return [];
    const rows = await this.query<Parameters<typeof toEvent>[0]>(this.pool, this.sql.EVENTS_LIST, [
      txid ?? '0', id ?? '0', batchId, params.tenant ?? null, params.types?.length ? params.types : null, params.limit,
    ]);
    return rows.map(toEvent);
  }

  async eventsCursor(): Promise<string> {
    const [row] = await this.query<{ cursor: string }>(this.pool, this.sql.EVENTS_CURSOR);
    return row!.cursor;
  }

  // -------------------------------------------------------------------------- workers, locks

  async workerHeartbeat(params: Omit<WorkerInfo, 'startedAt' | 'heartbeatAt'>): Promise<void> {
    await this.query(this.pool, this.sql.WORKER_UPSERT, [params.id, params.host, params.pid, JSON.stringify(params.types), params.concurrency, params.processed]);
  }

  async workerRemove(params: { id: string }): Promise<void> {
    await this.query(this.pool, this.sql.WORKER_DELETE, [params.id]);
  }

  async workersList(): Promise<WorkerInfo[]> {
    type Row = { id: string; host: string; pid: number; types: string[]; concurrency: number; processed: string; started_at: Date; heartbeat_at: Date };
    return (await this.query<Row>(this.pool, this.sql.WORKERS_LIST)).map((r) => ({
      id: r.id, host: r.host, pid: r.pid, types: r.types, concurrency: r.concurrency, processed: Number(r.processed),
      startedAt: r.started_at, heartbeatAt: r.heartbeat_at,
    }));
  }

  async workersPrune(params: { staleMs: number }): Promise<number> {
    const rows = await this.query(this.pool, `${this.sql.WORKERS_PRUNE} RETURNING id`, [params.staleMs]);
    return rows.length;
  }

  async lockTry(params: { name: string; owner: string; ttlMs: number }): Promise<boolean> {
    return (await this.query(this.pool, this.sql.LOCK_TRY, [params.name, params.owner, params.ttlMs])).length === 1;
  }

  async lockRelease(params: { name: string; owner: string }): Promise<void> {
    await this.query(this.pool, this.sql.LOCK_RELEASE, [params.name, params.owner]);
  }

  // -------------------------------------------------------------------------- notifications

  async subscribe(onWake: (topic: 'work' | 'control') => void): Promise<() => Promise<void>> {
    this.listeners.add(onWake);
    if (!this.listener) await this.listen();
    return async () => {
      this.listeners.delete(onWake);
      if (this.listeners.size === 0 && this.listener) {
        const client = this.listener;
        this.listener = null;
        await client.end().catch(() => {});
      }
    };
  }

  /** Opens the LISTEN connection; if it drops, reopens it after a second (polling covers the gap). */
  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.url });
    this.listener = client;
    const reconnect = () => {
      if (this.listener !== client) return;
      this.listener = null;
      client.end().catch(() => {});
      if (this.closed || this.listeners.size === 0) return;
      setTimeout(() => void this.listen().catch(() => {}), 1_000).unref();
    };
    client.on('error', reconnect);
    client.on('end', reconnect);
    client.on('notification', (message) => {
      const topic = message.payload === 'control' ? 'control' : 'work';
      for (const listener of this.listeners) listener(topic);
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.schema}_work"`);
      await client.query(`LISTEN "${this.schema}_control"`);
    } catch (error) {
      reconnect();
      throw this.translate(error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.listener) {
      const client = this.listener;
      this.listener = null;
      await client.end().catch(() => {});
    }
    await this.pool.end();
  }
}
