/**
 * Processors: the user's handlers by type, with their default run options. A batch's own
 * options (given at submit) win over its processor's, which win over the library defaults.
 */

import { z } from 'zod';
import { InputError, oneLineIssues } from '../core/errors.js';
import { DEFAULT_RUN_OPTIONS, type RunOptions } from '../core/types.js';
import type { ItemTypes } from '../index.js';
import type { ItemContext } from './item-context.js';

/** The item types the application declared in ItemTypes. */
export type DeclaredType = keyof ItemTypes & string;

/** The payload of items of type `T`: as declared in ItemTypes, else `Otherwise`. */
export type PayloadOf<T extends string, Otherwise = unknown> = T extends DeclaredType
  ? ItemTypes[T] extends { payload: infer P }
    ? P
    : unknown
  : Otherwise;

/** What a handler of type `T` returns: as declared in ItemTypes, else anything. */
export type ResultOf<T extends string> = T extends DeclaredType ? (ItemTypes[T] extends { result: infer R } ? R : unknown) : unknown;

/** Handles one item. Returns a JSON-serialisable result (or nothing) or throws. */
export type Handler<P = any, R = unknown> = (payload: P, ctx: ItemContext) => R | Promise<R>;

/** Defaults for every batch of a processor's type. */
export interface ProcessorOptions {
  /** Attempts per item, counting the first (default 3). */
  maxAttempts?: number;
  /** Per-attempt time limit in ms (default 5 minutes). */
  timeoutMs?: number;
  /** Retry spacing (default 1 s doubling to 5 minutes, with jitter). */
  backoff?: { baseMs: number; maxMs: number };
}

/** One entry of a processors module: a handler alone, or with its options. */
export type ProcessorEntry<P = any, R = unknown> = Handler<P, R> | ({ handler: Handler<P, R> } & ProcessorOptions);

/**
 * The default export of a processors module (`batchline run|worker|serve --processors FILE`):
 * each type's handler, alone or with its options. Write `export default { … } satisfies
 * Processors` and each handler's `ctx` is typed, and so are the payload and result of every
 * type declared in ItemTypes; other types take any payload.
 */
export type Processors = { [T in DeclaredType]?: ProcessorEntry<PayloadOf<T>, ResultOf<T>> } & Record<string, ProcessorEntry>;

export interface Processor {
  type: string;
  handler: Handler;
  options: ProcessorOptions;
}

/** Delays are stored as 32-bit integers (about 24 days at most). */
export const backoffSchema = z
  .object({ baseMs: z.number().int().min(0).max(2_147_483_647), maxMs: z.number().int().min(0).max(2_147_483_647) })
  .strict()
  .refine((b) => b.maxMs >= b.baseMs, { message: 'maxMs must be at least baseMs (the first delay)', path: ['maxMs'] });

/** Validates processor options; the same limits apply to a batch's options at submit. */
export const processorOptionsSchema = z
  .object({
    maxAttempts: z.number().int().min(1).max(1000).optional(),
    timeoutMs: z.number().int().min(1).max(7 * 24 * 3600_000).optional(),
    backoff: backoffSchema.optional(),
  })
  .strict();

/** Type names: letters, digits and `._:-`, as they appear in URLs, CLI flags and SQL. */
export const typeSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only');

/** The processors a Batchline instance (and so its workers) can run. */
export class Registry {
  private readonly processors = new Map<string, Processor>();

  /** Registers the handler of `type`; a type already defined throws (code `already_defined`). */
  define(type: string, handler: Handler, options: ProcessorOptions = {}): void {
    const name = typeSchema.safeParse(type);
    if (!name.success) throw new InputError(`processor type ${JSON.stringify(type)}: ${name.error.issues[0]!.message}`);
    if (typeof handler !== 'function') throw new InputError(`processor ${type}: handler must be a function`);
    // A second handler for a type is most likely two modules claiming it; replacing the first
    // would run one of them silently.
    if (this.processors.has(type)) throw new InputError(`processor ${type} is already defined; define each type once`, { code: 'already_defined' });
    const parsed = processorOptionsSchema.safeParse(options);
    if (!parsed.success) throw new InputError(`processor ${type}: ${oneLineIssues(parsed.error.issues)}`);
    this.processors.set(type, { type, handler, options: parsed.data });
  }

  get(type: string): Processor | undefined {
    return this.processors.get(type);
  }

  has(type: string): boolean {
    return this.processors.has(type);
  }

  types(): string[] {
    return [...this.processors.keys()];
  }

  /** Effective options for a batch of `type`: batch, then processor, then defaults. */
  resolve(type: string, batch: Partial<RunOptions>): RunOptions {
    const processor = this.processors.get(type)?.options ?? {};
    return {
      maxAttempts: batch.maxAttempts ?? processor.maxAttempts ?? DEFAULT_RUN_OPTIONS.maxAttempts,
      timeoutMs: batch.timeoutMs ?? processor.timeoutMs ?? DEFAULT_RUN_OPTIONS.timeoutMs,
      backoff: batch.backoff ?? processor.backoff ?? DEFAULT_RUN_OPTIONS.backoff,
      concurrency: batch.concurrency ?? null,
    };
  }
}
