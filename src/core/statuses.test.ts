// Pins which batch actions each status allows, and which batch and item statuses are terminal.
import { describe, expect, it } from 'vitest';
import {
  BATCH_STATUSES,
  canApply,
  isTerminalBatchStatus,
  isTerminalItemStatus,
  ITEM_STATUSES,
  type BatchAction,
  type BatchStatus,
} from './statuses.js';

// Written out by hand (not derived from BATCH_ACTIONS) so a change to the rules fails here.
//                queued running paused completed failed cancelled
const MATRIX: Record<BatchAction, [boolean, boolean, boolean, boolean, boolean, boolean]> = {
  cancel: [true, true, true, false, false, false],
  pause: [true, true, false, false, false, false],
  resume: [false, false, true, false, false, false],
  retryFailed: [false, true, true, true, true, false],
  delete: [true, true, true, true, true, true],
};
const COLUMNS: BatchStatus[] = ['queued', 'running', 'paused', 'completed', 'failed', 'cancelled'];

describe('canApply', () => {
  it('covers every batch status', () => {
    expect([...BATCH_STATUSES].sort()).toEqual([...COLUMNS].sort());
  });

  const cases = (Object.keys(MATRIX) as BatchAction[]).flatMap((action) =>
    COLUMNS.map((status, i) => [action, status, MATRIX[action][i]] as const),
  );
  it.each(cases)('%s on a %s batch → %s', (action, status, allowed) => {
    expect(canApply(action, status)).toBe(allowed);
  });
});

describe('terminal statuses', () => {
  it('batch: completed, failed and cancelled', () => {
    const terminal = BATCH_STATUSES.filter(isTerminalBatchStatus);
    expect(terminal).toEqual(['completed', 'failed', 'cancelled']);
  });

  it('item: succeeded, failed and cancelled', () => {
    const terminal = ITEM_STATUSES.filter(isTerminalItemStatus);
    expect(terminal).toEqual(['succeeded', 'failed', 'cancelled']);
    expect(ITEM_STATUSES).toEqual(['pending', 'running', 'succeeded', 'failed', 'cancelled']);
  });
});
