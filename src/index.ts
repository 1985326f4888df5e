/**
 * Batchline: a batch processing engine for TypeScript. See README.md and docs/.
 */

export { Batchline, type BatchlineOptions, type StartOptions, type SubmittedBatch, type BatchlineEventMap, type PruneOptions, type PruneResult } from './engine/batchline.js';
export type { ItemContext } from './engine/item-context.js';
export type { DeclaredType, Handler, PayloadOf, ProcessorEntry, ProcessorOptions, Processors, ResultOf } from './engine/registry.js';
export type { SubmitOptions, ItemSource, SubmissionLimits } from './engine/submission.js';
export type { WorkerOptions } from './engine/worker.js';
export type { ReconcilerOptions } from './engine/reconciler.js';
export { openFile, countItems, type FileSource, type FileFormat } from './engine/sources.js';
export { createLogger, type Logger } from './engine/logger.js';
export {
  BatchlineError,
  ConflictError,
  InputError,
  ItemAbortedError,
  NotFoundError,
  PermanentError,
  RetryLaterError,
  StoreUnavailableError,
  isPermanent,
  type AbortReason,
} from './core/errors.js';
export { addDecimalText, compareDecimal, parseDecimal, formatDecimal, type Decimal, type DecimalInput } from './core/decimal.js';
export { BATCH_STATUSES, ITEM_STATUSES, isTerminalBatchStatus, type BatchStatus, type ItemStatus } from './core/statuses.js';
export type { Batch, BatchEvent, EventType, Item, ItemError, RunOptions, WorkerInfo } from './core/types.js';
export { isWorkerActive, WORKER_ACTIVE_MS } from './core/types.js';
export { openStore, resolveDatabase, DEFAULT_SQLITE_PATH } from './store/open.js';
export type { Store } from './store/store.js';

/**
 * Payload and result types by item type, for `define` and `submit` to check. Empty until an
 * application declares its own, by declaration merging; until then every type takes any
 * payload, as do types left out of it:
 *
 * ```ts
 * declare module 'batchline' {
 *   interface ItemTypes {
 *     'txn.apply': { payload: { id: string; amount: string }; result: { ok: boolean } };
 *   }
 * }
 * ```
 *
 * Then `define('txn.apply', handler)` types the handler's payload and checks what it returns,
 * and `submit('txn.apply', items)` refuses items of another shape, at compile time. Either
 * member may be left out (`result` then goes unchecked). Payloads are stored as JSON, so
 * declare what survives JSON.stringify: strings for decimals and dates.
 */
// Declared here, in the package's entry module, because TypeScript merges a `declare module
// 'batchline'` only with interfaces that module itself declares, not with ones it re-exports.
export interface ItemTypes {}
