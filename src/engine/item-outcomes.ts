/**
 * What a handler's return or throw makes of an item, recorded in its chunk run: a success with
 * its result, a failure with its error, a retry with its backoff, or a cancellation. No I/O:
 * the chunk's next commit writes it.
 */

import { backoffDelay } from '../core/backoff.js';
import { lossyJsonValue, MAX_JSON_DEPTH, nestedDeeperThan } from '../core/json-values.js';
import { isPermanent, ItemAbortedError, MAX_DELAY_MS, RetryLaterError } from '../core/errors.js';
import type { ChunkRun } from './chunk-run.js';
import type { AttemptContext } from './item-context.js';
import { describeError } from './item-errors.js';

/** What became of one run of an item. */
export type ItemOutcome = 'succeeded' | 'failed' | 'retried' | 'cancelled';

/** The default largest result a handler may return, as JSON bytes (the worker's `maxResultBytes`). */
export const DEFAULT_MAX_RESULT_BYTES = 1 << 20;

/**
 * A handler's return value as the JSON text to store (undefined: no result), or why it cannot
 * be stored as it is: not JSON, changed by JSON as a submitted item would be, nested too deep,
 * or too large. One rule for the worker and for `batchline/testing`.
 */
export function storableResult(value: unknown, maxResultBytes: number): { json: string | undefined } | { invalid: string } {
  if (value === undefined) return { json: undefined };
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    return { invalid: `the result is not JSON-serialisable: ${(error as Error).message}` };
  }
  if (json === undefined) return { invalid: `the result (${typeof value}) is not JSON-serialisable` };
  // Deeper than the stores' JSON functions read, it would make every statement over its chunk fail.
  if (nestedDeeperThan(json)) return { invalid: `the result nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; the limit is ${MAX_JSON_DEPTH}` };
  // The rule items are held to at submit: a result JSON would store changed is not stored.
  const lossy = lossyJsonValue(value);
  if (lossy) return { invalid: `the result has ${lossy}; return values JSON keeps` };
  // Byte length only when the string could be too long: it costs a pass over the string.
  if (json.length > maxResultBytes / 3 && Buffer.byteLength(json) > maxResultBytes) {
    return { invalid: `the result is ${Buffer.byteLength(json)} bytes as JSON; the limit is ${maxResultBytes}` };
  }
  return { json };
}

/**
 * Records a returned value: the item succeeds with it as its result, unless it cannot be stored
 * as it is (storableResult): then it fails with kind `invalid_result`, permanently (the same
 * handler would return the same again).
 */
export function recordSuccess(run: ChunkRun, slot: number, value: unknown, ctx: AttemptContext, maxResultBytes: number): ItemOutcome {
  const stored = storableResult(value, maxResultBytes);
  if ('invalid' in stored) return invalidResult(run, slot, stored.invalid);
  run.succeed(slot, stored.json, ctx.aggregates);
  return 'succeeded';
}

function invalidResult(run: ChunkRun, slot: number, message: string): ItemOutcome {
  run.fail(slot, { kind: 'invalid_result', message });
  return 'failed';
}

/**
 * Records a throw: failed at once if permanent or on the last attempt; otherwise moved to a
 * retry chunk after its delay (RetryLaterError's, or the backoff's). Once the batch is
 * cancelled, an item that stopped on its aborted signal is cancelled, and one that failed on its
 * own account is recorded failed with its error (a cancelled batch retries nothing).
 */
export function recordFailure(run: ChunkRun, slot: number, error: unknown): ItemOutcome {
  if (run.stopped === 'cancelled' && isAbort(error)) {
    run.cancel(slot);
    return 'cancelled';
  }
  if (isPermanent(error)) {
    run.fail(slot, describeError(error, 'permanent'));
    return 'failed';
  }
  const kind = error instanceof ItemAbortedError && error.reason === 'timeout' ? 'timeout' : 'transient';
  if (run.lease.attempt >= run.options.maxAttempts || run.stopped === 'cancelled') {
    run.fail(slot, describeError(error, kind));
    return 'failed';
  }
  // Items failing in the same commit window with the same delay share one retry chunk.
  const key = error instanceof RetryLaterError ? `later:${error.delayMs}` : 'backoff';
  const delay =
    run.retryDelay(key) ??
    // Clamped again: a subclass or a copy could carry any number, and the store's interval
    // arithmetic must not overflow (a chunk whose commit always fails would be stuck).
    (error instanceof RetryLaterError ? Math.min(Math.max(0, error.delayMs) || 0, MAX_DELAY_MS) : backoffDelay(run.lease.attempt, run.options.backoff));
  run.retry(slot, delay, key);
  return 'retried';
}

/** An error that says the work stopped because its signal aborted: ours, or an AbortError (fetch's, timers'). */
function isAbort(error: unknown): boolean {
  return error instanceof ItemAbortedError || (error instanceof Error && error.name === 'AbortError');
}
