/**
 * `ctx`, the second argument of every handler. It is created once per item attempt, on the hot
 * path, so everything costly (the AbortController, the child logger) is made only when the
 * handler first touches it.
 */

import type { Logger } from 'pino';
import { MAX_DELTA_CHARS, parseDecimal, type Decimal, type DecimalInput } from '../core/decimal.js';
import { PermanentError } from '../core/errors.js';

const AGGREGATE_NAME = /^[A-Za-z0-9_.:-]{1,100}$/;

/** What a handler knows about the item it runs and the tools it may use: its `ctx`. */
export interface ItemContext {
  /** The batch this item belongs to. */
  readonly batchId: string;
  /** The item's position in its batch, from 0. */
  readonly seq: number;
  /** 1 on the first run; a retry or a run after a lost lease counts up. */
  readonly attempt: number;
  /** Stable for this item across attempts (`<batchId>:<seq>`): the idempotency key of outside effects. */
  readonly idempotencyKey: string;
  /** Aborted when the attempt times out, the batch is cancelled, or the worker shuts down. */
  readonly signal: AbortSignal;
  /** A pino logger bound to this item's batch, seq and attempt. */
  readonly log: Logger;
  /**
   * Adds `delta` to the batch's aggregate `name` if this attempt succeeds. Deltas are exact
   * decimals (a number is read as the text it prints as, "12.34"); a failed or retried attempt
   * contributes nothing. Throws PermanentError for a delta that is not a decimal number, or
   * longer than 500 characters written out.
   */
  aggregate(name: string, delta: DecimalInput): void;
}

/**
 * The worker's side of one attempt's `ctx`: what the handler sees (ItemContext), and what only
 * the worker uses (the contributions to record, aborting the signal).
 */
export class AttemptContext implements ItemContext {
  /** Aggregate contributions of this attempt; applied only if it succeeds. */
  aggregates: [string, Decimal][] | null = null;
  private controller: AbortController | null = null;
  private abortReason: unknown = undefined;
  private logger: Logger | null = null;

  constructor(
    /** The batch this item belongs to. */
    readonly batchId: string,
    /** The item's position in its batch, from 0. */
    readonly seq: number,
    /** 1 on the first run; a retry or a run after a lost lease counts up. */
    readonly attempt: number,
    private readonly baseLogger: Logger,
  ) {}

  /** Stable for this item across attempts: use it as the idempotency key of outside effects. */
  get idempotencyKey(): string {
    return `${this.batchId}:${this.seq}`;
  }

  /** Aborted when the attempt times out, the batch is cancelled, or the worker shuts down. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** A pino logger bound to this item's batch, seq and attempt. */
  get log(): Logger {
    return (this.logger ??= this.baseLogger.child({ batchId: this.batchId, seq: this.seq, attempt: this.attempt }));
  }

  aggregate(name: string, delta: DecimalInput): void {
    if (!AGGREGATE_NAME.test(name)) {
      throw new PermanentError(`aggregate name ${JSON.stringify(name)} must be 1-100 letters, digits or _ . : -`);
    }
    let value: Decimal;
    try {
      value = parseDecimal(delta, MAX_DELTA_CHARS);
    } catch (error) {
      throw new PermanentError(`aggregate ${name}: ${(error as Error).message}`);
    }
    (this.aggregates ??= []).push([name, value]);
  }

  /** Why the signal was aborted (the first reason), or undefined while it was not. */
  get abortedBy(): unknown {
    return this.abortReason;
  }

  /** Aborts the signal (once); the first reason wins. */
  abort(reason: unknown): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}
