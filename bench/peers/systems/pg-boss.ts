/**
 * pg-boss 10.x (the newest that runs on Node 20; 11+ needs Node 22) on PostgreSQL.
 *
 * pg-boss 10 has no concurrency option: each `boss.work()` call is one polling loop that
 * fetches up to `batchSize` jobs, hands them to the handler as an array, completes them in
 * one statement, and then sleeps out the rest of `pollingIntervalSeconds` (minimum 0.5 s)
 * even when the fetch found jobs. To run C jobs at once we start C loops whose handlers run
 * their batch's jobs one after another; `batchSize` is the knob that decides throughput.
 *
 * Jobs go in with `boss.insert()`, 1,000 per call. Completed jobs stay in its job table, so
 * `recorded` counts `state = 'completed'` there (and in the archive, should it archive).
 */

import PgBoss from 'pg-boss';
import pg from 'pg';
import { assertIdentifier, chosenConfig, execute, installedVersion, slices, type System, type SystemSettings } from './system.js';

const SCHEMA = assertIdentifier('pgboss_bench');
const QUEUE = 'bench';
const ENQUEUE_BATCH = 1000;

const BATCH_SIZES: Record<string, number> = { 'batch-500': 500, 'batch-100': 100, 'batch-2000': 2000 };

function boss(settings: SystemSettings, poolSize: number): PgBoss {
  return new PgBoss({
    connectionString: settings.pgUrl,
    schema: SCHEMA,
    max: poolSize,
    // Expired jobs (held by a dead worker) are found by the maintenance pass; run it every second in W3.
    ...(settings.recoverAfterSeconds ? { maintenanceIntervalSeconds: 1 } : {}),
  });
}

export const pgBoss: System = {
  name: 'pg-boss',
  version: installedVersion('pg-boss'),
  backend: 'postgres',
  configs: Object.fromEntries(
    Object.entries(BATCH_SIZES).map(([name, size]) => [
      name,
      `C work() loops (one per concurrent job), batchSize ${size}, pollingIntervalSeconds 0.5 (its minimum); insert() 1,000 jobs per call`,
    ]),
  ),

  clear: (settings) => execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`),

  async reset(settings) {
    await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    const b = boss(settings, 2);
    await b.start();
    await b.createQueue(QUEUE, {
      name: QUEUE,
      retryLimit: 10,
      retryDelay: 0,
      ...(settings.recoverAfterSeconds ? { expireInSeconds: settings.recoverAfterSeconds } : {}),
    });
    await b.stop({ graceful: true, wait: true });
  },

  async producer(settings) {
    const b = boss(settings, 4);
    await b.start();
    const client = new pg.Client({ connectionString: settings.pgUrl });
    await client.connect();
    const count = async (where: string, params: unknown[]) =>
      (
        await client.query<{ done: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE state = 'completed')::int AS done,
                  count(*) FILTER (WHERE state IN ('failed', 'cancelled'))::int AS failed
             FROM (SELECT state FROM ${SCHEMA}.job WHERE ${where}
                   UNION ALL SELECT state FROM ${SCHEMA}.archive WHERE ${where}) AS j`,
          params,
        )
      ).rows[0]!;
    return {
      async submit(items, total) {
        const ids: string[] = [];
        for (const slice of slices(items, ENQUEUE_BATCH)) {
          // insert() returns the new ids (its typings say void).
          const inserted = (await b.insert(slice.map((data) => ({ name: QUEUE, data })))) as unknown as string[] | null;
          if (total <= ENQUEUE_BATCH && inserted) ids.push(...inserted);
        }
        return { count: total, ...(total <= ENQUEUE_BATCH ? { ids } : {}) };
      },
      recorded: (submission) => (submission.ids ? count('id = ANY($1::uuid[])', [submission.ids]) : count('name = $1', [QUEUE])),
      async close() {
        await client.end();
        await b.stop({ graceful: true, wait: true });
      },
    };
  },

  async work(settings, _kind, work, onHandled) {
    const batchSize = BATCH_SIZES[chosenConfig(pgBoss, settings)]!;
    const b = boss(settings, Math.min(settings.concurrency + 2, 20));
    b.on('error', (err) => console.error(`pg-boss: ${err.message}`));
    await b.start();
    for (let loop = 0; loop < settings.concurrency; loop++) {
      await b.work<{ i: number }>(QUEUE, { batchSize, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        for (const job of jobs) {
          await work(job.data);
          onHandled();
        }
      });
    }
    return { stop: () => b.stop({ graceful: true, wait: true }) };
  },
};
