/**
 * Request and response shapes of the HTTP API, in zod: routes validate with them and the
 * OpenAPI document is generated from them, so the two cannot drift apart.
 */

import { z } from 'zod';
import { BATCH_STATUSES, ITEM_STATUSES } from '../core/statuses.js';
import { storableText, submitOptionsSchema } from '../engine/submission.js';

const typeName = z.string().min(1).max(200);
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
    type: typeName,
    priority: z.coerce.number().int().min(0).max(10).optional(),
    maxAttempts: z.coerce.number().int().min(1).max(1_000).optional(),
    timeoutMs: z.coerce.number().int().min(1).optional(),
    idempotencyKey: storableText(500).min(1).optional(),
    /** `label=k:v`, repeatable. */
    label: z.union([z.string(), z.array(z.string())]).optional(),
  })
  .strict();

export const idParams = z.object({ id: batchId }).strict();

export const listQuery = z
  .object({
    status: z.union([z.enum(BATCH_STATUSES), z.array(z.enum(BATCH_STATUSES))]).optional(),
    type: typeName.optional(),
    /** Only this tenant's batches; a tenant key may name its own tenant only. */
    tenant: submitOptionsSchema.shape.tenant,
    /** `label=k:v`, repeatable; a batch must carry all of them. */
    label: z.union([z.string(), z.array(z.string())]).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: batchId.optional(),
  })
  .strict();

export const itemsQuery = z
  .object({
    status: z.enum(ITEM_STATUSES).optional(),
    after: z.coerce.number().int().min(-1).max(2_147_483_647).optional(),
    limit: z.coerce.number().int().min(1).max(1_000).default(100),
  })
  .strict();

export const resultsQuery = z.object({ format: z.enum(['ndjson', 'csv']).default('ndjson') }).strict();

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

export const batchSchema = z.object({
  id: batchId,
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
  batchId: batchId,
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

export const batchListSchema = z.object({ batches: z.array(batchSchema), total: z.number().int(), nextCursor: batchId.nullable() });
export const itemListSchema = z.object({ items: z.array(itemSchema), nextAfter: z.number().int().nullable() });

export const healthSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  workersActive: z.number().int(),
  pendingBatches: z.number().int(),
  batchesProcessed: z.number().int(),
});
