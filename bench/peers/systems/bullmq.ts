/**
 * BullMQ 6.x on Redis, and on its PostgreSQL backend (new in 6.x), same code, same settings.
 *
 * Jobs go in with `queue.addBulk()`, 1,000 per call, each with `attempts: 10`. One `Worker`
 * runs with `concurrency` C. The configuration kept removes jobs on completion
 * (`removeOnComplete: true`), the setting BullMQ recommends for high volume; `recorded` then
 * counts a job as done when it is neither waiting, active, delayed nor failed.
 *
 * In W3 the lock a worker holds on a job lasts `lockDuration` (set to the recovery time) and
 * the stalled-job check runs every half of it, so a dead worker's jobs go back to wait.
 */

import { createPostgresBackend, Queue, Worker, withBackend, type JobType } from 'bullmq';
import { Redis } from 'ioredis';
import { assertIdentifier, chosenConfig, execute, installedVersion, slices, type Payload, type Producer, type System, type SystemSettings } from './system.js';

const QUEUE = 'bench';
const ENQUEUE_BATCH = 1000;
const PG_SCHEMA = assertIdentifier('bullmq_bench');
const UNFINISHED: JobType[] = ['wait', 'active', 'delayed', 'prioritized', 'waiting-children'];

const CONFIGS: Record<string, { removeOnComplete: boolean; text: string }> = {
  'remove-on-complete': { removeOnComplete: true, text: 'removeOnComplete: true' },
  'keep-completed': { removeOnComplete: false, text: 'completed jobs kept (the default)' },
};

type AnyQueue = Queue;
type AnyWorker = Worker;

/** Queue and Worker classes bound to the backend, and the connection option each takes. */
function classes(backend: 'redis' | 'postgres', settings: SystemSettings, migrate = false) {
  if (backend === 'postgres') {
    const bound = withBackend(createPostgresBackend);
    const connection = { connectionString: settings.pgUrl, schema: PG_SCHEMA, max: Math.min(settings.concurrency + 2, 20), migrate };
    return {
      queue: () => new bound.Queue(QUEUE, { connection }) as unknown as AnyQueue,
      worker: (processor: ConstructorParameters<typeof Worker>[1], opts: Record<string, unknown>) =>
        new bound.Worker(QUEUE, processor as never, { connection, ...opts }) as unknown as AnyWorker,
    };
  }
  // Workers need maxRetriesPerRequest: null (BullMQ's blocking commands); one connection each.
  const connection = () => new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  return {
    queue: () => new Queue(QUEUE, { connection: connection() }),
    worker: (processor: ConstructorParameters<typeof Worker>[1], opts: Record<string, unknown>) => new Worker(QUEUE, processor, { connection: connection(), ...opts }),
  };
}

function bullmq(backend: 'redis' | 'postgres'): System {
  const system: System = {
    name: backend === 'redis' ? 'bullmq' : 'bullmq-postgres',
    version: installedVersion('bullmq'),
    backend,
    configs: Object.fromEntries(Object.entries(CONFIGS).map(([name, c]) => [name, `one Worker with concurrency C, ${c.text}; addBulk() 1,000 jobs per call`])),

    async clear(settings) {
      if (backend === 'postgres') return execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE`);
      const redis = new Redis(settings.redisUrl);
      await redis.flushdb();
      await redis.quit();
    },

    async reset(settings) {
      if (backend === 'postgres') {
        await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${PG_SCHEMA} CASCADE`);
        // The backend migrates on first use; do it now, outside the measured run.
        const queue = classes(backend, settings, true).queue();
        await queue.waitUntilReady();
        await queue.close();
        return;
      }
      // The bench has a Redis database of its own (the index in the URL): empty it.
      const redis = new Redis(settings.redisUrl);
      await redis.flushdb();
      await redis.quit();
    },

    async producer(settings): Promise<Producer> {
      const { removeOnComplete } = CONFIGS[chosenConfig(system, settings)]!;
      const queue = classes(backend, settings).queue();
      await queue.waitUntilReady();
      return {
        async submit(items, total) {
          const ids: string[] = [];
          for (const slice of slices(items, ENQUEUE_BATCH)) {
            const jobs = await queue.addBulk(slice.map((data) => ({ name: QUEUE, data, opts: { attempts: 10, removeOnComplete } })));
            if (total <= ENQUEUE_BATCH) ids.push(...jobs.map((j) => j.id!));
          }
          return { count: total, ...(total <= ENQUEUE_BATCH ? { ids } : {}) };
        },
        async recorded(submission) {
          if (submission.ids) {
            const states = await Promise.all(submission.ids.map((id) => queue.getJobState(id)));
            // A removed job ('unknown') was removed on completion.
            return { done: states.filter((s) => s === 'completed' || s === 'unknown').length, failed: states.filter((s) => s === 'failed').length };
          }
          const counts = await queue.getJobCounts(...UNFINISHED, 'failed');
          const unfinished = UNFINISHED.reduce((n, type) => n + (counts[type] ?? 0), 0);
          return { done: submission.count - unfinished - (counts.failed ?? 0), failed: counts.failed ?? 0 };
        },
        close: () => queue.close(),
      };
    },

    async work(settings, _kind, work, onHandled) {
      const recovery = settings.recoverAfterSeconds ? { lockDuration: settings.recoverAfterSeconds * 1000, stalledInterval: (settings.recoverAfterSeconds * 1000) / 2, maxStalledCount: 10 } : {};
      const worker = classes(backend, settings).worker(
        async (job) => {
          await work(job.data as Payload);
          onHandled();
        },
        { concurrency: settings.concurrency, ...recovery },
      );
      worker.on('error', (err) => console.error(`${system.name}: ${err.message}`));
      await worker.waitUntilReady();
      return { stop: () => worker.close() };
    },
  };
  return system;
}

export const bullmqRedis = bullmq('redis');
export const bullmqPostgres = bullmq('postgres');
