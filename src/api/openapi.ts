/**
 * The OpenAPI 3.1 document of the API, generated from the zod schemas the routes validate
 * with (zod's own JSON Schema output, draft 2020-12, which OpenAPI 3.1 uses as is).
 */

import { z } from 'zod';
import { problemSchema } from './problem.js';
import {
  batchListSchema,
  batchSchema,
  createBatchBody,
  createBatchQuery,
  healthSchema,
  itemListSchema,
  itemsQuery,
  listQuery,
  progressSchema,
  pruneBody,
  pruneResultSchema,
} from './schemas.js';

type JsonSchema = Record<string, unknown>;

function json(schema: z.ZodType, io: 'input' | 'output' = 'output'): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/**
 * Query parameters of a zod object schema. Each parameter's schema is the value it parses to
 * (`limit`: an integer from 1 to 500), as OpenAPI describes query parameters; whether it is
 * required comes from the input side, where a parameter with a default is optional.
 */
function queryParameters(schema: z.ZodObject): JsonSchema[] {
  const input = json(schema, 'input') as { properties: Record<string, JsonSchema>; required?: string[] };
  const output = json(schema, 'output') as { properties: Record<string, JsonSchema> };
  return Object.entries(output.properties).map(([name, s]) => ({
    name,
    in: 'query',
    required: input.required?.includes(name) ?? false,
    // A value JSON Schema cannot say it parses to (a lower-cased uuid) is described as sent.
    schema: Object.keys(s).length > 0 ? s : input.properties[name],
  }));
}

const idParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });
const ok = (description: string, ref: string) => ({ description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } });
const errors = {
  '400': problemResponse('Invalid request: `errors` names the fields'),
  '401': problemResponse('Missing, unknown or revoked API key'),
  '429': problemResponse('Rate limit exceeded; see Retry-After'),
  '503': problemResponse('The database cannot be reached, or its schema is behind this server (`batchline migrate`)'),
};
/** What keyless routes can answer besides their own: they are limited per client address. */
const openErrors = { '429': problemResponse('Too many requests from this address; see Retry-After') };
const timeout = { '504': problemResponse('Workers did not let go of the batch\'s items within two minutes; the cancel is recorded') };
const notFound = { '404': problemResponse('No such batch (or it belongs to another tenant)') };

/** Builds the document served at `/api/v1/openapi.json`. */
export function openApiDocument(version: string): JsonSchema {
  const action = (name: string, summary: string) => ({
    post: {
      operationId: `${name}Batch`,
      summary,
      tags: ['batches'],
      parameters: [idParameter],
      responses: {
        '200': ok('The batch after the action', 'Batch'),
        '409': problemResponse('The action makes no sense in the batch\'s state, which the detail names'),
        ...notFound,
        ...errors,
        ...(name === 'cancel' ? timeout : {}),
      },
    },
  });
  return {
    openapi: '3.1.0',
    info: { title: 'Batchline API', version, description: 'Submit, watch and steer batches. Errors are RFC 9457 problem documents with a stable `code`.' },
    servers: [{ url: '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key from `batchline keys create`' } },
      schemas: {
        Batch: json(batchSchema),
        BatchList: json(batchListSchema),
        ItemList: json(itemListSchema),
        Progress: json(progressSchema),
        Health: json(healthSchema),
        CreateBatch: json(createBatchBody, 'input'),
        Prune: json(pruneBody, 'input'),
        PruneResult: json(pruneResultSchema),
        Problem: json(problemSchema),
      },
    },
    paths: {
      '/batches': {
        post: {
          operationId: 'createBatch',
          summary: 'Create a batch from JSON, or from a streamed NDJSON or CSV body with ?type=',
          tags: ['batches'],
          parameters: [
            { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', maxLength: 500 } },
            ...queryParameters(createBatchQuery).map((p) => ({ ...p, required: false, description: 'for NDJSON and CSV bodies' })),
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/CreateBatch' } },
              'application/x-ndjson': { schema: { type: 'string', description: 'one JSON item per line (with ?type=)' } },
              'application/jsonl': { schema: { type: 'string', description: 'the same as application/x-ndjson' } },
              'text/csv': { schema: { type: 'string', description: 'a header line, then one item per row (values are strings; with ?type=)' } },
            },
          },
          responses: {
            '201': ok('Created', 'Batch'),
            '200': ok('The batch created earlier with this Idempotency-Key', 'Batch'),
            '409': problemResponse('The Idempotency-Key was used for a different batch'),
            '408': problemResponse('A streamed body stopped arriving; nothing was created'),
            '413': problemResponse('The JSON body or an item is too large'),
            '415': problemResponse('Unsupported content type'),
            ...errors,
            '503': problemResponse('The database cannot be reached or its schema is behind; or, with Retry-After, the server is reading its most uploads at once'),
          },
        },
        get: {
          operationId: 'listBatches',
          summary: 'Batches, newest first, with cursor paging',
          tags: ['batches'],
          parameters: queryParameters(listQuery),
          responses: {
            '200': ok('A page of batches; pass nextCursor as cursor for the next', 'BatchList'),
            '403': problemResponse('A tenant key asking for another tenant (?tenant=)'),
            ...errors,
          },
        },
      },
      '/batches/prune': {
        post: {
          operationId: 'pruneBatches',
          summary: 'Delete finished batches older than olderThanMs, with their items and events, oldest first (a tenant key: its own tenant\'s)',
          tags: ['batches'],
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Prune' } } } },
          responses: {
            '200': ok('How many went (or, with dryRun, would go); with more: true, send it again to go on', 'PruneResult'),
            '403': problemResponse('A tenant key naming another tenant'),
            '415': problemResponse('A body that is not JSON'),
            ...errors,
          },
        },
      },
      '/batches/{id}': {
        get: { operationId: 'getBatch', summary: 'A batch with counters, aggregates and progress', tags: ['batches'], parameters: [idParameter], responses: { '200': ok('The batch', 'Batch'), ...notFound, ...errors } },
        delete: {
          operationId: 'deleteBatch',
          summary: 'Delete a batch with its items and events (an open one is cancelled first)',
          tags: ['batches'],
          parameters: [idParameter],
          responses: {
            '204': { description: 'Deleted' },
            '409': problemResponse('Workers still hold chunks of the batch'),
            ...notFound,
            ...errors,
            ...timeout,
          },
        },
      },
      '/batches/{id}/progress': {
        get: { operationId: 'getProgress', summary: 'Processed, percent, throughput and ETA', tags: ['batches'], parameters: [idParameter], responses: { '200': ok('Progress', 'Progress'), ...notFound, ...errors } },
      },
      '/batches/{id}/items': {
        get: {
          operationId: 'listItems',
          summary: 'Items in seq order with attempts, result and error',
          tags: ['batches'],
          parameters: [idParameter, ...queryParameters(itemsQuery)],
          responses: { '200': ok('A page of items; pass nextAfter as after for the next', 'ItemList'), ...notFound, ...errors },
        },
      },
      '/batches/{id}/results': {
        get: {
          operationId: 'exportResults',
          summary: 'Every item\'s outcome, streamed',
          tags: ['batches'],
          parameters: [idParameter, { name: 'format', in: 'query', required: false, schema: { enum: ['ndjson', 'csv'], default: 'ndjson' } }],
          responses: {
            '200': { description: 'One line per item', content: { 'application/x-ndjson': { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } } } },
            ...notFound,
            ...errors,
          },
        },
      },
      '/batches/{id}/cancel': action('cancel', 'Cancel: no item starts afterwards'),
      '/batches/{id}/pause': action('pause', 'Pause: running items finish, no new ones start'),
      '/batches/{id}/resume': action('resume', 'Resume a paused batch'),
      '/batches/{id}/retry': action('retry', 'Run the failed items again'),
      '/events': {
        get: {
          operationId: 'streamEvents',
          summary: 'Server-Sent Events of every batch the key may see; resumable with Last-Event-ID',
          tags: ['batches'],
          parameters: [{ name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
          responses: { '200': { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors },
        },
      },
      '/batches/{id}/events': {
        get: {
          operationId: 'streamBatchEvents',
          summary: 'Server-Sent Events of one batch, starting with a batch:snapshot; resumable with Last-Event-ID',
          tags: ['batches'],
          parameters: [idParameter, { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } }],
          responses: { '200': { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...notFound, ...errors },
        },
      },
      '/workers': {
        get: { operationId: 'listWorkers', summary: 'Workers with their last heartbeat', tags: ['system'], responses: { '200': { description: 'Workers', content: { 'application/json': { schema: { type: 'object' } } } }, ...errors } },
      },
      '/workers/{id}/release': {
        post: {
          operationId: 'releaseWorker',
          summary: "Declare a worker dead and hand its chunks back now, not when its leases expire (admin keys)",
          tags: ['system'],
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', maxLength: 300 } }],
          responses: {
            '200': {
              description: 'Released: how many chunks it held',
              content: {
                'application/json': {
                  schema: { type: 'object', properties: { id: { type: 'string' }, chunks: { type: 'integer' } }, required: ['id', 'chunks'] },
                },
              },
            },
            '403': problemResponse('A tenant key'),
            '404': problemResponse('No such worker: it holds no lease and has no row'),
            '409': problemResponse("The worker runs in this server's own process"),
            ...errors,
          },
        },
      },
      '/health': {
        get: { operationId: 'health', summary: 'Liveness, with workers and batch counts (no key needed)', tags: ['system'], security: [], responses: { '200': ok('Alive', 'Health'), ...openErrors } },
      },
      '/ready': {
        get: {
          operationId: 'ready',
          summary: 'Database reachable and migrations current (no key needed)',
          tags: ['system'],
          security: [],
          responses: {
            '200': {
              description: 'Ready',
              content: {
                'application/json': {
                  schema: { type: 'object', properties: { ready: { const: true }, schemaVersion: { type: 'integer' } }, required: ['ready', 'schemaVersion'] },
                },
              },
            },
            '503': problemResponse('Not ready; the detail says why'),
            ...openErrors,
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics (admin keys)',
          tags: ['system'],
          responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } }, '403': problemResponse('A tenant key'), ...errors },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document (no key needed)',
          tags: ['system'],
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } }, ...openErrors },
        },
      },
    },
  };
}
