/**
 * The reconciler heals what crashes leave: it hands expired leases back (their attempt used),
 * completes batches whose items are all terminal, checks batch counters against chunk contents
 * (repairing and reporting any mismatch), and forgets workers whose heartbeat stopped. With
 * `retainFinishedMs` it also deletes batches that finished longer ago than that.
 *
 * Every process that runs workers runs one; a TTL lock in the store lets one pass run at a
 * time. The lock is an economy, not a safety device: each step is safe when two run at once
 * (expired chunks are taken with SKIP LOCKED on PostgreSQL and serialised on SQLite; a batch
 * completes in a statement that checks it is not complete yet).
 *
 * States: idle → running (a pass every `intervalMs`) → stopped.
 */

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Batch } from '../core/types.js';
import type { BatchesPruneFilter, Store } from '../store/store.js';

export interface ReconcilerOptions {
  /** Time between passes (default 2 s; keep it well below the lease duration). */
  intervalMs?: number;
  /** Time between counter checks (default 60 s). */
  verifyEveryMs?: number;
  /** Batches whose counters one pass checks; a check of more goes on at the next pass (default 1,000). */
  verifyPageSize?: number;
  /** A worker row without a heartbeat for this long is removed (default 60 s). */
  workerStaleMs?: number;
  /**
   * Delete batches (with their items and events) that finished more than this long ago, checked
   * once a minute, up to a second of deleting per pass (default: keep every batch). See
   * Batchline.prune.
   */
  retainFinishedMs?: number;
  /** Called with batches a pass completed or closed. */
  onFinished?: (batches: Batch[]) => void;
}

const LOCK = 'reconciler';

/**
 * One page of a prune, one transaction: at most this many batches, and about PRUNE_PAGE_ITEMS
 * items (a page holds the locks of all their chunks, so it stays small enough that other
 * writers never wait long on it; a single bigger batch goes alone).
 */
export const PRUNE_PAGE = 100;
export const PRUNE_PAGE_ITEMS = 100_000;

/** How often a reconciler with retainFinishedMs looks for batches to delete. */
const PRUNE_EVERY_MS = 60_000;

/** How long one pass goes on deleting full pages, so a long history goes in hours, not days, and a pass stays short. */
const PRUNE_BUDGET_MS = 1_000;

/** Heals expired leases and stuck batches; see the module comment. */
export class Reconciler {
  private readonly owner = `reconciler:${randomUUID()}`;
  private readonly intervalMs: number;
  private readonly verifyEveryMs: number;
  private readonly workerStaleMs: number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastVerify = 0;
  private verifiedSince = new Date(0);
  /** Where the counter check's rotation goes on (newest first), or null to start one. */
  private verifyCursor: string | null = null;
  private verifyingSince = new Date(0);
  /** When the next prune is due (0: at the next pass). */
  private pruneDue = 0;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly options: ReconcilerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.verifyEveryMs = options.verifyEveryMs ?? 60_000;
    this.workerStaleMs = options.workerStaleMs ?? 60_000;
    for (const [name, value] of Object.entries({ intervalMs: this.intervalMs, verifyEveryMs: this.verifyEveryMs, workerStaleMs: this.workerStaleMs })) {
      if (!Number.isInteger(value) || value <= 0) throw new RangeError(`reconciler ${name} must be a positive integer, got ${value}`);
    }
    const retain = options.retainFinishedMs;
    if (retain !== undefined && !(Number.isSafeInteger(retain) && retain >= 0)) {
      throw new RangeError(`reconciler retainFinishedMs must be a whole number of milliseconds, at least 0, got ${retain}`);
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = null));
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer, waits for a pass in progress and gives the lock back. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    try {
      await this.store.lockRelease({ name: LOCK, owner: this.owner });
    } catch (error) {
      this.logger.warn({ err: error }, 'reconciler could not release its lock');
    }
  }

  private async tick(): Promise<void> {
    try {
      if (!(await this.store.lockTry({ name: LOCK, owner: this.owner, ttlMs: this.intervalMs * 5 }))) return;
      await this.pass();
    } catch (error) {
      this.logger.warn({ err: error }, 'reconciler pass failed');
    }
  }

  /**
   * One full pass, without the lock: safe to call from tests and from two processes at once.
   * Its steps are independent: one that fails (a store error, a batch it cannot read) is
   * logged and named in `failed`, and the others still run, so one batch cannot stop the
   * healing, clean-up and retention of every other.
   */
  async pass(): Promise<{ requeued: number; cancelled: number; finished: Batch[]; repaired: number; pruned: number; failed: string[] }> {
    let requeued = 0;
    let cancelled = 0;
    let repaired = 0;
    let pruned = 0;
    const finished: Batch[] = [];
    const failed: string[] = [];
    const step = async (name: string, run: () => Promise<void>) => {
      try {
        await run();
      } catch (error) {
        failed.push(name);
        this.logger.warn({ err: error, step: name }, 'reconciler step failed');
      }
    };
    await step('hand back expired leases', async () => {
      for (;;) {
        const result = await this.store.chunksReclaim({ limit: 100 });
        requeued += result.requeued;
        cancelled += result.cancelled;
        finished.push(...result.finished);
        if (result.requeued + result.cancelled < 100) break;
      }
    });
    if (requeued + cancelled > 0) this.logger.info({ requeued, cancelled }, 'expired leases handed back');
    await step('sweep cancelled batches', async () => {
      const swept = await this.store.batchesSweepCancelled({});
      if (swept > 0) this.logger.info({ items: swept }, 'items handed back to cancelled batches cancelled');
    });
    await step('finalize batches', async () => {
      finished.push(...(await this.store.batchesFinalize()));
    });
    // Counters are checked every verifyEveryMs for every open or recently finished batch, a
    // page of 1,000 per pass: a rotation over more goes on at the next pass, not a minute on.
    // Only a page that was checked moves the rotation on: one that failed is checked again at the next pass.
    if (this.verifyCursor !== null || Date.now() - this.lastVerify >= this.verifyEveryMs) {
      await step('verify counters', async () => {
        const fresh = this.verifyCursor === null;
        const startedAt = Date.now();
        const page = { since: fresh ? this.verifiedSince : this.verifyingSince, limit: this.options.verifyPageSize ?? 1_000 };
        const { mismatches, next } = await this.store.batchesVerify(this.verifyCursor ? { ...page, before: this.verifyCursor } : page);
        if (fresh) {
          this.verifyingSince = page.since;
          this.verifiedSince = new Date(startedAt - this.verifyEveryMs);
          this.lastVerify = startedAt;
        }
        this.verifyCursor = next;
        for (const m of mismatches) this.logger.error(m, 'batch counters did not match its items; repaired');
        repaired = mismatches.length;
      });
    }
    await step('prune workers', async () => {
      await this.store.workersPrune({ staleMs: this.workerStaleMs });
    });
    if (finished.length > 0) this.options.onFinished?.(finished);
    await step('prune finished batches', async () => {
      pruned = await this.prune();
    });
    return { requeued, cancelled, finished, repaired, pruned, failed };
  }

  /**
   * Deletes batches past retainFinishedMs when due, a page at a time for up to PRUNE_BUDGET_MS;
   * a pass that ends on a full page makes the next pass due too.
   */
  private async prune(): Promise<number> {
    const retain = this.options.retainFinishedMs;
    if (retain === undefined || Date.now() < this.pruneDue) return 0;
    const finishedBefore = new Date((await this.store.now()).getTime() - retain);
    const { batches, more } = await pruneFinished(this.store, { finishedBefore }, PRUNE_BUDGET_MS);
    this.pruneDue = more ? 0 : Date.now() + PRUNE_EVERY_MS;
    if (batches > 0) this.logger.info({ batches, finishedBefore }, 'finished batches past retention deleted');
    return batches;
  }
}

/**
 * Deletes the finished batches `filter` matches, a page at a time, until no page is cut short
 * or `budgetMs` has passed, and says how many went and whether more may match. A page that
 * deleted nothing while more matched (another prune was deleting those batches) is tried
 * again, up to three times in a row, so two prunes at once both get to the end.
 */
export async function pruneFinished(
  store: Store,
  filter: BatchesPruneFilter,
  budgetMs = Infinity,
): Promise<{ batches: number; more: boolean }> {
  const started = Date.now();
  let batches = 0;
  for (let idle = 0; ; ) {
    const { deleted, more } = await store.batchesPrune({ ...filter, limit: PRUNE_PAGE, maxItems: PRUNE_PAGE_ITEMS });
    batches += deleted.length;
    idle = deleted.length === 0 ? idle + 1 : 0;
    if (!more || idle >= 3 || Date.now() - started >= budgetMs) return { batches, more };
  }
}
