// Pins runItem: the outcome a worker would record, without a database.
import { describe, expect, it } from 'vitest';
import { PermanentError, RetryLaterError } from '../core/errors.js';
import { applyTransaction } from '../cli/demo-data.js';
import { runItem } from './index.js';

describe('runItem', () => {
  it('returns the result and exact aggregates of a success', async () => {
    const outcome = await runItem(applyTransaction, { id: 'T1', type: 'WITHDRAWAL', amount: '12.30', account: 'A' });
    expect(outcome).toEqual({ status: 'succeeded', result: { id: 'T1' }, aggregates: { balance: '-12.30' } });
  });

  it('fails permanent errors and asks to retry others', async () => {
    expect(await runItem(applyTransaction, { id: 'T2', type: 'REFUND', amount: '1.00', account: 'A' })).toMatchObject({
      status: 'failed',
      error: { kind: 'permanent', message: 'T2: unknown transaction type "REFUND"' },
    });
    expect(await runItem(() => { throw new Error('flaky'); }, {})).toMatchObject({ status: 'retry', error: { kind: 'transient', message: 'flaky' } });
    expect(await runItem(() => { throw new RetryLaterError('slow down', { delayMs: 500 }); }, {})).toMatchObject({ status: 'retry', delayMs: 500 });
    expect(await runItem(() => { throw new PermanentError('no'); }, {}, { attempt: 3 })).toMatchObject({ status: 'failed' });
  });

  it('aborts the signal and reports a timeout', async () => {
    let aborted = false;
    const outcome = await runItem((_p, ctx) => new Promise(() => ctx.signal.addEventListener('abort', () => (aborted = true))), {}, { timeoutMs: 20 });
    expect(outcome).toMatchObject({ status: 'retry', error: { kind: 'timeout' } });
    expect(aborted).toBe(true);
  });

  it('fails results a worker would not store, as a worker does', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    let deep: unknown = 'leaf';
    for (let i = 0; i < 600; i++) deep = [deep];
    for (const [value, message] of [
      [circular, /^the result is not JSON-serialisable: Converting circular structure/],
      [1n, /^the result is not JSON-serialisable: Do not know how to serialize a BigInt/],
      [NaN, /^the result has NaN/],
      [new Map(), /^the result has a Map/],
      [{ b: [undefined] }, /^the result has undefined/],
      ['x'.repeat(2 << 20), /^the result is 2097154 bytes as JSON; the limit is 1048576$/],
      [deep, /^the result nests arrays and objects more than 512 levels deep/],
    ] as const) {
      const outcome = await runItem(() => value, {});
      expect(outcome).toMatchObject({ status: 'failed', error: { kind: 'invalid_result', message: expect.stringMatching(message) } });
    }
    expect(await runItem(() => 'x'.repeat(100), {}, { maxResultBytes: 10 })).toMatchObject({ status: 'failed', error: { kind: 'invalid_result' } });
  });

  it('passes seq, attempt and a stable idempotency key', async () => {
    const outcome = await runItem((_p, ctx) => [ctx.seq, ctx.attempt, ctx.idempotencyKey], {}, { batchId: 'b', seq: 4, attempt: 2 });
    expect(outcome).toMatchObject({ status: 'succeeded', result: [4, 2, 'b:4'] });
  });
});
