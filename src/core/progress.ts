/**
 * A batch's progress as people read it: percent done, throughput and time left. One
 * definition for the HTTP API, the CLI and the dashboard.
 */

import type { BatchStatus } from './statuses.js';
import type { Batch } from './types.js';

export interface Progress {
  status: BatchStatus;
  total: number;
  /** Items that reached a terminal state: succeeded + failed + cancelled. */
  processed: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  remaining: number;
  /** 0-100 with one decimal; 100 for an empty or finished batch. */
  percent: number;
  /** Processed items per second since the batch started (until it finished); null before it starts. */
  itemsPerSecond: number | null;
  /** Seconds until done at that rate; 0 when done, null when unknown or paused. */
  etaSeconds: number | null;
}

/** The progress of `batch` as of `now` (ms since the epoch). */
export function progressOf(batch: Batch, now = Date.now()): Progress {
  const processed = batch.succeeded + batch.failed + batch.cancelled;
  const percent = batch.total === 0 ? 100 : Math.floor((processed * 1000) / batch.total) / 10;
  let itemsPerSecond: number | null = null;
  if (batch.startedAt) {
    const seconds = ((batch.finishedAt?.getTime() ?? now) - batch.startedAt.getTime()) / 1000;
    itemsPerSecond = seconds > 0 ? Math.round((processed / seconds) * 10) / 10 : null;
  }
  const etaSeconds = batch.remaining === 0 ? 0 : itemsPerSecond && batch.status !== 'paused' ? Math.ceil(batch.remaining / itemsPerSecond) : null;
  return {
    status: batch.status,
    total: batch.total,
    processed,
    succeeded: batch.succeeded,
    failed: batch.failed,
    cancelled: batch.cancelled,
    remaining: batch.remaining,
    percent,
    itemsPerSecond,
    etaSeconds,
  };
}
