/**
 * Submitting a file and working it in this process until every batch is done: the core of
 * `batchline run` and `batchline demo`, with the summary both print.
 */

import type { Batch } from '../core/types.js';
import type { Batchline } from '../engine/batchline.js';
import type { SubmitOptions } from '../engine/submission.js';
import { batchSummary, count, table } from './common.js';
import { ProgressReporter } from './progress.js';

export interface RunFileOptions extends SubmitOptions {
  type: string;
  file: string;
  batches: number;
  concurrency: number;
  /** No progress on stderr (for --json). */
  quiet: boolean;
  label?: string;
}

export interface RunSummary {
  batches: { id: string; status: string; total: number; succeeded: number; failed: number; aggregates: Record<string, string> }[];
  total: number;
  succeeded: number;
  failed: number;
  elapsedMs: number;
  itemsPerSecond: number;
}

/** Submits `file` as `batches` batches, works them with `concurrency` slots, returns the summary. */
export async function runFile(bl: Batchline, options: RunFileOptions): Promise<{ summary: RunSummary; batches: Batch[] }> {
  const { type, file, batches: parts, concurrency, quiet, label, ...submit } = options;
  const startedAt = performance.now();
  const submitted = await bl.submitFile(type, file, { ...submit, batches: parts });
  const progress = new ProgressReporter((id) => bl.getBatch(id), submitted.map((b) => b.id), { quiet, label: label ?? type });
  progress.start();
  await bl.start({ concurrency });
  let finished: Batch[];
  try {
    finished = [];
    for (const batch of submitted) finished.push(await bl.wait(batch.id));
  } finally {
    await progress.stop();
    await bl.stop();
  }
  const elapsedMs = Math.round(performance.now() - startedAt);
  const total = finished.reduce((n, b) => n + b.total, 0);
  const succeeded = finished.reduce((n, b) => n + b.succeeded, 0);
  const failed = finished.reduce((n, b) => n + b.failed, 0);
  return {
    batches: finished,
    summary: {
      batches: finished.map(({ id, status, total, succeeded, failed, aggregates }) => ({ id, status, total, succeeded, failed, aggregates })),
      total,
      succeeded,
      failed,
      elapsedMs,
      itemsPerSecond: elapsedMs > 0 ? Math.round((total * 1000) / elapsedMs) : total,
    },
  };
}

/** The human-readable summary: one row per batch, then totals and throughput. */
export function formatSummary(summary: RunSummary, batches: Batch[]): string {
  const names = [...new Set(batches.flatMap((b) => Object.keys(b.aggregates)))];
  const rows = batches.map((b) => {
    const s = batchSummary(b);
    return [s.id, s.status, count(s.total), count(s.succeeded), count(s.failed), ...names.map((n) => s.aggregates[n] ?? '')];
  });
  return [
    table(['batch', 'status', 'total', 'succeeded', 'failed', ...names], rows),
    '',
    `Total: ${count(summary.total)} items, ${count(summary.succeeded)} succeeded, ${count(summary.failed)} failed`,
    `Elapsed: ${(summary.elapsedMs / 1000).toFixed(2)} s, throughput ${count(summary.itemsPerSecond)} items/s (submit and process, end to end)`,
  ].join('\n');
}
