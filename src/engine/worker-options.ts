/** A worker's settings: what `bl.start()` and `batchline worker` may set, checked, with defaults. */

import { z } from 'zod';
import { DEFAULT_MAX_RESULT_BYTES } from './item-outcomes.js';

/** Worker options as zod validates them (unknown keys refused). */
export const workerOptionsSchema = z
  .object({
    /** Items running at once in this process. */
    concurrency: z.number().int().min(1).max(10_000).default(10),
    /** Lease duration; renewed every third of it while the chunk runs. */
    leaseMs: z.number().int().min(200).default(30_000),
    /** How often an idle worker looks for work when no notification arrives. */
    pollMs: z.number().int().min(10).default(500),
    /** How often the worker checks whether batches it runs were cancelled, paused or deleted. */
    controlPollMs: z.number().int().min(10).default(1_000),
    /** A chunk still running commits what finished at least this often. */
    checkpointMs: z.number().int().min(10).default(2_000),
    /** How long one lease should keep all slots busy; sets the lease size. */
    targetLeaseMs: z.number().int().min(1).default(1_000),
    /** Most items one lease takes (fast types hit it; measured in bench/peers W1: 8,000 beat 2,000 by ~20 %). */
    maxLeaseItems: z.number().int().min(1).default(8_000),
    heartbeatMs: z.number().int().min(100).default(5_000),
    /**
     * After a cancel, how long running items get to stop before the chunk closes without them;
     * after a timeout, how long the item keeps its slot while its handler has not returned.
     */
    cancelGraceMs: z.number().int().min(0).default(2_000),
    /** Results bigger than this (as JSON) fail the item. */
    maxResultBytes: z.number().int().min(1).default(DEFAULT_MAX_RESULT_BYTES),
  })
  .strict();

/** What `bl.start()` takes for its workers. */
export type WorkerOptions = z.input<typeof workerOptionsSchema>;
/** The options with their defaults filled in. */
export type WorkerSettings = z.output<typeof workerOptionsSchema>;
