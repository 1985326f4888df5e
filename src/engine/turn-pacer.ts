/**
 * Pacing for work started from microtasks. Items whose handlers settle at once (synchronous or
 * CPU-bound) start the next one from a microtask, so timers — lease renewal, control polls,
 * commits — would never get a turn of the event loop. A pacer says when a turn has gone on
 * long enough; the caller then stops, and `resume` runs in the next turn.
 */

export class TurnPacer {
  /** When the current turn began (null: none is being paced). */
  private startedAt: number | null = null;
  private resumeScheduled = false;

  /**
   * @param maxMs how long one turn may go on
   * @param resume called (once) in the next turn after `mayGoOn` said no
   */
  constructor(
    private readonly maxMs: number,
    private readonly resume: () => void,
  ) {}

  /** Whether work may go on in this turn at `now`; if not, `resume` is scheduled. */
  mayGoOn(now: number): boolean {
    if (this.startedAt === null) {
      this.startedAt = now;
      setImmediate(() => (this.startedAt = null));
      return true;
    }
    if (now - this.startedAt < this.maxMs) return true;
    if (!this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(() => {
        this.resumeScheduled = false;
        this.resume();
      });
    }
    return false;
  }
}
