/**
 * `batchline cancel|pause|resume|retry|delete ID...`: steering batches from a terminal, on the
 * database or through a server (--server), so an operator need not switch to curl. Each acts
 * on every id given, in order, and stops at the first that cannot be done (an unknown batch,
 * or an action its state does not allow: exit 2 naming the state).
 */

import { Command } from 'commander';
import type { BatchStatus } from '../../core/statuses.js';
import { count, openExisting, printJson, table, withDatabase } from '../common.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

type Action = 'cancel' | 'pause' | 'resume' | 'retry' | 'delete';

interface SteerOptions extends SourceOptions {
  json?: boolean;
}

/** What a batch looks like after an action: enough to see it took. */
interface Outcome {
  id: string;
  status: BatchStatus | 'deleted';
  total?: number;
  remaining?: number;
  failed?: number;
}

const DESCRIPTIONS: Record<Action, [summary: string, description: string]> = {
  cancel: [
    'cancel batches',
    'Cancel the batches: pending items are cancelled at once; returns once no item of them starts again (workers elsewhere let go within about a second). A finished batch cannot be cancelled (exit 2).',
  ],
  pause: ['pause batches', 'Pause the batches: no new item starts; running items finish and unstarted ones are handed back. Resume with `batchline resume`.'],
  resume: ['resume paused batches', 'Resume paused batches: workers take their items again.'],
  retry: ['run failed items again', 'Run the failed items of the batches again (and only those), with fresh attempts. A cancelled batch stays cancelled (exit 2).'],
  delete: ['delete batches', 'Delete the batches with their items and events, cancelling any still open first. This cannot be undone.'],
};

/** One steering command. */
function steerCommand(action: Action): Command {
  const [summary, description] = DESCRIPTIONS[action];
  return withServer(
    withDatabase(
      new Command(action)
        .summary(summary)
        .description(description)
        .argument('<ids...>', 'batch ids')
        .option('--json', 'print the batches afterwards as JSON'),
    ),
  ).action(async (ids: string[], options: SteerOptions) => {
    const outcomes: Outcome[] = [];
    const server = serverOf(options);
    if (server) {
      const client = clientFor(server, options);
      for (const id of ids) {
        if (action === 'delete') {
          await client.deleteBatch(id);
          outcomes.push({ id, status: 'deleted' });
        } else {
          const b = await client[action](id);
          outcomes.push({ id: b.id, status: b.status, total: b.total, remaining: b.remaining, failed: b.failed });
        }
      }
    } else {
      const bl = await openExisting(options);
      try {
        for (const id of ids) {
          if (action === 'delete') {
            await bl.deleteBatch(id);
            outcomes.push({ id, status: 'deleted' });
            continue;
          }
          const b = action === 'retry' ? (await bl.retryFailed(id)).batch : await bl[action](id);
          outcomes.push({ id: b.id, status: b.status, total: b.total, remaining: b.remaining, failed: b.failed });
        }
      } finally {
        await bl.close();
      }
    }
    if (options.json) printJson({ batches: outcomes });
    else {
      const cell = (n: number | undefined) => (n === undefined ? '' : count(n));
      console.log(table(['batch', 'status', 'total', 'remaining', 'failed'], outcomes.map((o) => [o.id, o.status, cell(o.total), cell(o.remaining), cell(o.failed)])));
    }
  });
}

/** The five steering commands. */
export function steerCommands(): Command[] {
  return (['cancel', 'pause', 'resume', 'retry', 'delete'] as const).map(steerCommand);
}
