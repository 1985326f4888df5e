/**
 * Statuses of batches and items, and the transitions between them.
 *
 * Item:  pending → running → succeeded | failed | cancelled
 *        (a transient failure goes back to pending with a backoff)
 * Batch: queued → running → completed | failed | cancelled, and paused from queued or running.
 *
 * This module is pure: the stores enforce the same rules in SQL, and the conformance suite
 * checks that both agree with what is written here.
 */

export const BATCH_STATUSES = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export const ITEM_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type ItemStatus = (typeof ITEM_STATUSES)[number];

const TERMINAL_BATCH: ReadonlySet<BatchStatus> = new Set(['completed', 'failed', 'cancelled']);
const TERMINAL_ITEM: ReadonlySet<ItemStatus> = new Set(['succeeded', 'failed', 'cancelled']);

/** True when a batch in this status will never change status again (except by retry-failed). */
export function isTerminalBatchStatus(status: BatchStatus): boolean {
  return TERMINAL_BATCH.has(status);
}

/**
 * True once a batch has settled: its status is terminal and so is every item. A cancelled
 * batch is terminal at once, while workers that held its items are still letting go (cancel()
 * returns once they have); until then its counters still move.
 */
export function isSettledBatch(batch: { status: BatchStatus; remaining: number }): boolean {
  return isTerminalBatchStatus(batch.status) && batch.remaining === 0;
}

/** True when an item in this status will never run again (except by retry-failed). */
export function isTerminalItemStatus(status: ItemStatus): boolean {
  return TERMINAL_ITEM.has(status);
}

/** Batch actions a user can ask for, and the statuses each is allowed from. */
export const BATCH_ACTIONS = {
  cancel: ['queued', 'running', 'paused'],
  pause: ['queued', 'running'],
  resume: ['paused'],
  retryFailed: ['running', 'paused', 'completed', 'failed'],
  delete: BATCH_STATUSES,
} as const satisfies Record<string, readonly BatchStatus[]>;

export type BatchAction = keyof typeof BATCH_ACTIONS;

/** Whether `action` is allowed on a batch currently in `status`. */
export function canApply(action: BatchAction, status: BatchStatus): boolean {
  return (BATCH_ACTIONS[action] as readonly BatchStatus[]).includes(status);
}
