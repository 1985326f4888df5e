/**
 * The embedded store's hot path: leasing chunks, committing their outcomes, renewing leases
 * and handing expired ones back. Every method is one BEGIN IMMEDIATE transaction, which SQLite
 * serialises across processes, so leasing and fencing need no row locks.
 */

import { mergeAggregates } from '../../core/decimal.js';
import { isTerminalBatchStatus, type BatchStatus } from '../../core/statuses.js';
import type { Batch } from '../../core/types.js';
import { allowedAttempts, closeChunk, fence, finishedEventData, leaseMarks, planLease, PROGRESS_EVENT_MS, progressEventData, toBatch } from '../shared.js';
import type { ChunkCommit, ChunksCommitResult, ChunksLeaseParams, ChunksRenewParams, LeasedChunk, ReclaimResult } from '../store.js';
import { iso, toChunkRow, type BatchRow, type ChunkDbRow, type SqliteConnection } from './connection.js';
import * as sql from './statements.js';

/** Leasing and committing chunks on one SQLite connection. */
export class SqliteChunks {
  constructor(private readonly c: SqliteConnection) {}

  async lease(params: ChunksLeaseParams): Promise<LeasedChunk[]> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      // A candidate can yield nothing (a half-done chunk bigger than its cap leaves): the next
      // one is served rather than none.
      for (const batch of this.c.stmt(sql.LEASE_CANDIDATES).all(JSON.stringify(params.types), now) as BatchRow[]) {
        const leased = this.leaseFrom(batch, params, now);
        if (leased.length > 0) return leased;
      }
      return [];
    });
  }

  /** Leases from one batch, within the caller's transaction; nothing when nothing fits. */
  private leaseFrom(batch: BatchRow, params: ChunksLeaseParams, now: number): LeasedChunk[] {
    const maxItems = params.maxItemsByType?.[batch.type] ?? params.maxItems;
    const room = batch.concurrency === null ? maxItems : Math.min(maxItems, batch.concurrency - batch.leased_items);
    type Pending = { id: number; seq0: number | null; seqs: string | null; skip: number; n: number; done: number; attempt: number; started_before: number | null; partial: number };
    const capRoom = batch.concurrency === null ? Infinity : batch.concurrency - batch.leased_items;
    const plan = planLease(this.c.stmt(sql.LEASE_PENDING_CHUNKS).all(batch.id, now) as Pending[], room, capRoom);
    const ids = plan.take.map((c) => c.id);
    // Start marks as they were before CHUNKS_LEASE replaces them. Chunks with one are never split.
    const marks = new Map(plan.take.map((c) => [c.id, c.started_before]));
    const order: Parameters<typeof leaseMarks<number>>[0] = [...plan.take];
    if (plan.split) {
      const head = this.splitHead(batch.id, plan.split.chunk, plan.split.items);
      ids.push(head);
      order.push({ id: head, skip: 0, n: plan.split.items, attempt: plan.split.chunk.attempt, started_before: null });
    }
    if (ids.length === 0) return [];
    const { limits, written } = leaseMarks(order, allowedAttempts(batch.max_attempts, batch.type, params), params.startMarkByType?.[batch.type] ?? 0);
    const expires = now + params.leaseMs;
    const rows = this.c.stmt(sql.CHUNKS_LEASE).all(params.workerId, expires, JSON.stringify(Object.fromEntries(written)), JSON.stringify(ids)) as (ChunkDbRow & { lease_no: number; commit_no: number })[];
    // In the order the marks were counted in, which is the order to start them in.
    rows.sort((a, b) => ids.indexOf(a.id) - ids.indexOf(b.id));
    this.c.stmt(sql.BATCH_MARK_LEASED).run(now, plan.items, iso(now), batch.id);
    if (batch.status === 'queued') this.c.event(batch, 'batch:started', {}, now);
    const options = toBatch(batch).options;
    return rows.map((row) => {
      const chunk = toChunkRow(row);
      return {
        chunkId: chunk.id, batchId: batch.id, tenant: batch.tenant, type: batch.type, leaseNo: row.lease_no, commitNo: row.commit_no,
        attempt: chunk.attempt, seq0: chunk.seq0, seqs: chunk.seqs, skip: chunk.skip, n: chunk.n,
        payloads: chunk.payloads, state: chunk.state, startedBefore: marks.get(chunk.id) ?? null, startLimit: limits.get(chunk.id) ?? null,
        options, expiresAt: new Date(expires),
      };
    });
  }

  /** Moves the first `k` unrecorded slots of an untouched chunk into a new chunk; returns its id. */
  private splitHead(batchId: string, c: { id: number; seq0: number | null; seqs: string | null; skip: number; attempt: number }, k: number): number {
    const { payloads } = this.c.stmt(sql.CHUNK_PAYLOADS).get(c.id) as { payloads: string };
    const head = (JSON.parse(payloads) as unknown[]).slice(c.skip, c.skip + k);
    const seqs = c.seqs === null ? null : JSON.stringify((JSON.parse(c.seqs) as number[]).slice(c.skip, c.skip + k));
    const seq0 = c.seq0 === null ? null : c.seq0 + c.skip;
    const info = this.c.stmt(sql.CHUNK_INSERT).run(batchId, seq0, seqs, k, JSON.stringify(head), c.attempt, 0, null);
    this.c.stmt(sql.CHUNK_ADVANCE_SKIP).run(k, c.id);
    return Number(info.lastInsertRowid);
  }

  async commit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      const lost: number[] = [];
      const alreadyApplied: number[] = [];
      const perBatch = new Map<string, { succeeded: number; failed: number; cancelled: number; leased: number; aggregates: Record<string, string> }>();
      for (const c of params.commits) {
        const row = this.c.stmt(sql.CHUNK_FENCE).get(c.chunkId) as
          | { batch_id: string; n: number; skip: number; done: number; attempt: number; started_before: number | null; lease_no: number; commit_no: number; status: string }
          | undefined;
        const verdict = fence(row, c);
        if (verdict !== 'apply') {
          (verdict === 'lost' ? lost : alreadyApplied).push(c.chunkId);
          continue;
        }
        const w = closeChunk(row!, c);
        this.c.stmt(sql.CHUNK_WRITE).run(
          c.state, w.done, c.delta.succeeded, c.delta.failed + w.inheritedFailed, c.delta.cancelled + w.inheritedCancelled,
          w.status, w.attempt, w.startedBefore, c.close === 'fail' ? JSON.stringify(c.error ?? null) : null, now, c.nextCommitNo, w.status, w.status, c.chunkId,
        );
        for (const r of c.retries) {
          this.c.stmt(sql.CHUNK_INSERT).run(c.batchId, null, JSON.stringify(r.seqs), r.seqs.length, r.payloads, r.attempt, now + r.delayMs, null);
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
        const b = this.c.stmt(sql.BATCH_GET).get(batchId, null, null) as BatchRow | undefined;
        if (!b) continue;
        const succeeded = b.succeeded + acc.succeeded;
        const failed = b.failed + acc.failed;
        const cancelled = b.cancelled + acc.cancelled;
        const completes = !isTerminalBatchStatus(b.status) && succeeded + failed + cancelled >= b.total;
        const progress = !completes && (b.progress_at === null || now - b.progress_at >= PROGRESS_EVENT_MS);
        this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
          succeeded, failed, cancelled, JSON.stringify(mergeAggregates(JSON.parse(b.aggregates), acc.aggregates)),
          b.leased_items - acc.leased, completes ? 'completed' : b.status, completes ? iso(now) : b.finished_at,
          progress ? now : b.progress_at, batchId,
        );
        if (completes || progress) {
          const batch = toBatch(this.c.batchRow({ id: batchId }));
          if (completes) {
            this.c.event(batch, 'batch:completed', finishedEventData(batch), now);
            finished.push(batch);
          } else {
            this.c.event(batch, 'batch:progress', progressEventData(batch), now);
          }
        }
      }
      return { lost, alreadyApplied, finished };
    });
  }

  async renew(params: ChunksRenewParams): Promise<{ lost: number[] }> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      const expires = now + params.leaseMs;
      const lost: number[] = [];
      for (const lease of params.leases) {
        const info = this.c.stmt(sql.CHUNK_RENEW).run(expires, lease.chunkId, lease.leaseNo, now);
        if (info.changes === 0) lost.push(lease.chunkId);
      }
      return { lost };
    });
  }

  async reclaim(params: { limit: number; batchId?: string }): Promise<ReclaimResult> {
    await this.c.turn();
    return this.c.tx(() => {
      const now = Date.now();
      type Expired = { id: number; batch_id: string; n: number; skip: number; done: number; attempt: number; lease_owner: string; batch_status: BatchStatus };
      const result: ReclaimResult = { requeued: 0, cancelled: 0, finished: [] };
      for (const c of this.c.stmt(sql.CHUNKS_EXPIRED).all(now, params.batchId?.toLowerCase() ?? null, params.batchId?.toLowerCase() ?? null, params.limit) as Expired[]) {
        const remaining = c.n - c.skip - c.done;
        const b = this.c.batchRow({ id: c.batch_id });
        if (c.batch_status === 'cancelled') {
          this.c.stmt(sql.CHUNK_CLOSE_CANCELLED).run(c.id);
          this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
            b.succeeded, b.failed, b.cancelled + remaining, b.aggregates, b.leased_items - remaining, b.status, b.finished_at, b.progress_at, b.id,
          );
          result.cancelled++;
        } else {
          this.c.stmt(sql.CHUNK_REQUEUE).run(now, c.id);
          this.c.stmt(sql.BATCH_UPDATE_PROGRESS).run(
            b.succeeded, b.failed, b.cancelled, b.aggregates, b.leased_items - remaining, b.status, b.finished_at, b.progress_at, b.id,
          );
          result.requeued++;
        }
        this.c.event(b, 'batch:lease-expired', { chunk: c.id, worker: c.lease_owner, items: remaining, attempt: c.attempt }, now);
      }
      return result;
    });
  }
}
