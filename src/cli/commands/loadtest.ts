/**
 * `batchline loadtest`: creates batches from many concurrent clients through a server's API,
 * each with an idempotency key, repeats some requests on purpose, waits for every batch to
 * finish, and checks that every count adds up (and every batch's `amount` aggregate equals the
 * sum of its items, to the cent). Reports created, deduplicated and failed requests,
 * submissions/s, items/s and request latency percentiles. Exit 1 on any mismatch or failed
 * request, 2 on usage errors.
 *
 * The server needs the load test's processors:
 * `batchline serve --processors node_modules/batchline/dist/cli/loadtest-processors.js`.
 */

import { randomUUID } from 'node:crypto';
import { Command } from 'commander';
import { addDecimalText, compareDecimal, parseDecimal } from '../../core/decimal.js';
import { isTerminalBatchStatus } from '../../core/statuses.js';
import { seededRandom } from '../../core/random.js';
import { ApiError, BatchlineClient, type ApiBatch } from '../../client/index.js';
import { CliError, count, durationOption, EXIT, integer, printJson } from '../common.js';
import type { LoadItem } from '../loadtest-processors.js';
import { clientFor, serverOf } from '../source.js';

interface LoadtestOptions {
  batches: number;
  items: number;
  clients: number;
  fast?: boolean;
  type?: string;
  server?: string;
  apiKey?: string;
  repeat: number;
  timeout: number;
  seed: number;
  json?: boolean;
}

interface Planned {
  key: string;
  items: LoadItem[];
  expected: string;
  repeat: boolean;
}

/** How long batches may wait without any active worker running their type before the test gives up on them. */
const UNSERVED_MS = 15_000;

/** The p-th percentile (0-100) of sorted values, nearest rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The `loadtest` command. */
export function loadtestCommand(): Command {
  return new Command('loadtest')
    .summary('hammer a server with concurrent, idempotent batch submissions and check the results')
    .description(
      'Create --batches batches of --items items from --clients concurrent clients through the HTTP API, each request with an ' +
        'idempotency key, repeating --repeat percent of them on purpose. Wait until every batch finishes, then check that each ' +
        'has the right total, that its counters add up, and that its amount aggregate equals the sum of its items. ' +
        'Exit 0 when everything adds up, 1 on any mismatch or failed request, 2 on usage errors. The server must run the ' +
        'load test processors: batchline serve --processors node_modules/batchline/dist/cli/loadtest-processors.js',
    )
    .option('--batches <n>', 'batches to create', integer(1, 100_000), 100)
    .option('--items <n>', 'items per batch', integer(1, 1_000_000), 200)
    .option('--clients <n>', 'concurrent clients', integer(1, 1_000), 10)
    .option('--fast', 'items do no work (type loadtest.noop); by default each waits 1-5 ms (loadtest.work)')
    .option('--type <type>', 'item type to submit (its processor must add `amount` to the `amount` aggregate)')
    .option('--repeat <percent>', 'share of requests sent twice on purpose, to check deduplication', integer(0, 100), 10)
    .addOption(durationOption('--timeout <duration>', 'give up waiting for batches after this long', '10m'))
    .option('--seed <n>', 'seed of the random amounts', integer(0), 1)
    .option('--server <url>', 'server to test (default: $BATCHLINE_URL, then http://127.0.0.1:7700)')
    .option('--api-key <key>', 'API key (default: $BATCHLINE_API_KEY)')
    .option('--json', 'print the report as JSON')
    .action(async (options: LoadtestOptions) => {
      const baseUrl = serverOf({ server: options.server }) ?? 'http://127.0.0.1:7700';
      const client = clientFor(baseUrl, options);
      try {
        await client.ready();
        // Readiness needs no key: a listing checks the key before any batch is sent.
        await client.listBatches({ limit: 1 });
      } catch (error) {
        throw new CliError(`cannot use the server at ${baseUrl}: ${(error as Error).message}`, EXIT.usage);
      }
      const report = await loadtest(client, baseUrl, options);
      if (options.json) printJson(report);
      else printReport(report);
      process.exitCode = report.ok ? EXIT.ok : EXIT.failures;
    });
}

async function loadtest(client: BatchlineClient, server: string, options: LoadtestOptions) {
  const type = options.type ?? (options.fast ? 'loadtest.noop' : 'loadtest.work');
  const run = randomUUID().slice(0, 8);
  const random = seededRandom(options.seed);
  const planned: Planned[] = Array.from({ length: options.batches }, (_, b) => {
    const items = Array.from({ length: options.items }, (_, i) => {
      const cents = Math.floor(random() * 100_000);
      return { i, amount: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}` };
    });
    return { key: `loadtest-${run}-${b}`, items, expected: items.reduce((sum, it) => addDecimalText(sum, it.amount), '0'), repeat: random() * 100 < options.repeat };
  });
  // Every request once, each repeat right behind its original: two clients take them at
  // nearly the same moment, so deduplication is tried under concurrency, not only afterwards.
  const requests = planned.flatMap((p) => [{ plan: p, repeat: false }, ...(p.repeat ? [{ plan: p, repeat: true }] : [])]);

  const latencies: number[] = [];
  const ids = new Map<string, string>();
  const createdKeys = new Set<string>();
  const errors: string[] = [];
  let created = 0;
  let deduplicated = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(options.clients, requests.length) }, async () => {
      while (next < requests.length) {
        const { plan, repeat } = requests[next++]!;
        const t0 = performance.now();
        try {
          const batch = await client.createBatch({ type, items: plan.items }, { idempotencyKey: plan.key });
          latencies.push(performance.now() - t0);
          if (batch.created) created++;
          else deduplicated++;
          const seen = ids.get(plan.key);
          if (seen && seen !== batch.id) errors.push(`idempotency key ${plan.key} gave two batches: ${seen} and ${batch.id}`);
          ids.set(plan.key, batch.id);
          // Original and repeat may answer in either order: what matters is one creation per key.
          if (batch.created && createdKeys.has(plan.key)) errors.push(`${repeat ? 'the repeat' : 'the original'} of ${plan.key} created a second batch`);
          if (batch.created) createdKeys.add(plan.key);
        } catch (error) {
          latencies.push(performance.now() - t0);
          errors.push(`${plan.key}: ${error instanceof ApiError ? error.message : (error as Error).message}`);
        }
      }
    }),
  );
  const submitSeconds = (performance.now() - started) / 1000;

  // Wait for every batch to finish, or until no active worker has run the type for a while:
  // batches nobody runs would only wait out the timeout.
  const deadline = Date.now() + options.timeout;
  const finished = new Map<string, ApiBatch>();
  let servedAt = Date.now();
  let unserved: string | null = null;
  while (finished.size < ids.size && Date.now() < deadline) {
    if ((await client.workers()).workers.some((w) => w.types.includes(type))) servedAt = Date.now();
    else if (Date.now() - servedAt >= UNSERVED_MS) {
      unserved = `no active worker runs ${type} (for ${UNSERVED_MS / 1000} s): start the server with the load test processors (see --help) or a worker for it`;
      break;
    }
    const open = [...ids.values()].filter((id) => !finished.has(id));
    for (let at = 0; at < open.length; at += options.clients) {
      const batches = await Promise.all(open.slice(at, at + options.clients).map((id) => client.getBatch(id)));
      for (const b of batches) if (isTerminalBatchStatus(b.status)) finished.set(b.id, b);
    }
    if (finished.size < ids.size) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const seconds = (performance.now() - started) / 1000;

  const mismatches: string[] = unserved ? [unserved] : [];
  for (const plan of planned) {
    const id = ids.get(plan.key);
    if (!id) continue;
    const b = finished.get(id);
    if (!b) {
      mismatches.push(`${id}: not finished ${unserved ? 'while no worker ran its type' : `within ${options.timeout} ms`}`);
      continue;
    }
    if (b.total !== plan.items.length) mismatches.push(`${id}: total ${b.total}, submitted ${plan.items.length}`);
    if (b.succeeded + b.failed + b.cancelled !== b.total) mismatches.push(`${id}: ${b.succeeded} + ${b.failed} + ${b.cancelled} ≠ ${b.total}`);
    if (b.status !== 'completed' || b.succeeded !== b.total) mismatches.push(`${id}: ${b.status} with ${b.succeeded} of ${b.total} succeeded`);
    const amount = b.aggregates.amount ?? '0';
    if (compareDecimal(parseDecimal(amount), parseDecimal(plan.expected)) !== 0) mismatches.push(`${id}: amount ${amount}, items sum to ${plan.expected}`);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const items = finished.size * options.items;
  return {
    ok: errors.length === 0 && mismatches.length === 0 && ids.size === options.batches,
    server,
    type,
    batches: options.batches,
    itemsPerBatch: options.items,
    clients: options.clients,
    requests: requests.length,
    created,
    deduplicated,
    expectedDeduplicated: requests.length - planned.length,
    failedRequests: errors.length,
    submissionsPerSecond: Math.round((requests.length / submitSeconds) * 10) / 10,
    itemsPerSecond: Math.round(items / seconds),
    seconds: Math.round(seconds * 100) / 100,
    latencyMs: { p50: Math.round(percentile(sorted, 50) * 10) / 10, p95: Math.round(percentile(sorted, 95) * 10) / 10, p99: Math.round(percentile(sorted, 99) * 10) / 10, max: Math.round((sorted.at(-1) ?? 0) * 10) / 10 },
    countsAddUp: mismatches.length === 0,
    errors: errors.slice(0, 20),
    mismatches: mismatches.slice(0, 20),
  };
}

function printReport(r: Awaited<ReturnType<typeof loadtest>>): void {
  console.log(`${count(r.batches)} batches × ${count(r.itemsPerBatch)} items (${r.type}) from ${r.clients} clients, ${count(r.requests)} requests in ${r.seconds}s`);
  console.log(`created ${count(r.created)}, deduplicated ${count(r.deduplicated)} (repeated on purpose: ${count(r.expectedDeduplicated)}), failed requests ${count(r.failedRequests)}`);
  console.log(`${r.submissionsPerSecond} submissions/s, ${count(r.itemsPerSecond)} items/s end to end`);
  console.log(`latency p50 ${r.latencyMs.p50} ms, p95 ${r.latencyMs.p95} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`);
  if (!r.countsAddUp) console.log('MISMATCHES:');
  else if (r.ok) console.log('every batch\'s counts and amount add up');
  else console.log(`the ${count(r.created)} batches created add up, but requests failed:`);
  for (const line of [...r.errors, ...r.mismatches]) console.error(`  ${line}`);
}
