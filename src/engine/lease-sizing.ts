/**
 * How many items a worker leases, from how long items take (DESIGN.md: chunk size adapts to
 * item duration). A per-type moving average of item time says how many items keep every slot
 * busy for `targetLeaseMs`: fast types lease up to `maxLeaseItems` at once and prefetch the
 * next lease while the current one runs; slow types lease only as many items as there are idle
 * slots, so they are never hoarded. When a type's items turn out slower than its lease was sized
 * for, `keep` says how many of them the worker holds on to. No I/O.
 */

export interface LeaseSizingOptions {
  concurrency: number;
  targetLeaseMs: number;
  maxLeaseItems: number;
}

export interface LeasePlan {
  types: string[];
  maxItemsByType: Record<string, number>;
}

/** Item durations per type, and the lease sizes they call for. */
export class LeaseSizing {
  private readonly itemMs = new Map<string, number>();

  constructor(private readonly options: LeaseSizingOptions) {}

  /** Folds one item's duration into its type's moving average. */
  observe(type: string, ms: number): void {
    const previous = this.itemMs.get(type);
    this.itemMs.set(type, previous === undefined ? ms : previous + 0.2 * (ms - previous));
  }

  /** The moving average of a type's item duration in ms, or undefined before its first item. */
  averageMs(type: string): number | undefined {
    return this.itemMs.get(type);
  }

  /**
   * How many items of a type keep every slot busy for `targetLeaseMs`, by its average item
   * duration (at most `maxLeaseItems`); one per slot before its first item has run.
   */
  want(type: string): number {
    if (!this.itemMs.has(type)) return this.options.concurrency;
    return Math.min(this.options.maxLeaseItems, this.itemsIn(type, this.options.targetLeaseMs));
  }

  /**
   * How many unstarted items of a type a worker keeps when it holds too many (its items turned
   * out slower than the lease was sized for): about two lease targets of work, at least a slot's
   * worth each. Past twice this many, the rest are handed back (the worker's rebalance).
   */
  keep(type: string): number {
    return Math.max(this.options.concurrency, this.itemsIn(type, 2 * this.options.targetLeaseMs));
  }

  /**
   * How many items of a type every slot together runs in `ms` milliseconds, by its average
   * item duration (at least 1, not capped by lease size); `concurrency` before its first item
   * has run.
   */
  itemsIn(type: string, ms: number): number {
    const itemMs = this.itemMs.get(type);
    if (itemMs === undefined) return this.options.concurrency;
    return Math.max(1, Math.ceil((ms * this.options.concurrency) / Math.max(itemMs, 0.01)));
  }

  /**
   * Which types to lease now and how many items of each (`plan`, null when nothing is needed),
   * given the slots running and the items leased but not started; and below how many unstarted
   * items the next lease should already be asked for (`prefetchBelow`).
   */
  plan(types: string[], now: { active: number; unstarted: number }): { plan: LeasePlan | null; prefetchBelow: number } {
    const free = this.options.concurrency - now.active - now.unstarted;
    const maxItemsByType: Record<string, number> = {};
    let prefetchBelow = 0;
    for (const type of types) {
      const want = this.want(type);
      if (want <= this.options.concurrency) {
        if (free > 0) maxItemsByType[type] = free;
      } else {
        prefetchBelow = Math.max(prefetchBelow, want / 2);
        if (now.unstarted < want / 2) maxItemsByType[type] = want;
      }
    }
    const leased = Object.keys(maxItemsByType);
    return { plan: leased.length > 0 ? { types: leased, maxItemsByType } : null, prefetchBelow };
  }
}
