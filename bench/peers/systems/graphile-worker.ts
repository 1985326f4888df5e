/**
 * graphile-worker 0.17.x (the newest that runs on Node 20; 0.18 needs Node 22) on PostgreSQL.
 *
 * Jobs go in through its documented SQL function `add_jobs(job_spec[])`, 1,000 per call.
 * Workers run through `run()` with `concurrency` C. The best configuration found uses its
 * batching features from the performance guide: a local queue that fetches and locks 10,000
 * jobs at a time and batched completion (`completeJobBatchDelay: 0`); bigger was faster in
 * every size tried (see `configs`). A completed job's row is
 * deleted, so `recorded` counts the rows that are left.
 *
 * graphile-worker frees jobs locked by a dead worker after 4 hours, a fixed interval; in W3 the
 * harness therefore calls its `forceUnlockWorkers` for the killed worker before starting the
 * next one, as an operator's supervisor would (see recoverDeadWorker).
 */

import { consoleLogFactory, Logger, makeWorkerUtils, run } from 'graphile-worker';
import pg from 'pg';
import { assertIdentifier, chosenConfig, execute, installedVersion, slices, type System } from './system.js';

const SCHEMA = assertIdentifier('graphile_worker_bench');
const TASK = 'bench';
const ENQUEUE_BATCH = 1000;

const CONFIGS: Record<string, { localQueue: number; completeJobBatchDelay: number; text: string }> = {
  'local-queue-10000': { localQueue: 10000, completeJobBatchDelay: 0, text: 'localQueue.size 10000, completeJobBatchDelay 0' },
  'local-queue-2000': { localQueue: 2000, completeJobBatchDelay: 0, text: 'localQueue.size 2000, completeJobBatchDelay 0' },
  'local-queue-500': { localQueue: 500, completeJobBatchDelay: 0, text: 'localQueue.size 500, completeJobBatchDelay 0 (batched fetch and completion)' },
  'local-queue-100': { localQueue: 100, completeJobBatchDelay: 0, text: 'localQueue.size 100, completeJobBatchDelay 0' },
  default: { localQueue: -1, completeJobBatchDelay: -1, text: 'defaults: each worker fetches and completes one job per query' },
};

/** graphile-worker logs every job at info level; keep warnings and errors. */
const quietLogger = new Logger((scope) => {
  const log = consoleLogFactory(scope);
  return (level, message) => {
    const l: string = level;
    if (l === 'error' || l === 'warning') log(level, message);
  };
});

export const graphileWorker: System = {
  name: 'graphile-worker',
  version: installedVersion('graphile-worker'),
  backend: 'postgres',
  configs: Object.fromEntries(Object.entries(CONFIGS).map(([name, c]) => [name, `concurrency C, ${c.text}; add_jobs() 1,000 jobs per call`])),

  clear: (settings) => execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`),

  /**
   * A dead worker's locks last 4 hours; its documented way out is `forceUnlockWorkers` for
   * workers known to be dead. Called between the kill and the restart, when no worker runs,
   * every worker id holding locks is the dead one's.
   */
  async recoverDeadWorker(settings) {
    const client = new pg.Client({ connectionString: settings.pgUrl });
    await client.connect();
    let ids: string[];
    try {
      const { rows } = await client.query<{ locked_by: string }>(
        `SELECT DISTINCT locked_by FROM ${SCHEMA}._private_jobs WHERE locked_by IS NOT NULL
          UNION SELECT DISTINCT locked_by FROM ${SCHEMA}._private_job_queues WHERE locked_by IS NOT NULL`,
      );
      ids = rows.map((r) => r.locked_by);
    } finally {
      await client.end();
    }
    if (ids.length === 0) return;
    const utils = await makeWorkerUtils({ connectionString: settings.pgUrl, schema: SCHEMA, logger: quietLogger });
    try {
      await utils.forceUnlockWorkers(ids);
    } finally {
      await utils.release();
    }
  },

  async reset(settings) {
    await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    // Install the schema now (run() migrates), so the producer can call add_jobs at once.
    const runner = await run({ connectionString: settings.pgUrl, schema: SCHEMA, concurrency: 1, noHandleSignals: true, logger: quietLogger, taskList: { [TASK]: async () => {} }, parsedCronItems: [] });
    await runner.stop();
  },

  async producer(settings) {
    const client = new pg.Client({ connectionString: settings.pgUrl });
    await client.connect();
    const addJobs = `SELECT id::text FROM ${SCHEMA}.add_jobs(ARRAY(
      SELECT ROW($1::text, p, NULL, NULL, NULL, NULL, NULL, NULL)::${SCHEMA}.job_spec
      FROM json_array_elements($2::json) AS p))`;
    return {
      async submit(items, total) {
        const ids: string[] = [];
        for (const slice of slices(items, ENQUEUE_BATCH)) {
          const { rows } = await client.query<{ id: string }>(addJobs, [TASK, JSON.stringify(slice)]);
          if (total <= ENQUEUE_BATCH) ids.push(...rows.map((r) => r.id));
        }
        return { count: total, ...(total <= ENQUEUE_BATCH ? { ids } : {}) };
      },
      async recorded(submission) {
        const where = submission.ids ? 'WHERE id = ANY($1::bigint[])' : '';
        const { rows } = await client.query<{ left: number; failed: number }>(
          `SELECT count(*)::int AS left,
                  count(*) FILTER (WHERE attempts >= max_attempts AND locked_at IS NULL)::int AS failed
             FROM ${SCHEMA}._private_jobs ${where}`,
          submission.ids ? [submission.ids] : [],
        );
        return { done: submission.count - rows[0]!.left, failed: rows[0]!.failed };
      },
      close: () => client.end(),
    };
  },

  async work(settings, _kind, work, onHandled) {
    const config = CONFIGS[chosenConfig(graphileWorker, settings)]!;
    const runner = await run({
      connectionString: settings.pgUrl,
      schema: SCHEMA,
      concurrency: settings.concurrency,
      maxPoolSize: Math.min(settings.concurrency + 2, 20),
      noHandleSignals: true,
      logger: quietLogger,
      parsedCronItems: [],
      taskList: {
        [TASK]: async (payload) => {
          await work(payload as never);
          onHandled();
        },
      },
      preset: { worker: { localQueue: { size: config.localQueue }, completeJobBatchDelay: config.completeJobBatchDelay } },
    });
    return {
      async stop() {
        await runner.stop();
        await runner.promise;
      },
    };
  },
};
