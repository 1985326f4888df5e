/**
 * `batchline cancel|pause|resume|retry|delete ID...`: steering batches from a terminal, on the
 * database or through a server (--server), so an operator need not switch to curl. Each acts
 * on every id given, in order, and reports each: what it did, or why it could not (an unknown
 * batch, or an action its state does not allow). The exit code is then that of the first
 * failure (2 for those two), so nothing done goes unreported.
 */

import { Command } from 'commander';
import type { BatchStatus } from '../../core/statuses.js';
import { CliError, count, describeFailure, openExisting, printJson, table, withDatabase } from '../common.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

type Action = 'cancel' | 'pause' | 'resume' | 'retry' | 'delete';

interface SteerOptions extends SourceOptions {
  json?: boolean;
}

/** What a batch looks like after an action: enough to see it took, or why it did not. */
interface Outcome {
  id: string;
  status: BatchStatus | 'deleted' | 'unchanged';
  total?: number;
  remaining?: number;
  failed?: number;
  error?: string;
}

type Steered = { id: string; status: BatchStatus; total: number; remaining: number; failed: number };

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
    const server = serverOf(options);
    const client = server ? clientFor(server, options) : null;
    const bl = client ? null : await openExisting(options);
    /** Does the action to one batch; undefined for a delete. */
    const act = async (id: string): Promise<Steered | undefined> => {
      if (client) return action === 'delete' ? void (await client.deleteBatch(id)) : client[action](id);
      if (action === 'delete') return void (await bl!.deleteBatch(id));
      return action === 'retry' ? (await bl!.retryFailed(id)).batch : bl![action](id);
    };
    const outcomes: Outcome[] = [];
    const failures: unknown[] = [];
    try {
      for (const id of ids) {
        try {
          const b = await act(id);
          outcomes.push(b ? { id: b.id, status: b.status, total: b.total, remaining: b.remaining, failed: b.failed } : { id, status: 'deleted' });
        } catch (error) {
          failures.push(error);
          outcomes.push({ id, status: 'unchanged', error: describeFailure(error).message });
        }
      }
    } finally {
      await bl?.close();
    }
    // What was done is always shown, so a failure later in the list cannot hide it; when
    // nothing was, stderr's reasons say all there is (JSON is always printed, for scripts).
    if (options.json) printJson({ batches: outcomes });
    else if (failures.length < ids.length) {
      const cell = (n: number | undefined) => (n === undefined ? '' : count(n));
      const headers = ['batch', 'status', 'total', 'remaining', 'failed', ...(failures.length > 0 ? ['error'] : [])];
      const rows = outcomes.map((o) => [o.id, o.status, cell(o.total), cell(o.remaining), cell(o.failed), ...(failures.length > 0 ? [o.error ?? ''] : [])]);
      console.log(table(headers, rows));
    }
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) {
      const reasons = failures.map((error) => describeFailure(error).message).join('; ');
      throw new CliError(`${failures.length} of ${ids.length} batches unchanged: ${reasons}`, describeFailure(failures[0]).code);
    }
  });
}

/** The five steering commands. */
export function steerCommands(): Command[] {
  return (['cancel', 'pause', 'resume', 'retry', 'delete'] as const).map(steerCommand);
}
