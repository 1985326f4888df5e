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
