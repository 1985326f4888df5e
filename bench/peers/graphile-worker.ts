/**
 * Peer adapter: graphile-worker (0.17.x, the newest that runs on Node 20) on PostgreSQL,
 * "no-op, end to end".
 *
 * Measures the wall time from the first bulk-enqueue call until the last of N no-op jobs has
 * been completed by graphile-worker's own runner (`run()` with `concurrency: C`), workers
 * started beforehand in this process, the way the Batchline scenario starts its workers first.
 * Jobs are enqueued with its documented SQL function `<schema>.add_jobs(job_spec[])`, one call
 * per batch, payloads sent from the client as JSON (the same function WorkerUtils.addJobs uses).
 *
 * Completion: completing a job deletes its row; since 0.17 those deletes are batched and
 * `job:complete` fires before they are written. The run ends when N distinct job ids have
 * completed without error and the jobs table is empty. It is then verified that add_jobs
 * inserted exactly N rows, that N distinct jobs completed, and that no job failed.
 */

import pg from 'pg';
import { consoleLogFactory, Logger, run } from 'graphile-worker';
import type { Runner } from 'graphile-worker';
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

export interface GraphileWorkerOptions {
  /** PostgreSQL connection string. */
  url: string;
  /** Jobs to enqueue and process. */
  jobs: number;
  /** Worker concurrency (graphile-worker's `concurrency`). */
  concurrency: number;
  /** Schema graphile-worker installs into; dropped before the run (default `graphile_worker_bench`). */
  schema?: string;
  /** Jobs per add_jobs call (default 1000). */
  enqueueBatchSize?: number;
  /** Give up after this many ms (default 10 minutes). */
  timeoutMs?: number;
}

const TASK = 'noop';

/** graphile-worker logs every completed job at info level; keep warnings and errors only. */
const quietLogger = new Logger((scope) => {
  const log = consoleLogFactory(scope);
  return (level, message) => {
    const l: string = level;
    if (l === 'error' || l === 'warning') log(level, message);
  };
});

/**
 * Runs the no-op workload on graphile-worker: drops and reinstalls its schema, starts a runner
 * with `concurrency` workers, enqueues `jobs` jobs with `add_jobs` in batches, waits until every
 * job is completed, verifies the count (throws if it is not exactly `jobs`), and stops the runner.
 */
export async function runGraphileWorker(opts: GraphileWorkerOptions): Promise<PeerResult> {
  const schema = opts.schema ?? 'graphile_worker_bench';
  const batchSize = opts.enqueueBatchSize ?? DEFAULT_ENQUEUE_BATCH;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  assertIdentifier(schema);
  const version = installedVersion('graphile-worker');

  // The submitter's own connection, separate from the runner's pool (as a producer would be).
  const client = new pg.Client({ connectionString: opts.url });
  await client.connect();
  let runner: Runner | undefined;
  const counter = new CompletionCounter(opts.jobs, timeoutMs, 'graphile-worker');
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);

    // run() installs the schema (migrations) and starts the workers before it resolves.
    runner = await run({
      connectionString: opts.url,
      schema,
      concurrency: opts.concurrency,
      // One connection per worker plus headroom for the LISTEN connection and housekeeping.
      maxPoolSize: opts.concurrency + 2,
      noHandleSignals: true,
      logger: quietLogger,
      taskList: { [TASK]: noop },
      parsedCronItems: [],
    });
    runner.events.on('job:complete', ({ job, error }) => {
      if (error) counter.fail(new Error(`graphile-worker: job ${job.id} failed: ${String(error)}`));
      else counter.add(job.id);
    });
    runner.events.on('worker:fatalError', ({ error }) => counter.fail(new Error(`graphile-worker: worker fatal error: ${String(error)}`)));

    const items = payloads(opts.jobs);
    const addJobs = `SELECT count(*)::int AS n FROM ${schema}.add_jobs(ARRAY(
      SELECT ROW($1::text, p, NULL, NULL, NULL, NULL, NULL, NULL)::${schema}.job_spec
      FROM json_array_elements($2::json) AS p))`;

    const started = performance.now();
    let inserted = 0;
    for (const batch of batches(items, batchSize)) {
      const { rows } = await client.query<{ n: number }>(addJobs, [TASK, JSON.stringify(batch)]);
      inserted += rows[0]!.n;
    }
    const enqueueMs = performance.now() - started;
    await counter.done;
    // Since 0.17 graphile-worker batches its completion writes: `job:complete` fires before the
    // job's row is deleted. A job is done when its row is gone, so the clock runs until then.
    const countLeft = async () => (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`)).rows[0]!.n;
    let left = await countLeft();
    const settleBy = Date.now() + 30_000;
    while (left > 0 && Date.now() < settleBy) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      left = await countLeft();
    }
    const ms = performance.now() - started;
    if (inserted !== opts.jobs || counter.count !== opts.jobs || left !== 0) {
      throw new Error(`graphile-worker: inserted ${inserted}, completed ${counter.count}, ${left} left in the jobs table; expected ${opts.jobs}, ${opts.jobs}, 0`);
    }
    return { name: 'graphile-worker', version, ms, jobs: counter.count, enqueueMs };
  } finally {
    counter.dispose();
    try {
      if (runner) {
        await runner.stop();
        await runner.promise;
      }
    } finally {
      await client.end();
    }
  }
}
