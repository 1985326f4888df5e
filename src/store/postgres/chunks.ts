/**
 * The PostgreSQL store's hot path: leasing chunks (FOR UPDATE SKIP LOCKED), committing their
 * outcomes fenced by lease number, renewing leases, and handing expired ones back. Locks are
 * taken chunks first, then batches, in id order, everywhere.
 */

import type pg from 'pg';
import { mergeAggregates } from '../../core/decimal.js';
import type { BatchStatus } from '../../core/statuses.js';
import type { Batch } from '../../core/types.js';
import { allowedAttempts, closeChunk, fence, finishedEventData, leaseMarks, planLease, progressEventData, toBatch } from '../shared.js';
import type { ChunkCommit, ChunksCommitResult, ChunksLeaseParams, ChunksRenewParams, LeasedChunk, ReclaimResult } from '../store.js';
import type { BatchRow, ChunkDbRow, NewEvent, PgConnection } from './connection.js';

/** Leasing and committing chunks through one connection pool. */
export class PgChunks {
  constructor(private readonly c: PgConnection) {}

  /**
   * Leases from the first candidate batch that yields something. A batch that yields nothing
   * once locked (paused meanwhile, at its cap, or only a half-done chunk bigger than the cap
   * leaves) is passed over in a new transaction, so this one's locks are gone before another
   * batch's are taken (batch locks stay in id order) and other batches are still served.
   */
  async lease(params: ChunksLeaseParams): Promise<LeasedChunk[]> {
    const passed: string[] = [];
    for (let round = 0; round < 3; round++) {
      const outcome = await this.c.tx((client) => this.leaseRound(client, params, passed));
      if (Array.isArray(outcome)) return outcome;
      passed.push(outcome.passed);
    }
    return [];
  }

  private async leaseRound(client: pg.PoolClient, params: ChunksLeaseParams, passed: string[]): Promise<LeasedChunk[] | { passed: string }> {
    const candidates = await this.c.query<BatchRow>(client, this.c.sql.LEASE_CANDIDATES, [params.types, passed]);
    type Pending = { id: string; seq0: number | null; seqs: number[] | null; skip: number; n: number; done: number; attempt: number; started_before: number | null; partial: boolean };
    for (const candidate of candidates) {
      const pending = await this.c.query<Pending>(client, this.c.sql.LEASE_PENDING_CHUNKS, [candidate.id]);
      if (pending.length === 0) continue;
      // The candidate was read without locks: lock the batch (after its chunks, as everywhere)
      // and decide on what it is now, so a pause or a concurrency cap is never overrun.
      const [batch] = await this.c.query<BatchRow>(client, this.c.sql.BATCH_LOCK, [candidate.id]);
      if (!batch || (batch.status !== 'queued' && batch.status !== 'running')) return { passed: candidate.id };
      const maxItems = params.maxItemsByType?.[batch.type] ?? params.maxItems;
      const room = batch.concurrency === null ? maxItems : Math.min(maxItems, batch.concurrency - batch.leased_items);
      if (room <= 0) return { passed: batch.id };
      const plan = planLease(pending, room, batch.concurrency === null ? Infinity : batch.concurrency - batch.leased_items);
      if (plan.take.length === 0 && !plan.split) return { passed: batch.id };
      const ids = plan.take.map((c) => c.id);
      // Start marks as they were before CHUNKS_LEASE replaces them (the chunks are locked).
      // Chunks with one are never split.
      const marks = new Map(plan.take.map((c) => [c.id, c.started_before]));
      const order: Parameters<typeof leaseMarks<string>>[0] = [...plan.take];
      if (plan.split) {
        const head = await this.splitHead(client, batch.id, plan.split.chunk, plan.split.items);
        ids.push(head);
        order.push({ id: head, skip: 0, n: plan.split.items, attempt: plan.split.chunk.attempt, started_before: null });
      }
      const { limits, written } = leaseMarks(order, allowedAttempts(batch.max_attempts, batch.type, params), params.startMarkByType?.[batch.type] ?? 0);
      type Leased = ChunkDbRow & { lease_no: number; commit_no: number; lease_expires_at: Date };
      const rows = await this.c.query<Leased>(client, this.c.sql.CHUNKS_LEASE, [ids, params.workerId, params.leaseMs, JSON.stringify(Object.fromEntries(written))]);
      // In the order the marks were counted in, which is the order to start them in.
      rows.sort((a, b) => ids.indexOf(a.id) - ids.indexOf(b.id));
      await this.c.query(client, this.c.sql.BATCH_MARK_LEASED, [batch.id, plan.items]);
      if (batch.status === 'queued') {
        await this.c.events(client, [{ batch_id: batch.id, tenant: batch.tenant, type: 'batch:started', data: {} }]);
      }
      const options = toBatch(batch).options;
      return rows.map((row) => ({
        chunkId: Number(row.id), batchId: batch.id, tenant: batch.tenant, type: batch.type, leaseNo: row.lease_no, commitNo: row.commit_no,
        attempt: row.attempt, seq0: row.seq0, seqs: row.seqs, skip: row.skip, n: row.n,
        payloads: row.payloads, state: row.state, startedBefore: marks.get(row.id) ?? null, startLimit: limits.get(row.id) ?? null,
        options, expiresAt: row.lease_expires_at,
      }));
    }
    return [];
  }

  /** Moves the first `k` unrecorded slots of an untouched, locked chunk into a new chunk. */
  private async splitHead(
    client: pg.PoolClient,
    batchId: string,
    c: { id: string; seq0: number | null; seqs: number[] | null; skip: number; attempt: number },
    k: number,
  ): Promise<string> {
    const [row] = await this.c.query<{ payloads: string }>(client, this.c.sql.CHUNK_PAYLOADS, [c.id]);
    const head = (JSON.parse(row!.payloads) as unknown[]).slice(c.skip, c.skip + k);
    const seqs = c.seqs === null ? null : c.seqs.slice(c.skip, c.skip + k);
    const seq0 = c.seq0 === null ? null : c.seq0 + c.skip;
    const [inserted] = await this.c.query<{ id: string }>(client, this.c.sql.CHUNK_INSERT, [batchId, seq0, seqs, k, JSON.stringify(head), c.attempt, 0, null]);
    await this.c.query(client, this.c.sql.CHUNK_ADVANCE_SKIP, [c.id, k]);
    return inserted!.id;
  }

  async commit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult> {
    return this.c.tx(async (client) => {
      type Fence = { id: string; batch_id: string; n: number; skip: number; done: number; attempt: number; started_before: number | null; lease_no: number; commit_no: number; status: string };
      const fences = new Map(
        (await this.c.query<Fence>(client, this.c.sql.CHUNKS_FENCE, [params.commits.map((c) => c.chunkId)])).map((f) => [Number(f.id), f]),
      );
      const lost: number[] = [];
      const alreadyApplied: number[] = [];
      const writes: string[] = [];
      const retryRows: { batchId: string; r: ChunkCommit['retries'][number] }[] = [];
      const perBatch = new Map<string, { succeeded: number; failed: number; cancelled: number; leased: number; aggregates: Record<string, string>[] }>();
      for (const c of params.commits) {
        const f = fences.get(c.chunkId);
        const verdict = fence(f, c);
        if (verdict !== 'apply') {
          (verdict === 'lost' ? lost : alreadyApplied).push(c.chunkId);
          continue;
        }
        const w = closeChunk(f!, c);
        // The state is embedded as raw JSON text: it is already JSON, so nothing is re-encoded.
        writes.push(
          `{"id":${c.chunkId},"state":${c.state},"done":${w.done},"succeeded":${c.delta.succeeded},` +
            `"failed":${c.delta.failed + w.inheritedFailed},"cancelled":${c.delta.cancelled + w.inheritedCancelled},` +
            `"status":"${w.status}","attempt":${w.attempt},"started_before":${w.startedBefore},"error":${c.close === 'fail' ? JSON.stringify(c.error ?? null) : 'null'},"commit_no":${c.nextCommitNo}}`,
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
      if (writes.length > 0) await this.c.query(client, this.c.sql.CHUNKS_WRITE, [`[${writes.join(',')}]`]);
      for (const { batchId, r } of retryRows) {
        await this.c.query(client, this.c.sql.CHUNK_INSERT, [batchId, null, r.seqs, r.seqs.length, r.payloads, r.attempt, r.delayMs, null]);
      }
      const finished: Batch[] = [];
      const events: NewEvent[] = [];
      let capFreed = false;
      for (const batchId of [...perBatch.keys()].sort()) {
        const acc = perBatch.get(batchId)!;
        const aggregates = acc.aggregates.reduce(mergeAggregates, {});
        const [row] = await this.c.query<BatchRow & { completes: boolean; progress: boolean }>(client, this.c.sql.BATCH_APPLY, [
          batchId, acc.succeeded, acc.failed, acc.cancelled, acc.leased, JSON.stringify(aggregates),
        ]);
        if (!row) continue;
        if (row.concurrency !== null && acc.leased > 0 && (row.status === 'queued' || row.status === 'running') && !row.completes) capFreed = true;
        const batch = toBatch(row);
        if (row.completes) {
          finished.push(batch);
          events.push({ batch_id: batch.id, tenant: batch.tenant, type: 'batch:completed', data: finishedEventData(batch) });
        } else if (row.progress) {
          events.push({ batch_id: batch.id, tenant: batch.tenant, type: 'batch:progress', data: progressEventData(batch) });
        }
      }
      await this.c.events(client, events);
      // Retries, handed-back items and room under a batch's concurrency cap are work for idle
      // workers elsewhere (one whose lease found the cap full would otherwise wait its poll).
      if (retryRows.length > 0 || capFreed || params.commits.some((c) => c.close === 'release')) await this.c.notify(client, 'work');
      return { lost, alreadyApplied, finished };
    });
  }

  async renew(params: ChunksRenewParams): Promise<{ lost: number[] }> {
    const rows = await this.c.query<{ id: string }>(this.c.pool, this.c.sql.CHUNKS_RENEW, [
      params.leases.map((l) => l.chunkId), params.leases.map((l) => l.leaseNo), params.leaseMs,
    ]);
    const renewed = new Set(rows.map((r) => Number(r.id)));
    return { lost: params.leases.map((l) => l.chunkId).filter((id) => !renewed.has(id)) };
  }

  async reclaim(params: { limit: number; batchId?: string }): Promise<ReclaimResult> {
    return this.c.tx(async (client) => {
      type Expired = { id: string; batch_id: string; n: number; skip: number; done: number; attempt: number; lease_owner: string; batch_status: BatchStatus };
      const expired = await this.c.query<Expired>(client, this.c.sql.CHUNKS_EXPIRED, [params.limit, params.batchId ?? null]);
      const result: ReclaimResult = { requeued: 0, cancelled: 0, finished: [] };
      const perBatch = new Map<string, { leased: number; cancelled: number; tenant: string | null }>();
      const events: NewEvent[] = [];
      for (const c of expired) {
        const remaining = c.n - c.skip - c.done;
        const acc = perBatch.get(c.batch_id) ?? { leased: 0, cancelled: 0, tenant: null };
        acc.leased += remaining;
        if (c.batch_status === 'cancelled') {
          await this.c.query(client, this.c.sql.CHUNK_CLOSE_CANCELLED, [c.id]);
          acc.cancelled += remaining;
          result.cancelled++;
        } else {
          await this.c.query(client, this.c.sql.CHUNK_REQUEUE, [c.id]);
          result.requeued++;
        }
        perBatch.set(c.batch_id, acc);
        events.push({ batch_id: c.batch_id, tenant: null, type: 'batch:lease-expired', data: { chunk: Number(c.id), worker: c.lease_owner, items: remaining, attempt: c.attempt } });
      }
      for (const batchId of [...perBatch.keys()].sort()) {
        const acc = perBatch.get(batchId)!;
        await this.c.query(client, this.c.sql.BATCH_UNLEASE, [batchId, acc.leased, acc.cancelled]);
      }
      if (events.length > 0) {
        const tenants = new Map((await this.c.query<{ id: string; tenant: string }>(client, `SELECT id, tenant FROM ${this.c.quoted}.batches WHERE id = ANY($1::uuid[])`, [[...perBatch.keys()]])).map((r) => [r.id, r.tenant]));
        for (const e of events) e.tenant = tenants.get(e.batch_id!) ?? null;
        await this.c.events(client, events);
        if (result.requeued > 0) await this.c.notify(client, 'work');
      }
      return result;
    });
  }
}
