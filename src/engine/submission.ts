/**
 * Turning a stream of items into batches and chunks for the store: validating each item,
 * packing items into chunks by count and bytes, splitting a file into several batches, and
 * computing each batch's content digest for idempotent submits. Nothing here holds more than
 * one chunk of items in memory.
 */

import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import { InputError, oneLineIssues } from '../core/errors.js';
import { lossyItem, MAX_JSON_DEPTH, nestedDeeperThan } from '../core/json-values.js';
import type { RunOptions } from '../core/types.js';
import type { NewBatch, NewChunk } from '../store/store.js';
import { backoffSchema, processorOptionsSchema, typeSchema } from './registry.js';

/** Options of a submit. Run options left unset come from the processor (then the defaults). */
export interface SubmitOptions {
  /** Owner of the batch (default `default`). API keys see only their tenant's batches. */
  tenant?: string;
  /** 0-10, higher first (default 5). */
  priority?: number;
  /** A second submit with the same key (and the same items) returns the first batch. */
  idempotencyKey?: string;
  labels?: Record<string, string>;
  maxAttempts?: number;
  timeoutMs?: number;
  backoff?: { baseMs: number; maxMs: number };
  /** Items of this batch running at once across all workers. */
  concurrency?: number;
}

/** U+0000, or a surrogate without its pair. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Text of at most `max` characters that every store keeps as given: PostgreSQL's text and JSON
 * refuse U+0000 and lone surrogates. (Payloads and results are not held to this: their JSON
 * is made storable instead.)
 */
export const storableText = (max: number) =>
  z.string().max(max).refine((text) => !UNSTORABLE.test(text), 'must not contain U+0000 or an unpaired surrogate');

/** Most labels one batch may carry. */
export const MAX_LABELS = 32;

export const submitOptionsSchema = processorOptionsSchema.extend({
  tenant: z.string().min(1).max(200).regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only').optional(),
  priority: z.number().int().min(0).max(10).optional(),
  idempotencyKey: storableText(500).min(1).optional(),
  labels: z
    .record(storableText(100).min(1, 'a label needs a name'), storableText(1_000))
    .superRefine((labels, ctx) => {
      // Filters name a label as name:value, so a name holding ":" could never be asked for.
      for (const name of Object.keys(labels)) {
        if (name.includes(':')) ctx.addIssue({ code: 'custom', path: [name], message: 'a label name cannot contain ":" (filters are name:value)' });
      }
      // Labels come back with every batch listed: a bounded few keep listings small.
      if (Object.keys(labels).length > MAX_LABELS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_LABELS} labels` });
    })
    .optional(),
  backoff: backoffSchema.optional(),
  concurrency: z.number().int().min(1).max(100_000).optional(),
});

/** Limits on what one submission may contain. */
export interface SubmissionLimits {
  /** Largest item payload, as JSON bytes (default 1 MiB). */
  maxPayloadBytes: number;
  /** Most items per stored chunk (default 500). */
  chunkItems: number;
  /** A chunk closes once its payloads reach this many bytes (default 256 KiB). */
  chunkBytes: number;
}

export const DEFAULT_LIMITS: SubmissionLimits = { maxPayloadBytes: 1 << 20, chunkItems: 500, chunkBytes: 256 << 10 };

/**
 * A source of items of payload type `P`. `where(index)`, when present, names where the item
 * just read came from (`rows.csv:17`) for error messages; otherwise errors say `item N`.
 */
export type ItemSource<P = unknown> = (Iterable<P> | AsyncIterable<P>) & { where?: (index: number) => string | Promise<string> };

/**
 * Throws an InputError unless `items` is an array, iterable or async iterable of items. A string
 * is iterable too, by character, which no one means by a batch: it is refused as well.
 */
export function checkItemSource(items: unknown): asserts items is ItemSource {
  if (typeof items === 'string') {
    throw new InputError('items is a string; pass an array (or iterable) of items, or submitFile() for a file', { code: 'invalid_items' });
  }
  const iterable = items !== null && typeof items === 'object' && (Symbol.iterator in items || Symbol.asyncIterator in items);
  if (!iterable) {
    const what = items == null ? String(items) : typeof items === 'object' ? 'an object that is not iterable' : `a ${typeof items}`;
    throw new InputError(`items is ${what}; pass an array, an iterable or an async iterable of items`, { code: 'invalid_items' });
  }
}

/** Validates submit options and turns them into the batch to create. */
export function newBatch(type: string, options: SubmitOptions, defaultTenant: string): NewBatch {
  const typeCheck = typeSchema.safeParse(type);
  if (!typeCheck.success) throw new InputError(`type ${JSON.stringify(type)}: ${typeCheck.error.issues[0]!.message}`, { code: 'invalid_type' });
  const parsed = submitOptionsSchema.safeParse(options);
  if (!parsed.success) throw new InputError(`submit options: ${oneLineIssues(parsed.error.issues)}`, { code: 'invalid_options' });
  const o = parsed.data;
  const run: Partial<RunOptions> = {};
  if (o.maxAttempts !== undefined) run.maxAttempts = o.maxAttempts;
  if (o.timeoutMs !== undefined) run.timeoutMs = o.timeoutMs;
  if (o.backoff !== undefined) run.backoff = o.backoff;
  if (o.concurrency !== undefined) run.concurrency = o.concurrency;
  return {
    tenant: o.tenant ?? defaultTenant,
    type,
    priority: o.priority ?? 5,
    labels: o.labels ?? {},
    idempotencyKey: o.idempotencyKey ?? null,
    options: run,
  };
}

/** Sizes of `parts` contiguous batches for `count` items, as equal as they can be. */
export function splitSizes(count: number, parts: number): number[] {
  const base = Math.floor(count / parts);
  const extra = count % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/**
 * Packs a stream of items into chunks for `batches` (one, or several with `sizes` items each,
 * in order). Read `digests()` after the stream is exhausted.
 */
export class Submission {
  private readonly hashes: Hash[];
  private computed: string[] | null = null;
  private finished = false;

  constructor(
    readonly batches: NewBatch[],
    private readonly sizes: number[] | null,
    private readonly limits: SubmissionLimits = DEFAULT_LIMITS,
  ) {
    this.hashes = batches.map((b) => {
      const hash = createHash('sha256');
      const labels = Object.entries(b.labels).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
      hash.update(JSON.stringify([b.tenant, b.type, b.priority, labels, b.options]));
      return hash;
    });
  }

  /** Each batch's digest of its options and items; the same array on every call. */
  digests(): string[] {
    if (!this.finished) throw new Error('digests() read before the submission was streamed to the end');
    // A hash gives its digest once; a store that meets a concurrent duplicate asks again.
    this.computed ??= this.hashes.map((h) => h.digest('hex'));
    return this.computed;
  }

  /** The chunks of the submission, read lazily from `source`. */
  async *chunks(source: ItemSource): AsyncGenerator<NewChunk> {
    // Arrays are counted from 1 in messages, so each item is also named by its seq (from 0).
    const where = async (index: number) => (source.where ? await source.where(index) : `item ${index + 1} (seq ${index})`);
    const { maxPayloadBytes, chunkItems, chunkBytes } = this.limits;
    const counted = () => this.sizes!.reduce((a, b) => a + b, 0);
    let batchIndex = 0;
    let seq = 0;
    let index = 0;
    let parts: string[] = [];
    let bytes = 0;
    let seq0 = 0;
    const flush = (): NewChunk => {
      // The digest covers each item's JSON and a newline, in order: hashed a chunk at a time.
      this.hashes[batchIndex]!.update(`${parts.join('\n')}\n`);
      const chunk = { batchIndex, seq0, n: parts.length, payloads: `[${parts.join(',')}]` };
      parts = [];
      bytes = 0;
      seq0 = seq;
      return chunk;
    };
    // Chunks that an item closed, to be yielded: the one before a batch's end, then its own.
    const closed: NewChunk[] = [];
    /** Adds one item to its chunk. Throws `Refused` for a bad item. */
    const add = (item: unknown): void => {
      if (this.sizes && seq === this.sizes[batchIndex]) {
        if (parts.length > 0) closed.push(flush());
        batchIndex++;
        seq = 0;
        seq0 = 0;
      }
      if (this.sizes && batchIndex >= this.sizes.length) throw new Refused(`more items than the ${counted()} counted before submitting`, 'invalid_input');
      let json: string | undefined;
      try {
        json = JSON.stringify(item);
      } catch (error) {
        throw new Refused(`item is not JSON-serialisable: ${(error as Error).message}`, 'invalid_item');
      }
      if (json === undefined) throw new Refused(`item is ${typeof item}, which JSON cannot hold`, 'invalid_item');
      if (nestedDeeperThan(json)) {
        throw new Refused(`item nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep; the limit is ${MAX_JSON_DEPTH}`, 'invalid_item');
      }
      const lossy = lossyItem(item);
      if (lossy) throw new Refused(lossy, 'invalid_item');
      const size = Buffer.byteLength(json);
      if (size > maxPayloadBytes) {
        throw new Refused(`item is ${size} bytes as JSON; the limit is ${maxPayloadBytes} (maxPayloadBytes)`, 'payload_too_large');
      }
      parts.push(json);
      bytes += size;
      seq++;
      index++;
      if (parts.length >= chunkItems || bytes >= chunkBytes) closed.push(flush());
    };
    try {
      if (Symbol.asyncIterator in source) {
        for await (const item of source) {
          add(item);
          if (closed.length > 0) yield* closed.splice(0);
        }
      } else {
        // A sync iterable (an array, a generator) is read without an await per item (a
        // promise among its items is awaited, as `for await` would).
        for (const next of source) {
          add(isThenable(next) ? await next : next);
          if (closed.length > 0) yield* closed.splice(0);
        }
      }
    } catch (error) {
      if (error instanceof Refused) throw new InputError(error.message, { where: await where(index), code: error.code });
      throw error;
    }
    if (parts.length > 0) yield flush();
    if (index === 0) {
      const file = (source as { path?: unknown }).path;
      throw typeof file === 'string' ? noItemsIn(file) : new InputError('there are no items to submit', { code: 'empty_submission' });
    }
    if (this.sizes && (batchIndex !== this.sizes.length - 1 || seq !== this.sizes[batchIndex])) {
      throw new InputError(`fewer items than the ${counted()} counted before submitting`, { code: 'invalid_item' });
    }
    this.finished = true;
  }
}

/** An item refused while it is packed; `chunks()` adds where it came from. */
class Refused {
  constructor(readonly message: string, readonly code: string) {}
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as { then?: unknown }).then === 'function';
}

/** The error for a file without items. */
export function noItemsIn(path: string): InputError {
  return new InputError(`${path} has no items (it is empty, or a CSV file with its header line only)`, { code: 'empty_submission' });
}
