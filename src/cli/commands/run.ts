/**
 * `batchline run`: submit a CSV or JSONL file and work it in this process until it is done.
 */

import { Command } from 'commander';
import { CliError, EXIT, integer, openBatchline, printJson, withDatabase, withFile, type DatabaseOptions } from '../common.js';
import { defineProcessors, loadProcessors } from '../processors.js';
import { formatSummary, runFile } from '../run-file.js';

interface RunOptions extends DatabaseOptions {
  processors: string;
  type: string;
  file: string;
  batches: number;
  concurrency: number;
  tenant?: string;
  priority?: number;
  idempotencyKey?: string;
  maxAttempts?: number;
  shutdownMs: number;
  json?: boolean;
}

/** The `run` command: submit a file and work it in this process. */
export function runCommand(): Command {
  return withDatabase(
    withFile(new Command('run')
      .summary('submit a file and work it in this process until done')
      .description(
        'Submit DATA (CSV: one object of strings per row, keyed by the header; JSONL: one JSON value per line) as one or more batches of TYPE, ' +
          'process them with the handlers exported by --processors, and print a summary. SIGINT or SIGTERM stops gracefully: unstarted items ' +
          'are handed back, running ones get --shutdown-ms to finish, and the batches stay in the database for `batchline worker`. ' +
          'Exit 0 if every item succeeded, 1 if items failed or the run was interrupted, 2 on bad input.',
      )
      .requiredOption('--processors <file>', ".ts or .js module whose default export maps types to handlers: { 'txn.apply': handler }")
      .requiredOption('--type <type>', 'processor type of the items'))
      .option('--batches <n>', 'split the file into this many contiguous batches', integer(1, 10_000), 1)
      .option('--concurrency <n>', 'items running at once in this process', integer(1, 10_000), 10)
      .option('--tenant <name>', 'owner of the batches', 'default')
      .option('--priority <n>', 'priority 0-10, higher first', integer(0, 10))
      .option('--idempotency-key <key>', 'a repeated run with the same key and file returns the first batches')
      .option('--max-attempts <n>', "attempts per item (default: the processor's, else 3)", integer(1, 1000))
      .option('--shutdown-ms <ms>', 'after SIGINT or SIGTERM, how long running items get to finish', integer(0), 10_000)
      .option('--json', 'print one JSON object instead of tables and progress'),
  ).action(async (_file: string | undefined, options: RunOptions) => {
    // The processors first: a module that does not load, or lacks the type, creates nothing.
    const processors = await loadProcessors(options.processors);
    if (!processors.has(options.type)) {
      throw new CliError(`unknown processor type ${JSON.stringify(options.type)}: ${options.processors} defines ${[...processors.keys()].join(', ')}`);
    }
    const bl = await openBatchline(options);
    let interrupted = false;
    try {
      defineProcessors(bl, options.processors, processors);
      const { summary, batches } = await runFile(bl, {
        type: options.type,
        file: options.file,
        batches: options.batches,
        concurrency: options.concurrency,
        quiet: Boolean(options.json),
        tenant: options.tenant,
        priority: options.priority,
        idempotencyKey: options.idempotencyKey,
        maxAttempts: options.maxAttempts,
        shutdownMs: options.shutdownMs,
      });
      interrupted = summary.interrupted !== undefined;
      if (options.json) printJson(summary);
      else console.log(formatSummary(summary, batches));
      process.exitCode = summary.failed === 0 && summary.succeeded === summary.total ? EXIT.ok : EXIT.failures;
    } finally {
      await bl.close({ timeoutMs: options.shutdownMs });
    }
    // After an interrupt, a handler that ignored its abort signal may still hold the event
    // loop; its items were handed back, so nothing is left to wait for.
    if (interrupted) process.exit(EXIT.failures);
  });
}
