/**
 * `batchline submit`: submit a file as batches for workers elsewhere to run.
 */

import { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { ApiError } from '../../client/index.js';
import { isSettledBatch } from '../../core/statuses.js';
import { formatOf } from '../../engine/sources.js';
import { CliError, count, EXIT, integer, openBatchline, printJson, table, withDatabase, withFile } from '../common.js';
import { clientFor, serverOf, withServer, type SourceOptions } from '../source.js';

interface SubmitCommandOptions extends SourceOptions {
  type: string;
  file: string;
  batches: number;
  tenant?: string;
  priority?: number;
  idempotencyKey?: string;
  maxAttempts?: number;
  timeoutMs?: number;
  concurrencyCap?: number;
  json?: boolean;
}

/** The `submit` command: submit a file as batches. */
export function submitCommand(): Command {
  return withServer(withDatabase(
    withFile(new Command('submit')
      .summary('submit a file as batches for workers to run')
      .description(
        'Submit a CSV or JSONL file as one or more batches of TYPE and print their ids. Submission is atomic: a malformed line ' +
          'anywhere (reported as file:line) creates nothing. With --idempotency-key, submitting the same file again returns the ' +
          'first batches and creates nothing. Start `batchline worker` processes to run them.',
      )
      .requiredOption('--type <type>', 'processor type of the items'))
      .option('--batches <n>', 'split the file into this many contiguous batches', integer(1, 10_000), 1)
      .option('--tenant <name>', 'owner of the batches (default: default); not with --server, where the API key\'s tenant owns them')
      .option('--priority <n>', 'priority 0-10, higher first (default 5)', integer(0, 10))
      .option('--idempotency-key <key>', 'a repeated submit with the same key and file returns the first batches')
      .option('--max-attempts <n>', "attempts per item (default: the processor's, else 3)", integer(1, 1000))
      .option('--timeout-ms <ms>', "per-attempt time limit (default: the processor's, else 5 minutes)", integer(1))
      .option('--concurrency-cap <n>', 'most items of each batch running at once across all workers', integer(1))
      .option('--json', 'print the batches as JSON'),
  )).action(async (_file: string | undefined, options: SubmitCommandOptions) => {
    const server = serverOf(options);
    if (server) return submitThroughServer(server, options);
    const bl = await openBatchline(options);
    try {
      const batches = await bl.submitFile(options.type, options.file, {
        batches: options.batches,
        tenant: options.tenant ?? 'default',
        priority: options.priority,
        idempotencyKey: options.idempotencyKey,
        maxAttempts: options.maxAttempts,
        timeoutMs: options.timeoutMs,
        concurrency: options.concurrencyCap,
      });
      if (!batches.every(isSettledBatch)) await noteIfUnserved(options.type, () => bl.workers());
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

/**
 * Streams the file to a server's API as one batch (the server's key decides the tenant).
 * The API takes one batch per request, so --batches must be 1.
 */
async function submitThroughServer(server: string, options: SubmitCommandOptions): Promise<void> {
  if (options.batches !== 1) throw new CliError('with --server the file becomes one batch: drop --batches, or split the file', EXIT.usage);
  if (options.concurrencyCap !== undefined) throw new CliError('--concurrency-cap is not available through the API', EXIT.usage);
  if (options.tenant !== undefined) throw new CliError("with --server the API key's tenant owns the batch: drop --tenant, or use a key of that tenant", EXIT.usage);
  // A busy server answers 503 with Retry-After: 1 while it reads its most uploads at once;
  // wait up to a minute for a turn rather than fail.
  const client = clientFor(server, options, { retries: 60 });
  // A function, so the client can send the file again if the server asks it to retry later.
  const body = () => Readable.toWeb(createReadStream(options.file)) as ReadableStream<Uint8Array>;
  const batch = await client
    .uploadBatch(options.type, body, {
      format: formatOf(options.file) === 'csv' ? 'csv' : 'ndjson',
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.maxAttempts !== undefined ? { maxAttempts: options.maxAttempts } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
      labels: { file: basename(options.file) },
    })
    .catch((error: unknown) => {
      // The server names lines of its request body; the user knows them as lines of the file.
      if (error instanceof ApiError && error.problem.detail?.startsWith('request body:')) {
        throw new CliError(`${options.file}${error.problem.detail.slice('request body'.length)} (${error.status} ${error.code})`, EXIT.usage);
      }
      throw error;
    });
  if (!isSettledBatch(batch)) await noteIfUnserved(options.type, async () => (await client.workers()).workers);
  if (options.json) {
    printJson({ created: batch.created, batches: [{ id: batch.id, type: batch.type, tenant: batch.tenant, status: batch.status, total: batch.total, priority: batch.priority }] });
    return;
  }
  console.log(batch.created ? `Submitted ${basename(options.file)} to ${server} as a batch of ${options.type}:` : `Idempotency key ${JSON.stringify(options.idempotencyKey)} was already used for this file: nothing new was created.`);
  console.log(table(['batch', 'status', 'items'], [[batch.id, batch.status, count(batch.total)]]));
}

/**
 * A note on stderr when no live worker runs the submitted type, naming the types workers do
 * run: most often a typo in --type, or workers not started yet (not said of batches a repeated
 * submit found finished: they need no worker). The batch stays submitted
 * (workers may start later), so this is no error; a listing that fails is not worth one either.
 */
async function noteIfUnserved(type: string, workers: () => Promise<{ types: string[] }[]>): Promise<void> {
  let live: { types: string[] }[];
  try {
    live = await workers();
  } catch {
    return;
  }
  if (live.some((worker) => worker.types.includes(type))) return;
  const running = [...new Set(live.flatMap((worker) => worker.types))].sort();
  const others = running.length > 0 ? ` (live workers run ${running.join(', ')})` : ' (no worker is live)';
  console.error(`batchline: note: no live worker runs type ${type}${others}; its items wait until a worker whose processors define it starts`);
}
