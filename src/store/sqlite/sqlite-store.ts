/**
 * The embedded store: one SQLite file in WAL mode (`better-sqlite3`), nothing to install or
 * start. Several processes on one machine may share the file: every write runs in a
 * `BEGIN IMMEDIATE` transaction, which SQLite serialises across processes (waiting up to
 * `busy_timeout`), so the leasing and fencing rules hold exactly as on PostgreSQL.
 *
 * better-sqlite3 is synchronous: each operation blocks the event loop for its duration, which
 * is short by design (a chunk commit is a handful of statements). The one long operation, a
 * streamed submission, stages its chunks in the connection's TEMP database, which takes no lock
 * on the main file, and copies them in one short transaction at the end.
 */

import Database from 'better-sqlite3';
import { InputError } from '../../core/errors.js';
import { newBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import { canApply, type BatchStatus } from '../../core/statuses.js';
import type { ApiKey, Batch, BatchEvent, Item, WorkerInfo } from '../../core/types.js';
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
import { SqliteChunks } from './chunks.js';
import { iso, SqliteConnection, toChunkRow, type BatchRow, type ChunkDbRow, type SqliteStoreOptions } from './connection.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import * as sql from './statements.js';

export type { SqliteStoreOptions } from './connection.js';

type KeyRow = Parameters<typeof toApiKey>[0];

/** Parameters of sql.BATCH_FILTER (each twice). */
function batchFilter(params: Omit<BatchListParams, 'before' | 'limit'>): (string | null)[] {
  const tenant = params.tenant ?? null;
  const type = params.type ?? null;
  const statuses = params.status?.length ? JSON.stringify(params.status) : null;
  const labels = params.labels && Object.keys(params.labels).length > 0 ? JSON.stringify(params.labels) : null;
  return [tenant, tenant, type, type, statuses, statuses, labels, labels];
}

/** The embedded SQLite store. See the module comment for its concurrency model. */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly description: string;
  private readonly c: SqliteConnection;
  private readonly chunks: SqliteChunks;
  private submissions = 0;

  constructor(options: SqliteStoreOptions) {
    this.description = `SQLite ${options.path}`;
    this.c = new SqliteConnection(options);
    this.chunks = new SqliteChunks(this.c);
  }

  // -------------------------------------------------------------------------- migrations

  async migrate(params: { direction: 'up' | 'down'; steps?: number }): Promise<MigrationStatus> {
    await this.c.turn();
    this.c.tx(() => {
      this.c.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
      const current = this.currentVersion();
      if (params.direction === 'up') {
        for (const m of SQLITE_MIGRATIONS.filter((m) => m.version > current).slice(0, params.steps ?? Infinity)) {
          this.c.db.exec(m.up);
          this.c.stmt(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`).run(m.version, m.name, iso(Date.now()));
        }
      } else {
        const down = SQLITE_MIGRATIONS.filter((m) => m.version <= current).reverse().slice(0, params.steps ?? 1);
        for (const m of down) {
          this.c.db.exec(m.down);
          this.c.db.prepare(`DELETE FROM schema_migrations WHERE version = ?`).run(m.version);
        }
      }
    });
    this.c.resetStatements();
    return this.migrationStatus();
  }

  private currentVersion(): number {
    const exists = this.c.db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'`).get();
    if (!exists) return 0;
    const row = this.c.db.prepare(`SELECT max(version) AS v FROM schema_migrations`).get() as { v: number | null };
    return row.v ?? 0;
  }

  async migrationStatus(): Promise<MigrationStatus> {
    await this.c.turn();
    return { current: this.currentVersion(), latest: SQLITE_MIGRATIONS.at(-1)!.version };
  }

  async now(): Promise<Date> {
    return new Date();
  }

  // -------------------------------------------------------------------------- batches

  private findByKeys(params: BatchesSubmitParams): { batch: Batch; digest: string | null }[] {
    const found: { batch: Batch; digest: string | null }[] = [];
    for (const b of params.batches) {
      if (!b.idempotencyKey) continue;
      const row = this.c.stmt(sql.BATCH_BY_KEY).get(b.tenant, b.idempotencyKey) as BatchRow | undefined;
      if (row) found.push({ batch: toBatch(row), digest: row.submit_digest });
    }
    if (found.length > 0 && found.length !== params.batches.length) throw partialDuplicate(params.batches, found.length);
    return found;
  }

  async batchesSubmit(params: BatchesSubmitParams): Promise<BatchesSubmitResult> {
    await this.c.turn();
    const existing = this.findByKeys(params);
    if (existing.length > 0) return { batches: await confirmDuplicate(params, existing), created: false };

    const submission = ++this.submissions;
    this.c.db.exec(sql.STAGE_CREATE);
    const totals = params.batches.map(() => 0);
    try {
      const stage = this.c.stmt(sql.STAGE_INSERT);
      for await (const chunk of params.chunks) {
        stage.run(submission, chunk.batchIndex, chunk.seq0, chunk.n, chunk.payloads);
        totals[chunk.batchIndex]! += chunk.n;
      }
      const digests = params.digests();
      const outcome = this.c.tx((): { raced: { batch: Batch; digest: string | null }[]; ids: string[] } => {
        const raced = this.findByKeys(params);
        if (raced.length > 0) return { raced, ids: [] };
        const now = Date.now();
        const ids = params.batches.map((b, i) => {
          const id = newBatchId(now);
          this.c.stmt(sql.BATCH_INSERT).run(
            id, b.tenant, b.type, b.priority, totals[i], JSON.stringify(b.labels), b.idempotencyKey, digests[i],
            ...optionColumns(b.options), iso(now),
          );
          this.c.stmt(sql.STAGE_COPY).run(id, submission, i);
          this.c.event({ id, tenant: b.tenant }, 'batch:submitted', { type: b.type, total: totals[i], priority: b.priority }, now);
          return id;
        });
        return { raced: [], ids };
      });
      if (outcome.raced.length > 0) return { batches: await confirmDuplicate(params, outcome.raced), created: false };
      return { batches: outcome.ids.map((id) => toBatch(this.c.batchRow({ id }))), created: true };
    } finally {
      this.c.stmt(sql.STAGE_CLEAR).run(submission);
    }
  }

  async batchesCount(): Promise<Partial<Record<BatchStatus, number>>> {
    await this.c.turn();
    const rows = this.c.stmt(sql.BATCHES_COUNT).all() as { status: BatchStatus; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async batchGet(ref: BatchRef): Promise<Batch> {
    await this.c.turn();
    return toBatch(this.c.batchRow(ref));
  }

  async batchList(params: BatchListParams): Promise<Batch[]> {
    await this.c.turn();
    const before = params.before ?? null;
    const rows = this.c.stmt(sql.BATCH_LIST).all(...batchFilter(params), before, before, params.limit) as BatchRow[];
    return rows.map(toBatch);
  }

  async batchCount(params: Omit<BatchListParams, 'before' | 'limit'>): Promise<number> {
    await this.c.turn();
    return (this.c.stmt(sql.BATCH_COUNT).get(...batchFilter(params)) as { n: number }).n;
  }

  async batchesStatus(params: { ids: string[] }): Promise<Map<string, BatchStatus>> {
    await this.c.turn();
    const rows = this.c.stmt(sql.BATCH_STATUSES).all(JSON.stringify(params.ids)) as { id: string; status: BatchStatus }[];
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  async batchCancel(ref: BatchRef): Promise<BatchCancelResult> {
    await this.c.turn();
    const batch = this.c.tx(() => {
      const row = this.c.batchRow(ref);
      if (!canApply('cancel', row.status)) throw statusConflict(row, 'cancel');
      const now = Date.now();
      const { items } = this.c.stmt(sql.BATCH_PENDING_ITEMS).get(row.id) as { items: number };
      this.c.stmt(sql.BATCH_CANCEL_PENDING).run(row.id);
      this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
        row.succeeded, row.failed, row.cancelled + items, row.aggregates, row.leased_items, 'cancelled', iso(now), row.progress_at, row.id,
      );
      const batch = toBatch(this.c.batchRow(ref));
      this.c.event(batch, 'batch:cancelled', { ...finishedEventData(batch), cancelledPending: items }, now);
      return batch;
    });
    const leases = await this.batchLeases(ref);
    return { batch, leased: leases.leased, leaseDeadline: leases.leaseDeadline };
  }

  async batchLeases(ref: BatchRef): Promise<BatchLeases> {
    await this.c.turn();
    const row = this.c.stmt(sql.BATCH_LEASES).get(ref.id.toLowerCase()) as { leased: number; deadline: number | null };
    return { leased: row.leased, leaseDeadline: row.deadline === null ? null : new Date(row.deadline), now: new Date() };
  }

  async batchPause(ref: BatchRef): Promise<Batch> {
    await this.c.turn();
    return this.c.tx(() => {
      const row = this.c.batchRow(ref);
      if (!canApply('pause', row.status)) throw statusConflict(row, 'pause');
      this.c.stmt(sql.BATCH_SET_STATUS).run('paused', null, row.id);
      const batch = toBatch(this.c.batchRow(ref));
      this.c.event(batch, 'batch:paused', progressEventData(batch), Date.now());
      return batch;
    });
  }

  async batchResume(ref: BatchRef): Promise<Batch> {
    await this.c.turn();
    return this.c.tx(() => {
      const row = this.c.batchRow(ref);
      if (!canApply('resume', row.status)) throw statusConflict(row, 'resume');
      this.c.stmt(sql.BATCH_SET_STATUS).run(row.started_at ? 'running' : 'queued', null, row.id);
      const batch = toBatch(this.c.batchRow(ref));
      this.c.event(batch, 'batch:resumed', progressEventData(batch), Date.now());
      return batch;
    });
  }

  async batchRetryFailed(ref: BatchRef): Promise<{ batch: Batch; retried: number }> {
    await this.c.turn();
    return this.c.tx(() => {
      const row = this.c.batchRow(ref);
      if (!canApply('retryFailed', row.status)) throw statusConflict(row, 'retryFailed');
      const now = Date.now();
      const seqs: number[] = [];
      const payloads: unknown[] = [];
      for (const raw of this.c.stmt(sql.BATCH_FAILED_CHUNKS).all(row.id) as ChunkDbRow[]) {
        const chunk = toChunkRow(raw);
        const state = chunk.state ?? new Array<ItemStateEntry | null>(chunk.n).fill(null);
        let moved = 0;
        for (let i = chunk.skip; i < chunk.n; i++) {
          const entry = state[i];
          const failed = entry ? entry.s === 'failed' : chunk.status === 'failed';
          if (!failed) continue;
          state[i] = { s: 'moved', a: entry?.a ?? chunk.attempt };
          seqs.push(seqOf(chunk, i));
          payloads.push(chunk.payloads[i]);
          moved++;
        }
        this.c.stmt(sql.CHUNK_MOVE_FAILED).run(JSON.stringify(state), moved, chunk.id);
      }
      if (seqs.length === 0) return { batch: toBatch(row), retried: 0 };
      for (let i = 0; i < seqs.length; i += RETRY_CHUNK_ITEMS) {
        const part = seqs.slice(i, i + RETRY_CHUNK_ITEMS);
        this.c.stmt(sql.CHUNK_INSERT).run(row.id, null, JSON.stringify(part), part.length, JSON.stringify(payloads.slice(i, i + RETRY_CHUNK_ITEMS)), 0, now, null);
      }
      const status: BatchStatus = row.status === 'paused' ? 'paused' : row.started_at ? 'running' : 'queued';
      this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
        row.succeeded, row.failed - seqs.length, row.cancelled, row.aggregates, row.leased_items, status, null, row.progress_at, row.id,
      );
      const batch = toBatch(this.c.batchRow(ref));
      this.c.event(batch, 'batch:retried', { items: seqs.length }, now);
      return { batch, retried: seqs.length };
    });
  }

  async batchDelete(ref: BatchRef): Promise<void> {
    await this.c.turn();
    this.c.tx(() => {
      const row = this.c.batchRow(ref);
      const { leased } = this.c.stmt(sql.BATCH_LEASES).get(row.id) as { leased: number };
      if (leased > 0) throw leasedConflict(row, leased);
      this.c.stmt(sql.EVENTS_DELETE_BATCH).run(row.id);
      this.c.stmt(sql.BATCH_DELETE).run(row.id);
    });
  }

  async batchesPrune(params: BatchesPruneParams): Promise<BatchesPruneResult> {
    await this.c.turn();
    return this.c.tx(() => {
      const candidates = this.c.stmt(sql.BATCHES_PRUNE_CANDIDATES).all({ ...pruneFilter(params), limit: params.limit }) as { id: string; total: number }[];
      const { ids, more } = prunePage(candidates, params);
      for (const id of ids) {
        this.c.stmt(sql.EVENTS_DELETE_BATCH).run(id);
        this.c.stmt(sql.BATCH_DELETE).run(id);
      }
      return { deleted: ids, more };
    });
  }

  async batchesPrunable(params: BatchesPruneFilter): Promise<number> {
    await this.c.turn();
    return (this.c.stmt(sql.BATCHES_PRUNABLE).get(pruneFilter(params)) as { n: number }).n;
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
    await this.c.turn();
    return this.c.tx(() => {
      const id = params.id?.toLowerCase() ?? null;
      let total = 0;
      for (const chunk of this.c.stmt(sql.CANCELLED_PENDING_CHUNKS).all(id, id) as { id: number; batch_id: string; items: number }[]) {
        this.c.stmt(sql.CHUNK_CLOSE_CANCELLED).run(chunk.id);
        this.c.stmt(sql.BATCH_ADD_CANCELLED).run(chunk.items, chunk.batch_id);
        total += chunk.items;
      }
      return total;
    });
  }

  async batchesFinalize(): Promise<Batch[]> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      return (this.c.stmt(sql.BATCHES_STUCK).all() as BatchRow[]).map((row) => {
        this.c.stmt(sql.BATCH_SET_STATUS).run('completed', iso(now), row.id);
        const batch = toBatch(this.c.batchRow({ id: row.id }));
        this.c.event(batch, 'batch:completed', finishedEventData(batch), now);
        return batch;
      });
    });
  }

  async batchesVerify(params: { since: Date; limit: number; before?: string }): Promise<{ mismatches: CounterMismatch[]; next: string | null }> {
    await this.c.turn();
    const mismatches: CounterMismatch[] = [];
    const before = params.before?.toLowerCase() ?? null;
    const rows = this.c.stmt(sql.BATCHES_RECENT).all(params.since.toISOString(), before, before, params.limit) as BatchRow[];
    for (const { id } of rows) {
      // Count in a read snapshot (WAL), which blocks no writer, and a chunk range at a time,
      // yielding between, so a batch of millions of items does not stall this process's
      // workers; repair, rarely, in a write transaction that counts again so no commit can
      // land between the count and the fix.
      if (!(await this.countsDiffer(id))) continue;
      const repaired = this.c.tx(() => {
        const found = this.counterMismatch(id);
        if (!found) return null;
        const { row, mismatch } = found;
        const { succeeded, failed, cancelled } = mismatch.actual;
        const status = statusAfterRepair(row, mismatch.actual);
        const reopened = status !== row.status;
        this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
          succeeded, failed, cancelled, row.aggregates, row.leased_items, status, reopened ? null : row.finished_at, row.progress_at, row.id,
        );
        this.c.event(row, 'batch:counters-repaired', { stored: mismatch.stored, actual: mismatch.actual, ...(reopened ? { reopened: status } : {}) }, Date.now());
        return mismatch;
      });
      if (repaired) mismatches.push(repaired);
    }
    return { mismatches, next: rows.length === params.limit ? rows.at(-1)!.id : null };
  }

  /** A read-only connection of its own for counting in snapshots across yields (null in memory). */
  private reader: Database.Database | null | undefined;

  /**
   * Whether a batch's counters differ from its items, counted in one snapshot on the reader
   * connection, 200 chunks at a time with a yield between (the main connection keeps
   * committing meanwhile; the snapshot does not see it).
   */
  private async countsDiffer(id: string): Promise<boolean> {
    if (this.reader === undefined) this.reader = this.c.db.memory ? null : new Database(this.c.db.name, { readonly: true, fileMustExist: true });
    const reader = this.reader;
    if (!reader) return this.c.db.transaction(() => this.counterMismatch(id) !== null).deferred();
    reader.prepare('BEGIN').run();
    try {
      const row = reader.prepare(sql.BATCH_GET).get(id, null, null) as BatchRow | undefined;
      if (!row) return false;
      const actual = { succeeded: 0, failed: 0, cancelled: 0 };
      const chunkIds = reader.prepare(sql.CHUNK_IDS_AFTER);
      const counts = reader.prepare(sql.ITEMS_COUNT_BY_STATUS_IN_RANGE);
      for (let after = 0; ; ) {
        const slice = chunkIds.all(id, after, 200) as { id: number }[];
        if (slice.length === 0) break;
        const last = slice.at(-1)!.id;
        for (const r of counts.all(id, after, last, id, after, last) as { status: string; n: number }[]) {
          if (r.status in actual) actual[r.status as keyof typeof actual] += r.n;
        }
        after = last;
        await this.c.turn();
      }
      return row.succeeded !== actual.succeeded || row.failed !== actual.failed || row.cancelled !== actual.cancelled;
    } finally {
      reader.prepare('COMMIT').run();
    }
  }

  private counterMismatch(id: string): { row: BatchRow; mismatch: CounterMismatch } | null {
    const row = this.c.stmt(sql.BATCH_GET).get(id, null, null) as BatchRow | undefined;
    if (!row) return null;
    const actual = { succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of this.c.stmt(sql.ITEMS_COUNT_BY_STATUS).all(id) as { status: string; n: number }[]) {
      if (r.status in actual) actual[r.status as keyof typeof actual] = r.n;
    }
    const stored = { succeeded: row.succeeded, failed: row.failed, cancelled: row.cancelled };
    if (stored.succeeded === actual.succeeded && stored.failed === actual.failed && stored.cancelled === actual.cancelled) return null;
    return { row, mismatch: { batchId: id, stored, actual } };
  }

  // -------------------------------------------------------------------------- items, events

  async itemsList(params: ItemsListParams): Promise<Item[]> {
    await this.c.turn();
    // One read transaction (one snapshot) for every statement of the listing, so another
    // process's commit moving an item into a retry chunk meanwhile is seen in one place only.
    // The fetches are synchronous underneath: nothing of this process runs in between.
    this.c.db.exec('BEGIN DEFERRED');
    try {
      const batch = this.c.batchRow({ id: params.batchId, tenant: params.tenant });
      const status = params.status ?? null;
      return await listItemsPaged(
        params,
        async (cursor, pageSize) =>
          (this.c.stmt(sql.ITEMS_SCATTERED_CHUNKS).all(batch.id, status, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize) as ChunkDbRow[]).map(toChunkRow),
        async (cursor, pageSize) =>
          (this.c.stmt(sql.ITEMS_CONTIGUOUS_CHUNKS).all(batch.id, status, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize) as ChunkDbRow[]).map(toChunkRow),
      );
    } finally {
      this.c.db.exec('COMMIT');
    }
  }

  async eventsList(params: EventsListParams): Promise<BatchEvent[]> {
    await this.c.turn();
    const batchId = params.batchId?.toLowerCase() ?? null;
    const tenant = params.tenant ?? null;
    const types = params.types?.length ? JSON.stringify(params.types) : null;
    const rows = this.c.stmt(sql.EVENTS_LIST).all(params.afterId ?? 0, batchId, batchId, tenant, tenant, types, types, params.limit);
    return (rows as Parameters<typeof toEvent>[0][]).map(toEvent);
  }

  /** SQLite commits one writer at a time, so id order is commit order and following is listing. */
  async eventsFollow(params: EventsFollowParams): Promise<{ events: FollowedEvent[]; cursor: string }> {
    if (!/^\d+$/.test(params.after)) throw new InputError(`${JSON.stringify(params.after)} is not an event cursor`);
    // A cursor past every id given would wait for ever: it came from another database.
    await this.c.turn();
    const { id: last } = this.c.stmt(sql.EVENTS_SEQUENCE).get() as { id: number };
    if (Number(params.after) > last) throw new InputError(`event cursor ${params.after} is beyond the newest event (${last}): it is not from this database`);
    const events = (await this.eventsList({ ...params, afterId: Number(params.after) })).map((e) => ({ ...e, cursor: String(e.id) }));
    return { events, cursor: events.at(-1)?.cursor ?? params.after };
  }

  async eventsCursor(): Promise<string> {
    await this.c.turn();
    return String((this.c.stmt(sql.EVENTS_LAST).get() as { id: number }).id);
  }

  // -------------------------------------------------------------------------- workers, locks

  async workerHeartbeat(params: Omit<WorkerInfo, 'startedAt' | 'heartbeatAt'>): Promise<void> {
    await this.c.turn();
    const now = Date.now();
    this.c.tx(() =>
      this.c
        .stmt(sql.WORKER_UPSERT)
        .run(params.id, params.host, params.pid, JSON.stringify(params.types), params.concurrency, params.processed, params.inFlight, JSON.stringify(params.batches), iso(now), iso(now), now),
    );
  }

  async workerRemove(params: { id: string }): Promise<void> {
    await this.c.turn();
    this.c.tx(() => this.c.stmt(sql.WORKER_DELETE).run(params.id));
  }

  async workerRelease(params: { id: string }): Promise<{ chunks: number; found: boolean }> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      const chunks = this.c.stmt(sql.CHUNKS_EXPIRE_OWNER).run(now - 1, params.id, now - 1).changes;
      const rows = this.c.stmt(sql.WORKER_DELETE).run(params.id).changes;
      return { chunks, found: chunks > 0 || rows > 0 };
    });
  }

  async workersList(): Promise<WorkerInfo[]> {
    await this.c.turn();
    type Row = { id: string; host: string; pid: number; types: string; concurrency: number; processed: number; in_flight: number; batches: string; started_at: string; heartbeat_at: string };
    return (this.c.stmt(sql.WORKERS_LIST).all() as Row[]).map((r) => ({
      id: r.id, host: r.host, pid: r.pid, types: JSON.parse(r.types), concurrency: r.concurrency, processed: r.processed,
      inFlight: r.in_flight, batches: JSON.parse(r.batches),
      startedAt: new Date(r.started_at), heartbeatAt: new Date(r.heartbeat_at),
    }));
  }

  async workersPrune(params: { staleMs: number }): Promise<number> {
    await this.c.turn();
    return this.c.tx(() => this.c.stmt(sql.WORKERS_PRUNE).run(Date.now() - params.staleMs).changes);
  }

  async lockTry(params: { name: string; owner: string; ttlMs: number }): Promise<boolean> {
    await this.c.turn();
    const now = Date.now();
    return this.c.tx(() => this.c.stmt(sql.LOCK_TRY).run(params.name, params.owner, now + params.ttlMs, now).changes === 1);
  }

  async keyCreate(params: { id: string; name: string; tenant: string; admin: boolean; hash: string }): Promise<ApiKey> {
    await this.c.turn();
    const row = this.c.tx(() => this.c.stmt(sql.KEY_INSERT).get(params.id, params.name, params.tenant, params.admin ? 1 : 0, params.hash, iso(Date.now())));
    return publicKey(row as KeyRow);
  }

  async keysList(): Promise<ApiKey[]> {
    await this.c.turn();
    return (this.c.stmt(sql.KEYS_LIST).all() as KeyRow[]).map(publicKey);
  }

  async keyRevoke(params: { id: string }): Promise<ApiKey> {
    await this.c.turn();
    const row = this.c.tx(() => this.c.stmt(sql.KEY_REVOKE).get(iso(Date.now()), params.id)) as KeyRow | undefined;
    if (!row) throw keyNotFound(params.id);
    return publicKey(row);
  }

  async keyFind(params: { id: string }): Promise<(ApiKey & { hash: string }) | null> {
    await this.c.turn();
    const row = this.c.stmt(sql.KEY_GET).get(params.id) as KeyRow | undefined;
    return row ? toApiKey(row) : null;
  }

  async keysExist(): Promise<boolean> {
    await this.c.turn();
    return (this.c.stmt(sql.KEYS_EXIST).get() as { found: number }).found === 1;
  }

  async lockRelease(params: { name: string; owner: string }): Promise<void> {
    await this.c.turn();
    this.c.tx(() => this.c.stmt(sql.LOCK_RELEASE).run(params.name, params.owner));
  }

  async subscribe(): Promise<() => Promise<void>> {
    return async () => {};
  }

  async close(): Promise<void> {
    await this.c.turn();
    this.reader?.close();
    this.reader = null;
    if (this.c.db.open) this.c.db.close();
  }
}

/** The named parameters of the prune statements. */
function pruneFilter(params: BatchesPruneFilter): { before: string; tenant: string | null } {
  return { before: params.finishedBefore.toISOString(), tenant: params.tenant ?? null };
}
