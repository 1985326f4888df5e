/**
 * Peer adapter: BullMQ (6.x, with ioredis 5 as its Redis driver) on Redis, "no-op, end to end".
 *
 * Measures the wall time from the first bulk-enqueue call until the last of N no-op jobs has
 * been moved to BullMQ's completed set by its own `Worker` (`concurrency: C`), started first in
 * this process. Jobs are enqueued with `queue.addBulk()`, one call per batch. BullMQ's defaults
 * are kept, so every completed job stays in Redis (no removeOnComplete).
 *
 * Completion: the Worker emits `completed` after its moveToCompleted script has run. The run
 * ends when N distinct job ids have completed; it is then verified with `queue.getJobCounts()`
 * that exactly N jobs are in the completed set and none is failed, waiting, delayed or active.
 * The queue is obliterated before (a clean start) and after the run.
 */

import { Queue, Worker } from 'bullmq';
import {
  batches,
  CompletionCounter,
  DEFAULT_ENQUEUE_BATCH,
  DEFAULT_TIMEOUT_MS,
  installedVersion,
  noop,
  payloads,
  type PeerResult,
} from './common.js';

export interface BullmqOptions {
  /** Redis URL, e.g. redis://127.0.0.1:6379. */
  redisUrl: string;
  /** Jobs to enqueue and process. */
  jobs: number;
  /** Worker concurrency (BullMQ's `concurrency`). */
  concurrency: number;
  /** Jobs per `addBulk()` call (default 1000). */
  enqueueBatchSize?: number;
  /** Give up after this many ms (default 10 minutes). */
  timeoutMs?: number;
}

const QUEUE = 'batchline-bench-noop';

/**
 * Runs the no-op workload on BullMQ: obliterates the queue, starts a Worker with `concurrency`,
 * adds `jobs` jobs with `addBulk` in batches, waits until every job is completed, verifies the
 * counts (throws unless exactly `jobs` completed and nothing else is left), then obliterates the
 * queue and closes the worker and the queue.
 */
export async function runBullmq(opts: BullmqOptions): Promise<PeerResult> {
  const enqueueBatch = opts.enqueueBatchSize ?? DEFAULT_ENQUEUE_BATCH;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const version = installedVersion('bullmq');

  // BullMQ creates its ioredis connections from these options; workers need
  // maxRetriesPerRequest: null for their blocking connection.
  const queue = new Queue(QUEUE, { connection: { url: opts.redisUrl } });
  let worker: Worker | undefined;
  const counter = new CompletionCounter(opts.jobs, timeoutMs, 'bullmq');
  try {
    await queue.waitUntilReady();
    await queue.obliterate({ force: true });

    worker = new Worker(QUEUE, noop, {
      connection: { url: opts.redisUrl, maxRetriesPerRequest: null },
      concurrency: opts.concurrency,
    });
    worker.on('completed', (job) => counter.add(job.id!));
    worker.on('failed', (job, err) => counter.fail(new Error(`bullmq: job ${job?.id} failed: ${err.message}`)));
    worker.on('error', (err) => counter.fail(new Error(`bullmq: worker error: ${err.message}`)));
    await worker.waitUntilReady();

    const items = payloads(opts.jobs);
    const started = performance.now();
    for (const batch of batches(items, enqueueBatch)) {
      await queue.addBulk(batch.map((data) => ({ name: 'noop', data })));
    }
    const enqueueMs = performance.now() - started;
    await counter.done;
    const ms = performance.now() - started;

    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'delayed', 'active', 'prioritized');
    const others = Object.entries(counts).filter(([type, n]) => type !== 'completed' && n !== 0);
    if (counts.completed !== opts.jobs || counter.count !== opts.jobs || others.length > 0) {
      throw new Error(`bullmq: ${counts.completed} jobs in the completed set, ${counter.count} completion events, others ${JSON.stringify(Object.fromEntries(others))}; expected ${opts.jobs} completed and nothing else`);
    }
    return { name: 'bullmq', version, ms, jobs: counts.completed!, enqueueMs };
  } finally {
    counter.dispose();
    try {
      if (worker) await worker.close();
      await queue.obliterate({ force: true });
    } finally {
      await queue.close();
    }
  }
}
