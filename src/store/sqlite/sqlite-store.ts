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

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { mergeAggregates } from '../../core/decimal.js';
import { NotFoundError, StoreUnavailableError } from '../../core/errors.js';
import { isBatchId, newBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import { canApply, isTerminalBatchStatus, type BatchStatus } from '../../core/statuses.js';
import type { Batch, BatchEvent, EventType, Item, WorkerInfo } from '../../core/types.js';
import { listItemsPaged, seqOf } from '../chunk-items.js';
import {
  closeChunk,
  confirmDuplicate,
  finishedEventData,
  optionColumns,
  partialDuplicate,
  PROGRESS_EVENT_MS,
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
import { SQLITE_MIGRATIONS } from './migrations.js';
import * as sql from './statements.js';

type BatchRow = BatchRowBase & {
  aggregates: string;
  submit_digest: string | null;
  leased_items: number;
  served_at: number | null;
  progress_at: number | null;
};

interface ChunkDbRow {
  id: number;
  batch_id: string;
  seq0: number | null;
  seqs: string | null;
  skip: number;
  n: number;
  payloads: string;
  state: string | null;
  status: ChunkRow['status'];
  attempt: number;
  error: string | null;
}

export interface SqliteStoreOptions {
  /** Path of the database file; its folder is created when missing. */
  path: string;
  /** How long a write waits for another process's transaction before failing. */
  busyTimeoutMs?: number;
}

const iso = (ms: number) => new Date(ms).toISOString();

function toChunkRow(row: ChunkDbRow): ChunkRow {
  return {
    id: row.id,
    batchId: row.batch_id,
    seq0: row.seq0,
    seqs: row.seqs === null ? null : (JSON.parse(row.seqs) as number[]),
    skip: row.skip,
    n: row.n,
    status: row.status,
    attempt: row.attempt,
    payloads: JSON.parse(row.payloads) as unknown[],
    state: row.state === null ? null : (JSON.parse(row.state) as (ItemStateEntry | null)[]),
    error: row.error == null ? null : JSON.parse(row.error),
  };
}

/** The embedded SQLite store. See the module comment for its concurrency model. */
export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly description: string;
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private submissions = 0;

  constructor(options: SqliteStoreOptions) {
    this.description = `SQLite ${options.path}`;
    try {
      if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
      this.db = new Database(options.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 10_000}`);
      this.db.pragma('foreign_keys = ON');
    } catch (error) {
      throw new StoreUnavailableError(`cannot open SQLite database ${options.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  private stmt(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Every operation first yields to the event loop. better-sqlite3 is synchronous, so without
   * this an `await store.x()` loop (a status poll) would run on microtasks alone and starve the
   * timers and I/O of everything else in the process, workers included.
   */
  private turn(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction, translating lock timeouts. */
  private tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT') {
        throw new StoreUnavailableError(`SQLite database is locked by another process: ${(error as Error).message}`, {
          cause: error,
        });
      }
      throw error;
    }
  }

  private event(batch: { id: string; tenant: string } | null, type: EventType, data: Record<string, unknown>, now: number): void {
    this.stmt(sql.EVENT_INSERT).run(batch?.id ?? null, batch?.tenant ?? null, type, JSON.stringify(data), iso(now));
  }

  private batchRow(ref: BatchRef): BatchRow {
    const tenant = ref.tenant ?? null;
    const row = isBatchId(ref.id) ? (this.stmt(sql.BATCH_GET).get(ref.id, tenant, tenant) as BatchRow | undefined) : undefined;
    if (!row) throw new NotFoundError(`batch ${ref.id} not found`);
    return row;
  }

  // -------------------------------------------------------------------------- migrations

  async migrate(params: { direction: 'up' | 'down'; steps?: number }): Promise<MigrationStatus> {
    await this.turn();
    this.tx(() => {
      this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
      const current = this.currentVersion();
      if (params.direction === 'up') {
        for (const m of SQLITE_MIGRATIONS.filter((m) => m.version > current)) {
          this.db.exec(m.up);
          this.stmt(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`).run(m.version, m.name, iso(Date.now()));
        }
      } else {
        const down = SQLITE_MIGRATIONS.filter((m) => m.version <= current).reverse().slice(0, params.steps ?? 1);
        for (const m of down) {
          this.db.exec(m.down);
          this.db.prepare(`DELETE FROM schema_migrations WHERE version = ?`).run(m.version);
        }
      }
    });
    this.statements.clear();
    return this.migrationStatus();
  }

  private currentVersion(): number {
    const exists = this.db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'`).get();
    if (!exists) return 0;
    const row = this.db.prepare(`SELECT max(version) AS v FROM schema_migrations`).get() as { v: number | null };
    return row.v ?? 0;
  }

  async migrationStatus(): Promise<MigrationStatus> {
    await this.turn();
    return { current: this.currentVersion(), latest: SQLITE_MIGRATIONS.at(-1)!.version };
  }

  // -------------------------------------------------------------------------- batches

  private findByKeys(params: BatchesSubmitParams): { batch: Batch; digest: string | null }[] {
    const found: { batch: Batch; digest: string | null }[] = [];
    for (const b of params.batches) {
      if (!b.idempotencyKey) continue;
      const row = this.stmt(sql.BATCH_BY_KEY).get(b.tenant, b.idempotencyKey) as BatchRow | undefined;
      if (row) found.push({ batch: toBatch(row), digest: row.submit_digest });
    }
    if (found.length > 0 && found.length !== params.batches.length) throw partialDuplicate(params.batches, found.length);
    return found;
  }

  async batchesSubmit(params: BatchesSubmitParams): Promise<BatchesSubmitResult> {
    await this.turn();
    const existing = this.findByKeys(params);
    if (existing.length > 0) return { batches: await confirmDuplicate(params, existing), created: false };

    const submission = ++this.submissions;
    this.db.exec(sql.STAGE_CREATE);
    const totals = params.batches.map(() => 0);
    try {
      const stage = this.stmt(sql.STAGE_INSERT);
      for await (const chunk of params.chunks) {
        stage.run(submission, chunk.batchIndex, chunk.seq0, chunk.n, chunk.payloads);
        totals[chunk.batchIndex]! += chunk.n;
      }
      const digests = params.digests();
      const outcome = this.tx((): { raced: { batch: Batch; digest: string | null }[]; ids: string[] } => {
        const raced = this.findByKeys(params);
        if (raced.length > 0) return { raced, ids: [] };
        const now = Date.now();
        const ids = params.batches.map((b, i) => {
          const id = newBatchId(now);
          this.stmt(sql.BATCH_INSERT).run(
            id, b.tenant, b.type, b.priority, totals[i], JSON.stringify(b.labels), b.idempotencyKey, digests[i],
            ...optionColumns(b.options), iso(now),
          );
          this.stmt(sql.STAGE_COPY).run(id, submission, i);
          this.event({ id, tenant: b.tenant }, 'batch:submitted', { type: b.type, total: totals[i], priority: b.priority }, now);
          return id;
        });
        return { raced: [], ids };
      });
      if (outcome.raced.length > 0) return { batches: await confirmDuplicate(params, outcome.raced), created: false };
      return { batches: outcome.ids.map((id) => toBatch(this.batchRow({ id }))), created: true };
    } finally {
      this.stmt(sql.STAGE_CLEAR).run(submission);
    }
  }

  async batchGet(ref: BatchRef): Promise<Batch> {
    await this.turn();
    return toBatch(this.batchRow(ref));
  }

  async batchList(params: BatchListParams): Promise<Batch[]> {
    await this.turn();
    const tenant = params.tenant ?? null;
    const type = params.type ?? null;
    const statuses = params.status?.length ? JSON.stringify(params.status) : null;
    const before = params.before ?? null;
    const rows = this.stmt(sql.BATCH_LIST).all(tenant, tenant, type, type, statuses, statuses, before, before, params.limit) as BatchRow[];
    return rows.map(toBatch);
  }

  async batchesStatus(params: { ids: string[] }): Promise<Map<string, BatchStatus>> {
    await this.turn();
    const rows = this.stmt(sql.BATCH_STATUSES).all(JSON.stringify(params.ids)) as { id: string; status: BatchStatus }[];
    return new Map(rows.map((r) => [r.id, r.status]));
  }

  async batchCancel(ref: BatchRef): Promise<BatchCancelResult> {
    await this.turn();
    const batch = this.tx(() => {
      const row = this.batchRow(ref);
      if (!canApply('cancel', row.status)) throw statusConflict(row, 'cancel');
      const now = Date.now();
      const { items } = this.stmt(sql.BATCH_PENDING_ITEMS).get(row.id) as { items: number };
      this.stmt(sql.BATCH_CANCEL_PENDING).run(row.id);
      this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
        row.succeeded, row.failed, row.cancelled + items, row.aggregates, row.leased_items, 'cancelled', iso(now), row.progress_at, row.id,
      );
      const batch = toBatch(this.batchRow(ref));
      this.event(batch, 'batch:cancelled', { ...finishedEventData(batch), cancelledPending: items }, now);
      return batch;
    });
    const leases = await this.batchLeases(ref);
    return { batch, leased: leases.leased, leaseDeadline: leases.leaseDeadline };
  }

  async batchLeases(ref: BatchRef): Promise<BatchLeases> {
    await this.turn();
    const row = this.stmt(sql.BATCH_LEASES).get(ref.id) as { leased: number; deadline: number | null };
    return { leased: row.leased, leaseDeadline: row.deadline === null ? null : new Date(row.deadline), now: new Date() };
  }

  async batchPause(ref: BatchRef): Promise<Batch> {
    await this.turn();
    return this.tx(() => {
      const row = this.batchRow(ref);
      if (!canApply('pause', row.status)) throw statusConflict(row, 'pause');
      this.stmt(sql.BATCH_SET_STATUS).run('paused', null, row.id);
      const batch = toBatch(this.batchRow(ref));
      this.event(batch, 'batch:paused', progressEventData(batch), Date.now());
      return batch;
    });
  }

  async batchResume(ref: BatchRef): Promise<Batch> {
    await this.turn();
    return this.tx(() => {
      const row = this.batchRow(ref);
      if (!canApply('resume', row.status)) throw statusConflict(row, 'resume');
      this.stmt(sql.BATCH_SET_STATUS).run(row.started_at ? 'running' : 'queued', null, row.id);
      const batch = toBatch(this.batchRow(ref));
      this.event(batch, 'batch:resumed', progressEventData(batch), Date.now());
      return batch;
    });
  }

  async batchRetryFailed(ref: BatchRef): Promise<{ batch: Batch; retried: number }> {
    await this.turn();
    return this.tx(() => {
      const row = this.batchRow(ref);
      if (!canApply('retryFailed', row.status)) throw statusConflict(row, 'retryFailed');
      const now = Date.now();
      const seqs: number[] = [];
      const payloads: unknown[] = [];
      for (const raw of this.stmt(sql.BATCH_FAILED_CHUNKS).all(row.id) as ChunkDbRow[]) {
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
        this.stmt(sql.CHUNK_MOVE_FAILED).run(JSON.stringify(state), moved, chunk.id);
      }
      if (seqs.length === 0) return { batch: toBatch(row), retried: 0 };
      for (let i = 0; i < seqs.length; i += RETRY_CHUNK_ITEMS) {
        const part = seqs.slice(i, i + RETRY_CHUNK_ITEMS);
        this.stmt(sql.CHUNK_INSERT).run(row.id, null, JSON.stringify(part), part.length, JSON.stringify(payloads.slice(i, i + RETRY_CHUNK_ITEMS)), 0, now);
      }
      const status: BatchStatus = row.status === 'paused' ? 'paused' : row.started_at ? 'running' : 'queued';
      this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
        row.succeeded, row.failed - seqs.length, row.cancelled, row.aggregates, row.leased_items, status, null, row.progress_at, row.id,
      );
      const batch = toBatch(this.batchRow(ref));
      this.event(batch, 'batch:retried', { items: seqs.length }, now);
      return { batch, retried: seqs.length };
    });
  }

  async batchDelete(ref: BatchRef): Promise<void> {
    await this.turn();
    this.tx(() => {
      const row = this.batchRow(ref);
      const { leased } = this.stmt(sql.BATCH_LEASES).get(row.id) as { leased: number };
      if (leased > 0 || !canApply('delete', row.status)) throw statusConflict(row, 'delete');
      this.stmt(sql.EVENTS_DELETE_BATCH).run(row.id);
      this.stmt(sql.BATCH_DELETE).run(row.id);
    });
  }

  // -------------------------------------------------------------------------- leasing

  async chunksLease(params: ChunksLeaseParams): Promise<LeasedChunk[]> {
    await this.turn();
    return this.tx(() => {
      const now = Date.now();
      const batch = this.stmt(sql.LEASE_CANDIDATE).get(JSON.stringify(params.types), now) as BatchRow | undefined;
      if (!batch) return [];
      const maxItems = params.maxItemsByType?.[batch.type] ?? params.maxItems;
      const room = batch.concurrency === null ? maxItems : Math.min(maxItems, batch.concurrency - batch.leased_items);
      type Pending = { id: number; seq0: number | null; seqs: string | null; skip: number; n: number; done: number; attempt: number; partial: number };
      const ids: number[] = [];
      let items = 0;
      for (const c of this.stmt(sql.LEASE_PENDING_CHUNKS).all(batch.id, now) as Pending[]) {
        const live = c.n - c.skip - c.done;
        if (items + live <= room || (ids.length === 0 && c.partial)) {
          ids.push(c.id);
          items += live;
          continue;
        }
        if (ids.length === 0) {
          ids.push(this.splitHead(batch.id, c, room));
          items += room;
        }
        break;
      }
      if (ids.length === 0) return [];
      const expires = now + params.leaseMs;
      const rows = this.stmt(sql.CHUNKS_LEASE).all(params.workerId, expires, JSON.stringify(ids)) as (ChunkDbRow & { lease_no: number })[];
      this.stmt(sql.BATCH_MARK_LEASED).run(now, items, iso(now), batch.id);
      if (batch.status === 'queued') this.event(batch, 'batch:started', {}, now);
      const options = toBatch(batch).options;
      return rows.map((row) => {
        const chunk = toChunkRow(row);
        return {
          chunkId: chunk.id, batchId: batch.id, tenant: batch.tenant, type: batch.type, leaseNo: row.lease_no,
          attempt: chunk.attempt, seq0: chunk.seq0, seqs: chunk.seqs, skip: chunk.skip, n: chunk.n,
          payloads: chunk.payloads, state: chunk.state, options, expiresAt: new Date(expires),
        };
      });
    });
  }

  /** Moves the first `k` unrecorded slots of an untouched chunk into a new chunk; returns its id. */
  private splitHead(batchId: string, c: { id: number; seq0: number | null; seqs: string | null; skip: number; attempt: number }, k: number): number {
    const { payloads } = this.stmt(sql.CHUNK_PAYLOADS).get(c.id) as { payloads: string };
    const head = (JSON.parse(payloads) as unknown[]).slice(c.skip, c.skip + k);
    const seqs = c.seqs === null ? null : JSON.stringify((JSON.parse(c.seqs) as number[]).slice(c.skip, c.skip + k));
    const seq0 = c.seq0 === null ? null : c.seq0 + c.skip;
    const info = this.stmt(sql.CHUNK_INSERT).run(batchId, seq0, seqs, k, JSON.stringify(head), c.attempt, 0);
    this.stmt(sql.CHUNK_ADVANCE_SKIP).run(k, c.id);
    return Number(info.lastInsertRowid);
  }

  // -------------------------------------------------------------------------- committing

  async chunksCommit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult> {
    await this.turn();
    return this.tx(() => {
      const now = Date.now();
      const lost: number[] = [];
      const perBatch = new Map<string, { succeeded: number; failed: number; cancelled: number; leased: number; aggregates: Record<string, string> }>();
      for (const c of params.commits) {
        const row = this.stmt(sql.CHUNK_FENCE).get(c.chunkId) as
          | { n: number; skip: number; done: number; attempt: number; lease_no: number; status: string }
          | undefined;
        if (!row || row.status !== 'leased' || row.lease_no !== c.leaseNo) {
          lost.push(c.chunkId);
          continue;
        }
        const w = closeChunk(row, c);
        this.stmt(sql.CHUNK_WRITE).run(
          c.state, w.done, c.delta.succeeded, c.delta.failed + w.inheritedFailed, c.delta.cancelled + w.inheritedCancelled,
          w.status, w.attempt, c.close === 'fail' ? JSON.stringify(c.error ?? null) : null, now, w.status, w.status, c.chunkId,
        );
        for (const r of c.retries) {
          this.stmt(sql.CHUNK_INSERT).run(c.batchId, null, JSON.stringify(r.seqs), r.seqs.length, r.payloads, r.attempt, now + r.delayMs);
        }
        const acc = perBatch.get(c.batchId) ?? { succeeded: 0, failed: 0, cancelled: 0, leased: 0, aggregates: {} };
        acc.succeeded += c.delta.succeeded;
        acc.failed += c.delta.failed + w.inheritedFailed;
        acc.cancelled += c.delta.cancelled + w.inheritedCancelled;
        acc.leased += w.unleased;
        acc.aggregates = mergeAggregates(acc.aggregates, c.aggregates);
        perBatch.set(c.batchId, acc);
      }
      const finished: Batch[] = [];
      for (const [batchId, acc] of perBatch) {
        const b = this.stmt(sql.BATCH_GET).get(batchId, null, null) as BatchRow | undefined;
        if (!b) continue;
        const succeeded = b.succeeded + acc.succeeded;
        const failed = b.failed + acc.failed;
        const cancelled = b.cancelled + acc.cancelled;
        const completes = !isTerminalBatchStatus(b.status) && succeeded + failed + cancelled >= b.total;
        const progress = !completes && (b.progress_at === null || now - b.progress_at >= PROGRESS_EVENT_MS);
        this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
          succeeded, failed, cancelled, JSON.stringify(mergeAggregates(JSON.parse(b.aggregates), acc.aggregates)),
          b.leased_items - acc.leased, completes ? 'completed' : b.status, completes ? iso(now) : b.finished_at,
          progress ? now : b.progress_at, batchId,
        );
        if (completes || progress) {
          const batch = toBatch(this.batchRow({ id: batchId }));
          if (completes) {
            this.event(batch, 'batch:completed', finishedEventData(batch), now);
            finished.push(batch);
          } else {
            this.event(batch, 'batch:progress', progressEventData(batch), now);
          }
        }
      }
      return { lost, finished };
    });
  }

  async chunksRenew(params: ChunksRenewParams): Promise<{ lost: number[] }> {
    await this.turn();
    return this.tx(() => {
      const expires = Date.now() + params.leaseMs;
      const lost: number[] = [];
      for (const lease of params.leases) {
        const info = this.stmt(sql.CHUNK_RENEW).run(expires, lease.chunkId, lease.leaseNo);
        if (info.changes === 0) lost.push(lease.chunkId);
      }
      return { lost };
    });
  }

  // -------------------------------------------------------------------------- reconciling

  async chunksReclaim(params: { limit: number }): Promise<ReclaimResult> {
    await this.turn();
    return this.tx(() => {
      const now = Date.now();
      type Expired = { id: number; batch_id: string; n: number; skip: number; done: number; attempt: number; lease_owner: string; batch_status: BatchStatus };
      const result: ReclaimResult = { requeued: 0, cancelled: 0, finished: [] };
      for (const c of this.stmt(sql.CHUNKS_EXPIRED).all(now, params.limit) as Expired[]) {
        const remaining = c.n - c.skip - c.done;
        const b = this.batchRow({ id: c.batch_id });
        if (c.batch_status === 'cancelled') {
          this.stmt(sql.CHUNK_CLOSE_CANCELLED).run(c.id);
          this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
            b.succeeded, b.failed, b.cancelled + remaining, b.aggregates, b.leased_items - remaining, b.status, b.finished_at, b.progress_at, b.id,
          );
          result.cancelled++;
        } else {
          this.stmt(sql.CHUNK_REQUEUE).run(now, c.id);
          this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
            b.succeeded, b.failed, b.cancelled, b.aggregates, b.leased_items - remaining, b.status, b.finished_at, b.progress_at, b.id,
          );
          result.requeued++;
        }
        this.event(b, 'batch:lease-expired', { chunk: c.id, worker: c.lease_owner, items: remaining, attempt: c.attempt }, now);
      }
      return result;
    });
  }

  async batchesFinalize(): Promise<Batch[]> {
    await this.turn();
    return this.tx(() => {
      const now = Date.now();
      return (this.stmt(sql.BATCHES_STUCK).all() as BatchRow[]).map((row) => {
        this.stmt(sql.BATCH_SET_STATUS).run('completed', iso(now), row.id);
        const batch = toBatch(this.batchRow({ id: row.id }));
        this.event(batch, 'batch:completed', finishedEventData(batch), now);
        return batch;
      });
    });
  }

  async batchesVerify(params: { since: Date; limit: number }): Promise<CounterMismatch[]> {
    await this.turn();
    const mismatches: CounterMismatch[] = [];
    const rows = this.stmt(sql.BATCHES_RECENT).all(params.since.toISOString(), params.limit) as BatchRow[];
    for (const { id } of rows) {
      // Count in a read snapshot (WAL), which blocks no writer; repair, rarely, in a write
      // transaction that counts again so no commit can land between the count and the fix.
      if (!this.db.transaction(() => this.counterMismatch(id)).deferred()) continue;
      const repaired = this.tx(() => {
        const found = this.counterMismatch(id);
        if (!found) return null;
        const { row, mismatch } = found;
        const { succeeded, failed, cancelled } = mismatch.actual;
        this.stmt(sql.BATCH_UPDATE_PROGRESS).run(
          succeeded, failed, cancelled, row.aggregates, row.leased_items, row.status, row.finished_at, row.progress_at, row.id,
        );
        this.event(row, 'batch:counters-repaired', { stored: mismatch.stored, actual: mismatch.actual }, Date.now());
        return mismatch;
      });
      if (repaired) mismatches.push(repaired);
    }
    return mismatches;
  }

  private counterMismatch(id: string): { row: BatchRow; mismatch: CounterMismatch } | null {
    const row = this.stmt(sql.BATCH_GET).get(id, null, null) as BatchRow | undefined;
    if (!row) return null;
    const actual = { succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of this.stmt(sql.ITEMS_COUNT_BY_STATUS).all(id) as { status: string; n: number }[]) {
      if (r.status in actual) actual[r.status as keyof typeof actual] = r.n;
    }
    const stored = { succeeded: row.succeeded, failed: row.failed, cancelled: row.cancelled };
    if (stored.succeeded === actual.succeeded && stored.failed === actual.failed && stored.cancelled === actual.cancelled) return null;
    return { row, mismatch: { batchId: id, stored, actual } };
  }

  // -------------------------------------------------------------------------- items, events

  async itemsList(params: ItemsListParams): Promise<Item[]> {
    await this.turn();
    const batch = this.batchRow({ id: params.batchId, tenant: params.tenant });
    const status = params.status ?? null;
    return listItemsPaged(
      params,
      async () => (this.stmt(sql.ITEMS_SCATTERED_CHUNKS).all(batch.id, status, status) as ChunkDbRow[]).map(toChunkRow),
      async (cursor, pageSize) =>
        (this.stmt(sql.ITEMS_CONTIGUOUS_CHUNKS).all(batch.id, status, status, params.after ?? -1, cursor.seq0, cursor.id, pageSize) as ChunkDbRow[]).map(toChunkRow),
    );
  }

  async eventsList(params: EventsListParams): Promise<BatchEvent[]> {
    await this.turn();
    const batchId = params.batchId ?? null;
    const tenant = params.tenant ?? null;
    const types = params.types?.length ? JSON.stringify(params.types) : null;
    const after = params.after === undefined ? 0 : Number(params.after);
    const rows = this.stmt(sql.EVENTS_LIST).all(after, batchId, batchId, tenant, tenant, types, types, params.limit);
    return (rows as Parameters<typeof toEvent>[0][]).map(toEvent);
  }

  async eventsCursor(): Promise<string> {
    await this.turn();
    return String((this.stmt(sql.EVENTS_LAST).get() as { id: number }).id);
  }

  // -------------------------------------------------------------------------- workers, locks

  async workerHeartbeat(params: Omit<WorkerInfo, 'startedAt' | 'heartbeatAt'>): Promise<void> {
    await this.turn();
    const now = Date.now();
    this.tx(() =>
      this.stmt(sql.WORKER_UPSERT).run(params.id, params.host, params.pid, JSON.stringify(params.types), params.concurrency, params.processed, iso(now), iso(now), now),
    );
  }

  async workerRemove(params: { id: string }): Promise<void> {
    await this.turn();
    this.tx(() => this.stmt(sql.WORKER_DELETE).run(params.id));
  }

  async workersList(): Promise<WorkerInfo[]> {
    await this.turn();
    type Row = { id: string; host: string; pid: number; types: string; concurrency: number; processed: number; started_at: string; heartbeat_at: string };
    return (this.stmt(sql.WORKERS_LIST).all() as Row[]).map((r) => ({
      id: r.id, host: r.host, pid: r.pid, types: JSON.parse(r.types), concurrency: r.concurrency, processed: r.processed,
      startedAt: new Date(r.started_at), heartbeatAt: new Date(r.heartbeat_at),
    }));
  }

  async workersPrune(params: { staleMs: number }): Promise<number> {
    await this.turn();
    return this.tx(() => this.stmt(sql.WORKERS_PRUNE).run(Date.now() - params.staleMs).changes);
  }

  async lockTry(params: { name: string; owner: string; ttlMs: number }): Promise<boolean> {
    await this.turn();
    const now = Date.now();
    return this.tx(() => this.stmt(sql.LOCK_TRY).run(params.name, params.owner, now + params.ttlMs, now).changes === 1);
  }

  async lockRelease(params: { name: string; owner: string }): Promise<void> {
    await this.turn();
    this.tx(() => this.stmt(sql.LOCK_RELEASE).run(params.name, params.owner));
  }

  async subscribe(): Promise<() => Promise<void>> {
    return async () => {};
  }

  async close(): Promise<void> {
    await this.turn();
    if (this.db.open) this.db.close();
  }
}
