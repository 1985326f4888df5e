// Pins how progress reads: percent, rate since start, and an ETA only while the batch can move.
import { describe, expect, it } from 'vitest';
import { progressOf } from './progress.js';
import type { Batch } from './types.js';

const started = new Date('2026-11-22T10:00:00Z');
const batch = (over: Partial<Batch>): Batch =>
  ({ status: 'running', total: 1_000, succeeded: 400, failed: 100, cancelled: 0, remaining: 500, startedAt: started, finishedAt: null, ...over }) as Batch;
const tenSecondsIn = started.getTime() + 10_000;

describe('progressOf', () => {
  it('gives percent, the rate since the batch started, and the time left at that rate', () => {
    expect(progressOf(batch({}), tenSecondsIn)).toMatchObject({ processed: 500, percent: 50, itemsPerSecond: 50, etaSeconds: 10 });
  });

  it('gives no ETA while the batch is paused, though its past rate stands', () => {
    expect(progressOf(batch({ status: 'paused' }), tenSecondsIn)).toMatchObject({ itemsPerSecond: 50, etaSeconds: null });
  });

  it('reads 0 s left once nothing remains, and nothing before the batch starts', () => {
    expect(progressOf(batch({ status: 'completed', succeeded: 900, remaining: 0, finishedAt: new Date(tenSecondsIn) }), tenSecondsIn + 60_000)).toMatchObject({ percent: 100, itemsPerSecond: 100, etaSeconds: 0 });
    expect(progressOf(batch({ status: 'queued', succeeded: 0, failed: 0, remaining: 1_000, startedAt: null }))).toMatchObject({ percent: 0, itemsPerSecond: null, etaSeconds: null });
  });
});
