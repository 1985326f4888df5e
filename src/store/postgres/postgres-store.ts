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
import { BatchlineError, StoreUnavailableError } from '../../core/errors.js';
import { isBatchId, newBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import { BATCH_ACTIONS, canApply, type BatchStatus } from '../../core/statuses.js';
import type { ApiKey, Batch, BatchEvent, EventType, Item, WorkerInfo } from '../../core/types.js';
import { listItemsPaged, seqOf } from '../chunk-items.js';
import {
  confirmDuplicate,
  finishedEventData,
  optionColumns,
  partialDuplicate,
  progressEventData,
  prunePage,
  RETRY_CHUNK_ITEMS,
  leasedConflict,
  statusAfterRepair,
  statusConflict,
  keyNotFound,
  publicKey,
  toApiKey,
  toBatch,
  toEvent,
} from '../shared.js';
import type {
  BatchCancelResult,
  BatchesPruneFilter,
  BatchesPruneParams,
  BatchesPruneResult,
  BatchesSubmitParams,
  BatchesSubmitResult,
  BatchLeases,
  BatchListParams,
  BatchRef,
  ChunkCommit,
  ChunksCommitResult,
  ChunksLeaseParams,
  ChunksRenewParams,
  CounterMismatch,
  EventsFollowParams,
  FollowedEvent,
  EventsListParams,
  ItemsListParams,
  LeasedChunk,
  MigrationStatus,
  ReclaimResult,
  Store,
} from '../store.js';
import { PgChunks } from './chunks.js';
import { PgEventCursors } from './event-cursors.js';
import { PgConnection, toChunkRow, type BatchRow, type ChunkDbRow, type PostgresStoreOptions, type Queryable } from './connection.js';
import { PG_MIGRATIONS } from './migrations.js';
import { PgNotifications } from './notifications.js';

/**
 * A submit inserts chunks a few at a time (32 chunks, or 512 KiB of payloads), with one insert
 * in flight while the next is packed: with bigger inserts PostgreSQL sat idle while this
 * process encoded items, and the other way round.
 */
const INSERT_CHUNKS = 32;
const INSERT_BYTES = 512 << 10;

export type { PostgresStoreOptions } from './connection.js';

type KeyRow = Parameters<typeof toApiKey>[0];

/** Labels as the JSON the batches table holds, or null for none. */
function labelsParam(labels: Record<string, string> | undefined): string | null {
  return labels && Object.keys(labels).length > 0 ? JSON.stringify(labels) : null;
}

/** The PostgreSQL store. See the module comment. */
export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly description: string;
  private readonly c: PgConnection;
  private readonly chunks: PgChunks;
  private readonly notifications: PgNotifications;
  private readonly cursors: PgEventCursors;
  private closed = false;

  private constructor(
    pool: pg.Pool,
    options: PostgresStoreOptions,
  ) {
    this.c = new PgConnection(pool, options);
    this.chunks = new PgChunks(this.c);
    this.cursors = new PgEventCursors(this.c);
    this.notifications = new PgNotifications(options.url, this.c);
    this.description = options.display;
  }

  /** Connects (checking the database answers) and returns the store. */
  static async connect(options: PostgresStoreOptions): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 10_000,
      // A half-open connection (a server gone without a goodbye) must fail rather than hang.
      keepAlive: true,
      query_timeout: 120_000,
    });
    const store = new PostgresStore(pool, options);
    try {
      await pool.query('SELECT 1');
    } catch (error) {
      await pool.end().catch(() => {});
      // Whatever stops the first query (a server that hangs up, a timeout, TLS refused) means
      // this database cannot be used; say which, as for a refused connection.
      const translated = store.c.translate(error);
      if (translated instanceof BatchlineError) throw translated;
      throw new StoreUnavailableError(`cannot use ${options.display}: ${(error as Error).message}`, { cause: error });
    }
    return store;
  }

  // -------------------------------------------------------------------------- migrations

  async migrate(params: { direction: 'up' | 'down'; steps?: number }): Promise<MigrationStatus> {
    await this.c.tx(async (client) => {
      // Serialise migrations of this schema across processes starting at once.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`batchline.migrate.${this.c.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.c.quoted}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.c.quoted}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const current = await this.currentVersion(client);
      const todo =
        params.direction === 'up'
          ? PG_MIGRATIONS.filter((m) => m.version > current).slice(0, params.steps ?? Infinity)
          : PG_MIGRATIONS.filter((m) => m.version <= current).reverse().slice(0, params.steps ?? 1);
      for (const m of todo) {
        if (params.direction === 'up') {
          await client.query(m.up(this.c.quoted));
          await client.query(`INSERT INTO ${this.c.quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
        } else {
          await client.query(m.down(this.c.quoted));
          await client.query(`DELETE FROM ${this.c.quoted}.schema_migrations WHERE version = $1`, [m.version]);
        }
      }
    });
    return this.migrationStatus();
  }

  private async currentVersion(db: Queryable): Promise<number> {
    const exists = await this.c.query<{ t: string | null }>(db, `SELECT to_regclass($1) AS t`, [`${this.c.quoted}.schema_migrations`]);
    if (!exists[0]?.t) return 0;
    const rows = await this.c.query<{ v: number | null }>(db, `SELECT max(version) AS v FROM ${this.c.quoted}.schema_migrations`);
    return rows[0]?.v ?? 0;
  }

  async migrationStatus(): Promise<MigrationStatus> {
    return { current: await this.currentVersion(this.c.pool), latest: PG_MIGRATIONS.at(-1)!.version };
  }

  async now(): Promise<Date> {
    const [row] = await this.c.query<{ now: Date }>(this.c.pool, 'SELECT now() AS now');
    return row!.now;
  }

  // -------------------------------------------------------------------------- batches

  private async findByKeys(db: Queryable, params: BatchesSubmitParams): Promise<{ batch: Batch; digest: string | null }[]> {
    const keyed = params.batches.filter((b) => b.idempotencyKey);
    if (keyed.length === 0) return [];
    const rows = await this.c.query<BatchRow>(db, this.c.sql.BATCH_BY_KEYS, [keyed.map((b) => b.tenant), keyed.map((b) => b.idempotencyKey)]);
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
    const existing = await this.findByKeys(this.c.pool, params);
    if (existing.length > 0) return { batches: await confirmDuplicate(params, existing), created: false };
    try {
      const batches = await this.c.tx(async (client) => {
        const ids = params.batches.map(() => newBatchId());
        for (const [i, b] of params.batches.entries()) {
          await this.c.query(client, this.c.sql.BATCH_INSERT, [
            ids[i], b.tenant, b.type, b.priority, JSON.stringify(b.labels), b.idempotencyKey, ...optionColumns(b.options),
          ]);
        }
        const totals = params.batches.map(() => 0);
        let rows: unknown[] = [];
        let bytes = 0;
        // One insert in flight while the next one's chunks are packed (INSERT_CHUNKS).
        let inFlight: Promise<unknown> | null = null;
        const flush = async () => {
          const sent = rows.length === 0 ? null : this.c.query(client, this.c.sql.CHUNKS_INSERT(rows.length / 4), rows);
          sent?.catch(() => {}); // awaited below or, after a failure elsewhere, left to the rollback
          rows = [];
          bytes = 0;
          if (inFlight) await inFlight;
          inFlight = sent;
        };
        for await (const chunk of params.chunks) {
          rows.push(ids[chunk.batchIndex], chunk.seq0, chunk.n, chunk.payloads);
          totals[chunk.batchIndex]! += chunk.n;
          bytes += chunk.payloads.length;
          if (rows.length >= 4 * INSERT_CHUNKS || bytes >= INSERT_BYTES) await flush();
        }
        await flush();
        await inFlight;
        const digests = params.digests();
        const created: Batch[] = [];
        for (const [i, b] of params.batches.entries()) {
          const [row] = await this.c.query<BatchRow>(client, this.c.sql.BATCH_FINISH_SUBMIT, [ids[i], totals[i], digests[i]]);
          created.push(toBatch(row!));
          await this.c.events(client, [{ batch_id: ids[i]!, tenant: b.tenant, type: 'batch:submitted', data: { type: b.type, total: totals[i], priority: b.priority } }]);
        }
        await this.c.notify(client, 'work');
        return created;
      }, { retry: false, waitsOnCaller: true });
      return { batches, created: true };
    } catch (error) {
      // A concurrent submit with the same key won the unique index: return its batches.
      if ((error as { code?: string }).code !== '23505') throw error;
      return { batches: await confirmDuplicate(params, await this.findByKeys(this.c.pool, params)), created: false };
    }
  }

  async batchGet(ref: BatchRef): Promise<Batch> {
    return toBatch(await this.c.batchRow(this.c.pool, ref));
  }

  async batchList(params: BatchListParams): Promise<Batch[]> {
    const before = params.before && isBatchId(params.before) ? params.before : null;
    const rows = await this.c.query<BatchRow>(this.c.pool, this.c.sql.BATCH_LIST, [
      params.tenant ?? null, params.type ?? null, params.status?.length ? params.status : null, before, params.limit, labelsParam(params.labels),
    ]);
    return rows.map(toBatch);
  }

  async batchCount(params: Omit<BatchListParams, 'before' | 'limit'>): Promise<number> {
    const [row] = await this.c.query<{ n: number }>(this.c.pool, this.c.sql.BATCH_COUNT, [
      params.tenant ?? null, params.type ?? null, params.status?.length ? params.status : null, labelsParam(params.labels),
    ]);
    return row!.n;
  }

  async batchesStatus(params: { ids: string[] }): Promise<Map<string, BatchStatus>> {
    const ids = params.ids.filter(isBatchId);
    const rows = await this.c.query<{ id: string; status: BatchStatus }>(this.c.pool, this.c.sql.BATCH_STATUSES, [ids]);
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  async batchCancel(ref: BatchRef): Promise<BatchCancelResult> {
    const batch = await this.c.tx(async (client) => {
      const current = await this.c.batchRow(client, ref);
      if (!canApply('cancel', current.status)) throw statusConflict(current, 'cancel');
      const [{ items }] = (await this.c.query<{ items: number }>(client, this.c.sql.BATCH_CANCEL_PENDING, [current.id])) as [{ items: number }];
      const [row] = await this.c.query<BatchRow>(client, this.c.sql.BATCH_CANCEL, [current.id, items]);
      if (!row) throw statusConflict(await this.c.batchRow(client, ref), 'cancel');
      const batch = toBatch(row);
      await this.c.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:cancelled', data: { ...finishedEventData(batch), cancelledPending: items } }]);
      await this.c.notify(client, 'control');
      return batch;
    });
    const leases = await this.batchLeases(ref);
    return { batch, leased: leases.leased, leaseDeadline: leases.leaseDeadline };
  }

  async batchLeases(ref: BatchRef): Promise<BatchLeases> {
    const [row] = await this.c.query<{ leased: number; deadline: Date | null; now: Date }>(this.c.pool, this.c.sql.BATCH_LEASES, [ref.id]);
    return { leased: row!.leased, leaseDeadline: row!.deadline, now: row!.now };
  }

  private async transition(ref: BatchRef, action: 'pause' | 'resume', status: string, event: EventType): Promise<Batch> {
    return this.c.tx(async (client) => {
      const current = await this.c.batchRow(client, ref);
      const [row] = await this.c.query<BatchRow>(client, this.c.sql.BATCH_TRANSITION, [current.id, status, BATCH_ACTIONS[action]]);
      if (!row) throw statusConflict(await this.c.batchRow(client, ref), action);
      const batch = toBatch(row);
      await this.c.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: event, data: progressEventData(batch) }]);
      await this.c.notify(client, action === 'resume' ? 'work' : 'control');
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
    return this.c.tx(async (client) => {
      const current = await this.c.batchRow(client, ref);
      if (!canApply('retryFailed', current.status)) throw statusConflict(current, 'retryFailed');
      const seqs: number[] = [];
      const payloads: string[] = [];
      for (const raw of await this.c.query<ChunkDbRow>(client, this.c.sql.BATCH_FAILED_CHUNKS, [current.id])) {
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
        await this.c.query(client, this.c.sql.CHUNK_MOVE_FAILED, [chunk.id, JSON.stringify(state), moved]);
      }
      // Nothing to move: read the batch again, as a delete or prune that held its chunks may
      // have removed it while this waited for them (then this is not found, not "0 retried").
      if (seqs.length === 0) return { batch: toBatch(await this.c.batchRow(client, ref)), retried: 0 };
      for (let i = 0; i < seqs.length; i += RETRY_CHUNK_ITEMS) {
        const part = seqs.slice(i, i + RETRY_CHUNK_ITEMS);
        await this.c.query(client, this.c.sql.CHUNK_INSERT, [current.id, null, part, part.length, `[${payloads.slice(i, i + RETRY_CHUNK_ITEMS).join(',')}]`, 0, 0, null]);
      }
      const [row] = await this.c.query<BatchRow>(client, this.c.sql.BATCH_REOPEN, [current.id, seqs.length, BATCH_ACTIONS.retryFailed]);
      if (!row) throw statusConflict(await this.c.batchRow(client, ref), 'retryFailed');
      const batch = toBatch(row);
      await this.c.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:retried', data: { items: seqs.length } }]);
      await this.c.notify(client, 'work');
      return { batch, retried: seqs.length };
    });
  }

  async batchDelete(ref: BatchRef): Promise<void> {
    await this.c.tx(async (client) => {
      const row = await this.c.batchRow(client, ref);
      const [leases] = await this.c.query<{ leased: number }>(client, this.c.sql.BATCH_LEASES_LOCKED, [row.id]);
      if (leases!.leased > 0) throw leasedConflict(row, leases!.leased);
      await this.c.query(client, this.c.sql.EVENTS_DELETE_BATCH, [row.id]);
      await this.c.query(client, this.c.sql.BATCH_DELETE, [row.id]);
      await this.c.notify(client, 'control');
    });
  }

  async batchesPrune(params: BatchesPruneParams): Promise<BatchesPruneResult> {
    const filter = [params.finishedBefore, params.tenant ?? null];
    return this.c.tx(async (client) => {
      const candidates = await this.c.query<{ id: string; total: number }>(client, this.c.sql.BATCHES_PRUNE_CANDIDATES, [...filter, params.limit]);
      const { ids, more } = prunePage(candidates, params);
      if (ids.length === 0) return { deleted: [], more };
      await this.c.query(client, this.c.sql.CHUNKS_LOCK_OF_BATCHES, [ids]);
      const deleted = (await this.c.query<{ id: string }>(client, this.c.sql.BATCHES_PRUNE, [ids, ...filter])).map((row) => row.id);
      return { deleted, more };
    });
  }

  async batchesPrunable(params: BatchesPruneFilter): Promise<number> {
    const [row] = await this.c.query<{ n: number }>(this.c.pool, this.c.sql.BATCHES_PRUNABLE, [params.finishedBefore, params.tenant ?? null]);
    return row!.n;
  }

  // -------------------------------------------------------------------------- leasing, committing

  chunksLease(params: ChunksLeaseParams): Promise<LeasedChunk[]> {
    return this.chunks.lease(params);
  }

  chunksCommit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult> {
    return this.chunks.commit(params);
  }

  chunksRenew(params: ChunksRenewParams): Promise<{ lost: number[] }> {
    return this.chunks.renew(params);
  }

  chunksReclaim(params: { limit: number; batchId?: string }): Promise<ReclaimResult> {
    return this.chunks.reclaim(params);
  }

  // -------------------------------------------------------------------------- reconciling

  async batchesSweepCancelled(params: { id?: string }): Promise<number> {
    if (params.id && !isBatchId(params.id)) return 0;
    return this.c.tx(async (client) => {
      let total = 0;
      const rows = params.id
        ? await this.c.query<{ batch_id: string; items: number }>(client, this.c.sql.CANCELLED_SWEEP_BATCH, [params.id])
        : await this.c.query<{ batch_id: string; items: number }>(client, this.c.sql.CANCELLED_SWEEP, [null]);
      for (const row of rows) {
        await this.c.query(client, this.c.sql.BATCH_UNLEASE, [row.batch_id, 0, row.items]);
        total += row.items;
      }
      return total;
    });
  }

  async batchesFinalize(): Promise<Batch[]> {
    return this.c.tx(async (client) => {
      const batches = (await this.c.query<BatchRow>(client, this.c.sql.BATCHES_FINALIZE)).map(toBatch);
      await this.c.events(client, batches.map((b) => ({ batch_id: b.id, tenant: b.tenant, type: 'batch:completed', data: finishedEventData(b) })));
      return batches;
    });
  }

  async batchesVerify(params: { since: Date; limit: number; before?: string }): Promise<{ mismatches: CounterMismatch[]; next: string | null }> {
    const before = params.before && isBatchId(params.before) ? params.before : null;
    const ids = await this.c.query<{ id: string }>(this.c.pool, this.c.sql.BATCHES_RECENT, [params.since, params.limit, before]);
    const mismatches: CounterMismatch[] = [];
    for (const { id } of ids) {
      // One snapshot for the row and its items; a repair that races a commit fails to serialise and is retried.
      const mismatch = await this.c.tx(async (client) => {
        const rows = await this.c.query<BatchRow>(client, this.c.sql.BATCH_GET, [id, null]);
        if (!rows[0]) return null;
        const actual = { succeeded: 0, failed: 0, cancelled: 0 };
        for (const r of await this.c.query<{ status: string; n: number }>(client, this.c.sql.ITEMS_COUNT_BY_STATUS, [id])) {
          if (r.status in actual) actual[r.status as keyof typeof actual] = r.n;
        }
        const stored = { succeeded: rows[0].succeeded, failed: rows[0].failed, cancelled: rows[0].cancelled };
        if (stored.succeeded === actual.succeeded && stored.failed === actual.failed && stored.cancelled === actual.cancelled) return null;
        const status = statusAfterRepair(rows[0], actual);
        await this.c.query(client, this.c.sql.BATCH_SET_COUNTERS, [id, actual.succeeded, actual.failed, actual.cancelled, status]);
        const reopened = status !== rows[0].status ? { reopened: status } : {};
        await this.c.events(client, [{ batch_id: id, tenant: rows[0].tenant, type: 'batch:counters-repaired', data: { stored, actual, ...reopened } }]);
        if (status !== rows[0].status) await this.c.notify(client, 'work');
        return { batchId: id, stored, actual };
      }, { isolation: 'REPEATABLE READ' });
      if (mismatch) mismatches.push(mismatch);
    }
    return { mismatches, next: ids.length === params.limit ? ids.at(-1)!.id : null };
  }

  // -------------------------------------------------------------------------- items, events

  async itemsList(params: ItemsListParams): Promise<Item[]> {
    // One snapshot for every statement of the listing: an item a commit moves into a retry
    // chunk meanwhile is seen in one place, never in both or neither.
    return this.c.tx(
      async (client) => {
        const batch = await this.c.batchRow(client, { id: params.batchId, tenant: params.tenant });
        const status = params.status ?? null;
        return listItemsPaged(
          params,
          async (cursor, pageSize) =>
            (await this.c.query<ChunkDbRow>(client, this.c.sql.ITEMS_SCATTERED_CHUNKS, [batch.id, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize])).map(toChunkRow),
          async (cursor, pageSize) =>
            (await this.c.query<ChunkDbRow>(client, this.c.sql.ITEMS_CONTIGUOUS_CHUNKS, [batch.id, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize])).map(toChunkRow),
        );
      },
      { isolation: 'REPEATABLE READ' },
    );
  }

  async eventsList(params: EventsListParams): Promise<BatchEvent[]> {
    const batchId = params.batchId && isBatchId(params.batchId) ? params.batchId : null;
    if (params.batchId && !batchId) return [];
    const rows = await this.c.query<Parameters<typeof toEvent>[0]>(this.c.pool, this.c.sql.EVENTS_LIST, [
      params.afterId ?? 0, batchId, params.tenant ?? null, params.types?.length ? params.types : null, params.limit,
    ]);
    return rows.map(toEvent);
  }

  /** See PgEventCursors.follow. */
  eventsFollow(params: EventsFollowParams): Promise<{ events: FollowedEvent[]; cursor: string }> {
    return this.cursors.follow(params);
  }

  eventsCursor(): Promise<string> {
    return this.cursors.now();
  }

  // -------------------------------------------------------------------------- workers, locks

  async workerHeartbeat(params: Omit<WorkerInfo, 'startedAt' | 'heartbeatAt'>): Promise<void> {
    await this.c.query(this.c.pool, this.c.sql.WORKER_UPSERT, [
      params.id, params.host, params.pid, JSON.stringify(params.types), params.concurrency, params.processed, params.inFlight, JSON.stringify(params.batches),
    ]);
  }

  async workerRemove(params: { id: string }): Promise<void> {
    await this.c.query(this.c.pool, this.c.sql.WORKER_DELETE, [params.id]);
  }

  async workerRelease(params: { id: string }): Promise<{ chunks: number; found: boolean }> {
    return this.c.tx(async (client) => {
      const chunks = (await this.c.query(client, this.c.sql.CHUNKS_EXPIRE_OWNER, [params.id])).length;
      const rows = (await this.c.query(client, this.c.sql.WORKER_DELETE, [params.id])).length;
      return { chunks, found: chunks > 0 || rows > 0 };
    });
  }

  async workersList(): Promise<WorkerInfo[]> {
    type Row = { id: string; host: string; pid: number; types: string[]; concurrency: number; processed: string; in_flight: number; batches: string[]; started_at: Date; heartbeat_at: Date };
    return (await this.c.query<Row>(this.c.pool, this.c.sql.WORKERS_LIST)).map((r) => ({
      id: r.id, host: r.host, pid: r.pid, types: r.types, concurrency: r.concurrency, processed: Number(r.processed),
      inFlight: r.in_flight, batches: r.batches,
      startedAt: r.started_at, heartbeatAt: r.heartbeat_at,
    }));
  }

  async batchesCount(): Promise<Partial<Record<BatchStatus, number>>> {
    const rows = await this.c.query<{ status: BatchStatus; n: number }>(this.c.pool, this.c.sql.BATCHES_COUNT);
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async keyCreate(params: { id: string; name: string; tenant: string; admin: boolean; hash: string }): Promise<ApiKey> {
    const [row] = await this.c.query<KeyRow>(this.c.pool, this.c.sql.KEY_INSERT, [params.id, params.name, params.tenant, params.admin, params.hash]);
    return publicKey(row!);
  }

  async keysList(): Promise<ApiKey[]> {
    return (await this.c.query<KeyRow>(this.c.pool, this.c.sql.KEYS_LIST)).map(publicKey);
  }

  async keyRevoke(params: { id: string }): Promise<ApiKey> {
    const [row] = await this.c.query<KeyRow>(this.c.pool, this.c.sql.KEY_REVOKE, [params.id]);
    if (!row) throw keyNotFound(params.id);
    return publicKey(row);
  }

  async keyFind(params: { id: string }): Promise<(ApiKey & { hash: string }) | null> {
    const [row] = await this.c.query<KeyRow>(this.c.pool, this.c.sql.KEY_GET, [params.id]);
    return row ? toApiKey(row) : null;
  }

  async keysExist(): Promise<boolean> {
    const [row] = await this.c.query<{ found: boolean }>(this.c.pool, this.c.sql.KEYS_EXIST);
    return row!.found;
  }

  async workersPrune(params: { staleMs: number }): Promise<number> {
    const rows = await this.c.query(this.c.pool, `${this.c.sql.WORKERS_PRUNE} RETURNING id`, [params.staleMs]);
    return rows.length;
  }

  async lockTry(params: { name: string; owner: string; ttlMs: number }): Promise<boolean> {
    return (await this.c.query(this.c.pool, this.c.sql.LOCK_TRY, [params.name, params.owner, params.ttlMs])).length === 1;
  }

  async lockRelease(params: { name: string; owner: string }): Promise<void> {
    await this.c.query(this.c.pool, this.c.sql.LOCK_RELEASE, [params.name, params.owner]);
  }

  // -------------------------------------------------------------------------- notifications

  subscribe(onWake: (topic: 'work' | 'control') => void): Promise<() => Promise<void>> {
    return this.notifications.subscribe(onWake);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.notifications.close();
    await this.c.pool.end();
  }
}

