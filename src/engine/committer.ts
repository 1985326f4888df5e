/**
 * The committer: collects chunk commits and writes them in as few transactions as it can.
 * While one flush is in flight, new commits queue up and go together in the next, so under
 * load one transaction records many chunks (group commit) and at rest a commit goes at once.
 *
 * Commits of one chunk keep their order. Two that wait together, unsent, merge into one. A
 * commit that was sent and failed is retried exactly as it was: if its COMMIT did land (the
 * reply was lost), the store recognises it by its commit numbers and does not apply it twice,
 * which merging it with a newer one would defeat.
 *
 * States: idle → flushing ↔ backing off (after a store error); `drain()` resolves when the
 * queue is empty and no flush is in flight.
 */

import type { Logger } from 'pino';
import { mergeAggregates } from '../core/decimal.js';
import { StoreUnavailableError } from '../core/errors.js';
import type { Batch } from '../core/types.js';
import type { ChunkCommit, Store } from '../store/store.js';

export interface CommitterOptions {
  store: Store;
  logger: Logger;
  /** Called with commits whose lease had been lost: nothing of theirs was written. */
  onLost: (commits: ChunkCommit[]) => void;
  /** Called with each commit once it is durable. */
  onCommitted: (commits: ChunkCommit[]) => void;
  /** Called with batches that reached a terminal status. */
  onFinished: (batches: Batch[]) => void;
}

/** One commit doing what `older` then `newer` would: built on older's number, leaving newer's. */
function merge(older: ChunkCommit, newer: ChunkCommit): ChunkCommit {
  return {
    ...newer,
    commitNo: older.commitNo,
    delta: {
      succeeded: older.delta.succeeded + newer.delta.succeeded,
      failed: older.delta.failed + newer.delta.failed,
      cancelled: older.delta.cancelled + newer.delta.cancelled,
      moved: older.delta.moved + newer.delta.moved,
    },
    aggregates: mergeAggregates(older.aggregates, newer.aggregates),
    retries: [...older.retries, ...newer.retries],
    startedBefore: older.startedBefore === undefined || newer.startedBefore === undefined
      ? (newer.startedBefore ?? older.startedBefore)
      : Math.max(older.startedBefore, newer.startedBefore),
  };
}

/** Group-commits chunk outcomes; see the module comment. */
export class Committer {
  /** Pending commits per chunk, oldest first. */
  private queues = new Map<number, ChunkCommit[]>();
  /** Commits that were sent at least once: never merged with anything afterwards. */
  private readonly sent = new WeakSet<ChunkCommit>();
  private flushing: Promise<void> | null = null;
  private failures = 0;
  /** Rounds left in which chunks are written one per transaction, to isolate a failing one. */
  private isolateRounds = 0;

  constructor(private readonly options: CommitterOptions) {}

  /** Number of chunks with a commit waiting. */
  get size(): number {
    return this.queues.size;
  }

  enqueue(commit: ChunkCommit): void {
    const queue = this.queues.get(commit.chunkId) ?? [];
    const last = queue.at(-1);
    // A chunk can be released and leased again by this worker while a commit of the earlier
    // lease still waits: commits of different leases never merge.
    if (last && !this.sent.has(last) && last.leaseNo === commit.leaseNo) queue[queue.length - 1] = merge(last, commit);
    else queue.push(commit);
    this.queues.set(commit.chunkId, queue);
    // Flush on the next turn of the event loop, so chunks finishing together share a transaction.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
  }

  /**
   * Gives up on everything still queued (a worker stopping while the store is down): the loop
   * ends after the flush in flight. The chunks' leases expire and their items run again.
   */
  abandon(): number {
    const chunks = this.queues.size;
    this.queues = new Map();
    return chunks;
  }

  /** Resolves when everything enqueued so far is written (or lost). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queues.size > 0) {
        // The oldest commit of every chunk; newer ones of the same chunk wait for the next round.
        let commits = [...this.queues.values()].map((queue) => queue[0]!);
        if (this.isolateRounds > 0) {
          this.isolateRounds--;
          commits = commits.slice(0, 1);
        }
        for (const commit of commits) this.sent.add(commit);
        try {
          const result = await this.options.store.chunksCommit({ commits });
          this.failures = 0;
          const lostIds = new Set(result.lost);
          const lost = commits.filter((c) => lostIds.has(c.chunkId));
          for (const commit of commits) {
            // Abandoned meanwhile (the worker stopped): the result still counts below.
            const queue = this.queues.get(commit.chunkId);
            if (!queue) continue;
            queue.shift();
            // A lost lease voids the rest of that lease's commits, not a newer lease's.
            const rest = lostIds.has(commit.chunkId) ? queue.filter((c) => c.leaseNo !== commit.leaseNo) : queue;
            if (rest.length === 0) this.queues.delete(commit.chunkId);
            else this.queues.set(commit.chunkId, rest);
          }
          if (lost.length > 0) this.options.onLost(lost);
          this.options.onCommitted(commits.filter((c) => !lostIds.has(c.chunkId)));
          if (result.finished.length > 0) this.options.onFinished(result.finished);
        } catch (error) {
          // Abandoned meanwhile: nothing is left to retry, and the store may be closed by now.
          if (this.queues.size === 0) {
            this.options.logger.debug({ err: error, chunks: commits.length }, 'abandoned commit failed');
            break;
          }
          this.failures++;
          // An error that is not the store being away may belong to one commit of the group:
          // write them one by one for a while, so the others are not held back with it.
          if (!(error instanceof StoreUnavailableError) && commits.length > 1) this.isolateRounds = commits.length;
          else if (commits.length === 1 && this.isolateRounds > 0) {
            // The one that failed goes to the back, so the next round tries another chunk.
            const queue = this.queues.get(commits[0]!.chunkId);
            if (queue) {
              this.queues.delete(commits[0]!.chunkId);
              this.queues.set(commits[0]!.chunkId, queue);
            }
          }
          const delay = Math.min(5_000, 50 * 2 ** Math.min(this.failures, 7));
          const level = this.failures >= 5 ? 'error' : 'warn';
          this.options.logger[level]({ err: error, chunks: commits.length, retryInMs: delay }, 'commit failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, delay).unref());
        }
      }
    } finally {
      this.flushing = null;
    }
  }
}
