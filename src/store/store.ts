/**
 * The Store: every read and write the engine makes, as named operations (noun first, one
 * params object each). SQL lives only in the store modules; the engine never writes SQL.
 *
 * Two implementations pass one conformance suite (test/store/conformance.test.ts): embedded SQLite
 * (`sqlite/`) and PostgreSQL (`postgres/`). Times are the store's own clock (PostgreSQL's
 * `now()`, the SQLite process's `Date.now()`), so workers on machines with skewed clocks agree.
 *
 * Storage model (DESIGN.md, "How work flows"): items live in chunks. A chunk row holds a run
 * of a batch's items — payloads as one JSON array, outcomes as one `state` array — and one
 * lease. Slots `[0, skip)` of a chunk were split off into other chunks and are not its items.
 */

import type { ItemStateEntry, ChunkStatus } from '../core/item-state.js';
import type { BatchStatus, ItemStatus } from '../core/statuses.js';
import type { ApiKey, Batch, BatchEvent, EventType, Item, ItemError, RunOptions, WorkerInfo } from '../core/types.js';

/** A batch to create. */
export interface NewBatch {
  tenant: string;
  type: string;
  priority: number;
  labels: Record<string, string>;
  idempotencyKey: string | null;
  options: Partial<RunOptions>;
}

/** A run of new items for batch number `batchIndex` of the submission. */
export interface NewChunk {
  batchIndex: number;
  seq0: number;
  n: number;
  /** The items' payloads as one JSON array text. */
  payloads: string;
}

export interface BatchesSubmitParams {
  batches: NewBatch[];
  /** Chunks in order, streamed: the store never needs the whole submission in memory. */
  chunks: AsyncIterable<NewChunk>;
  /**
   * Content digests per batch, read after `chunks` is exhausted. A second submit with the same
   * idempotency key must carry the same digest, or it is a conflict rather than a retry.
   */
  digests: () => string[];
}

export interface BatchesSubmitResult {
  batches: Batch[];
  /** False when every batch already existed under its idempotency key and nothing was created. */
  created: boolean;
}

export interface BatchListParams {
  tenant?: string;
  status?: BatchStatus[];
  type?: string;
  /** Only batches carrying every one of these labels. */
  labels?: Record<string, string>;
  /** Batches created before this batch id (keyset pagination, newest first). */
  before?: string;
  limit: number;
}

/** Scope of a single-batch operation; a tenant, when given, must own the batch. */
export interface BatchRef {
  id: string;
  tenant?: string;
}

/** Which finished batches a prune matches. */
export interface BatchesPruneFilter {
  /** Batches that finished (completed, failed or cancelled) before this moment. */
  finishedBefore: Date;
  /** Only this tenant's batches; all tenants when absent. */
  tenant?: string;
}

/** One page of a prune: see Store.batchesPrune. */
export interface BatchesPruneParams extends BatchesPruneFilter {
  /** At most this many batches in one call, oldest finished first. */
  limit: number;
  /**
   * And about this many items at most: the page ends before a batch that would take it past
   * this (a first batch bigger than this goes alone), so one transaction's deletes stay bounded.
   */
  maxItems: number;
}

/** What one batchesPrune call deleted, and whether more may match (call again). */
export interface BatchesPruneResult {
  deleted: string[];
  /** The page was cut by `limit` or `maxItems`: more batches may match now. */
  more: boolean;
}

export interface BatchCancelResult {
  batch: Batch;
  /** Chunks of the batch still leased by workers, and when the last of those leases expires. */
  leased: number;
  leaseDeadline: Date | null;
}

export interface BatchLeases {
  leased: number;
  /** Latest lease expiry among those chunks, on the store's clock. */
  leaseDeadline: Date | null;
  /** The store's clock now, so callers compare deadlines without trusting their own clock. */
  now: Date;
}

export interface ChunksLeaseParams {
  workerId: string;
  /** Types this worker can run. */
  types: string[];
  /** Upper bound of items in this lease; a stored chunk bigger than the rest is split. */
  maxItems: number;
  /** Per-type bounds that replace `maxItems` for batches of those types (slow types lease less). */
  maxItemsByType?: Record<string, number>;
  /**
   * Attempts each type allows where its batch sets none. A lease that is its items' final
   * attempt (or past it) starts with a start mark (0 unless startMarkByType says more): its
   * worker starts nothing beyond it without writing a further one, so should it die, nothing
   * the next lease finds unrecorded beyond the mark ran under it.
   */
  maxAttemptsByType?: Record<string, number>;
  /**
   * How many items of a final-attempt lease (per type) the lease marks as startable itself,
   * counted across its chunks in the order they are returned: the worker may start those at
   * once, and writes a start mark before any beyond (default 0: none). A crash fails up to
   * this many items that may not have run, so keep it to a short window of work.
   */
  startMarkByType?: Record<string, number>;
  leaseMs: number;
}

/** A chunk a worker holds. Its items are slots `[skip, n)`; seq of slot i is `seqs[i]` or `seq0 + i`. */
export interface LeasedChunk {
  chunkId: number;
  batchId: string;
  tenant: string;
  type: string;
  leaseNo: number;
  /** How many commits the chunk has had; the next commit names it (see ChunkCommit.commitNo). */
  commitNo: number;
  /** The attempt number of this lease for the chunk's unrecorded items (1-based). */
  attempt: number;
  seq0: number | null;
  seqs: number[] | null;
  skip: number;
  n: number;
  payloads: unknown[];
  /** Entries already recorded (a crash left partial progress), or null when none. */
  state: (ItemStateEntry | null)[] | null;
  /**
   * What the chunk's previous lease wrote ahead of starting items (ChunkCommit.startedBefore):
   * no slot at or after this one started under it. Null when that lease kept none, so any
   * unrecorded slot may have started. Each lease starts its own (startLimit).
   */
  startedBefore: number | null;
  /**
   * This lease's own start mark on a final attempt (see ChunksLeaseParams.startMarkByType):
   * slots before it may start at once; later ones only after a commit moves it on
   * (ChunkCommit.startedBefore). Null when the lease is not a final attempt.
   */
  startLimit: number | null;
  /** Options given at submit (unset ones come from the processor). */
  options: Partial<RunOptions>;
  /** Lease expiry on the store's clock. */
  expiresAt: Date;
}

/** What a worker writes about one chunk, fenced by its lease number. */
export interface ChunkCommit {
  chunkId: number;
  batchId: string;
  leaseNo: number;
  /**
   * The chunk's commit number this commit applies on top of, and the number it leaves. A
   * commit whose outcome was lost in transit (the connection died during COMMIT) is retried
   * as is: finding the chunk already at `nextCommitNo` tells the store it was applied, so its
   * counter and aggregate deltas are never added twice.
   */
  commitNo: number;
  nextCommitNo: number;
  /** The chunk's whole state array after this commit, as JSON text (entries only ever fill in). */
  state: string;
  /** Entries recorded since the previous commit of this chunk, by status; `moved` went to retries. */
  delta: { succeeded: number; failed: number; cancelled: number; moved: number };
  /** Aggregate deltas (decimal text) from exactly the items that succeeded since the last commit. */
  aggregates: Record<string, string>;
  /** New retry chunks for items that failed transiently and will run again after a delay. */
  retries: RetryChunk[];
  /**
   * What happens to the lease: `checkpoint` keeps it; `done` ends it (every item recorded);
   * `release` hands unrecorded items back to pending; `cancel` closes the chunk, unrecorded
   * items cancelled; `fail` closes it with unrecorded items failed with `error`. With `unused`
   * (none of the unrecorded items ran under this lease) the lease's attempt is given back.
   */
  close: 'checkpoint' | 'done' | 'release' | 'cancel' | 'fail';
  unused?: boolean;
  error?: ItemError;
  /**
   * Written before the worker starts any slot at or after the previous value: no slot at or
   * after this one has started under this lease. If the lease is lost, the next one gives the
   * unrecorded slots beyond it their attempt back instead of counting one they never used.
   */
  startedBefore?: number;
}

export interface RetryChunk {
  /** Attempts these items have used; their next lease is attempt + 1. */
  attempt: number;
  delayMs: number;
  seqs: number[];
  /** Payloads as one JSON array text, in the order of `seqs`. */
  payloads: string;
}

export interface ChunksCommitResult {
  /** Chunks whose lease had been lost: nothing of theirs was written. */
  lost: number[];
  /** Chunks whose commit had already been applied by an earlier try: nothing was written again. */
  alreadyApplied: number[];
  /** Batches that reached a terminal status in this commit. */
  finished: Batch[];
}

export interface ChunksRenewParams {
  workerId: string;
  leases: { chunkId: number; leaseNo: number }[];
  leaseMs: number;
}

export interface ReclaimResult {
  /** Expired chunks handed back to pending. */
  requeued: number;
  /** Expired chunks of cancelled batches, closed. */
  cancelled: number;
  finished: Batch[];
}

export interface CounterMismatch {
  batchId: string;
  stored: { succeeded: number; failed: number; cancelled: number };
  actual: { succeeded: number; failed: number; cancelled: number };
}

export interface ItemsListParams {
  batchId: string;
  tenant?: string;
  status?: ItemStatus;
  /** Items with seq greater than this. */
  after?: number;
  limit: number;
}

export interface EventsListParams {
  /** Events with an id greater than this (pagination of history). */
  afterId?: number;
  batchId?: string;
  tenant?: string;
  types?: EventType[];
  limit: number;
}

/** An event read by following the stream, with the cursor that resumes right after it. */
export type FollowedEvent = BatchEvent & { cursor: string };

export interface EventsFollowParams {
  /** A cursor from `eventsCursor()` or from an event this stream returned. */
  after: string;
  tenant?: string;
  types?: EventType[];
  limit: number;
}

export interface MigrationStatus {
  current: number;
  latest: number;
}

/** The storage behind Batchline. See the module comment for the model. */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /** Where the data lives, for humans: a file path, or host/database/schema. */
  readonly description: string;

  /** Applies the next `steps` migrations (default: all pending) going up, or reverts `steps` (default 1) going down. */
  migrate(params: { direction: 'up' | 'down'; steps?: number }): Promise<MigrationStatus>;
  migrationStatus(): Promise<MigrationStatus>;
  /** The store's clock now (see the module comment), for cutoffs compared with the times it writes. */
  now(): Promise<Date>;

  /** Creates batches and their chunks atomically, or returns the existing ones for their keys. */
  batchesSubmit(params: BatchesSubmitParams): Promise<BatchesSubmitResult>;
  /** Throws NotFoundError when missing or owned by another tenant. */
  batchGet(params: BatchRef): Promise<Batch>;
  batchList(params: BatchListParams): Promise<Batch[]>;
  /** How many batches the filters of a listing match (all pages). */
  batchCount(params: Omit<BatchListParams, 'before' | 'limit'>): Promise<number>;
  /** How many batches are in each status (statuses with none are absent). */
  batchesCount(): Promise<Partial<Record<BatchStatus, number>>>;
  /** Cancels pending work at once; leased chunks are closed by their workers (or on expiry). */
  batchCancel(params: BatchRef): Promise<BatchCancelResult>;
  batchPause(params: BatchRef): Promise<Batch>;
  batchResume(params: BatchRef): Promise<Batch>;
  /**
   * Moves the batch's failed items into new chunks with fresh attempts. Failed items in chunks a
   * worker still holds stay until that chunk is closed (call again then).
   */
  batchRetryFailed(params: BatchRef): Promise<{ batch: Batch; retried: number }>;
  /** Removes the batch, its chunks and its events. The batch must not have leased chunks. */
  batchDelete(params: BatchRef): Promise<void>;
  /**
   * Removes a page of finished batches (see BatchesPruneParams) with their chunks and events,
   * oldest finished first. A batch some worker still holds a chunk of (a cancelled one whose
   * leases are not yet closed) is left for a later call, and so is one a concurrent
   * retry-failed reopens or another prune is deleting (on PostgreSQL). `more` says whether the
   * page was cut short of what matched, not whether all of it was deleted.
   */
  batchesPrune(params: BatchesPruneParams): Promise<BatchesPruneResult>;
  /** How many batches batchesPrune would remove now, for a dry run. */
  batchesPrunable(params: BatchesPruneFilter): Promise<number>;
  batchLeases(params: BatchRef): Promise<BatchLeases>;
  /** Current statuses of the given batches (missing when deleted), for workers' control polls. */
  batchesStatus(params: { ids: string[] }): Promise<Map<string, BatchStatus>>;

  chunksLease(params: ChunksLeaseParams): Promise<LeasedChunk[]>;
  chunksCommit(params: { commits: ChunkCommit[] }): Promise<ChunksCommitResult>;
  /** Extends leases; returns the chunk ids whose lease is no longer this worker's. */
  chunksRenew(params: ChunksRenewParams): Promise<{ lost: number[] }>;
  /** Hands expired leases back (reconciler), of one batch or all. Safe to run concurrently with itself. */
  chunksReclaim(params: { limit: number; batchId?: string }): Promise<ReclaimResult>;
  /**
   * Cancels the pending items of cancelled batches (all, or one): work a worker handed back, or
   * a retry it wrote, after the cancel committed. Returns the items cancelled. For one batch it
   * waits for chunks other transactions hold; for all it skips them (a later sweep gets them).
   */
  batchesSweepCancelled(params: { id?: string }): Promise<number>;
  /** Completes batches whose items are all terminal but whose status is not (reconciler). */
  batchesFinalize(): Promise<Batch[]>;
  /**
   * Compares counters with chunk contents for up to `limit` batches active since `since` (open,
   * or finished since then), newest first, before the id `before` when given; repairs and
   * reports mismatches. `next` is where the following page starts, null after the last.
   */
  batchesVerify(params: { since: Date; limit: number; before?: string }): Promise<{ mismatches: CounterMismatch[]; next: string | null }>;

  itemsList(params: ItemsListParams): Promise<Item[]>;
  /** Committed events in id order: the history of a batch, or of everything. */
  eventsList(params: EventsListParams): Promise<BatchEvent[]>;
  /**
   * Events committed after a cursor, each once, in the order they became visible (on PostgreSQL,
   * window by window; within a window by transaction id): what `bl.on(...)` and live
   * streams follow. Start from `eventsCursor()` and pass back the returned `cursor` (or the
   * cursor of the last event handled). Opaque: on PostgreSQL it holds snapshots, since ids are
   * taken before commit and a transaction with a smaller id can commit later.
   */
  eventsFollow(params: EventsFollowParams): Promise<{ events: FollowedEvent[]; cursor: string }>;
  /** The cursor of "now": following from it yields only events committed from here on. */
  eventsCursor(): Promise<string>;

  workerHeartbeat(params: Omit<WorkerInfo, 'startedAt' | 'heartbeatAt'>): Promise<void>;
  workerRemove(params: { id: string }): Promise<void>;
  workersList(): Promise<WorkerInfo[]>;
  /**
   * Declares a worker dead: ends every lease it holds as if it had expired (the next reclaim
   * hands them back) and removes its row. `found` says whether it had a row or leases.
   */
  workerRelease(params: { id: string }): Promise<{ chunks: number; found: boolean }>;
  /** Removes worker rows whose heartbeat is older than `staleMs`. */
  workersPrune(params: { staleMs: number }): Promise<number>;

  /** Stores a new API key (its secret only as `hash`). */
  keyCreate(params: { id: string; name: string; tenant: string; admin: boolean; hash: string }): Promise<ApiKey>;
  /** Every key, newest first, revoked ones included. */
  keysList(): Promise<ApiKey[]>;
  /** Marks a key revoked (idempotent); NotFoundError for an unknown id. */
  keyRevoke(params: { id: string }): Promise<ApiKey>;
  /** A key with its hash, for checking a presented secret; null when unknown. */
  keyFind(params: { id: string }): Promise<(ApiKey & { hash: string }) | null>;
  /** Whether any key was ever created (revoked ones count): once true, the API requires keys. */
  keysExist(): Promise<boolean>;

  /** Takes a named lock for up to `ttlMs` unless someone else holds it; true when taken. */
  lockTry(params: { name: string; owner: string; ttlMs: number }): Promise<boolean>;
  lockRelease(params: { name: string; owner: string }): Promise<void>;

  /**
   * Calls `onWake` when another process submits work or changes a batch (PostgreSQL
   * LISTEN/NOTIFY). The embedded store has no such channel and never calls it; callers poll.
   */
  subscribe(onWake: (topic: 'work' | 'control') => void): Promise<() => Promise<void>>;

  close(): Promise<void>;
}

/** A chunk row as both stores read it for item listings and repairs. */
export interface ChunkRow {
  id: number;
  batchId: string;
  seq0: number | null;
  seqs: number[] | null;
  skip: number;
  n: number;
  status: ChunkStatus;
  attempt: number;
  payloads: unknown[];
  state: (ItemStateEntry | null)[] | null;
  error: ItemError | null;
}
