/**
 * A one-slot wake-up signal for a loop that sleeps: `wait(ms)` resolves after `ms` or at the
 * next `wake()`, whichever is first. A wake while nobody waits is remembered once, so a wake
 * that lands between the loop's check and its wait is not lost.
 */
export class Wakeup {
  private waiter: (() => void) | null = null;
  private pending = false;

  wake(): void {
    if (this.waiter) {
      const resolve = this.waiter;
      this.waiter = null;
      resolve();
    } else {
      this.pending = true;
    }
  }

  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve();
      }, ms);
      this.waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * When a worker's lease loop may lease: at once, unless its last lease came back empty; then
 * it idles until its next poll. Work this process knows of ends the idling at once (`wake`
 * with `work`); the store's announcements end it at most every `gapMs`: the first after a
 * quiet spell at once, those that follow within the gap together at its end, so an idle
 * worker leases at most 1000 / gapMs times a second however often work is announced. (Commits
 * under a capped batch's cap announce every few milliseconds; with every idle worker leasing
 * on each, 10 idle workers made 5 times the lease queries, 91 % of them empty, and the capped
 * batch ran a quarter slower.)
 */
export class LeaseSchedule {
  private readonly wakeup = new Wakeup();
  private idleUntil = 0;
  /** When the latest lease an announcement started went, or is due. */
  private announcedAt = -Infinity;

  constructor(private readonly gapMs: number) {}

  /** Whether the loop may lease at `now` (it is not idling). */
  mayLease(now: number): boolean {
    return now >= this.idleUntil;
  }

  /** The last lease came back empty: lease again at `until`, unless woken for work sooner. */
  idleTill(until: number): void {
    this.idleUntil = until;
  }

  /** Sleeps until the idling ends, or for `ms` when not idling, or until a wake-up. */
  waitToLease(now: number, ms: number): Promise<void> {
    return this.wakeup.wait(this.idleUntil > now ? this.idleUntil - now : ms);
  }

  /** Sleeps for `ms` or until a wake-up (a backoff). */
  wait(ms: number): Promise<void> {
    return this.wakeup.wait(ms);
  }

  /** Wakes the loop; `work` (known in this process) also ends its idling. */
  wake(work = false): void {
    if (work) this.idleUntil = 0;
    this.wakeup.wake();
  }

  /** Wakes the loop unless it idles (slots freed up: it may lease more if it has work). */
  nudge(now: number): void {
    if (now >= this.idleUntil) this.wakeup.wake();
  }

  /** The store announced work: end the idling now, or at the end of the gap since the last announced lease. */
  announced(now: number): void {
    if (this.announcedAt <= now) this.announcedAt = Math.max(now, this.announcedAt + this.gapMs);
    if (this.announcedAt >= this.idleUntil) return;
    this.idleUntil = this.announcedAt;
    this.wakeup.wake();
  }
}
