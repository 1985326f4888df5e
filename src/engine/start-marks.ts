/**
 * Start marks on final attempts (DESIGN.md; docs/concepts.md, "Attempts are counted per chunk
 * lease"): a chunk leased on its items' last attempt starts no slot at or after its written
 * mark, so a crash fails only what may have run. The marks stay a window ahead of the items
 * the worker starts: the lease writes the first ones itself (startMarkByType), and the worker
 * asks the committer for more, spanning chunks, when fewer than half a window is left
 * (markAhead). A window is 100 ms of items, at least one per slot, which bounds what a crash
 * on a final attempt fails without having run it. No I/O beyond enqueuing commits.
 */

import type { ChunkCommit } from '../store/store.js';
import type { ChunkRun } from './chunk-run.js';
import type { LeaseSizing } from './lease-sizing.js';

/** How far ahead of the items started, in time, the marks run. */
const WINDOW_MS = 100;

/** Whether a chunk run starts its items under marks and has a slot left to start. */
function marked(run: ChunkRun): boolean {
  return run.startLimit !== Infinity && run.peekSlot() >= 0;
}

/** Keeps a worker's start marks ahead of its starts. */
export class StartMarks {
  constructor(
    private readonly sizing: LeaseSizing,
    private readonly concurrency: number,
    private readonly enqueue: (commit: ChunkCommit) => void,
  ) {}

  /** The window for items of `type`. */
  private window(type: string): number {
    return Math.max(this.concurrency, this.sizing.itemsIn(type, WINDOW_MS));
  }

  /**
   * How many of the items next in line to start (`queue`'s chunks from the `from`th on, in the
   * order they start) are marked or being marked but not started. With `untilGap`, counts up
   * to the first chunk whose marks stop short of its end, or until `enough` are counted, and
   * returns where it stopped (the queue's length if at its end).
   */
  private ahead(queue: ChunkRun[], from: number, untilGap: boolean, enough = Infinity): { items: number; stopsAt: number } {
    let items = 0;
    for (let j = from; j < queue.length; j++) {
      const run = queue[j]!;
      if (!marked(run)) continue;
      items += Math.max(0, run.markAsked - run.peekSlot());
      if (untilGap && (run.markAsked < run.lease.n || items >= enough)) return { items, stopsAt: j };
    }
    return { items, stopsAt: queue.length };
  }

  /**
   * How many items a final-attempt lease of each type may mark itself (see
   * ChunksLeaseParams.startMarkByType): what the window has left beyond the marks already
   * ahead, so a prefetched lease usually needs no mark of its own before its items start.
   */
  forLease(queue: ChunkRun[], types: string[]): Record<string, number> {
    const ahead = this.ahead(queue, 0, false).items;
    return Object.fromEntries(types.map((type) => [type, Math.max(0, this.window(type) - ahead)]));
  }

  /**
   * Whether the next slot of `queue`'s `i`th chunk is inside its written start mark; first,
   * once fewer than half a window of the items next in line are marked, asks for marks for
   * the rest of the window, spanning as many chunks as it takes (the committer writes them
   * together), so starts rarely wait for one.
   */
  mayStart(queue: ChunkRun[], i: number): boolean {
    const run = queue[i]!;
    if (run.startLimit === Infinity) return true;
    const window = this.window(run.lease.type);
    const { items, stopsAt } = this.ahead(queue, i, true, window / 2);
    if (items < window / 2) {
      let budget = window - items;
      const now = Date.now();
      for (let j = stopsAt; j < queue.length && budget > 0; j++) {
        const next = queue[j]!;
        if (!marked(next)) continue;
        const start = Math.max(next.peekSlot(), next.markAsked);
        const startedBefore = Math.min(next.lease.n, start + budget);
        if (startedBefore <= next.markAsked) continue;
        budget -= startedBefore - start;
        next.markAsked = startedBefore;
        this.enqueue(next.commit('checkpoint', now, { startedBefore }));
      }
    }
    return run.peekSlot() < run.startLimit;
  }
}
