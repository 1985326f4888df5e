/**
 * `batchline workers [list]|release`: the workers the database knows of, and handing back the
 * chunks of one known to be dead now, instead of when its leases expire (`--lease-ms`, 30 s by
 * default). Both work on the database or through a server (--server, with an admin key).
 */

import { Command } from 'commander';
import type { ApiWorker } from '../../client/index.js';
import type { WorkerInfo } from '../../core/types.js';
import { count, openExisting, printJson, table, withDatabase } from '../common.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

interface JsonOption extends SourceOptions {
  json?: boolean;
}

/** A worker as JSON: what GET /workers answers, from either source. */
const view = (w: WorkerInfo): Omit<ApiWorker, 'heartbeatAgeSeconds'> => ({ ...w, startedAt: w.startedAt.toISOString(), heartbeatAt: w.heartbeatAt.toISOString() });

/** Seconds since `at`, as the table shows a heartbeat's age. */
const age = (at: string) => `${Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000))}s ago`;

/** Workers from the server (which lists those with a heartbeat in the last 30 s) or the database. */
async function listWorkers(options: JsonOption): Promise<Omit<ApiWorker, 'heartbeatAgeSeconds'>[]> {
  const server = serverOf(options);
  if (server) return (await clientFor(server, options).workers()).workers.map(({ heartbeatAgeSeconds: _, ...w }) => w);
  const bl = await openExisting(options);
  try {
    return (await bl.workers()).map(view);
  } finally {
    await bl.close();
  }
}

/** Releases each worker in turn, through the server or on the database. */
async function releaseWorkers(ids: string[], options: JsonOption): Promise<{ id: string; chunks: number }[]> {
  const released: { id: string; chunks: number }[] = [];
  const server = serverOf(options);
  if (server) {
    const client = clientFor(server, options);
    for (const id of ids) released.push(await client.releaseWorker(id));
    return released;
  }
  const bl = await openExisting(options);
  try {
    for (const id of ids) released.push({ id, ...(await bl.releaseWorker(id)) });
    return released;
  } finally {
    await bl.close();
  }
}

/** The `workers` command: `list` (the default) and `release`. */
export function workersCommand(): Command {
  const workers = new Command('workers')
    .summary('list workers; release the leases of a dead one')
    .description('The workers that have written a heartbeat to this database (a worker\'s row goes when it stops, or once its heartbeat is stale).');

  workers.addCommand(
    withServer(
      withDatabase(
        new Command('list')
          .summary('list workers (the default)')
          .description('List workers: id, host, pid, concurrency, items in flight, last heartbeat, batches served. Through --server, only those with a heartbeat in the last 30 s, and batch ids only for an admin key.')
          .option('--json', 'print { workers: [...] } as JSON'),
      ),
    )
      .exitOverride()
      .action(async (options: JsonOption) => {
        const all = await listWorkers(options);
        if (options.json) printJson({ workers: all });
        else if (all.length === 0) console.log('no workers: start one with batchline worker --processors FILE');
        else {
          const rows = all.map((w) => [w.id, w.host, String(w.pid), String(w.concurrency), String(w.inFlight), count(w.processed), age(w.heartbeatAt), w.batches.join(',') || '-']);
          console.log(table(['ID', 'HOST', 'PID', 'CONCURRENCY', 'IN FLIGHT', 'PROCESSED', 'HEARTBEAT', 'BATCHES'], rows));
        }
      }),
    { isDefault: true },
  );

  workers.addCommand(
    withServer(
      withDatabase(
        new Command('release')
          .summary("hand dead workers' chunks back now, not when their leases expire")
          .description(
            'Declare workers dead (their process is gone: killed, or its machine lost) and hand their chunks back now, rather than when their leases expire. ' +
              'Items they had started count an attempt, as when a lease expires. Releasing a worker that is in fact alive loses nothing (its leases are fenced, so ' +
              'what it records afterwards is refused), but its items run again elsewhere. Through --server this takes an admin key. An unknown id exits 2.',
          )
          .argument('<id...>', 'worker ids (from batchline workers list)')
          .option('--json', 'print { released: [{ id, chunks }] } as JSON'),
      ),
    )
      .exitOverride()
      .action(async (ids: string[], options: JsonOption) => {
        const released = await releaseWorkers(ids, options);
        if (options.json) printJson({ released });
        else for (const r of released) console.log(`released worker ${r.id}: ${count(r.chunks)} chunk${r.chunks === 1 ? '' : 's'} handed back`);
      }),
  );
  return workers;
}
