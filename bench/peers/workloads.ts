/**
 * The five workloads of the side-by-side benchmark (issue 3), at full size or `--quick`.
 *
 *   W1 no-op      N items whose handler does nothing: submit time, process time, total, memory.
 *   W2 balance    N transactions (2 decimals, fixed seed) applied to one shared balance.
 *   W3 crash      W2 with the worker process SIGKILLed at ~30 % and ~70 % and restarted.
 *   W4 slow       items that each wait 10 ms of I/O at concurrency 200: how close to ideal.
 *   W5 fairness   one tenant submits a huge batch; a second then submits 100 items: time
 *                 until the small one is done.
 */

import { transactions } from '../../src/cli/demo-data.js';
import type { HandlerKind, Payload } from './systems/system.js';

export type WorkloadId = 'W1' | 'W2' | 'W3' | 'W4' | 'W5';

export interface Workload {
  id: WorkloadId;
  title: string;
  handler: HandlerKind;
  /** Items submitted (W5: by the big tenant). */
  items: number;
  concurrency: number;
  /** W3: fractions of the items handled at which the worker process is SIGKILLed. */
  crashAt?: number[];
  /** W3: seconds after which each system hands a dead worker's jobs to another. */
  recoverAfterSeconds?: number;
  /** W5: items the second tenant submits. */
  smallItems?: number;
  /**
   * W5: the second tenant submits once the system has recorded this many of the big batch's
   * items as done, so every system is measured with a backlog that its worker is working
   * through (a peer whose enqueue is slow has worked through far more by then).
   */
  smallAfterDone?: number;
  /** W4: the ideal time, items × itemMs / concurrency. */
  idealMs?: number;
  /** Give up waiting after this long (W5: for the small batch). */
  timeoutMs: number;
  /** The harness kills a run (driver and worker) that takes longer than this in all. */
  runLimitMs: number;
}

/** What one run measured. Times in ms. */
export interface RunResult {
  system: string;
  version: string;
  config: string;
  workload: Workload['id'];
  items: number;
  concurrency: number;
  /** Until the last submit call returned (workers were already running). */
  submitMs: number;
  /** From then until the system had recorded every item. */
  processMs: number;
  totalMs: number;
  itemsPerSecond: number;
  /** Peak RSS of the worker process (the last one, in W3) and of the driver (submitting side). */
  workerRssMb: number | null;
  driverRssMb: number;
  /** Items not recorded as completed when the run ended (0 unless the run gave up). */
  unfinished: number;
  failed: number;
  /** W2, W3. */
  balance?: { expectedCents: string; actualCents: string; matches: boolean; lost: number; appliedTwice: number };
  /** W3. */
  kills?: number;
  /** W3: the share of the items whose handlers had returned when each kill came. */
  killedAt?: number[];
  /** Worker processes that died by themselves (not killed by the harness) and were restarted. */
  crashes?: number;
  /** W4. */
  idealMs?: number;
  /** W5: from the small tenant's submit until its items were all recorded; null if not within the limit. */
  smallBatchMs?: number | null;
  smallDone?: number;
  /** W5: items of the big batch recorded as done when the small one was submitted. */
  bigDoneAtSmallSubmit?: number;
}

/** Seed of the W2/W3 transactions, so every system applies the same amounts. */
export const SEED = 2026;
/** W4: each item waits this long. */
export const SLOW_ITEM_MS = 10;

/** The workloads at full size, or at `--quick` size (10,000 items each, shorter limits). */
export function workloads(quick: boolean): Workload[] {
  const n = quick ? 10_000 : 100_000;
  const slow = quick ? 10_000 : 20_000;
  const big = quick ? 10_000 : 1_000_000;
  const limit = quick ? 3 * 60_000 : 13 * 60_000;
  return [
    { id: 'W1', title: 'no-op', handler: 'noop', items: n, concurrency: 10, timeoutMs: 10 * 60_000, runLimitMs: limit },
    { id: 'W2', title: 'balance', handler: 'balance', items: n, concurrency: 10, timeoutMs: 10 * 60_000, runLimitMs: limit },
    { id: 'W3', title: 'crash', handler: 'balance', items: n, concurrency: 10, crashAt: [0.3, 0.7], recoverAfterSeconds: 5, timeoutMs: 10 * 60_000, runLimitMs: limit },
    { id: 'W4', title: 'slow items', handler: 'slow', items: slow, concurrency: 200, idealMs: (slow * SLOW_ITEM_MS) / 200, timeoutMs: 10 * 60_000, runLimitMs: limit },
    // Enqueueing a million jobs takes some peers minutes (pg-boss: 1,000 per insert()), and
    // the small batch then gets a minute: the run limit leaves room for both.
    { id: 'W5', title: 'fairness', handler: 'noop', items: big, smallItems: 100, smallAfterDone: big / 100, concurrency: 10, timeoutMs: quick ? 10_000 : 60_000, runLimitMs: quick ? 3 * 60_000 : 15 * 60_000 },
  ];
}

/** The items of a workload: transactions for the balance handler, `{ i }` otherwise. */
export function* payloads(workload: Workload, count: number, tenant?: string): Generator<Payload> {
  if (workload.handler === 'balance') {
    let i = 0;
    for (const t of transactions(count, SEED)) yield { i: i++, type: t.type, amount: t.amount };
    return;
  }
  for (let i = 0; i < count; i++) yield tenant ? { i, tenant } : { i };
}
