/**
 * `batchline/testing`: run a processor's handler on one payload without a database, with the
 * same `ctx` and the same outcome rules as a worker, to unit-test processors.
 *
 * ```ts
 * import { runItem } from 'batchline/testing';
 * const outcome = await runItem(applyTransaction, { id: 'T1', type: 'DEPOSIT', amount: '12.30' });
 * expect(outcome).toMatchObject({ status: 'succeeded', aggregates: { balance: '12.30' } });
 * ```
 */

import { pino } from 'pino';
import { addDecimal, formatDecimal, type Decimal } from '../core/decimal.js';
import { isPermanent, ItemAbortedError, RetryLaterError } from '../core/errors.js';
import type { ItemError } from '../core/types.js';
import { AttemptContext } from '../engine/item-context.js';
import { describeError } from '../engine/item-errors.js';
import { DEFAULT_MAX_RESULT_BYTES, storableResult } from '../engine/item-outcomes.js';
import type { Handler } from '../engine/registry.js';

/** What a worker would record for one attempt. */
export type ItemOutcome =
  | { status: 'succeeded'; result: unknown; aggregates: Record<string, string> }
  | { status: 'failed'; error: ItemError }
  /** A transient failure a worker would retry (after `delayMs` when the handler asked for one). */
  | { status: 'retry'; error: ItemError; delayMs?: number };

export interface RunItemOptions {
  batchId?: string;
  seq?: number;
  attempt?: number;
  /** Per-attempt time limit; the signal aborts when it passes (default 5 minutes). */
  timeoutMs?: number;
  /** Largest result, as JSON bytes, as the worker's `maxResultBytes` (default 1 MiB). */
  maxResultBytes?: number;
}

/** Runs `handler` on `payload` once, as a worker would, and says what would be recorded. */
export async function runItem<P>(handler: Handler<P>, payload: P, options: RunItemOptions = {}): Promise<ItemOutcome> {
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const ctx = new AttemptContext(options.batchId ?? '00000000-0000-7000-8000-000000000000', options.seq ?? 0, options.attempt ?? 1, pino({ level: 'silent' }));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new ItemAbortedError('timeout', `the attempt took longer than ${timeoutMs} ms`);
      ctx.abort(error);
      reject(error);
    }, timeoutMs);
  });
  try {
    const result = await Promise.race([Promise.resolve().then(() => handler(payload, ctx)), timeout]);
    const stored = storableResult(result, options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES);
    if ('invalid' in stored) return { status: 'failed', error: { kind: 'invalid_result', message: stored.invalid } };
    const { json } = stored;
    const sums = new Map<string, Decimal>();
    for (const [name, value] of ctx.aggregates ?? []) {
      const sum = sums.get(name);
      sums.set(name, sum ? addDecimal(sum, value) : value);
    }
    return {
      status: 'succeeded',
      result: json === undefined ? null : JSON.parse(json),
      aggregates: Object.fromEntries([...sums].map(([name, sum]) => [name, formatDecimal(sum)])),
    };
  } catch (error) {
    if (isPermanent(error)) return { status: 'failed', error: describeError(error, 'permanent') };
    const kind = error instanceof ItemAbortedError && error.reason === 'timeout' ? 'timeout' : 'transient';
    return error instanceof RetryLaterError
      ? { status: 'retry', error: describeError(error, kind), delayMs: error.delayMs }
      : { status: 'retry', error: describeError(error, kind) };
  } finally {
    clearTimeout(timer);
  }
}
