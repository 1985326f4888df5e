/**
 * The worker: leases chunks, runs their items in an in-process pool, and commits outcomes.
 *
 *   lease loop ──► queue of ChunkRuns ──► pool (concurrency slots, per-batch caps) ──► settle
 *        ▲                                                                             │
 *        └── wakes when slots free up or work is announced      committer ◄── chunk done / checkpoint
 *
 * Lease size adapts to item duration (lease-sizing.ts): fast types lease many items and
 * prefetch, slow types only as many as there are idle slots. Lease renewal, the poll for
 * cancel/pause/delete and the heartbeat run on their own timers (worker-upkeep.ts).
 *
 * Safety: an item starts only before its chunk's local start deadline (lease request time +
 * lease - margin, moved by each renewal), so a worker cut off from the store stops starting
 * items before its lease can expire and be taken by someone else. Every commit is fenced by the
 * lease number in the store, so a late worker can never record an item twice.
 *
 * States: idle → running → stopping (no leases; chunks drain or are handed back) → stopped.
 */

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { InputError, ItemAbortedError, oneLineIssues } from '../core/errors.js';
import type { Batch } from '../core/types.js';
import type { BatchStatus } from '../core/statuses.js';
import type { ChunkCommit, LeasedChunk, Store } from '../store/store.js';
import { runOfLease, type ChunkRun, type StopReason } from './chunk-run.js';
import { Committer } from './committer.js';
import { AttemptContext } from './item-context.js';
import { recordFailure, recordSuccess, type ItemOutcome } from './item-outcomes.js';
import type { Registry } from './registry.js';
import { LeaseSizing, type LeasePlan } from './lease-sizing.js';
import { StartMarks } from './start-marks.js';
import { TurnPacer } from './turn-pacer.js';
import { LeaseSchedule } from './wakeup.js';
import { WorkerUpkeep } from './worker-upkeep.js';
import { workerOptionsSchema, type WorkerOptions, type WorkerSettings as Settings } from './worker-options.js';

export type { WorkerOptions } from './worker-options.js';

interface InFlight {
  run: ChunkRun;
  slot: number;
  ctx: AttemptContext;
  startedAt: number;
  deadline: number;
  /** Its outcome is recorded (a result, an error, or a timeout). */
  settled: boolean;
  /**
   * Timed out, but the handler has not returned: its slot stays taken until it does, or until
   * this time, so a handler that ignores its signal cannot push the work past `concurrency`.
   */
  holdUntil: number | null;
}

/** Hooks the Batchline facade uses to hear about outcomes. */
export interface WorkerHooks {
  onFinished?: (batches: Batch[]) => void;
  /** After every item run, with its outcome and duration (metrics). */
  onItem?: (type: string, outcome: ItemOutcome, ms: number) => void;
  onLeaseLost?: (chunk: { chunkId: number; batchId: string }) => void;
}

const SWEEP_MS = 50;

const sleep = (ms: number) => new Promise<false>((resolve) => setTimeout(() => resolve(false), ms).unref());

/** Longest the worker keeps starting items in one turn of the event loop before letting timers run. */
const YIELD_AFTER_MS = 20;

/** Least time between two leases that the store's announcements of work start (LeaseSchedule). */
const ANNOUNCED_LEASE_GAP_MS = 100;

/** Leases, runs and commits items of the registered types; see the module comment. */
export class Worker {
  readonly id: string;
  private readonly settings: Settings;
  private state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  private readonly pacer = new TurnPacer(YIELD_AFTER_MS, () => {
    if (this.state === 'running') this.pump();
  });
  private readonly runs = new Map<number, ChunkRun>();
  private queue: ChunkRun[] = [];
  private readonly inflight = new Set<InFlight>();
  private active = 0;
  private unstarted = 0;
  private readonly runningByBatch = new Map<string, number>();
  private readonly sizing: LeaseSizing;
  private readonly marks: StartMarks;
  private readonly committer: Committer;
  private readonly schedule = new LeaseSchedule(ANNOUNCED_LEASE_GAP_MS);
  private prefetchBelow = 0;
  private processed = 0;
  private leaseLoop: Promise<void> | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly upkeep: WorkerUpkeep;
  private unsubscribe: (() => Promise<void>) | null = null;
  private settledWaiters: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly logger: Logger,
    options: WorkerOptions = {},
    private readonly hooks: WorkerHooks = {},
  ) {
    const parsed = workerOptionsSchema.safeParse(options);
    if (!parsed.success) throw new InputError(`worker options: ${oneLineIssues(parsed.error.issues)}`);
    this.settings = parsed.data;
    this.sizing = new LeaseSizing(this.settings);
    this.id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.committer = new Committer({
      store,
      logger,
      onLost: (commits) => {
        for (const commit of commits) {
          // Only the run of that lease: the chunk may have been leased again since.
          if (this.runs.get(commit.chunkId)?.lease.leaseNo === commit.leaseNo) this.dropRun(commit.chunkId, 'its lease was lost before the commit');
        }
      },
      onCommitted: (commits) => this.committed(commits),
      onFinished: (batches) => this.hooks.onFinished?.(batches),
    });
    this.marks = new StartMarks(this.sizing, this.settings.concurrency, (commit) => this.committer.enqueue(commit));
    this.upkeep = new WorkerUpkeep(store, registry, logger, this.settings, {
      id: this.id,
      runs: this.runs,
      counts: () => ({ processed: this.processed, inFlight: this.active }),
      startDeadline: (requestedAt) => this.startDeadline(requestedAt),
      lost: (chunkId, why) => this.dropRun(chunkId, why),
      renewed: () => this.pump(),
      batchChanged: (batchId, status) => this.applyBatchStatus(batchId, status),
    });
  }

  /** Items this worker has finished (any outcome) since it started. */
  get processedCount(): number {
    return this.processed;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  /** Starts leasing. Resolves once the worker's row is written and the loops run. */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`worker ${this.id} was already started`);
    if (this.registry.types().length === 0) throw new InputError('no processors are defined: call define() before start()');
    this.state = 'running';
    await this.upkeep.start();
    this.unsubscribe = await this.store.subscribe((topic) => {
      if (topic === 'work') this.schedule.announced(Date.now());
      else void this.upkeep.pollControl(true);
    });
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
    this.leaseLoop = this.runLeaseLoop();
    this.logger.debug({ worker: this.id, types: this.registry.types(), concurrency: this.settings.concurrency }, 'worker started');
  }

  /**
   * Stops gracefully: no new leases; chunks stop starting items and hand unstarted ones back;
   * running items get until `timeoutMs` to finish, then their signals abort and they get
   * `cancelGraceMs` more. Everything recorded is committed before this resolves.
   */
  async stop(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    this.schedule.wake();
    // No item starts from here on, also while a lease request in flight is awaited.
    for (const run of this.runs.values()) this.stopRun(run, 'draining');
    // A lease request on a dead connection could hang: what it leases then expires unused.
    await Promise.race([this.leaseLoop, sleep(Math.max(5_000, options.timeoutMs ?? 10_000))]);
    for (const run of this.runs.values()) this.stopRun(run, 'draining');
    if (!(await this.waitIdle(options.timeoutMs ?? 10_000))) {
      const stuck = this.active;
      for (const flight of this.inflight) flight.ctx.abort(new ItemAbortedError('shutdown', 'the worker is shutting down'));
      if (!(await this.waitIdle(this.settings.cancelGraceMs))) {
        this.logger.warn({ items: this.active, of: stuck }, 'items did not stop after abort; handing their chunks back');
      }
    }
    for (const run of [...this.runs.values()]) this.closeStopped(run, true);
    // Commits get a deadline too: with the store down they would retry for ever. What is not
    // written is not lost: its leases expire and the items run again.
    const drained = await Promise.race([this.committer.drain().then(() => true), sleep(Math.max(5_000, options.timeoutMs ?? 10_000))]);
    if (!drained) {
      this.logger.error({ chunks: this.committer.abandon() }, 'stopping without writing every commit; those items will run again');
    }
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.upkeep.stop();
    await this.unsubscribe?.();
    try {
      await this.store.workerRemove({ id: this.id });
    } catch (error) {
      this.logger.warn({ err: error }, 'could not remove the worker row');
    }
    this.state = 'stopped';
    this.logger.debug({ worker: this.id, processed: this.processed }, 'worker stopped');
  }

  /** Applies a batch's new status to the chunks this worker holds (cancel, pause, delete). */
  applyBatchStatus(batchId: string, status: BatchStatus | undefined): void {
    for (const run of this.runs.values()) {
      if (run.batchId !== batchId || run.closed) continue;
      if (status === undefined) this.dropRun(run.chunkId, 'its batch was deleted');
      else if (status === 'cancelled') this.cancelRun(run);
      else if (status === 'paused') this.stopRun(run, 'paused');
    }
  }

  /** True when this worker holds a lease on some chunk of the batch. */
  holds(batchId: string): boolean {
    for (const run of this.runs.values()) if (run.batchId === batchId) return true;
    return false;
  }

  /** Wakes the lease loop: `work` announcements also end an idle backoff. */
  wake(work = false): void {
    this.schedule.wake(work);
  }

  // -------------------------------------------------------------------------- leasing

  /** Attempts each type allows where its batch sets none (the store marks final leases by it). */
  private get maxAttemptsByType(): Record<string, number> {
    return Object.fromEntries(this.registry.types().map((type) => [type, this.registry.resolve(type, {}).maxAttempts]));
  }

  /** Which types to lease now and how many items of each; null when nothing is needed. */
  private leasePlan(): LeasePlan | null {
    const { plan, prefetchBelow } = this.sizing.plan(this.registry.types(), { active: this.active, unstarted: this.unstarted });
    this.prefetchBelow = prefetchBelow;
    return plan;
  }

  private async runLeaseLoop(): Promise<void> {
    let failures = 0;
    while (this.state === 'running') {
      const now = Date.now();
      const plan = this.schedule.mayLease(now) ? this.leasePlan() : null;
      if (!plan) {
        await this.schedule.waitToLease(now, this.settings.pollMs);
        continue;
      }
      const requestedAt = Date.now();
      let leased: LeasedChunk[];
      try {
        leased = await this.store.chunksLease({
          workerId: this.id,
          types: plan.types,
          maxItems: this.settings.maxLeaseItems,
          maxItemsByType: plan.maxItemsByType,
          maxAttemptsByType: this.maxAttemptsByType,
          startMarkByType: this.marks.forLease(this.queue, plan.types),
          leaseMs: this.settings.leaseMs,
        });
        failures = 0;
      } catch (error) {
        failures++;
        const delay = Math.min(10_000, 100 * 2 ** Math.min(failures, 7));
        this.logger.warn({ err: error, retryInMs: delay }, 'lease failed; retrying');
        await this.schedule.wait(delay);
        continue;
      }
      if (leased.length === 0) {
        this.schedule.idleTill(Date.now() + this.settings.pollMs);
        continue;
      }
      for (const lease of leased) this.adopt(lease, requestedAt);
      if (this.state !== 'running') {
        for (const lease of leased) this.stopRun(this.runs.get(lease.chunkId)!, 'draining');
      }
      this.pump();
    }
  }

  private startDeadline(requestedAt: number): number {
    return requestedAt + this.settings.leaseMs - Math.min(this.settings.leaseMs / 5, 2_000);
  }

  /** Queues a fresh lease's run, or commits it at once when none of its items may start. */
  private adopt(lease: LeasedChunk, requestedAt: number): void {
    const { run, close } = runOfLease(lease, this.registry, this.startDeadline(requestedAt), Date.now());
    this.runs.set(run.chunkId, run);
    if (close) {
      this.committer.enqueue(close);
      return;
    }
    this.queue.push(run);
    this.unstarted += run.unstarted;
  }

  // -------------------------------------------------------------------------- the pool

  private pump(): void {
    let i = 0;
    while (this.active < this.settings.concurrency && i < this.queue.length) {
      // Read for every start: a handler that runs synchronously for long delays the next.
      const now = Date.now();
      // After a while in one turn of the event loop, the rest start in the next (turn-pacer.ts).
      if (!this.pacer.mayGoOn(now)) return;
      const run = this.queue[i]!;
      if (run.unstarted === 0) {
        this.queue.splice(i, 1);
        continue;
      }
      if (this.tooLateToStart(run, now) || this.atCap(run)) {
        i++;
        continue;
      }
      // Waiting for its start mark: later chunks wait too, or each would get a mark (and a
      // crash would then fail the items of every chunk this worker holds).
      if (!this.marks.mayStart(this.queue, i)) break;
      const slot = run.takeSlot();
      this.unstarted--;
      this.startItem(run, slot, now);
    }
  }

  /**
   * Past the lease's start deadline, or so close to any held lease's deadline that an item of
   * average length, holding the event loop (a CPU-bound handler), would keep its renewal from
   * running in time: then the item waits for the next renewal, which pumps again. Items of a
   * millisecond or less are not worth the check; items as long as a whole lease cannot wait
   * for one, and start while their own deadline allows.
   */
  private tooLateToStart(run: ChunkRun, now: number): boolean {
    if (now > run.startDeadline) return true;
    const itemMs = this.sizing.averageMs(run.lease.type);
    if (itemMs === undefined || itemMs < 1 || itemMs >= this.startDeadline(now) - now) return false;
    for (const held of this.runs.values()) if (now + itemMs > held.startDeadline) return true;
    return false;
  }

  private atCap(run: ChunkRun): boolean {
    const cap = run.options.concurrency;
    return cap !== null && (this.runningByBatch.get(run.batchId) ?? 0) >= cap;
  }

  private startItem(run: ChunkRun, slot: number, now: number): void {
    this.active++;
    this.runningByBatch.set(run.batchId, (this.runningByBatch.get(run.batchId) ?? 0) + 1);
    const ctx = new AttemptContext(run.batchId, run.seqOf(slot), run.lease.attempt, this.logger);
    const flight: InFlight = { run, slot, ctx, startedAt: now, deadline: now + run.options.timeoutMs, settled: false, holdUntil: null };
    this.inflight.add(flight);
    let result: unknown;
    try {
      result = run.processor.handler(run.lease.payloads[slot], ctx);
    } catch (error) {
      queueMicrotask(() => this.settle(flight, undefined, error, true));
      return;
    }
    Promise.resolve(result).then(
      (value) => this.settle(flight, value, undefined, false),
      (error) => this.settle(flight, undefined, error, true),
    );
  }

  /**
   * Records how an item's run ended and frees its slot; `holdMs` keeps the slot taken that much
   * longer unless the handler returns first (a timeout: the handler may still be running).
   */
  private settle(flight: InFlight, value: unknown, error: unknown, threw: boolean, holdMs = 0): void {
    if (flight.settled) {
      // The handler of a timed-out item returned at last: its slot is free now.
      if (flight.holdUntil !== null) this.freeSlot(flight);
      return;
    }
    flight.settled = true;
    const { run, slot, ctx } = flight;
    const now = Date.now();
    const type = run.lease.type;
    const elapsed = now - flight.startedAt;
    this.sizing.observe(type, elapsed);
    this.processed++;

    if (!run.closed) {
      // A handler that fails once shutdown aborted it (fetch's AbortError, say) failed because
      // of the shutdown: recorded as such, with the message the docs promise.
      const shutdown = ctx.abortedBy instanceof ItemAbortedError && ctx.abortedBy.reason === 'shutdown' ? ctx.abortedBy : undefined;
      const outcome = threw ? recordFailure(run, slot, shutdown ?? error) : recordSuccess(run, slot, value, ctx, this.settings.maxResultBytes);
      this.hooks.onItem?.(type, outcome, elapsed);
      if (run.complete) this.committer.enqueue(run.commit('done', now));
      else if (run.stopped && run.running === 0) this.closeStopped(run);
    }
    if (holdMs > 0) flight.holdUntil = now + holdMs;
    else this.freeSlot(flight);
  }

  /** Gives a settled item's slot back to the pool (and to its batch's cap), and refills it. */
  private freeSlot(flight: InFlight): void {
    flight.holdUntil = null;
    this.inflight.delete(flight);
    this.active--;
    const batchRunning = this.runningByBatch.get(flight.run.batchId)! - 1;
    if (batchRunning === 0) this.runningByBatch.delete(flight.run.batchId);
    else this.runningByBatch.set(flight.run.batchId, batchRunning);
    if (this.active === 0) for (const resolve of this.settledWaiters.splice(0)) resolve();
    if (this.state !== 'running') return;
    this.pump();
    if (this.unstarted === 0 || this.unstarted < this.prefetchBelow) this.schedule.nudge(Date.now());
  }

  // -------------------------------------------------------------------------- stopping chunks

  /** No new item of this chunk starts; it closes once its running items settle. */
  private stopRun(run: ChunkRun, reason: StopReason): void {
    if (run.closed || run.stopped) return;
    run.stopped = reason;
    this.unstarted -= run.unstarted;
    this.queue = this.queue.filter((r) => r !== run);
    if (run.running === 0) this.closeStopped(run);
  }

  private cancelRun(run: ChunkRun): void {
    if (run.closed || run.stopped === 'cancelled') return;
    if (run.stopped) run.stopped = 'cancelled';
    else this.stopRun(run, 'cancelled');
    if (run.closed) return;
    for (const flight of this.inflight) {
      if (flight.run === run) flight.ctx.abort(new ItemAbortedError('cancelled', `batch ${run.batchId} was cancelled`));
    }
    const timer = setTimeout(() => this.closeStopped(run, true), this.settings.cancelGraceMs);
    timer.unref();
  }

  /** Queues the final commit of a stopped chunk. `force` closes it even with items still running. */
  private closeStopped(run: ChunkRun, force = false): void {
    if (run.closed || (!force && run.running > 0)) return;
    const now = Date.now();
    const unused = run.running === 0;
    if (run.complete) this.committer.enqueue(run.commit('done', now));
    else if (run.stopped === 'cancelled') this.committer.enqueue(run.commit('cancel', now, { unused }));
    else if (run.stopped !== 'lost') this.committer.enqueue(run.commit('release', now, { unused }));
  }

  /** Forgets a chunk whose lease is gone: its running items are aborted and their outcomes ignored. */
  private dropRun(chunkId: number, why: string): void {
    const run = this.runs.get(chunkId);
    if (!run) return;
    this.runs.delete(chunkId);
    // A run's unstarted items are counted while it is queued, and only then (a run closed at
    // adoption, as a lease past its last attempt is, never was).
    const queued = this.queue.indexOf(run);
    if (queued >= 0) {
      this.unstarted -= run.unstarted;
      this.queue.splice(queued, 1);
    }
    run.stopped = 'lost';
    run.closed = true;
    for (const flight of this.inflight) {
      if (flight.run === run) flight.ctx.abort(new ItemAbortedError('lease_lost', `lease on chunk ${chunkId} lost: ${why}`));
    }
    this.logger.warn({ chunk: chunkId, batchId: run.batchId, why }, 'worker:lease-lost');
    this.hooks.onLeaseLost?.({ chunkId, batchId: run.batchId });
  }

  private committed(commits: ChunkCommit[]): void {
    let soonest = Infinity;
    let marked = false;
    let capFreed = false;
    for (const commit of commits) {
      const run = this.runs.get(commit.chunkId);
      const ours = run?.lease.leaseNo === commit.leaseNo;
      if (ours && commit.close !== 'checkpoint') {
        this.runs.delete(commit.chunkId);
        // A lease of a capped batch takes only what its cap leaves, and a lease that found the
        // cap full made the loop wait for the idle poll: the cap is free again now.
        if (run!.options.concurrency !== null) capFreed = true;
      }
      if (ours && commit.startedBefore !== undefined) {
        run!.startLimit = Math.max(run!.startLimit, commit.startedBefore);
        marked = true;
      }
      for (const retry of commit.retries) soonest = Math.min(soonest, retry.delayMs);
    }
    if (marked && this.state === 'running') this.pump();
    if (capFreed && this.state === 'running') this.wake(true);
    // Retries written by this worker become runnable at a known time: look again then
    // rather than at the next idle poll.
    if (soonest < this.settings.pollMs) setTimeout(() => this.wake(true), soonest + 1).unref();
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.settledWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  // -------------------------------------------------------------------------- timers

  /** Times out overdue items and checkpoints long-running chunks. */
  private sweep(): void {
    const now = Date.now();
    for (const flight of this.inflight) {
      if (flight.holdUntil !== null) {
        if (now < flight.holdUntil) continue;
        this.logger.warn(
          { batchId: flight.run.batchId, seq: flight.run.seqOf(flight.slot), heldMs: this.settings.cancelGraceMs },
          'a timed-out handler ignores its abort signal and is still running; its slot is given to another item',
        );
        this.freeSlot(flight);
        continue;
      }
      if (flight.settled || now <= flight.deadline) continue;
      const error = new ItemAbortedError('timeout', `the attempt took longer than ${flight.run.options.timeoutMs} ms`);
      flight.ctx.abort(error);
      this.settle(flight, undefined, error, true, this.settings.cancelGraceMs);
    }
    this.rebalance(now);
    for (const run of this.runs.values()) {
      if (!run.closed && run.dirty && now - run.lastCommitAt >= this.settings.checkpointMs) {
        this.committer.enqueue(run.commit('checkpoint', now));
      }
    }
  }

  /**
   * Hands back the unstarted items of a type beyond what this worker soon runs (LeaseSizing.keep)
   * once it holds more than twice that: a lease sized by a type's fast items can turn out to
   * hold slow ones, which would otherwise wait here while other workers idle and batches of
   * higher priority wait behind them. Whole chunks not yet begun go back as they are; the tail
   * of one begun moves to a new chunk, runnable at once, in one commit.
   */
  private rebalance(now: number): void {
    if (this.state !== 'running') return;
    const held = new Map<string, number>();
    for (const run of this.queue) if (!run.stopped) held.set(run.lease.type, (held.get(run.lease.type) ?? 0) + run.unstarted);
    for (const [type, unstarted] of held) {
      const keep = this.sizing.keep(type);
      if (unstarted <= 2 * keep) continue;
      let room = keep;
      for (const run of [...this.queue]) {
        if (run.lease.type !== type || run.stopped || run.unstarted === 0) continue;
        if (run.unstarted <= room) {
          room -= run.unstarted;
          continue;
        }
        if (room === 0 && run.running === 0) {
          this.stopRun(run, 'rebalanced');
          continue;
        }
        this.unstarted -= run.handBack(room);
        room = 0;
        this.committer.enqueue(run.commit(run.complete ? 'done' : 'checkpoint', now));
      }
      this.logger.debug({ worker: this.id, type, held: unstarted, kept: keep, averageMs: this.sizing.averageMs(type) }, 'worker:rebalanced');
    }
  }
}
