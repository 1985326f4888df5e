/**
 * `batchline prune`: delete finished batches older than a cutoff, with their items and events.
 * The same deletion a reconciler does with `--retain`, run once (from cron, say).
 */

import { Command, Option } from 'commander';
import { count, duration, openExisting, printJson, withDatabase, type DatabaseOptions } from '../common.js';

interface PruneCommandOptions extends DatabaseOptions {
  olderThan: number;
  tenant?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** The `prune` command: delete finished batches older than --older-than. */
export function pruneCommand(): Command {
  return withDatabase(
    new Command('prune')
      .summary('delete finished batches older than a cutoff')
      .description(
        'Delete batches that completed, failed or were cancelled more than --older-than ago, with their items and events, oldest first. ' +
          'Open batches (queued, running, paused) are never touched, nor a cancelled one whose workers still hold leases. ' +
          "A deleted batch's idempotency key is free again. To do this continuously, give batchline worker (or serve) --retain.",
      )
      .addOption(new Option('--older-than <duration>', 'how long ago the batches finished, such as 30d or 12h').argParser(duration).makeOptionMandatory())
      .option('--tenant <name>', "only this tenant's batches (default: every tenant's)")
      .option('--dry-run', 'count the batches that would be deleted; delete nothing')
      .option('--json', 'print { batches, finishedBefore, dryRun } as JSON'),
  ).action(async (options: PruneCommandOptions) => {
    const bl = await openExisting(options);
    try {
      const result = await bl.prune({ olderThanMs: options.olderThan, tenant: options.tenant, dryRun: options.dryRun });
      if (options.json) return printJson(result);
      const scope = options.tenant === undefined ? '' : ` of tenant ${options.tenant}`;
      const verb = result.dryRun ? 'would delete' : 'deleted';
      console.log(`${verb} ${count(result.batches)} batch${result.batches === 1 ? '' : 'es'}${scope} finished before ${result.finishedBefore.toISOString()}`);
    } finally {
      await bl.close();
    }
  });
}
