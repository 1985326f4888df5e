/**
 * The committer: collects chunk commits and writes them in as few transactions as it can.
 * While one flush is in flight, new commits queue up and go together in the next, so under
 * load one transaction records many chunks (group commit) and at rest a commit goes at once.
 *
 * Two commits of one chunk waiting together merge into one (newest state, summed deltas),
 * which is also how a failed flush is retried: its commits are put back under any newer ones.
 *
 * States: idle → flushing ↔ backing off (after a store error) ; `drain()` resolves when the
 * queue is empty and no flush is in flight.
 */

import type { Logger } from 'pino';
import { mergeAggregates } from '../core/decimal.js';
import type { Batch } from '../core/types.js';
import type { ChunkCommit, Store } from '../store/store.js';

export interface CommitterOptions {
  store: Store;
  logger: Logger;
  /** Called with chunks whose lease was lost: nothing of theirs was written. */
  onLost: (chunkIds: number[]) => void;
  /** Called with each commit once it is durable. */
  onCommitted: (commits: ChunkCommit[]) => void;
  /** Called with batches that reached a terminal status. */
  onFinished: (batches: Batch[]) => void;
}

function merge(older: ChunkCommit, newer: ChunkCommit): ChunkCommit {
  return {
    ...newer,
    delta: {
      succeeded: older.delta.succeeded + newer.delta.succeeded,
      failed: older.delta.failed + newer.delta.failed,
      cancelled: older.delta.cancelled + newer.delta.cancelled,
      moved: older.delta.moved + newer.delta.moved,
    },
    aggregates: mergeAggregates(older.aggregates, newer.aggregates),
    retries: [...older.retries, ...newer.retries],
  };
}

/** Group-commits chunk outcomes; see the module comment. */
export class Committer {
  private queue = new Map<number, ChunkCommit>();
  private flushing: Promise<void> | null = null;
  private failures = 0;

  constructor(private readonly options: CommitterOptions) {}

  /** Number of chunks with a commit waiting. */
  get size(): number {
    return this.queue.size;
  }

  enqueue(commit: ChunkCommit): void {
    const waiting = this.queue.get(commit.chunkId);
    this.queue.set(commit.chunkId, waiting ? merge(waiting, commit) : commit);
    // Flush on the next turn of the event loop, so chunks finishing together share a transaction.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushLoop());
  }

  /** Resolves when everything enqueued so far is written (or lost). */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.size > 0) {
        const commits = [...this.queue.values()];
        this.queue = new Map();
        try {
          const result = await this.options.store.chunksCommit({ commits });
          this.failures = 0;
          const lost = new Set(result.lost);
          if (lost.size > 0) this.options.onLost(result.lost);
          this.options.onCommitted(commits.filter((c) => !lost.has(c.chunkId)));
          if (result.finished.length > 0) this.options.onFinished(result.finished);
        } catch (error) {
          this.failures++;
          for (const commit of commits) {
            const newer = this.queue.get(commit.chunkId);
            this.queue.set(commit.chunkId, newer ? merge(commit, newer) : commit);
          }
          const delay = Math.min(5_000, 50 * 2 ** Math.min(this.failures, 7));
          this.options.logger.warn({ err: error, chunks: commits.length, retryInMs: delay }, 'commit failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    } finally {
      this.flushing = null;
    }
  }
}
