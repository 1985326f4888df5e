/**
 * Error classes. Outcomes a handler chooses (`PermanentError`, `RetryLaterError`) are classes
 * checked with `instanceof` (or the `permanent` flag, so errors from other copies of this
 * package and from user libraries work too). Errors the library raises carry a stable `code`
 * that the CLI maps to exit codes and the HTTP layer maps to problem responses.
 */

/** Base class of every error Batchline raises itself. `code` is stable across versions. */
export class BatchlineError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * Thrown by a handler to fail the item at once, without retries: bad input, insufficient
 * funds, a record that does not exist. Any error with `permanent === true` is treated the same.
 */
export class PermanentError extends Error {
  readonly permanent = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentError';
  }
}

/**
 * Thrown by a handler to ask for another attempt after `delayMs` instead of the batch's
 * exponential backoff (a rate limit's Retry-After, say). It still uses an attempt.
 */
/** The longest delay a retry may ask for, as for backoff settings: 2^31 - 1 ms, about 24.8 days. */
export const MAX_DELAY_MS = 2_147_483_647;

/**
 * Thrown by a handler to retry the item after `delayMs` rather than the backoff's delay: a rate
 * limit's Retry-After, a dependency known to be down for a while. It uses an attempt like any
 * transient error, and fails the item once `maxAttempts` is spent.
 */
export class RetryLaterError extends Error {
  readonly delayMs: number;
  constructor(message: string, options: { delayMs: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'RetryLaterError';
    if (!Number.isFinite(options.delayMs) || options.delayMs < 0 || options.delayMs > MAX_DELAY_MS) {
      throw new RangeError(`RetryLaterError delayMs must be a number from 0 to ${MAX_DELAY_MS} (about 24 days), got ${options.delayMs}`);
    }
    this.delayMs = options.delayMs;
  }
}

/** The batch (or other record) asked for does not exist, or belongs to another tenant. */
export class NotFoundError extends BatchlineError {
  constructor(message: string) {
    super('not_found', message);
  }
}

/** The request conflicts with the record's state: cancelling a finished batch, reusing a key. */
export class ConflictError extends BatchlineError {
  constructor(message: string, code = 'conflict') {
    super(code, message);
  }
}

/** Input that cannot be accepted: a malformed line, an oversize payload, a bad option. */
export class InputError extends BatchlineError {
  /** Where the input was wrong, such as `rows.csv:17` or `item 42`; undefined when not applicable. */
  readonly where: string | undefined;
  constructor(message: string, options: { where?: string; code?: string; cause?: unknown } = {}) {
    super(options.code ?? 'invalid_input', options.where ? `${options.where}: ${message}` : message, {
      cause: options.cause,
    });
    this.where = options.where;
  }
}

/** The database could not be reached or refused the connection. Usually worth retrying. */
export class StoreUnavailableError extends BatchlineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
  }
}

/**
 * The store's tables are missing or older than this version needs (a database migrated down,
 * or never up, under a running process): unavailable until `batchline migrate` runs.
 */
export function schemaBehind(description: string, cause: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`${description}: the schema is missing or behind this version (${(cause as Error).message}); run \`batchline migrate\``, { cause });
}

/** True when the error asks for the item to fail without retries. */
export function isPermanent(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { permanent?: unknown }).permanent === true;
}

/** Why Batchline aborted a running attempt; it is the `reason` of the handler's `ctx.signal`. */
export type AbortReason = 'timeout' | 'cancelled' | 'shutdown' | 'lease_lost';

/**
 * The abort reason handed to `ctx.signal`: the attempt timed out, the batch was cancelled, the
 * worker is shutting down, or its lease on the item was lost.
 */
export class ItemAbortedError extends BatchlineError {
  readonly reason: AbortReason;
  constructor(reason: AbortReason, message: string) {
    super(`aborted_${reason}`, message);
    this.reason = reason;
  }
}

/**
 * Validation issues (zod's, or any of the same shape) as one line, each with its field path:
 * `tenant: use letters, digits and . _ : - only; priority: Too big: expected number to be <=10`.
 */
export function oneLineIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues.map((issue) => (issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '') + issue.message).join('; ');
}
