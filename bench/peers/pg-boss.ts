/**
 * Peer adapter: pg-boss (10.x) on PostgreSQL, "no-op, end to end".
 *
 * Measures the wall time from the first bulk-enqueue call until the last of N no-op jobs is
 * recorded as `completed` by pg-boss itself. Workers are started first in this process:
 * `boss.work()` is called C times (pg-boss 10 has no concurrency option; each `work()` call is
 * one polling worker), each fetching `batchSize` jobs per poll. Jobs are enqueued with
 * `boss.insert(jobs)` (in 10.x the queue name goes on each job), one call per batch.
 *
 * pg-boss 10 workers sleep out the rest of `pollingIntervalSeconds` (minimum 0.5 s) after every
 * fetch, even when the fetch returned jobs, so throughput is bounded by
 * C × batchSize / 0.5 s; `batchSize` (default 500, Batchline's default chunk size) is the knob
 * that decides pg-boss's number here.
 *
 * Completion: pg-boss completes a batch (one UPDATE) after the handler returns, without waiting
 * for that write. The run ends when the handlers have seen N distinct jobs and a count of
 * `state = 'completed'` rows for the queue (job and archive tables) reads exactly N; that count
 * is the verification, along with "no job failed".
 */

import pg from 'pg';
import PgBoss from 'pg-boss';
import {
  assertIdentifier,
  batches,
  CompletionCounter,
  DEFAULT_ENQUEUE_BATCH,
  DEFAULT_TIMEOUT_MS,
  installedVersion,
  noop,
  payloads,
  type PeerResult,
} from './common.js';

export interface PgBossOptions {
  /** PostgreSQL connection string. */
  url: string;
  /** Jobs to enqueue and process. */
  jobs: number;
  /** Number of pg-boss workers (`boss.work()` calls) running at once. */
  concurrency: number;
  /** Schema pg-boss installs into; dropped before the run (default `pgboss_bench`). */
  schema?: string;
  /** Jobs each worker fetches per poll (`work()`'s batchSize; default 500). */
  batchSize?: number;
  /** Jobs per `insert()` call (default 1000). */
  enqueueBatchSize?: number;
  /** Give up after this many ms (default 10 minutes). */
  timeoutMs?: number;
}

const QUEUE = 'batchline-bench-noop';
/** pg-boss 10's smallest allowed polling interval. */
const POLLING_INTERVAL_SECONDS = 0.5;
/** How often to re-count completed rows once the handlers have seen every job. */
const FINAL_POLL_MS = 10;

/**
 * Runs the no-op workload on pg-boss: drops and reinstalls its schema, starts `concurrency`
 * workers, inserts `jobs` jobs in batches, waits until pg-boss has recorded every job as
 * completed, verifies the count (throws if it is not exactly `jobs`), and stops pg-boss.
 */
export async function runPgBoss(opts: PgBossOptions): Promise<PeerResult> {
  const schema = opts.schema ?? 'pgboss_bench';
  const batchSize = opts.batchSize ?? 500;
  const enqueueBatch = opts.enqueueBatchSize ?? DEFAULT_ENQUEUE_BATCH;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  assertIdentifier(schema);
  const version = installedVersion('pg-boss');

  // Our own connection for dropping the schema and for counting; not pg-boss's pool.
  const client = new pg.Client({ connectionString: opts.url });
  await client.connect();
  const boss = new PgBoss({
    connectionString: opts.url,
    schema,
    // One connection per worker plus headroom for inserts and pg-boss's own housekeeping.
    max: opts.concurrency + 2,
  });
  const counter = new CompletionCounter(opts.jobs, timeoutMs, 'pg-boss');
  boss.on('error', (err) => counter.fail(new Error(`pg-boss: ${err.message}`)));
  let started = false;
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await boss.start();
    started = true;
    await boss.createQueue(QUEUE);

    for (let w = 0; w < opts.concurrency; w++) {
      await boss.work<{ i: number }>(QUEUE, { batchSize, pollingIntervalSeconds: POLLING_INTERVAL_SECONDS }, async (jobs) => {
        for (const job of jobs) {
          await noop();
          counter.add(job.id);
        }
      });
    }

    const items = payloads(opts.jobs);
    const countSql = `SELECT
        count(*) FILTER (WHERE state = 'completed')::int AS completed,
        count(*) FILTER (WHERE state IN ('failed', 'cancelled'))::int AS failed
      FROM (SELECT state FROM ${schema}.job WHERE name = $1
            UNION ALL SELECT state FROM ${schema}.archive WHERE name = $1) AS j`;
    const count = async () => (await client.query<{ completed: number; failed: number }>(countSql, [QUEUE])).rows[0]!;

    const t0 = performance.now();
    for (const batch of batches(items, enqueueBatch)) {
      await boss.insert(batch.map((data) => ({ name: QUEUE, data })));
    }
    const enqueueMs = performance.now() - t0;
    await counter.done;
    // The handlers have returned for every job; wait for pg-boss's own completion writes.
    const deadline = t0 + timeoutMs;
    let c = await count();
    while (c.completed < opts.jobs && c.failed === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, FINAL_POLL_MS));
      c = await count();
    }
    const ms = performance.now() - t0;

    if (c.completed !== opts.jobs || c.failed !== 0) {
      throw new Error(`pg-boss: ${c.completed} jobs completed and ${c.failed} failed; expected ${opts.jobs} completed`);
    }
    return { name: 'pg-boss', version, ms, jobs: c.completed, enqueueMs };
  } finally {
    counter.dispose();
    try {
      if (started) await boss.stop({ graceful: true, wait: true });
    } finally {
      await client.end();
    }
  }
}
