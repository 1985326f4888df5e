/**
 * `batchline prune`: delete finished batches older than a cutoff, with their items and events.
 * The same deletion a reconciler does with `--retain`, run once (from cron, say).
 */

import { Command, Option } from 'commander';
import { count, duration, openExisting, printJson, withDatabase } from '../common.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

interface PruneCommandOptions extends SourceOptions {
  olderThan: number;
  tenant?: string;
  dryRun?: boolean;
  json?: boolean;
}

/** The `prune` command: delete finished batches older than --older-than. */
export function pruneCommand(): Command {
  return withServer(
    withDatabase(
      new Command('prune')
        .summary('delete finished batches older than a cutoff')
        .description(
          'Delete batches that completed, failed or were cancelled more than --older-than ago, with their items and events, oldest first. ' +
            'Open batches (queued, running, paused) are never touched, nor a cancelled one whose workers still hold leases. ' +
            "A deleted batch's idempotency key is free again. To do this continuously, give batchline worker (or serve) --retain. " +
            "With --server, a tenant API key prunes its own tenant's batches only.",
        )
        .addOption(new Option('--older-than <duration>', 'how long ago the batches finished, such as 30d or 12h').argParser(duration).makeOptionMandatory())
        .option('--tenant <name>', "only this tenant's batches (default: every tenant's; through --server with a tenant key, that tenant's)")
        .option('--dry-run', 'count the batches that would be deleted; delete nothing')
        .option('--json', 'print { batches, finishedBefore, dryRun, more, tenant } as JSON'),
    ),
  ).action(async (options: PruneCommandOptions) => {
    const request = { olderThanMs: options.olderThan, dryRun: options.dryRun ?? false, ...(options.tenant === undefined ? {} : { tenant: options.tenant }) };
    const server = serverOf(options);
    let result: { batches: number; finishedBefore: string; dryRun: boolean; more: boolean; tenant: string | null };
    if (server) {
      result = await clientFor(server, options).prune(request);
    } else {
      const bl = await openExisting(options);
      try {
        const pruned = await bl.prune(request);
        result = { ...pruned, finishedBefore: pruned.finishedBefore.toISOString(), tenant: options.tenant ?? null };
      } finally {
        await bl.close();
      }
    }
    if (options.json) return printJson(result);
    // Through a server, a tenant key covers its own tenant when none was asked: say whose.
    const scope = result.tenant === null ? '' : ` of tenant ${result.tenant}`;
    const verb = result.dryRun ? 'would delete' : 'deleted';
    console.log(`${verb} ${count(result.batches)} batch${result.batches === 1 ? '' : 'es'}${scope} finished before ${result.finishedBefore}`);
    // Another prune held the rest (a reconciler's, say): they go at its end, or at the next run.
    if (result.more) console.error('some matching batches are left (another prune held them, or the time for it ran out); run it again');
  });
}
