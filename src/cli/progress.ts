/**
 * Progress of long CLI work, on stderr: one live line on a terminal, a line every few seconds
 * otherwise (CI logs), nothing with --json. Reads batch counters from the store or a server, so
 * it shows the work of every worker, not only this process's.
 *
 * States: idle → running (a render every interval) → stopped (the live line cleared).
 */

import { count } from './common.js';

/** What progress needs of a batch; the library's and the API's batches both have it. */
export interface BatchCounters {
  total: number;
  remaining: number;
  failed: number;
}

/** Reads a batch's current counters: from the database (`bl.getBatch`) or a server (`client.getBatch`). */
export type ReadBatch = (id: string) => Promise<BatchCounters>;

export interface ProgressOptions {
  /** Write nothing (for --json). */
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
  label?: string;
}

/** Renders the progress of a set of batches on stderr until stopped. */
export class ProgressReporter {
  private timer: NodeJS.Timeout | null = null;
  /** Items finished at the first read, and when: the rate counts only what finished since. */
  private baseline: { finished: number; at: number } | null = null;
  /** When a line was last printed (not on a terminal: one every 5 s, the first after 5 s). */
  private lastPrinted = Date.now();
  private readonly stream: NodeJS.WriteStream;
  private readonly live: boolean;
  private rendering = false;

  constructor(
    private readonly read: ReadBatch,
    private readonly ids: string[],
    private readonly options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.live = Boolean(this.stream.isTTY);
  }

  start(): void {
    if (this.options.quiet || this.timer) return;
    this.timer = setInterval(() => void this.render(), this.live ? 250 : 1_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.options.quiet) return;
    if (this.live) this.stream.write('\r\x1b[K');
  }

  private async render(): Promise<void> {
    if (this.rendering) return;
    this.rendering = true;
    try {
      const batches = await Promise.all(this.ids.map((id) => this.read(id)));
      const now = Date.now();
      this.baseline ??= { finished: finishedOf(batches), at: now };
      const rate = now > this.baseline.at ? ((finishedOf(batches) - this.baseline.finished) * 1000) / (now - this.baseline.at) : null;
      const line = describe(batches, rate, this.options.label);
      if (this.live) this.stream.write(`\r\x1b[K${line}`);
      else if (Date.now() - this.lastPrinted >= 5_000) {
        this.lastPrinted = Date.now();
        this.stream.write(`${line}\n`);
      }
    } catch {
      // A failed poll only skips one frame.
    } finally {
      this.rendering = false;
    }
  }
}

function finishedOf(batches: BatchCounters[]): number {
  return batches.reduce((n, b) => n + b.total - b.remaining, 0);
}

/**
 * "txn.apply: 45,231/100,000 items (45%), 0 failed, 12,345 items/s, 3/10 batches done", with
 * `itemsPerSecond` the rate since progress began to be watched (null: not yet known).
 */
export function describe(batches: BatchCounters[], itemsPerSecond: number | null, label = 'progress'): string {
  const total = batches.reduce((n, b) => n + b.total, 0);
  const finished = finishedOf(batches);
  const failed = batches.reduce((n, b) => n + b.failed, 0);
  const done = batches.filter((b) => b.remaining === 0).length;
  const percent = total > 0 ? Math.floor((finished * 100) / total) : 100;
  const rate = itemsPerSecond === null ? '' : `, ${count(Math.round(itemsPerSecond))} items/s`;
  return `${label}: ${count(finished)}/${count(total)} items (${percent}%), ${count(failed)} failed${rate}, ${done}/${batches.length} batches done`;
}
