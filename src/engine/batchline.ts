/**
 * `Batchline`, the library's front door: open a store, define processors, submit batches, run
 * workers in this process, watch and steer batches, close.
 *
 * ```ts
 * const bl = await Batchline.open();                      // embedded SQLite in ./.batchline
 * bl.define('txn.apply', async (row, ctx) => { ctx.aggregate('balance', row.amount); });
 * const batch = await bl.submit('txn.apply', rows);
 * await bl.start({ concurrency: 10 });
 * const done = await bl.wait(batch.id);
 * await bl.close();
 * ```
 *
 * States: open → (working ↔ open) → closed. Events (`batch:completed`, …) are read from the
 * store's events table, so they include what other processes did.
 */

import { EventEmitter } from 'node:events';
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { BatchlineError, ConflictError, InputError, NotFoundError } from '../core/errors.js';
import { isBatchId } from '../core/ids.js';
import { BATCH_STATUSES, isSettledBatch, isTerminalBatchStatus, ITEM_STATUSES, type BatchStatus, type ItemStatus } from '../core/statuses.js';
import type { Batch, BatchEvent, EventType, Item, WorkerInfo } from '../core/types.js';
import { openStore } from '../store/open.js';
import type { Store } from '../store/store.js';
import { EventTail } from './event-tail.js';
import { createLogger } from './logger.js';
import { pruneFinished, Reconciler, type ReconcilerOptions } from './reconciler.js';
import { Registry, type Handler, type PayloadOf, type ProcessorOptions, type ResultOf } from './registry.js';
import { countItems, openFile, type FileFormat } from './sources.js';
import { checkItemSource, DEFAULT_LIMITS, newBatch, noItemsIn, splitSizes, Submission, type ItemSource, type SubmissionLimits, type SubmitOptions } from './submission.js';
import type { ItemOutcome } from './item-outcomes.js';
import { Worker, type WorkerOptions } from './worker.js';

export interface BatchlineOptions {
  /** `postgres://…` for PostgreSQL, a file path (or `sqlite:path`) for SQLite; default `DATABASE_URL`, then ./.batchline/batchline.db. */
  database?: string;
  /** PostgreSQL schema (default `batchline`, or `?schema=` in the URL). */
  schema?: string;
  /** PostgreSQL connections this process keeps (default 10, or `?pool_size=` in the URL). */
  poolSize?: number;
  /** Tenant of batches submitted without one (default `default`). */
  tenant?: string;
  /** Apply pending migrations on open (default true). */
  migrate?: boolean;
  /** A pino logger; default: JSON lines on stderr at `logLevel`. */
  logger?: Logger;
  logLevel?: string;
  /** Submission limits: payload size and chunk packing. */
  limits?: Partial<SubmissionLimits>;
}

export interface StartOptions extends WorkerOptions {
  /** Reconciler settings, or false to run none in this process (another must run somewhere). */
  reconciler?: ReconcilerOptions | false;
  /** Stop gracefully on SIGTERM and SIGINT (default false; the CLI's `worker` turns it on). */
  handleSignals?: boolean;
  /** On a signal, how long running items get to finish before their signals abort (default 10 s). */
  shutdownMs?: number;
}

/** What Batchline.prune removes. */
export interface PruneOptions {
  /** Batches that finished at least this long ago (milliseconds). */
  olderThanMs: number;
  /** Only this tenant's batches (default: every tenant's). */
  tenant?: string;
  /** Count what would go, delete nothing. */
  dryRun?: boolean;
  /**
   * Stop starting pages after about this long (milliseconds; default: go on to the end), so a
   * caller such as an HTTP request stays short; `more` then says whether to call again.
   */
  budgetMs?: number;
}

/** What a prune removed (or, in a dry run, would remove). */
export interface PruneResult {
  /** Batches deleted (or, in a dry run, that match now). */
  batches: number;
  /** The cutoff, on the store's clock (PostgreSQL's now() on PostgreSQL): batches that finished before it matched. */
  finishedBefore: Date;
  dryRun: boolean;
  /**
   * Matching batches may be left: the budget ran out, or another prune held them. Call again
   * to go on. Always false in a dry run.
   */
  more: boolean;
}

/** A submitted batch, and whether this call created it (false: its idempotency key existed). */
export type SubmittedBatch = Batch & { created: boolean };

/** Events `Batchline` emits: every audit event type, plus local worker news. */
export type BatchlineEventMap = { [K in EventType]: [BatchEvent] } & {
  'worker:lease-lost': [{ chunkId: number; batchId: string }];
  /** Every item run in this process: its type, outcome and duration (for metrics). */
  'worker:item': [{ type: string; outcome: ItemOutcome; ms: number }];
  'worker:stopped': [{ signal?: string }];
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The idempotency key of part `i` (from 0) of a file submitted as `parts` batches: the first
 * keeps the key itself, the others get `K#i/N`. Any resubmission under K thus meets the first
 * part's batch, and a different split (or a single batch) is told apart by its digest, so the
 * same key cannot create a second set of batches.
 */
function partKey(key: string | undefined, i: number, parts: number): string | undefined {
  return key === undefined || i === 0 ? key : `${key}#${i + 1}/${parts}`;
}

/** The library facade; see the module comment. Create one with `Batchline.open()`. */
export class Batchline extends EventEmitter<BatchlineEventMap> {
  readonly registry = new Registry();
  readonly logger: Logger;
  private readonly tenant: string;
  private readonly limits: SubmissionLimits;
  private worker: Worker | null = null;
  private reconciler: Reconciler | null = null;
  private tail: EventTail | null = null;
  private readonly finishWaiters = new Map<string, Set<() => void>>();
  private signalHandler: ((signal: NodeJS.Signals) => void) | null = null;
  private closed = false;

  private constructor(
    /** The store behind this instance, for operations the facade does not wrap. */
    readonly store: Store,
    options: BatchlineOptions,
  ) {
    super();
    this.logger = options.logger ?? createLogger({ level: options.logLevel });
    this.tenant = options.tenant ?? 'default';
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    // Follow the events table only once someone listens for batch events.
    (this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (typeof name === 'string' && name.startsWith('batch:')) void this.startTail();
    });
  }

  /** Opens (and by default migrates) the store a database setting names. */
  static async open(options: BatchlineOptions = {}): Promise<Batchline> {
    const store = await openStore({ database: options.database, schema: options.schema, poolSize: options.poolSize });
    try {
      if (options.migrate !== false) await store.migrate({ direction: 'up' });
    } catch (error) {
      await store.close();
      throw error;
    }
    return new Batchline(store, options);
  }

  /**
   * Registers the handler for items of `type`, with default run options for its batches. Each
   * type is defined once: defining it again throws (code `already_defined`). A type declared
   * in ItemTypes gets its payload and result checked; for others, `define<P>` names the
   * payload type (unchecked against what is submitted).
   */
  define<P = any, T extends string = string>(type: T, handler: Handler<PayloadOf<T, P>, ResultOf<T>>, options?: ProcessorOptions): this {
    this.registry.define(type, handler as Handler, options);
    return this;
  }

  // -------------------------------------------------------------------------- submitting

  /**
   * Submits `items` (an array, or any iterable or async iterable, streamed) as one batch.
   * Atomic: on a bad item nothing is created. With an idempotency key already used for the
   * same items, returns the first batch and creates nothing. For a type declared in
   * ItemTypes, items of another shape do not compile.
   */
  async submit<T extends string>(type: T, items: ItemSource<PayloadOf<T>>, options: SubmitOptions = {}): Promise<SubmittedBatch> {
    this.assertOpen();
    checkItemSource(items);
    const [batch] = await this.submitAll([newBatch(type, options, this.tenant)], null, items);
    return batch!;
  }

  /**
   * Submits a CSV or JSONL file, streamed, as `batches` contiguous batches (default 1) in one
   * atomic submission. CSV rows become objects of strings keyed by the header. With more than
   * one batch the file is read twice: once to count (and validate), once to submit.
   */
  async submitFile(
    type: string,
    path: string,
    options: SubmitOptions & { batches?: number; format?: FileFormat } = {},
  ): Promise<SubmittedBatch[]> {
    this.assertOpen();
    const { batches: parts = 1, format, ...submit } = options;
    if (!Number.isInteger(parts) || parts < 1) throw new InputError(`batches must be a positive integer, got ${parts}`, { code: 'invalid_options' });
    const source = openFile(path, format);
    let sizes: number[] | null = null;
    if (parts > 1) {
      const count = await countItems(source);
      if (count === 0) throw noItemsIn(path);
      if (count < parts) throw new InputError(`${path} has ${count} items, too few for ${parts} batches`, { code: 'invalid_options' });
      sizes = splitSizes(count, parts);
    }
    const specs = Array.from({ length: parts }, (_, i) =>
      newBatch(
        type,
        {
          ...submit,
          idempotencyKey: partKey(submit.idempotencyKey, i, parts),
          labels: { file: basename(path), ...(parts > 1 ? { part: `${i + 1}/${parts}` } : {}), ...submit.labels },
        },
        this.tenant,
      ),
    );
    return this.submitAll(specs, sizes, source);
  }

  private async submitAll(specs: ReturnType<typeof newBatch>[], sizes: number[] | null, items: ItemSource): Promise<SubmittedBatch[]> {
    const submission = new Submission(specs, sizes, this.limits);
    const result = await this.store.batchesSubmit({
      batches: specs,
      chunks: submission.chunks(items),
      digests: () => submission.digests(),
    });
    if (result.created) this.worker?.wake(true);
    return result.batches.map((b) => ({ ...b, created: result.created }));
  }

  // -------------------------------------------------------------------------- working

  /** Starts workers in this process (and a reconciler, unless turned off). */
  async start(options: StartOptions = {}): Promise<void> {
    this.assertOpen();
    if (this.worker) throw new BatchlineError('already_started', 'this Batchline instance is already working; call stop() first');
    const { reconciler, handleSignals, shutdownMs, ...workerOptions } = options;
    // Built before any worker leases, so that bad reconciler options start nothing.
    const healer =
      reconciler === false
        ? null
        : new Reconciler(this.store, this.logger, {
            intervalMs: Math.max(100, Math.min(2_000, Math.floor((workerOptions.leaseMs ?? 30_000) / 3))),
            ...reconciler,
            onFinished: (batches) => this.finished(batches),
          });
    const worker = new Worker(this.store, this.registry, this.logger, workerOptions, {
      onFinished: (batches) => this.finished(batches),
      onLeaseLost: (chunk) => this.guarded('worker:lease-lost', () => this.emit('worker:lease-lost', chunk)),
      // Per item, on the hot path: build the event only when someone listens (metrics).
      onItem: (type, outcome, ms) => {
        if (this.listenerCount('worker:item') > 0) this.guarded('worker:item', () => this.emit('worker:item', { type, outcome, ms }));
      },
    });
    await worker.start();
    this.worker = worker;
    if (healer) {
      this.reconciler = healer;
      healer.start();
    }
    if (handleSignals) {
      this.signalHandler = (signal) => {
        this.logger.info({ signal }, 'stopping: finishing or handing back in-flight items');
        void this.stop({ timeoutMs: shutdownMs }).then(() => this.guarded('worker:stopped', () => this.emit('worker:stopped', { signal })));
      };
      process.once('SIGTERM', this.signalHandler);
      process.once('SIGINT', this.signalHandler);
    }
  }

  /**
   * Stops the workers gracefully (see Worker.stop) and the reconciler. `timeoutMs` (default
   * 10 s) is how long running items get to finish before their signals abort; after that,
   * writing what they recorded gets up to as long again, and at least 5 s, so a stop can take
   * up to about twice `timeoutMs` plus the abort grace, never for ever.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.signalHandler) {
      process.off('SIGTERM', this.signalHandler);
      process.off('SIGINT', this.signalHandler);
      this.signalHandler = null;
    }
    const worker = this.worker;
    this.worker = null;
    await worker?.stop(options);
    await this.reconciler?.stop();
    this.reconciler = null;
  }

  /**
   * Emits a worker event. A listener that throws is logged and ignored: the worker calls this
   * in the middle of its bookkeeping, which a user's bug must not leave half done.
   */
  private guarded(event: keyof BatchlineEventMap, emit: () => void): void {
    try {
      emit();
    } catch (error) {
      this.logger.error({ err: error, event }, 'an event listener threw; ignored');
    }
  }

  private finished(batches: Batch[]): void {
    for (const batch of batches) {
      for (const resolve of this.finishWaiters.get(batch.id) ?? []) resolve();
    }
    this.tail?.poke();
  }

  /**
   * Resolves with the batch once it is completed, failed or cancelled and its counters are
   * final (no item left to settle: see isSettledBatch). Works whichever process runs the
   * batch. Rejects with a timeout error after `timeoutMs` (default: never), and with the
   * signal's reason as soon as `signal` aborts.
   */
  async wait(id: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Batch> {
    this.assertOpen();
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let delay = 20;
    // After a while without progress, whether any worker could run it at all is worth saying.
    let askWorkersAt = Date.now() + 5_000;
    for (;;) {
      const batch = await this.getBatch(id);
      if (isSettledBatch(batch)) return batch;
      options.signal?.throwIfAborted();
      if (Date.now() >= deadline) {
        const hint = (await this.noWorkerFor(batch)) ?? '';
        throw new BatchlineError('timeout', `batch ${id} is still ${batch.status} after ${options.timeoutMs} ms (${batch.remaining} items left)${hint}`);
      }
      if (Date.now() >= askWorkersAt) {
        askWorkersAt = Infinity;
        const hint = await this.noWorkerFor(batch);
        if (hint) this.logger.warn({ batchId: id, type: batch.type }, `still waiting for batch ${id}${hint}`);
      }
      await new Promise<void>((resolve) => {
        const waiters = this.finishWaiters.get(id) ?? new Set();
        this.finishWaiters.set(id, waiters);
        const done = () => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', done);
          waiters.delete(done);
          if (waiters.size === 0) this.finishWaiters.delete(id);
          resolve();
        };
        const timer = setTimeout(done, Math.min(delay, Math.max(0, deadline - Date.now())));
        options.signal?.addEventListener('abort', done, { once: true });
        waiters.add(done);
      });
      delay = Math.min(500, delay * 2);
    }
  }

  /** '; no live worker runs type T …' when no worker with a heartbeat has the batch's type, else null. */
  private async noWorkerFor(batch: Batch): Promise<string | null> {
    if (batch.status === 'paused') return null;
    try {
      const workers = await this.store.workersList();
      if (workers.some((w) => w.types.includes(batch.type))) return null;
      return `; no live worker runs type ${batch.type}: start one whose processors define it`;
    } catch {
      return null;
    }
  }

  // -------------------------------------------------------------------------- steering

  /** A batch by id; with `tenant`, a batch of another tenant is not found (NotFoundError) either. */
  async getBatch(id: string, options: { tenant?: string } = {}): Promise<Batch> {
    this.assertOpen();
    return this.store.batchGet({ id, ...(options.tenant === undefined ? {} : { tenant: options.tenant }) });
  }

  /**
   * Batches, newest first; `before` is the id of the last batch of the previous page, and
   * `labels` must all match.
   */
  async listBatches(filter: { tenant?: string; status?: BatchStatus[]; type?: string; labels?: Record<string, string>; before?: string; limit?: number } = {}): Promise<Batch[]> {
    this.assertOpen();
    checkBatchFilter(filter);
    if (filter.before !== undefined && !isBatchId(filter.before)) {
      throw new InputError(`before must be the id of a batch (a UUID), got ${JSON.stringify(filter.before)}`, { code: 'invalid_options' });
    }
    if (filter.limit !== undefined && !(Number.isSafeInteger(filter.limit) && filter.limit >= 1)) {
      throw new InputError(`limit must be a whole number of at least 1, got ${String(filter.limit)}`, { code: 'invalid_options' });
    }
    return this.store.batchList({ ...filter, limit: filter.limit ?? 50 });
  }

  /** How many batches match the filters of `listBatches` (every page). */
  async countBatches(filter: { tenant?: string; status?: BatchStatus[]; type?: string; labels?: Record<string, string> } = {}): Promise<number> {
    this.assertOpen();
    checkBatchFilter(filter);
    return this.store.batchCount(filter);
  }

  /**
   * Cancels a batch: pending items are cancelled at once, and once this resolves no item of
   * the batch starts again. Items already running finish or are aborted through their signal.
   * Waits (up to `timeoutMs`, default 2 minutes) for workers holding its chunks to let go, which
   * takes about a second; on timeout it throws (code `timeout`) though the cancel is recorded.
   */
  async cancel(id: string, options: { timeoutMs?: number } = {}): Promise<Batch> {
    this.assertOpen();
    const result = await this.store.batchCancel({ id });
    this.worker?.applyBatchStatus(id, 'cancelled');
    if (result.leased > 0) {
      await this.waitForLeases(id, options.timeoutMs);
      // Leases that expired without being let go (a worker died or stalls) are handed back
      // now, so a stalled worker's renewals and commits find them lost rather than extend them.
      await this.store.chunksReclaim({ limit: 10_000, batchId: id });
    }
    // Workers that let go (or committed just as the cancel did) may have handed items back or
    // written retries: cancel those too.
    await this.store.batchesSweepCancelled({ id });
    return this.getBatch(id);
  }

  /**
   * Waits until no worker holds a chunk of the batch, or every such lease has expired (a worker
   * never starts an item past its lease), whichever is first.
   */
  private async waitForLeases(id: string, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leases = await this.store.batchLeases({ id });
      if (leases.leased === 0 || (leases.leaseDeadline && leases.leaseDeadline <= leases.now)) return;
      if (Date.now() >= deadline) {
        throw new BatchlineError(
          'timeout',
          `batch ${id}: ${leases.leased} chunks are still held by workers after ${timeoutMs} ms; the batch is cancelled, and its items stop starting once those leases expire`,
        );
      }
      await sleep(25);
    }
  }

  /**
   * Pauses a batch: workers stop starting its items (in this process at once, elsewhere within
   * a second, or at once through PostgreSQL NOTIFY); running ones finish and unstarted ones are
   * handed back. Unlike cancel, it does not wait for other workers.
   */
  async pause(id: string): Promise<Batch> {
    this.assertOpen();
    const batch = await this.store.batchPause({ id });
    this.worker?.applyBatchStatus(id, 'paused');
    return batch;
  }

  /** Resumes a paused batch. */
  async resume(id: string): Promise<Batch> {
    this.assertOpen();
    const batch = await this.store.batchResume({ id });
    this.worker?.wake(true);
    return batch;
  }

  /** Runs the batch's failed items again (and only those), with fresh attempts. */
  async retryFailed(id: string): Promise<{ batch: Batch; retried: number }> {
    this.assertOpen();
    const result = await this.store.batchRetryFailed({ id });
    if (result.retried > 0) this.worker?.wake(true);
    return result;
  }

  /** Deletes a batch with its items and events; a batch still open is cancelled first. */
  async deleteBatch(id: string, options: { timeoutMs?: number } = {}): Promise<void> {
    this.assertOpen();
    const batch = await this.getBatch(id);
    if (!isTerminalBatchStatus(batch.status)) {
      try {
        await this.cancel(id, options);
      } catch (error) {
        // It finished, or another cancel (or delete) got there first: what is asked for holds.
        if (!(error instanceof ConflictError && error.code === 'invalid_state')) throw error;
      }
    }
    await this.waitForLeases(id, options.timeoutMs);
    // Leases of workers that died are expired but not yet handed back: do it now rather than
    // wait for a reconciler (this process may not run one).
    await this.store.chunksReclaim({ limit: 10_000, batchId: id });
    await this.store.batchDelete({ id });
    this.worker?.applyBatchStatus(id, undefined);
  }

  /**
   * Deletes finished batches (completed, failed or cancelled) that finished more than
   * `olderThanMs` ago, with their items and events, oldest first, a page at a time, and says
   * how many went. `dryRun` only counts them. A cancelled batch whose workers have not yet
   * closed their leases stays for a later prune. A deleted batch's idempotency key is free
   * again: a repeat submit with it creates a new batch.
   */
  async prune(options: PruneOptions): Promise<PruneResult> {
    this.assertOpen();
    const { olderThanMs, tenant, dryRun = false, budgetMs = Infinity } = options;
    if (!(Number.isSafeInteger(olderThanMs) && olderThanMs >= 0)) {
      throw new InputError(`olderThanMs must be a whole number of milliseconds, at least 0, got ${String(olderThanMs)}`, { code: 'invalid_options' });
    }
    if (!(budgetMs > 0)) throw new InputError(`budgetMs must be a positive number of milliseconds, got ${String(budgetMs)}`, { code: 'invalid_options' });
    // The store's clock, as finished_at is: an app server's skewed clock moves no cutoff.
    const finishedBefore = new Date((await this.store.now()).getTime() - olderThanMs);
    const filter = tenant === undefined ? { finishedBefore } : { finishedBefore, tenant };
    if (dryRun) return { batches: await this.store.batchesPrunable(filter), finishedBefore, dryRun, more: false };
    const { batches, more } = await pruneFinished(this.store, filter, budgetMs);
    if (batches > 0) this.logger.info({ batches, finishedBefore, tenant }, 'finished batches pruned');
    return { batches, finishedBefore, dryRun, more };
  }

  /** Items of a batch in seq order: `after` a seq, of a `status`, at most `limit` (default 100). */
  async items(batchId: string, options: { status?: ItemStatus; after?: number; limit?: number } = {}): Promise<Item[]> {
    this.assertOpen();
    // A status or page that cannot match would otherwise read as "no such items".
    if (options.status !== undefined && !ITEM_STATUSES.includes(options.status)) {
      throw new InputError(`status must be one of ${ITEM_STATUSES.join(', ')}, got ${JSON.stringify(options.status)}`, { code: 'invalid_options' });
    }
    for (const [name, value, min] of [['limit', options.limit, 1], ['after', options.after, -1]] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= min)) {
        throw new InputError(`${name} must be a whole number of at least ${min}, got ${String(value)}`, { code: 'invalid_options' });
      }
    }
    return this.store.itemsList({ batchId, ...options, limit: options.limit ?? 100 });
  }

  /** Audit events in id order, optionally of one batch; `afterId` pages through them. */
  async events(options: { batchId?: string; afterId?: number; types?: EventType[]; limit?: number } = {}): Promise<BatchEvent[]> {
    this.assertOpen();
    return this.store.eventsList({ ...options, limit: options.limit ?? 100 });
  }

  /**
   * Every worker row, in any process: live ones and, until the reconciler prunes them, those whose
   * heartbeat stopped (`isWorkerActive` tells them apart).
   */
  async workers(): Promise<WorkerInfo[]> {
    this.assertOpen();
    return this.store.workersList();
  }

  /**
   * Declares a worker dead (one you know was killed: its process is gone, its machine lost) and
   * hands its chunks back now rather than when their leases expire, as a supervisor that
   * restarts workers would. What it had started counts as an attempt, as when a lease expires.
   * Releasing a worker that is in fact alive is safe but wasteful: its leases are fenced, so
   * what it records from then on is refused and those items run again elsewhere.
   * NotFoundError when the store knows no such worker and it holds no lease; ConflictError for
   * this process's own worker, which is alive by definition.
   */
  async releaseWorker(id: string): Promise<{ chunks: number }> {
    this.assertOpen();
    if (this.worker?.id === id) throw new ConflictError(`worker ${id} runs in this process and is alive: stop it with stop() or close() instead`, 'worker_alive');
    const { chunks, found } = await this.store.workerRelease({ id });
    if (!found) throw new NotFoundError(`no worker ${id}: it holds no lease and has no row (the ids are in workers(), or batchline workers list)`);
    // Hand them back now rather than at the next reconciler pass (this process may run none).
    for (let left = chunks; left > 0; ) {
      const { requeued, cancelled } = await this.store.chunksReclaim({ limit: 1_000 });
      if (requeued + cancelled === 0) break;
      left -= requeued + cancelled;
    }
    this.worker?.wake(true);
    return { chunks };
  }

  /** Starts following events; on failure (store unreachable) logs and tries again in a second. */
  private async startTail(): Promise<void> {
    if (this.tail || this.closed) return;
    const tail = new EventTail(this.store, this.logger, (event) => this.emit(event.type, event as never));
    this.tail = tail;
    try {
      await tail.start();
    } catch (error) {
      this.logger.warn({ err: error }, 'cannot follow events yet; retrying');
      this.tail = null;
      setTimeout(() => void this.startTail(), 1_000).unref();
    }
  }

  /** Every method but close() needs the store, which close() has closed. */
  private assertOpen(): void {
    if (this.closed) throw new BatchlineError('closed', 'this Batchline instance is closed; open another with Batchline.open()');
  }

  /** Stops working (gracefully, as stop() does, `timeoutMs` alike), stops following events and closes the store. */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.closed) return;
    await this.stop(options);
    this.closed = true;
    await this.tail?.stop();
    this.tail = null;
    await this.store.close();
  }
}

/**
 * Refuses a status filter that cannot match (a mistyped status would otherwise read as "no such
 * batches"), the same check items() makes of its status.
 */
function checkBatchFilter(filter: { status?: BatchStatus[] }): void {
  const { status } = filter;
  if (status === undefined) return;
  if (!Array.isArray(status)) throw new InputError(`status must be an array of batch statuses, got ${JSON.stringify(status)}`, { code: 'invalid_options' });
  const unknown = status.find((s) => !BATCH_STATUSES.includes(s));
  if (unknown !== undefined) {
    throw new InputError(`status must hold only ${BATCH_STATUSES.join(', ')}, got ${JSON.stringify(unknown)}`, { code: 'invalid_options' });
  }
}
