/**
 * `batchline monitor`: a live view of batches until nothing is left, for a terminal or a CI
 * job. One row per batch (status, percent, processed/total, succeeded, failed, remaining,
 * items/s, ETA) and a line of worker activity; a final summary.
 *
 * Exit codes: 0 when every watched batch has 0 remaining (and, with --fail-on-failed, none
 * failed or was cancelled); 1 when the timeout passes with work remaining (the incomplete
 * batches are listed), or with --fail-on-failed when items failed or were cancelled; 2 on usage errors (bad flags, an unknown batch,
 * a --tenant without any batch). Once watching, a batch deleted meanwhile is dropped from the
 * watch, and a server or database that stops answering is retried until the timeout.
 *
 * It reads the database directly (--database) or goes through the HTTP API (--server).
 */

import { Command } from 'commander';
import { progressOf, type Progress } from '../../core/progress.js';
import { NotFoundError, StoreUnavailableError } from '../../core/errors.js';
import { isTerminalBatchStatus, type BatchStatus } from '../../core/statuses.js';
import type { Batch } from '../../core/types.js';
import { ApiError, type ApiBatch } from '../../client/index.js';
import { CliError, count, durationOption, EXIT, printJson, table, withDatabase } from '../common.js';
import { openSource, withServer, type BatchSource, type SourceOptions, type WorkerActivity } from '../source.js';

interface MonitorOptions extends SourceOptions {
  tenant?: string;
  all?: boolean;
  timeout: number;
  interval: number;
  follow: boolean;
  failOnFailed?: boolean;
  json?: boolean;
}


interface Watched {
  id: string;
  type: string;
  tenant: string;
  progress: Progress;
}

/** Statuses of batches that may still change. */
const OPEN: BatchStatus[] = ['queued', 'running', 'paused'];

/** `fn` over `items`, at most `limit` at once, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

function watched(batch: Batch | ApiBatch): Watched {
  const progress = 'progress' in batch ? batch.progress : progressOf(batch);
  return { id: batch.id, type: batch.type, tenant: batch.tenant, progress };
}

function eta(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3_600)}h${String(Math.floor((seconds % 3_600) / 60)).padStart(2, '0')}m`;
}

/** Types of batches with items left to run that no active worker runs: they cannot finish as things are. */
function unservedTypes(rows: Watched[], workers: WorkerActivity): string[] {
  const open = rows.filter((r) => r.progress.remaining > 0 && r.progress.status !== 'paused' && !workers.types.includes(r.type));
  return [...new Set(open.map((r) => r.type))].sort();
}

function render(rows: Watched[], workers: WorkerActivity): string {
  const lines = table(
    ['BATCH', 'TYPE', 'STATUS', '%', 'PROCESSED/TOTAL', 'SUCCEEDED', 'FAILED', 'REMAINING', 'ITEMS/S', 'ETA'],
    rows.map(({ id, type, progress: p }) => [
      id,
      type,
      p.status,
      p.percent.toFixed(1),
      `${count(p.processed)}/${count(p.total)}`,
      count(p.succeeded),
      count(p.failed),
      count(p.remaining),
      p.itemsPerSecond === null ? '-' : count(Math.round(p.itemsPerSecond)),
      eta(p.etaSeconds),
    ]),
  );
  const heartbeat = workers.lastHeartbeatAgeSeconds === null ? 'no heartbeat' : `last heartbeat ${workers.lastHeartbeatAgeSeconds.toFixed(1)}s ago`;
  const unserved = unservedTypes(rows, workers);
  return `${lines}\nworkers: ${workers.active} active, ${heartbeat}${unserved.length > 0 ? `\nno active worker runs: ${unserved.join(', ')}` : ''}`;
}

/** The `monitor` command. */
export function monitorCommand(): Command {
  return withServer(
    withDatabase(
      new Command('monitor')
        .summary('watch batches live until nothing is left')
        .description(
          'Watch batches (the given ids, every open batch of --tenant, or every open batch with --all) until each has 0 remaining. ' +
            'Exit 0 when nothing is left (with --fail-on-failed, also nothing failed or was cancelled), 1 when --timeout passes with work remaining, 2 on usage errors.',
        )
        .argument('[ids...]', 'batch ids to watch')
        .option('--tenant <name>', 'watch the open batches of this tenant')
        .option('--all', 'watch every open batch')
        .addOption(durationOption('--timeout <duration>', 'give up after this long (exit 1)', '30m'))
        .addOption(durationOption('--interval <duration>', 'how often to refresh (at most 1h)', '2s', '1h'))
        .option('--no-follow', 'print one snapshot and exit (0 if nothing is left)')
        .option('--fail-on-failed', 'exit 1 if any watched batch has failed or cancelled items')
        .option('--json', 'print the final state as JSON instead of the live view'),
    ),
  ).action(async (ids: string[], options: MonitorOptions) => {
    const selectors = [ids.length > 0, Boolean(options.tenant), Boolean(options.all)].filter(Boolean).length;
    if (selectors !== 1) throw new CliError('say what to watch: batch ids, --tenant <name> or --all (exactly one of them)', EXIT.usage);
    if (options.interval < 100) throw new CliError('--interval must be at least 100ms', EXIT.usage);
    const source = await openSource(options);
    try {
      // Batch ids are UUIDs, in any case; the stores and the API answer in lower case.
      await monitor(source, ids.map((id) => id.toLowerCase()), options);
    } finally {
      await source.close();
    }
  });
}

async function monitor(source: BatchSource, ids: string[], options: MonitorOptions): Promise<void> {
  const started = Date.now();
  const live = Boolean(process.stdout.isTTY) && !options.json;
  const selected = ids.length === 0;
  let watchIds = ids;
  if (selected) {
    watchIds = (await source.listBatches({ tenant: options.tenant, status: OPEN })).map((b) => b.id);
    // Nothing open is "nothing left" — unless there is nothing at all: most likely a typo.
    if (watchIds.length === 0 && options.tenant !== undefined && !(await source.anyBatch(options.tenant))) {
      throw new CliError(`tenant ${JSON.stringify(options.tenant)} has no batches: check --tenant`, EXIT.usage);
    }
  }
  /** Batches deleted while watched: no longer read, nor counted as work left. */
  const deleted = new Set<string>();
  // A day's run can be hundreds of batches (one per organisation). Each refresh reads only what
  // can still change: finished batches are kept as they were last read (a retried one shows up
  // in the listing again, or at the next full read); with --tenant or --all one listing (500 a
  // page) brings every open batch, and only batches that left it are read one by one, a few at
  // a time (a server limits each key's requests per second).
  const finished = new Map<string, Watched>();
  let refreshes = 0;
  const fetchAll = async (): Promise<Watched[]> => {
    // A finished batch can run again (retry-failed): every tenth refresh reads them all anew.
    if (++refreshes % 10 === 0) finished.clear();
    try {
      const open = selected ? new Map((await source.listBatches({ tenant: options.tenant, status: OPEN })).map((b) => [b.id, watched(b)])) : null;
      for (const id of open?.keys() ?? []) finished.delete(id);
      const read = (
        await mapLimit(watchIds.filter((id) => !finished.has(id) && !open?.has(id)), 8, async (id) => {
          try {
            return watched(await source.getBatch(id));
          } catch (error) {
            // Deleted since the watch began: say so and watch the rest. Unknown at the start: a usage error.
            if (!isNotFound(error) || refreshes === 1) throw error;
            deleted.add(id);
            console.error(`batch ${id} was deleted; no longer watched`);
            return null;
          }
        })
      ).filter((row): row is Watched => row !== null);
      watchIds = watchIds.filter((id) => !deleted.has(id));
      for (const row of read) if (isTerminalBatchStatus(row.progress.status)) finished.set(row.id, row);
      const byId = new Map(read.map((row) => [row.id, row]));
      return watchIds.map((id) => open?.get(id) ?? finished.get(id) ?? byId.get(id)!);
    } catch (error) {
      if (isNotFound(error)) throw new CliError((error as Error).message, EXIT.usage);
      throw error;
    }
  };

  let rows = await fetchAll();
  let lastPrinted = 0;
  let workers: WorkerActivity = { active: 0, lastHeartbeatAgeSeconds: null, types: [] };
  for (;;) {
    const left = rows.filter((r) => r.progress.remaining > 0);
    workers = await source.workers().catch((error: unknown) => {
      if (isUnreachable(error)) return workers;
      throw error;
    });
    const view = render(rows, workers);
    const last = left.length === 0 || !options.follow || Date.now() - started >= options.timeout;
    if (!options.json) {
      if (live) process.stdout.write(`\x1b[2J\x1b[H${view}\n`);
      // In a log the last view is always printed, so the summary below matches a table.
      else if (Date.now() - lastPrinted >= Math.max(options.interval, 10_000) || last) {
        console.log(`${view}\n`);
        lastPrinted = Date.now();
      }
    }
    if (last) break;
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.interval, Math.max(0, started + options.timeout - Date.now()))));
    try {
      rows = await fetchAll();
    } catch (error) {
      // Once watching, a server or database that stops answering is waited for (until the
      // timeout, then exit 1 with what is incomplete), as the work goes on without us.
      if (!isUnreachable(error)) throw error;
      console.error(`cannot read the batches now (${(error as Error).message}); trying again`);
    }
  }

  const incomplete = rows.filter((r) => r.progress.remaining > 0);
  // Items that did not succeed: a cancelled batch ran nothing it was asked to, so a CI gate
  // with --fail-on-failed must not pass it.
  const failed = rows.filter((r) => r.progress.failed + r.progress.cancelled > 0);
  const ok = incomplete.length === 0 && !(options.failOnFailed && failed.length > 0);
  const totals = rows.reduce(
    (t, r) => ({
      total: t.total + r.progress.total,
      succeeded: t.succeeded + r.progress.succeeded,
      failed: t.failed + r.progress.failed,
      cancelled: t.cancelled + r.progress.cancelled,
      remaining: t.remaining + r.progress.remaining,
    }),
    { total: 0, succeeded: 0, failed: 0, cancelled: 0, remaining: 0 },
  );
  if (options.json) {
    printJson({
      ok,
      elapsedMs: Date.now() - started,
      ...totals,
      batches: rows.map((r) => ({ id: r.id, type: r.type, tenant: r.tenant, ...r.progress })),
      incomplete: incomplete.map((r) => r.id),
      unservedTypes: unservedTypes(rows, workers),
    });
  } else {
    console.log(
      `${rows.length} batch${rows.length === 1 ? '' : 'es'}: ${count(totals.succeeded)} succeeded, ${count(totals.failed)} failed, ${
        totals.cancelled > 0 ? `${count(totals.cancelled)} cancelled, ` : ''
      }${count(totals.remaining)} remaining of ${count(totals.total)}`,
    );
    if (incomplete.length > 0) {
      console.error(`incomplete${options.follow ? ` after ${Math.round((Date.now() - started) / 1000)}s` : ''}: ${incomplete.map((r) => `${r.id} (${r.progress.status}, ${count(r.progress.remaining)} remaining)`).join(', ')}`);
      const unserved = unservedTypes(rows, workers);
      if (unserved.length > 0) console.error(`no active worker runs ${unserved.join(', ')}: start workers whose processors define ${unserved.length === 1 ? 'it' : 'them'}`);
    }
    if (options.failOnFailed && failed.length > 0) {
      const what = (p: Progress) => [p.failed > 0 ? `${count(p.failed)} failed` : '', p.cancelled > 0 ? `${count(p.cancelled)} cancelled` : ''].filter(Boolean).join(', ');
      console.error(`items that did not succeed in: ${failed.map((r) => `${r.id} (${what(r.progress)})`).join(', ')}`);
    }
  }
  process.exitCode = ok ? EXIT.ok : EXIT.failures;
}

function isNotFound(error: unknown): boolean {
  return error instanceof NotFoundError || (error instanceof ApiError && error.status === 404);
}

/** The server or database not answering now (it may later), as opposed to a wrong request. */
function isUnreachable(error: unknown): boolean {
  return error instanceof StoreUnavailableError || (error instanceof ApiError && (error.status === 0 || error.status >= 500));
}
