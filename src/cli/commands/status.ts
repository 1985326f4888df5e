/**
 * `batchline status`: show batches (the given ones, or the most recent), optionally waiting
 * until they finish. Exit 0 only when every batch shown completed with nothing failed.
 */

import { Command } from 'commander';
import { isSettledBatch, isTerminalBatchStatus } from '../../core/statuses.js';
import { NotFoundError } from '../../core/errors.js';
import type { Batch } from '../../core/types.js';
import type { BatchlineClient } from '../../client/index.js';
import { allSucceeded, batchSummary, CliError, count, EXIT, integer, openExisting, printJson, table, withDatabase, type BatchCounts } from '../common.js';
import { ProgressReporter } from '../progress.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

interface StatusOptions extends SourceOptions {
  wait?: boolean;
  json?: boolean;
  limit: number;
  tenant?: string;
  timeoutMs?: number;
}

/** The `status` command: show batches, optionally until they finish. */
export function statusCommand(): Command {
  return withServer(withDatabase(
    new Command('status')
      .summary('show batches; with --wait, until they finish')
      .description(
        'Show the given batches, or the most recent ones. With --wait, wait until every batch shown is completed, failed or ' +
          'cancelled, with progress on stderr. Exit 0 only if every batch shown completed with no failed or cancelled items, 1 otherwise.',
      )
      .argument('[ids...]', 'batch ids (default: the most recent batches)')
      .option('--wait', 'wait until the batches finish')
      .option('--timeout-ms <ms>', 'with --wait, give up after this long (exit 1)', integer(1))
      .option('--limit <n>', 'how many recent batches to show without ids', integer(1, 1_000), 20)
      .option('--tenant <name>', 'only batches of this tenant (a given id of another tenant is not found)')
      .option('--json', 'print the batches as JSON'),
  )).action(async (ids: string[], options: StatusOptions) => {
    if (options.timeoutMs !== undefined && !options.wait) throw new CliError('--timeout-ms bounds --wait; without --wait there is nothing to time out', EXIT.usage);
    const server = serverOf(options);
    if (server) return statusThroughServer(clientFor(server, options), ids, options);
    const bl = await openExisting(options);
    try {
      let batches: Batch[] =
        ids.length > 0
          ? await Promise.all(ids.map((id) => bl.getBatch(id, { tenant: options.tenant })))
          : await bl.listBatches({ tenant: options.tenant, limit: options.limit });
      if (options.wait) {
        const progress = new ProgressReporter((id) => bl.getBatch(id), batches.map((b) => b.id), { quiet: options.json, label: 'waiting' });
        progress.start();
        try {
          batches = await Promise.all(batches.map((b) => bl.wait(b.id, { timeoutMs: options.timeoutMs })));
        } catch (error) {
          await progress.stop();
          console.error(`batchline: ${(error as Error).message}`);
          batches = await Promise.all(batches.map((b) => bl.getBatch(b.id)));
        }
        await progress.stop();
      }
      report(batches, options);
    } finally {
      await bl.close();
    }
  });
}

function report(batches: BatchCounts[], options: StatusOptions): void {
  if (options.json) printJson({ batches: batches.map(batchSummary) });
  else if (batches.length === 0) console.log('No batches.');
  else console.log(formatBatches(batches));
  process.exitCode = batches.every((b) => isTerminalBatchStatus(b.status)) && allSucceeded(batches) ? EXIT.ok : EXIT.failures;
}

/** The same through a server's API: the key decides which batches are visible; --wait polls. */
async function statusThroughServer(client: BatchlineClient, ids: string[], options: StatusOptions): Promise<void> {
  const fetchAll = async () =>
    ids.length > 0
      ? Promise.all(ids.map(async (id) => inTenant(await client.getBatch(id), options.tenant)))
      : (await client.listBatches({ tenant: options.tenant, limit: options.limit })).batches;
  let batches = await fetchAll();
  if (options.wait) {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    const progress = new ProgressReporter((id) => client.getBatch(id), batches.map((b) => b.id), { quiet: options.json, label: 'waiting' });
    progress.start();
    try {
      while (!batches.every(isSettledBatch) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(500, Math.max(0, deadline - Date.now()))));
        batches = await Promise.all(batches.map((b) => client.getBatch(b.id)));
      }
    } finally {
      await progress.stop();
    }
    const open = batches.find((b) => !isSettledBatch(b));
    if (open) console.error(`batchline: batch ${open.id} is still ${open.status} after ${options.timeoutMs} ms (${open.remaining} items left)`);
  }
  report(batches, options);
}

function formatBatches(batches: BatchCounts[]): string {
  const names = [...new Set(batches.flatMap((b) => Object.keys(b.aggregates)))];
  return table(
    ['batch', 'type', 'tenant', 'status', 'total', 'succeeded', 'failed', 'cancelled', 'remaining', ...names],
    batches.map((b) => [
      b.id, b.type, b.tenant, b.status, count(b.total), count(b.succeeded), count(b.failed), count(b.cancelled), count(b.remaining),
      ...names.map((n) => b.aggregates[n] ?? ''),
    ]),
  );
}

/** The batch, unless --tenant names another tenant: then not found, as the database path says. */
function inTenant<B extends { id: string; tenant: string }>(batch: B, tenant: string | undefined): B {
  if (tenant !== undefined && batch.tenant !== tenant) throw new NotFoundError(`batch ${batch.id} not found`);
  return batch;
}
