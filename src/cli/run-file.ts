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
  /** After SIGINT or SIGTERM, how long running items get to finish before their signals abort (default 10 s). */
  shutdownMs?: number;
}

export interface RunSummary {
  batches: { id: string; status: string; total: number; succeeded: number; failed: number; aggregates: Record<string, string> }[];
  total: number;
  succeeded: number;
  failed: number;
  elapsedMs: number;
  itemsPerSecond: number;
  /** Present (false) only when the idempotency key had been used for this file: nothing new was submitted. */
  created?: false;
  /** The signal that stopped the run before every item was done; its items stay in the database. */
  interrupted?: string;
  /** With `interrupted`: the items not done, left in the database. */
  remaining?: number;
}

/**
 * Submits `file` as `batches` batches, works them with `concurrency` slots, returns the summary.
 *
 * SIGINT or SIGTERM after the submit stops the run as `batchline worker` stops: no new leases,
 * unstarted items handed back with their attempt unused, running ones given `shutdownMs` to
 * finish, everything committed. The summary then says `interrupted` and the batches stay in
 * the database for a worker to finish. A second signal ends the process at once. A signal
 * during the submit ends it too; the submit is one transaction, so nothing is half-submitted.
 */
export async function runFile(bl: Batchline, options: RunFileOptions): Promise<{ summary: RunSummary; batches: Batch[] }> {
  const { type, file, batches: parts, concurrency, quiet, label, shutdownMs, ...submit } = options;
  const startedAt = performance.now();
  const submitted = await bl.submitFile(type, file, { ...submit, batches: parts });
  // A repeat (its key used before) may find its batches finished already: the rate counts
  // only what finished while this run waited.
  const finishedBefore = submitted.reduce((n, b) => n + b.succeeded + b.failed, 0);
  const progress = new ProgressReporter((id) => bl.getBatch(id), submitted.map((b) => b.id), { quiet, label: label ?? type });
  const interrupt = new AbortController();
  const onStopped = ({ signal }: { signal?: string }) => interrupt.abort(signal);
  bl.once('worker:stopped', onStopped);
  progress.start();
  await bl.start({ concurrency, handleSignals: true, shutdownMs });
  let finished: Batch[] = [];
  try {
    for (const batch of submitted) finished.push(await bl.wait(batch.id, { signal: interrupt.signal }));
  } catch (error) {
    if (!interrupt.signal.aborted) throw error;
    finished = await Promise.all(submitted.map((b) => bl.getBatch(b.id)));
  } finally {
    bl.off('worker:stopped', onStopped);
    await progress.stop();
    await bl.stop();
  }
  const elapsedMs = Math.round(performance.now() - startedAt);
  const total = finished.reduce((n, b) => n + b.total, 0);
  const succeeded = finished.reduce((n, b) => n + b.succeeded, 0);
  const failed = finished.reduce((n, b) => n + b.failed, 0);
  const interrupted = interrupt.signal.aborted ? String(interrupt.signal.reason ?? 'a signal') : undefined;
  return {
    batches: finished,
    summary: {
      batches: finished.map(({ id, status, total, succeeded, failed, aggregates }) => ({ id, status, total, succeeded, failed, aggregates })),
      total,
      succeeded,
      failed,
      elapsedMs,
      itemsPerSecond: elapsedMs > 0 ? Math.round(((succeeded + failed - finishedBefore) * 1000) / elapsedMs) : 0,
      ...(submitted[0]!.created ? {} : { created: false as const }),
      ...(interrupted ? { interrupted, remaining: finished.reduce((n, b) => n + b.remaining, 0) } : {}),
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
  const remaining = batches.reduce((n, b) => n + b.remaining, 0);
  return [
    table(['batch', 'status', 'total', 'succeeded', 'failed', ...names], rows),
    '',
    ...(summary.created !== false ? [] : ['The idempotency key was already used for this file: nothing new was submitted; these are the first run\'s batches.']),
    `Total: ${count(summary.total)} items, ${count(summary.succeeded)} succeeded, ${count(summary.failed)} failed${remaining > 0 ? `, ${count(remaining)} not done` : ''}`,
    `Elapsed: ${(summary.elapsedMs / 1000).toFixed(2)} s, throughput ${count(summary.itemsPerSecond)} items/s (submit and process, end to end)`,
    ...(summary.interrupted
      ? [`Interrupted by ${summary.interrupted}: the ${count(remaining)} items not done stay in the database; \`batchline worker\` on it finishes them.`]
      : []),
  ].join('\n');
}
