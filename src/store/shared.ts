/**
 * What both stores share besides SQL: mapping rows to records, the options columns, the
 * idempotent-submit check and the wording of state conflicts. Keeping these here means the
 * two stores cannot drift apart in what users see.
 */

import { ConflictError, NotFoundError } from '../core/errors.js';
import { BATCH_ACTIONS, type BatchAction, type BatchStatus } from '../core/statuses.js';
import type { ApiKey, Batch, BatchEvent, EventType, RunOptions } from '../core/types.js';
import type { ChunkStatus } from '../core/item-state.js';
import type { BatchesSubmitParams, ChunkCommit, ChunksLeaseParams, NewBatch } from './store.js';

/** The batch columns both stores have, as their drivers return them. */
export interface BatchRowBase {
  id: string;
  tenant: string;
  type: string;
  status: BatchStatus;
  priority: number;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  aggregates: string | Record<string, string>;
  labels: string | Record<string, string>;
  idempotency_key: string | null;
  max_attempts: number | null;
  timeout_ms: number | null;
  backoff_base_ms: number | null;
  backoff_max_ms: number | null;
  concurrency: number | null;
  created_at: string | Date;
  started_at: string | Date | null;
  finished_at: string | Date | null;
}

function json<T>(value: string | T): T {
  return typeof value === 'string' ? (JSON.parse(value) as T) : value;
}

function date(value: string | Date): Date;
function date(value: string | Date | null): Date | null;
function date(value: string | Date | null): Date | null {
  if (value === null) return null;
  return value instanceof Date ? value : new Date(value);
}

/** Row of either store → the public Batch. */
export function toBatch(row: BatchRowBase): Batch {
  const succeeded = Number(row.succeeded);
  const failed = Number(row.failed);
  const cancelled = Number(row.cancelled);
  const total = Number(row.total);
  return {
    id: row.id,
    tenant: row.tenant,
    type: row.type,
    status: row.status,
    priority: Number(row.priority),
    total,
    succeeded,
    failed,
    cancelled,
    remaining: total - succeeded - failed - cancelled,
    aggregates: json(row.aggregates),
    labels: json(row.labels),
    idempotencyKey: row.idempotency_key,
    options: optionsFromColumns(row),
    createdAt: date(row.created_at),
    startedAt: date(row.started_at),
    finishedAt: date(row.finished_at),
  };
}

/** The nullable option columns → the options a batch was given. */
export function optionsFromColumns(row: Pick<BatchRowBase, 'max_attempts' | 'timeout_ms' | 'backoff_base_ms' | 'backoff_max_ms' | 'concurrency'>): Partial<RunOptions> {
  const options: Partial<RunOptions> = {};
  if (row.max_attempts !== null) options.maxAttempts = Number(row.max_attempts);
  if (row.timeout_ms !== null) options.timeoutMs = Number(row.timeout_ms);
  if (row.backoff_base_ms !== null && row.backoff_max_ms !== null) {
    options.backoff = { baseMs: Number(row.backoff_base_ms), maxMs: Number(row.backoff_max_ms) };
  }
  if (row.concurrency !== null) options.concurrency = Number(row.concurrency);
  return options;
}

/** Options → the values of the option columns, in the order the INSERT statements list them. */
export function optionColumns(options: Partial<RunOptions>): [number | null, number | null, number | null, number | null, number | null] {
  return [
    options.maxAttempts ?? null,
    options.timeoutMs ?? null,
    options.backoff?.baseMs ?? null,
    options.backoff?.maxMs ?? null,
    options.concurrency ?? null,
  ];
}

/** An events row of either store → the public event. */
export function toEvent(row: {
  id: number | string;
  cursor?: string;
  batch_id: string | null;
  tenant: string | null;
  type: string;
  data: string | Record<string, unknown>;
  created_at: string | Date;
}): BatchEvent {
  return {
    id: Number(row.id),
    ...(row.cursor === undefined ? {} : { cursor: row.cursor }),
    batchId: row.batch_id,
    tenant: row.tenant,
    type: row.type as EventType,
    data: json(row.data),
    createdAt: date(row.created_at),
  };
}

/** The conflict raised when `action` is not allowed in the batch's current status. */
export function statusConflict(batch: { id: string; status: BatchStatus }, action: BatchAction): ConflictError {
  const allowed = BATCH_ACTIONS[action] as readonly string[];
  // The API and the CLI call it retry; the library's retryFailed reads the same.
  const verb = action === 'retryFailed' ? 'retry' : action;
  return new ConflictError(
    `batch ${batch.id} is ${batch.status}; ${verb} needs a batch that is ${allowed.join(', ')}`,
    'invalid_state',
  );
}

/**
 * Idempotent submit, when batches already exist for the submission's keys: the submission is
 * read to the end so its digest is known, and it must match what was stored, or the key is
 * being reused for different content — a conflict, not a retry.
 */
export async function confirmDuplicate(
  params: BatchesSubmitParams,
  existing: { batch: Batch; digest: string | null }[],
): Promise<Batch[]> {
  for await (const _chunk of params.chunks) {
    // drained only to finish the digests
  }
  const digests = params.digests();
  existing.forEach(({ batch, digest }, i) => {
    if (digest !== digests[i]) {
      throw new ConflictError(
        `idempotency key ${JSON.stringify(batch.idempotencyKey)} was already used for batch ${batch.id} with different items or options`,
        'idempotency_conflict',
      );
    }
  });
  return existing.map((e) => e.batch);
}

/** The conflict raised when a batch cannot be deleted because workers still hold its chunks. */
export function leasedConflict(batch: { id: string; status: BatchStatus }, leased: number): ConflictError {
  return new ConflictError(
    `batch ${batch.id} (${batch.status}) still has ${leased} chunk${leased === 1 ? '' : 's'} leased by workers; cancel it and wait for them to let go, or for their leases to expire`,
    'leased',
  );
}

/** The conflict raised when only some of a multi-batch submission's keys exist. */
export function partialDuplicate(batches: NewBatch[], found: number): ConflictError {
  return new ConflictError(
    `${found} of the ${batches.length} idempotency keys of this submission already exist; reuse all of them or none`,
    'idempotency_conflict',
  );
}

/**
 * A batch's status once a counter repair set its counters to `actual`: a batch finished on
 * counters that over-counted has items left after all, so it is open again (running, or
 * queued if it never started) and its workers take them; otherwise it stays as it is.
 */
export function statusAfterRepair(
  row: { status: BatchStatus; total: number; started_at: unknown },
  actual: { succeeded: number; failed: number; cancelled: number },
): BatchStatus {
  const left = row.total - actual.succeeded - actual.failed - actual.cancelled;
  if (left <= 0 || (row.status !== 'completed' && row.status !== 'failed')) return row.status;
  return row.started_at ? 'running' : 'queued';
}

/** Event payload for a batch that reached a terminal status. */
export function finishedEventData(batch: Batch): Record<string, unknown> {
  return {
    status: batch.status,
    total: batch.total,
    succeeded: batch.succeeded,
    failed: batch.failed,
    cancelled: batch.cancelled,
    aggregates: batch.aggregates,
  };
}

/** Event payload for progress of a running batch. */
export function progressEventData(batch: Pick<Batch, 'total' | 'succeeded' | 'failed' | 'cancelled'>): Record<string, unknown> {
  return { total: batch.total, succeeded: batch.succeeded, failed: batch.failed, cancelled: batch.cancelled };
}

/** Minimum spacing of `batch:progress` events per batch. */
export const PROGRESS_EVENT_MS = 1_000;

/** Largest number of items one retry chunk holds (retry-failed splits bigger sets). */
export const RETRY_CHUNK_ITEMS = 500;

/**
 * Which of a batch's runnable pending chunks (in order) a lease of `room` items takes: whole
 * chunks while they fit; if the first does not fit, its head is split off (`split`) — unless
 * it is `partial`, holding recorded outcomes or a start mark (a lease ended with it half done),
 * in which case it is taken whole, as
 * long as that stays within `capRoom`, what the batch's concurrency cap leaves (a half-done
 * chunk past it waits, and later chunks may go first). Both stores lease by this plan, each
 * splitting in its own SQL.
 */
export function planLease<T extends { n: number; skip: number; done: number; partial: boolean | number }>(
  pending: T[],
  room: number,
  capRoom = Infinity,
): { take: T[]; split: { chunk: T; items: number } | null; items: number } {
  const take: T[] = [];
  let items = 0;
  for (const chunk of pending) {
    const live = chunk.n - chunk.skip - chunk.done;
    if (chunk.partial && items + live > capRoom) continue;
    if (items + live <= room || (take.length === 0 && chunk.partial)) {
      take.push(chunk);
      items += live;
      continue;
    }
    if (take.length === 0) return { take, split: { chunk, items: room }, items: room };
    break;
  }
  return { take, split: null, items };
}

/**
 * The start marks of one lease (ChunksLeaseParams.startMarkByType), for `chunks` in the order
 * their items start, each with its attempts used before this lease and its current mark:
 * - a chunk on its final attempt gets a mark of its own: up to `budget` slots from the first
 *   such chunk on, 0 once the budget is spent. These are the lease's `limits` (startLimit).
 * - a chunk past its final attempt starts nothing (its worker fails what the final lease may
 *   have started and moves the rest on), so it keeps the mark it has: a crash of this lease
 *   must not replace the final lease's record of how far it started items.
 * - others have no mark.
 * `written` is what the lease stores as each chunk's mark (absent: none). Nothing is final
 * when the allowed attempts are not known (ChunksLeaseParams.maxAttemptsByType).
 */
export function leaseMarks<Id extends string | number>(
  chunks: { id: Id; skip: number; n: number; attempt: number; started_before: number | null }[],
  allowed: number | undefined,
  budget: number,
): { limits: Map<Id, number>; written: Map<Id, number> } {
  const limits = new Map<Id, number>();
  const written = new Map<Id, number>();
  let left = Math.max(0, Math.floor(budget));
  for (const c of chunks) {
    if (allowed === undefined || c.attempt + 1 < allowed) continue;
    if (c.attempt + 1 > allowed) {
      if (c.started_before !== null) written.set(c.id, c.started_before);
      continue;
    }
    const mark = Math.min(c.n, c.skip + left);
    limits.set(c.id, mark);
    written.set(c.id, mark);
    left -= mark - c.skip;
  }
  return { limits, written };
}

/** The attempts a batch's items are allowed: the batch's own setting, else the worker's for the type. */
export function allowedAttempts(batchMaxAttempts: number | null, type: string, params: ChunksLeaseParams): number | undefined {
  return batchMaxAttempts !== null ? Number(batchMaxAttempts) : params.maxAttemptsByType?.[type];
}

/**
 * Whether a commit applies to a chunk row: `apply` when the lease and commit numbers are the
 * ones the commit was built on; `applied` when this very commit already landed (a retry after
 * a lost COMMIT reply); otherwise `lost` (the lease moved on, or the chunk is gone).
 */
export function fence(
  row: { batch_id: string; status: string; lease_no: number; commit_no: number } | undefined,
  c: Pick<ChunkCommit, 'batchId' | 'leaseNo' | 'commitNo' | 'nextCommitNo'>,
): 'apply' | 'applied' | 'lost' {
  if (!row || row.batch_id !== c.batchId || row.lease_no !== c.leaseNo) return 'lost';
  if (row.commit_no === c.nextCommitNo) return 'applied';
  return row.status === 'leased' && row.commit_no === c.commitNo ? 'apply' : 'lost';
}

/**
 * How a commit's `close` changes a chunk: its new status, recorded count and attempt, the items
 * it closes by inheritance, and how many items stop counting as leased. Shared by both stores.
 */
export function closeChunk(
  row: { n: number; skip: number; done: number; attempt: number; started_before: number | null },
  c: ChunkCommit,
): { status: ChunkStatus; done: number; attempt: number; startedBefore: number | null; inheritedCancelled: number; inheritedFailed: number; unleased: number } {
  const recorded = c.delta.succeeded + c.delta.failed + c.delta.cancelled + c.delta.moved;
  const done = row.done + recorded;
  const remaining = row.n - row.skip - done;
  let close = c.close;
  // A "done" that leaves items unrecorded would strand them; hand them back instead.
  if (close === 'done' && remaining > 0) close = 'release';
  // Closing gives the lease's attempt back when none of the unrecorded items ran under it.
  const attempt = close === 'checkpoint' || close === 'done' || !c.unused ? row.attempt : row.attempt - 1;
  // The start mark outlives the lease only where the next lease needs it: a checkpoint keeps
  // (or raises) it, a release of a lease that started items leaves it for the next one; a
  // release with the attempt given back (nothing unrecorded started) or a closed chunk drops it.
  const mark = c.startedBefore ?? row.started_before;
  const startedBefore = close === 'checkpoint' || (close === 'release' && !c.unused) ? mark : null;
  switch (close) {
    case 'checkpoint':
      return { status: 'leased', done, attempt, startedBefore, inheritedCancelled: 0, inheritedFailed: 0, unleased: recorded };
    case 'done':
      return { status: 'done', done, attempt, startedBefore, inheritedCancelled: 0, inheritedFailed: 0, unleased: recorded };
    case 'release':
      return { status: 'pending', done, attempt, startedBefore, inheritedCancelled: 0, inheritedFailed: 0, unleased: recorded + remaining };
    case 'cancel':
      return { status: 'cancelled', done: row.n - row.skip, attempt, startedBefore, inheritedCancelled: remaining, inheritedFailed: 0, unleased: recorded + remaining };
    case 'fail':
      return { status: 'failed', done: row.n - row.skip, attempt, startedBefore, inheritedCancelled: 0, inheritedFailed: remaining, unleased: recorded + remaining };
  }
}

/** An api_keys row of either store as an ApiKey with its hash. */
export function toApiKey(row: { id: string; name: string; tenant: string; admin: number | boolean; hash: string; created_at: string | Date; revoked_at: string | Date | null }): ApiKey & { hash: string } {
  return {
    id: row.id,
    name: row.name,
    tenant: row.tenant,
    admin: row.admin === true || row.admin === 1,
    hash: row.hash,
    createdAt: new Date(row.created_at),
    revokedAt: row.revoked_at === null ? null : new Date(row.revoked_at),
  };
}

/** The key without its hash, as listing and revoking return it. */
export function publicKey(row: Parameters<typeof toApiKey>[0]): ApiKey {
  const { hash: _hash, ...key } = toApiKey(row);
  return key;
}

/** The error for an API key id that no key has. */
export function keyNotFound(id: string): NotFoundError {
  return new NotFoundError(`no API key ${JSON.stringify(id)}`);
}

/**
 * The page a prune deletes from its candidates (oldest first, at most `limit`): as many as fit
 * in `maxItems` items, at least one. `more`: the page was cut, so more batches may match.
 */
export function prunePage(candidates: { id: string; total: number }[], params: { limit: number; maxItems: number }): { ids: string[]; more: boolean } {
  const ids: string[] = [];
  let items = 0;
  for (const candidate of candidates) {
    if (ids.length > 0 && items + candidate.total > params.maxItems) break;
    ids.push(candidate.id);
    items += candidate.total;
  }
  return { ids, more: ids.length < candidates.length || candidates.length === params.limit };
}
