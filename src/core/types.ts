/**
 * The records users see: batches, items, events, workers, and the options that shape a batch.
 * Plain data only; the stores produce these and every face (library, CLI, HTTP) returns them.
 */

import type { BackoffOptions } from './backoff.js';
import type { BatchStatus, ItemStatus } from './statuses.js';

/** How items of a batch run. Unset fields fall back to the processor's options, then defaults. */
export interface RunOptions {
  /** Attempts per item, counting the first; a lost lease uses one. */
  maxAttempts: number;
  /** Per-attempt time limit; the handler's signal aborts when it passes. */
  timeoutMs: number;
  /** Spacing of retries after transient failures. */
  backoff: BackoffOptions;
  /** Items of this batch running at once across all workers; null for no cap. */
  concurrency: number | null;
}

export const DEFAULT_RUN_OPTIONS: RunOptions = {
  maxAttempts: 3,
  timeoutMs: 5 * 60_000,
  backoff: { baseMs: 1_000, maxMs: 5 * 60_000 },
  concurrency: null,
};

/** A batch as stored: its counters always equal the counts of its items by status. */
export interface Batch {
  id: string;
  tenant: string;
  type: string;
  status: BatchStatus;
  /** 0-10; higher runs first. */
  priority: number;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Items not yet terminal: `total - succeeded - failed - cancelled`. */
  remaining: number;
  /** Exact totals by name, as decimal text ("123456.78"). */
  aggregates: Record<string, string>;
  labels: Record<string, string>;
  idempotencyKey: string | null;
  /** Options given at submit; null where the processor's own (or the default) applies. */
  options: Partial<RunOptions>;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** Why an item failed, kept with the item. */
export interface ItemError {
  /**
   * `permanent`: the handler threw PermanentError; `transient`: any other error, attempts
   * exhausted; `timeout`: the attempt passed timeoutMs; `lease_lost`: its worker died or
   * stalled on the last attempt; `invalid_result`: the handler returned something that is not JSON.
   */
  kind: 'permanent' | 'transient' | 'timeout' | 'lease_lost' | 'invalid_result';
  name?: string;
  message: string;
  /** The first stack frame: where the handler threw. */
  at?: string;
  stack?: string;
}

/** One item of a batch, as the `items` view shows it. */
export interface Item {
  batchId: string;
  seq: number;
  status: ItemStatus;
  attempts: number;
  payload: unknown;
  result: unknown;
  error: ItemError | null;
}

/** Types of the audit events written to the events table and emitted by `Batchline`. */
export const EVENT_TYPES = [
  'batch:submitted',
  'batch:started',
  'batch:progress',
  'batch:completed',
  'batch:cancelled',
  'batch:paused',
  'batch:resumed',
  'batch:retried',
  'batch:lease-expired',
  'batch:counters-repaired',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** One row of the events table, the audit trail of every batch. */
export interface BatchEvent {
  id: number;
  /** Position in the followed stream (events from eventsFollow only): pass it as `after` to read on. */
  cursor?: string;
  batchId: string | null;
  tenant: string | null;
  type: EventType;
  data: Record<string, unknown>;
  createdAt: Date;
}

/** An API key as stored: never its secret, only a hash of it. */
export interface ApiKey {
  /** Public part of the key (`bl_<id>_<secret>`), used to find it. */
  id: string;
  name: string;
  /** The tenant the key acts for; an admin key sees every tenant and submits as this one. */
  tenant: string;
  admin: boolean;
  createdAt: Date;
  revokedAt: Date | null;
}

/** A worker process as its heartbeat row shows it. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  types: string[];
  concurrency: number;
  startedAt: Date;
  heartbeatAt: Date;
  /** Items finished by this worker since it started. */
  processed: number;
  /** Items running at its last heartbeat. */
  inFlight: number;
  /** Batches it held chunks of at its last heartbeat. */
  batches: string[];
}

/**
 * A worker whose last heartbeat is older than this is not counted as active (by /health,
 * /workers and `monitor`): workers beat every 2 s at most, so this is many missed beats. Its
 * row stays until the reconciler prunes it (after `workerStaleMs`).
 */
export const WORKER_ACTIVE_MS = 30_000;

/** Whether a heartbeat at `heartbeatAt` (a Date or epoch ms) is recent enough to count as active. */
export function isWorkerActive(heartbeatAt: Date | number, now = Date.now()): boolean {
  return now - (typeof heartbeatAt === 'number' ? heartbeatAt : heartbeatAt.getTime()) < WORKER_ACTIVE_MS;
}
