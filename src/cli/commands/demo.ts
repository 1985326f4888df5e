/**
 * `batchline demo`: the transactions scenario end to end on the embedded store (or any
 * --database): generate a CSV, process it as N batches, and check every count and the balance
 * against the file. Exit 0 only if they all match.
 */

import { Command } from 'commander';
import { join, resolve } from 'node:path';
import { CliError, count, EXIT, integer, openBatchline, printJson, withDatabase, type DatabaseOptions } from '../common.js';
import { formatCents } from '../../core/decimal.js';
import { applyTransaction, balanceOfFile, writeTransactions } from '../demo-data.js';
import { formatSummary, runFile } from '../run-file.js';

interface DemoOptions extends DatabaseOptions {
  items: number;
  batches: number;
  concurrency: number;
  seed?: number;
  shutdownMs: number;
  json?: boolean;
}

/** The `demo` command: the transactions scenario, checked end to end. */
export function demoCommand(): Command {
  return withDatabase(
    new Command('demo')
      .summary('process random transactions and check counts and balance')
      .description(
        'Generate random DEPOSIT/WITHDRAWAL transactions to a CSV under ./.batchline/demo, process them as --batches batches with ' +
          '--concurrency items at once, and print per-batch and total counts, throughput, and the balance computed from the CSV ' +
          'next to the batches\' aggregate. Exit 0 only if every item succeeded and the balances match.',
      )
      .option('--items <n>', 'transactions to generate', integer(1, 100_000_000), 100_000)
      .option('--batches <n>', 'batches to split them into', integer(1, 10_000), 10)
      .option('--concurrency <n>', 'items running at once', integer(1, 10_000), 10)
      .option('--seed <n>', 'seed of the random transactions (default: random, printed)', integer(0, 2 ** 32 - 1))
      .option('--shutdown-ms <ms>', 'after SIGINT or SIGTERM, how long running items get to finish', integer(0), 10_000)
      .option('--json', 'print one JSON object instead of tables'),
  ).action(async (options: DemoOptions) => {
    if (options.batches > options.items) throw new CliError(`--batches ${options.batches} is more than --items ${options.items}: every batch needs an item`);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 32);
    const file = resolve(join('.batchline', 'demo', `transactions-${options.items}-${seed}.csv`));
    const log = (line: string) => options.json || console.log(line);
    log(`Generating ${count(options.items)} transactions (seed ${seed}) to ${file}`);
    await writeTransactions(file, options.items, seed);
    const expected = await balanceOfFile(file);

    const bl = await openBatchline(options);
    let result;
    try {
      bl.define('txn.apply', applyTransaction, { maxAttempts: 3 });
      log(`Processing as ${options.batches} batches with concurrency ${options.concurrency} on ${bl.store.description}\n`);
      result = await runFile(bl, {
        type: 'txn.apply',
        file,
        batches: options.batches,
        concurrency: options.concurrency,
        quiet: Boolean(options.json),
        labels: { demo: String(seed) },
        shutdownMs: options.shutdownMs,
      });
    } finally {
      await bl.close({ timeoutMs: options.shutdownMs });
    }
    const { summary, batches } = result;
    const balance = batches.reduce((sum, b) => sum + BigInt((b.aggregates.balance ?? '0.00').replace('.', '')), 0n);
    const balanceMatches = balance === expected;
    const ok = balanceMatches && summary.succeeded === options.items && summary.failed === 0;
    if (options.json) {
      printJson({ ...summary, seed, file, expectedBalance: formatCents(expected), balance: formatCents(balance), balanceMatches, ok });
    } else {
      console.log(formatSummary(summary, batches));
      console.log(`Balance from the CSV:     ${formatCents(expected)}`);
      console.log(`Balance from the batches: ${formatCents(balance)} ${balanceMatches ? '✓ match' : '✗ MISMATCH'}`);
      console.log(
        ok
          ? '\nOK: every transaction succeeded and the balance matches.'
          : summary.interrupted
            ? `\nINTERRUPTED by ${summary.interrupted} before every transaction was processed.`
            : '\nFAILED: counts or balance do not match.',
      );
    }
    process.exitCode = ok ? EXIT.ok : EXIT.failures;
    if (summary.interrupted) process.exit(EXIT.failures);
  });
}
