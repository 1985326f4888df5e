/**
 * `batchline submit`: submit a file as batches for workers elsewhere to run.
 */

import { Command } from 'commander';
import { basename } from 'node:path';
import { count, integer, openBatchline, printJson, table, withDatabase, type DatabaseOptions } from '../common.js';

interface SubmitCommandOptions extends DatabaseOptions {
  type: string;
  file: string;
  batches: number;
  tenant: string;
  priority?: number;
  idempotencyKey?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  concurrencyCap?: number;
  json?: boolean;
}

/** The `submit` command: submit a file as batches. */
export function submitCommand(): Command {
  return withDatabase(
    new Command('submit')
      .summary('submit a file as batches for workers to run')
      .description(
        'Submit a CSV or JSONL file as one or more batches of TYPE and print their ids. Submission is atomic: a malformed line ' +
          'anywhere (reported as file:line) creates nothing. With --idempotency-key, submitting the same file again returns the ' +
          'first batches and creates nothing. Start `batchline worker` processes to run them.',
      )
      .requiredOption('--type <type>', 'processor type of the items')
      .requiredOption('--file <path>', 'items as .csv, .jsonl or .ndjson')
      .option('--batches <n>', 'split the file into this many contiguous batches', integer(1, 10_000), 1)
      .option('--tenant <name>', 'owner of the batches', 'default')
      .option('--priority <n>', 'priority 0-10, higher first (default 5)', integer(0, 10))
      .option('--idempotency-key <key>', 'a repeated submit with the same key and file returns the first batches')
      .option('--max-attempts <n>', "attempts per item (default: the processor's, else 3)", integer(1, 1000))
      .option('--timeout-ms <ms>', "per-attempt time limit (default: the processor's, else 5 minutes)", integer(1))
      .option('--concurrency-cap <n>', 'most items of each batch running at once across all workers', integer(1))
      .option('--json', 'print the batches as JSON'),
  ).action(async (options: SubmitCommandOptions) => {
    const bl = await openBatchline(options);
    try {
      const batches = await bl.submitFile(options.type, options.file, {
        batches: options.batches,
        tenant: options.tenant,
        priority: options.priority,
        idempotencyKey: options.idempotencyKey,
        maxAttempts: options.maxAttempts,
        timeoutMs: options.timeoutMs,
        concurrency: options.concurrencyCap,
      });
      if (options.json) {
        printJson({ created: batches[0]!.created, batches: batches.map(({ id, type, tenant, status, total, priority }) => ({ id, type, tenant, status, total, priority })) });
        return;
      }
      if (!batches[0]!.created) {
        console.log(`Idempotency key ${JSON.stringify(options.idempotencyKey)} was already used for this file: nothing new was created.`);
      } else {
        console.log(`Submitted ${basename(options.file)} as ${batches.length} batch${batches.length === 1 ? '' : 'es'} of ${options.type}:`);
      }
      console.log(table(['batch', 'status', 'items'], batches.map((b) => [b.id, b.status, count(b.total)])));
    } finally {
      await bl.close();
    }
  });
}
