/**
 * Batchline: a batch processing engine for TypeScript. See README.md and docs/.
 */

export { Batchline, type BatchlineOptions, type StartOptions, type SubmittedBatch, type BatchlineEventMap, type PruneOptions, type PruneResult } from './engine/batchline.js';
export type { ItemContext } from './engine/item-context.js';
export type { Handler, ProcessorOptions, Processors } from './engine/registry.js';
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
export { openStore, resolveDatabase, DEFAULT_SQLITE_PATH } from './store/open.js';
export type { Store } from './store/store.js';
