/**
 * One benchmark scenario per process: `tsx bench/scenarios.ts <name> <json options>` prints one
 * JSON line with the elapsed time and the process's peak memory. Running each scenario in its
 * own process keeps peers and stores from sharing a heap, a pool or a warm cache.
 *
 * Every scenario measures end to end: from the first item submitted (workers already
 * running) until the last item is recorded, and then checks that every item completed.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Batchline } from '../src/index.js';
import { formatCents } from '../src/core/decimal.js';
import { applyTransaction, balanceOfFile, writeTransactions } from '../src/cli/demo-data.js';

export interface ScenarioOptions {
  items: number;
  concurrency: number;
  pgUrl: string;
}

export interface ScenarioResult {
  scenario: string;
  system: string;
  store: string;
  items: number;
  ms: number;
  itemsPerSecond: number;
  maxRssMb: number;
  note?: string;
}

async function freshPgSchema(url: string, schema: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  return `${url}${url.includes('?') ? '&' : '?'}schema=${schema}`;
}

async function database(store: 'sqlite' | 'postgres', options: ScenarioOptions): Promise<{ database: string; cleanup: () => void }> {
  if (store === 'postgres') return { database: await freshPgSchema(options.pgUrl, 'batchline_bench'), cleanup: () => {} };
  const dir = mkdtempSync(join(tmpdir(), 'batchline-bench-'));
  return { database: join(dir, 'bench.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * 100,000 no-op items: one submit, workers in this process, until all are recorded. With
 * `maxAttempts: 1` (scenario noop-once) every lease is an item's final attempt, so the worker
 * writes start marks ahead of the items it starts: that scenario prices them.
 */
async function batchlineNoop(store: 'sqlite' | 'postgres', options: ScenarioOptions, maxAttempts = 3): Promise<Omit<ScenarioResult, 'maxRssMb'>> {
  const { database: db, cleanup } = await database(store, options);
  const bl = await Batchline.open({ database: db, logLevel: 'warn' });
  try {
    bl.define('noop', async () => {}, { maxAttempts });
    await bl.start({ concurrency: options.concurrency });
    const items = Array.from({ length: options.items }, (_, i) => ({ i }));
    const started = performance.now();
    const batch = await bl.submit('noop', items);
    const done = await bl.wait(batch.id);
    const ms = performance.now() - started;
    if (done.succeeded !== options.items) throw new Error(`only ${done.succeeded} of ${options.items} items succeeded`);
    const scenario = maxAttempts === 1 ? 'noop-once' : 'noop';
    return { scenario, system: 'batchline', store, items: options.items, ms, itemsPerSecond: (options.items * 1000) / ms };
  } finally {
    await bl.close();
    cleanup();
  }
}

/**
 * The transactions workload of the batch framework Batchline replaces: a 100,000-row CSV
 * submitted as 10 batches, each row validated and added to an exact balance, which must
 * equal the balance computed from the file.
 */
async function batchlineTransactions(store: 'sqlite' | 'postgres', options: ScenarioOptions): Promise<Omit<ScenarioResult, 'maxRssMb'>> {
  const { database: db, cleanup } = await database(store, options);
  const dir = mkdtempSync(join(tmpdir(), 'batchline-bench-csv-'));
  const file = join(dir, 'transactions.csv');
  await writeTransactions(file, options.items, 2026);
  const expected = await balanceOfFile(file);
  const bl = await Batchline.open({ database: db, logLevel: 'warn' });
  try {
    bl.define('txn.apply', applyTransaction);
    await bl.start({ concurrency: options.concurrency });
    const started = performance.now();
    const batches = await bl.submitFile('txn.apply', file, { batches: 10 });
    const done = await Promise.all(batches.map((b) => bl.wait(b.id)));
    const ms = performance.now() - started;
    const succeeded = done.reduce((n, b) => n + b.succeeded, 0);
    const balance = done.reduce((sum, b) => sum + BigInt(b.aggregates.balance!.replace('.', '')), 0n);
    if (succeeded !== options.items) throw new Error(`only ${succeeded} of ${options.items} transactions succeeded`);
    if (balance !== expected) throw new Error(`balance ${formatCents(balance)} differs from the file's ${formatCents(expected)}`);
    return {
      scenario: 'transactions',
      system: 'batchline',
      store,
      items: options.items,
      ms,
      itemsPerSecond: (options.items * 1000) / ms,
      note: 'CSV read twice (count, then submit) into 10 batches; balance checked against the file',
    };
  } finally {
    await bl.close();
    rmSync(dir, { recursive: true, force: true });
    cleanup();
  }
}

type Runner = (options: ScenarioOptions) => Promise<Omit<ScenarioResult, 'maxRssMb'>>;

export const SCENARIOS: Record<string, () => Promise<Runner>> = {
  'batchline-sqlite-noop': async () => (o) => batchlineNoop('sqlite', o),
  'batchline-postgres-noop': async () => (o) => batchlineNoop('postgres', o),
  'batchline-sqlite-noop-once': async () => (o) => batchlineNoop('sqlite', o, 1),
  'batchline-postgres-noop-once': async () => (o) => batchlineNoop('postgres', o, 1),
  'batchline-sqlite-transactions': async () => (o) => batchlineTransactions('sqlite', o),
  'batchline-postgres-transactions': async () => (o) => batchlineTransactions('postgres', o),
};

// Run as a script: one scenario, one JSON line on stdout.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [name, json] = process.argv.slice(2);
  const make = SCENARIOS[name!];
  if (!make) {
    console.error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const run = await make();
  const result = await run(JSON.parse(json!) as ScenarioOptions);
  const maxRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(`${JSON.stringify({ ...result, ms: Math.round(result.ms), itemsPerSecond: Math.round(result.itemsPerSecond), maxRssMb })}\n`);
  process.exit(0);
}
