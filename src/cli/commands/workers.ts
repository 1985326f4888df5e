/**
 * `batchline workers [list]|release`: the workers the database knows of, and handing back the
 * chunks of one known to be dead now, instead of when its leases expire (`--lease-ms`, 30 s by
 * default).
 */

import { Command } from 'commander';
import type { WorkerInfo } from '../../core/types.js';
import { count, openExisting, printJson, table, withDatabase, type DatabaseOptions } from '../common.js';

interface JsonOption extends DatabaseOptions {
  json?: boolean;
}

const view = (w: WorkerInfo) => ({ ...w, startedAt: w.startedAt.toISOString(), heartbeatAt: w.heartbeatAt.toISOString() });

/** Seconds since `at`, as the table shows a heartbeat's age. */
const age = (at: Date) => `${Math.max(0, Math.round((Date.now() - at.getTime()) / 1000))}s ago`;

/** The `workers` command: `list` (the default) and `release`. */
export function workersCommand(): Command {
  const workers = new Command('workers')
    .summary('list workers; release the leases of a dead one')
    .description('The workers that have written a heartbeat to this database (a worker\'s row goes when it stops, or once its heartbeat is stale).');

  workers.addCommand(
    withDatabase(new Command('list').summary('list workers (the default)').description('List workers: id, host, pid, concurrency, items in flight, last heartbeat, batches served.').option('--json', 'print { workers: [...] } as JSON'))
      .exitOverride()
      .action(async (options: JsonOption) => {
        const bl = await openExisting(options);
        try {
          const all = await bl.workers();
          if (options.json) printJson({ workers: all.map(view) });
          else if (all.length === 0) console.log('no workers: start one with batchline worker --processors FILE');
          else {
            const rows = all.map((w) => [w.id, w.host, String(w.pid), String(w.concurrency), String(w.inFlight), count(w.processed), age(w.heartbeatAt), w.batches.join(',') || '-']);
            console.log(table(['ID', 'HOST', 'PID', 'CONCURRENCY', 'IN FLIGHT', 'PROCESSED', 'HEARTBEAT', 'BATCHES'], rows));
          }
        } finally {
          await bl.close();
        }
      }),
    { isDefault: true },
  );

  workers.addCommand(
    withDatabase(
      new Command('release')
        .summary("hand dead workers' chunks back now, not when their leases expire")
        .description(
          'Declare workers dead (their process is gone: killed, or its machine lost) and hand their chunks back now, rather than when their leases expire. ' +
            'Items they had started count an attempt, as when a lease expires. Releasing a worker that is in fact alive loses nothing (its leases are fenced, so ' +
            'what it records afterwards is refused), but its items run again elsewhere.',
        )
        .argument('<id...>', 'worker ids (from batchline workers list)')
        .option('--json', 'print { released: [{ id, chunks }] } as JSON'),
    )
      .exitOverride()
      .action(async (ids: string[], options: JsonOption) => {
        const bl = await openExisting(options);
        try {
          const released: { id: string; chunks: number }[] = [];
          for (const id of ids) released.push({ id, ...(await bl.releaseWorker(id)) });
          if (options.json) printJson({ released });
          else for (const r of released) console.log(`released worker ${r.id}: ${count(r.chunks)} chunk${r.chunks === 1 ? '' : 's'} handed back`);
        } finally {
          await bl.close();
        }
      }),
  );
  return workers;
}
