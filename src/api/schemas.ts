/**
 * Request and response shapes of the HTTP API, in zod: routes validate with them and the
 * OpenAPI document is generated from them, so the two cannot drift apart.
 */

import { z } from 'zod';
import { BATCH_STATUSES, ITEM_STATUSES } from '../core/statuses.js';
import { typeSchema } from '../engine/registry.js';
import { storableText, submitOptionsSchema } from '../engine/submission.js';

const typeName = typeSchema;

/**
 * A query parameter given once: repeating it (`?limit=1&limit=2`) is an error, not a choice
 * of one of them.
 */
const once = (message = 'expected a single value') =>
  z.string({ error: (issue) => (Array.isArray(issue.input) ? 'given more than once; give it once' : issue.input === undefined ? 'required' : message) });

/**
 * A whole number in a query string, written in decimal digits: `?after=` (empty), `0x10` or
 * `1e3` are errors rather than 0, 16 or 1000, as coercing them would make them.
 */
const wholeNumber = (min: number, max: number) =>
  once(`expected a whole number from ${min} to ${max}`)
    .regex(/^-?\d{1,16}$/, `expected a whole number from ${min} to ${max}`)
    .meta({ description: `a whole number from ${min} to ${max}` })
    .transform(Number)
    .pipe(z.number().int().min(min, `expected a whole number from ${min} to ${max}`).max(max, `expected a whole number from ${min} to ${max}`));
/** Batch ids, lower-cased (SQLite compares text; PostgreSQL's uuid type does not care). */
const batchId = z
  .string()
  .uuid()
  .transform((id) => id.toLowerCase());

/** Run options and labels a submission may carry (the tenant comes from the API key). */
const submitFields = submitOptionsSchema.omit({ tenant: true });

export const createBatchBody = submitFields
  .extend({
    type: typeName,
    items: z.array(z.unknown()).min(1, 'a batch needs at least one item'),
  })
  .strict();

/** Options of a streamed (NDJSON or CSV) submission, from the query string. */
export const createBatchQuery = z
  .object({
    type: once().pipe(typeName),
    priority: wholeNumber(0, 10).optional(),
    maxAttempts: wholeNumber(1, 1_000).optional(),
    timeoutMs: wholeNumber(1, 7 * 24 * 3600_000).optional(),
    idempotencyKey: once().pipe(storableText(500).min(1)).optional(),
    /** `label=k:v`, repeatable. */
    label: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

export const idParams = z.object({ id: batchId }).strict();

/** Worker ids are `host:pid:random`, with the host as the machine names itself. */
export const workerParams = z.object({ id: storableText(300).min(1) }).strict();

export const listQuery = z
  .object({
    status: z.union([z.enum(BATCH_STATUSES), z.array(z.enum(BATCH_STATUSES))]).optional(),
    type: once().pipe(typeName).optional(),
    /** Only this tenant's batches; a tenant key may name its own tenant only. */
    tenant: once().pipe(submitOptionsSchema.shape.tenant.unwrap()).optional(),
    /** `label=k:v`, repeatable; a batch must carry all of them. */
    label: z.union([z.string(), z.array(z.string())]).optional(),
    limit: wholeNumber(1, 500).default(50),
    cursor: batchId.optional(),
  })
  .strict();

export const itemsQuery = z
  .object({
    status: once().pipe(z.enum(ITEM_STATUSES)).optional(),
    after: wholeNumber(-1, 2_147_483_647).optional(),
    limit: wholeNumber(1, 1_000).default(100),
  })
  .strict();

export const resultsQuery = z.object({ format: once().pipe(z.enum(['ndjson', 'csv'])).default('ndjson') }).strict();

/** The `Idempotency-Key` header: the same text the body's `idempotencyKey` may hold. */
export const idempotencyHeader = storableText(500).min(1);

export const progressSchema = z.object({
  status: z.enum(BATCH_STATUSES),
  total: z.number().int(),
  processed: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
  remaining: z.number().int(),
  percent: z.number(),
  itemsPerSecond: z.number().nullable(),
  etaSeconds: z.number().nullable(),
});

/** A batch id as the API answers it (lower case already): a uuid in the OpenAPI document too. */
const answeredId = z.string().uuid();

export const batchSchema = z.object({
  id: answeredId,
  tenant: z.string(),
  type: z.string(),
  status: z.enum(BATCH_STATUSES),
  priority: z.number().int(),
  total: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
  remaining: z.number().int(),
  aggregates: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
  idempotencyKey: z.string().nullable(),
  options: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  progress: progressSchema,
});

export const itemSchema = z.object({
  batchId: answeredId,
  seq: z.number().int(),
  status: z.enum(ITEM_STATUSES),
  attempts: z.number().int(),
  payload: z.unknown(),
  result: z.unknown(),
  error: z
    .object({ kind: z.string(), name: z.string().optional(), message: z.string(), at: z.string().optional() })
    .passthrough()
    .nullable(),
});

export const batchListSchema = z.object({ batches: z.array(batchSchema), total: z.number().int(), nextCursor: answeredId.nullable() });
export const itemListSchema = z.object({ items: z.array(itemSchema), nextAfter: z.number().int().nullable() });

/** The longest retention a prune takes: 100 years, as the CLI's durations. */
const MAX_AGE_MS = 36_500 * 86_400_000;

/**
 * `POST /batches/prune`: delete finished batches older than `olderThanMs`, of `tenant` (an
 * admin key: any tenant, or all; a tenant key: its own only).
 */
export const pruneBody = z
  .object({
    olderThanMs: z.number().int().min(0).max(MAX_AGE_MS).meta({ description: 'batches that finished at least this many milliseconds ago' }),
    tenant: submitOptionsSchema.shape.tenant.unwrap().optional(),
    dryRun: z.boolean().default(false),
  })
  .strict();

export const pruneResultSchema = z.object({
  /** Batches deleted, or in a dry run, that match. */
  batches: z.number().int(),
  /** The cutoff, on the database's clock. */
  finishedBefore: z.iso.datetime(),
  /** The tenant whose batches it covered: the key's own for a tenant key; null for every tenant. */
  tenant: z.string().nullable(),
  dryRun: z.boolean(),
  /** Matching batches may be left (this request's time ran out): send it again to go on. */
  more: z.boolean(),
});

/** `degraded` when the database cannot be read: the counts are null and `detail` says why. */
export const healthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  workersActive: z.number().int().nullable(),
  pendingBatches: z.number().int().nullable(),
  batchesProcessed: z.number().int().nullable(),
  detail: z.string().optional(),
});
