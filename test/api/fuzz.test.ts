/**
 * Property-based tests of the HTTP API (fast-check): random and malformed methods, paths,
 * query strings, headers and bodies at every endpoint, through real HTTP, on both stores.
 * Properties: no response is a 500; every error is a well-formed problem document; a request
 * that fails creates nothing; and every batch that exists has exactly `total` items.
 */

import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemSchema } from '../../src/api/problem.js';
import { createServer } from '../../src/api/server.js';
import { Batchline } from '../../src/index.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

const RUNS = Number(process.env.BATCHLINE_FUZZ_RUNS ?? 250);

/** Printable ASCII, which fetch accepts in header values. */
const headerText = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ;=/-_.,:+*"\'()[]{}%'.split('')), maxLength: 60 });
const anyText = fc.string({ unit: 'grapheme', maxLength: 200 });

const contentType = fc.oneof(
  fc.constantFrom('application/json', 'application/x-ndjson', 'text/csv', 'application/json; charset=utf-8', 'text/plain', 'application/xml', 'multipart/form-data', ''),
  headerText,
);

const item = fc.oneof(fc.record({ n: fc.integer() }), fc.jsonValue({ maxDepth: 3 }));

/** Bodies: valid-looking batches, random JSON, NDJSON with and without garbage lines, CSV-ish text, raw bytes. */
const body = fc.oneof(
  fc.record({ type: fc.oneof(fc.constant('echo'), anyText), items: fc.array(item, { maxLength: 20 }) }, { requiredKeys: [] }).map((b) => JSON.stringify(b)),
  fc
    .record({
      type: fc.constant('echo'),
      items: fc.array(item, { minLength: 1, maxLength: 10 }),
      priority: fc.oneof(fc.integer({ min: -5, max: 15 }), anyText),
      maxAttempts: fc.oneof(fc.integer({ min: -1, max: 2_000 }), fc.constant(null)),
      labels: fc.dictionary(anyText, fc.oneof(anyText, fc.integer())),
      idempotencyKey: fc.oneof(anyText, fc.constant('')),
      tenant: anyText,
      extra: fc.jsonValue(),
    }, { requiredKeys: ['type', 'items'] })
    .map((b) => JSON.stringify(b)),
  fc
    .record({ olderThanMs: fc.oneof(fc.integer(), fc.double(), fc.constant(1e300), anyText), tenant: fc.oneof(anyText, fc.integer()), dryRun: fc.oneof(fc.boolean(), anyText), extra: fc.jsonValue() }, { requiredKeys: [] })
    .map((b) => JSON.stringify(b)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.array(fc.oneof(item.map((i) => JSON.stringify(i)), anyText), { maxLength: 20 }).map((lines) => lines.join('\n')),
  fc.array(fc.array(fc.oneof(anyText, fc.constantFrom('"', '""', ',', '\r\n')), { maxLength: 4 }).map((cells) => cells.join(',')), { maxLength: 10 }).map((rows) => rows.join('\n')),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
  anyText,
);

const query = fc.oneof(
  fc.constant(''),
  fc
    .dictionary(fc.oneof(fc.constantFrom('type', 'status', 'limit', 'cursor', 'after', 'format', 'priority', 'maxAttempts', 'label', 'idempotencyKey', 'timeoutMs'), anyText), fc.oneof(anyText, fc.integer().map(String)), { maxKeys: 4 })
    .map((q) => `?${new URLSearchParams(q).toString()}`),
  fc.constantFrom('?type=echo', '?type=echo&priority=3&label=a:b', '?limit=%ZZ', '?status=running&status=bogus', '?type=%E0%A4%A', '?format=csv', '?after=-1&limit=1000', '?&&==&'),
);

describe.each(storeKinds)('HTTP API under random requests: %s', (kind) => {
  let bl: Batchline;
  let app: FastifyInstance;
  let base: string;
  let cleanup: () => Promise<void>;
  let existing: string;

  beforeAll(async () => {
    const db = await freshDatabase(kind);
    cleanup = db.cleanup;
    bl = await Batchline.open({ database: db.database, schema: db.schema, logLevel: 'silent' });
    app = await createServer({ batchline: bl, bodyLimit: 64 * 1024, rateLimit: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1`;
    existing = (await bl.submit('echo', [{ n: 1 }, { n: 2 }])).id;
  });
  afterAll(async () => {
    await app?.close();
    await bl?.close();
    await cleanup?.();
  });

  it('never answers 500, answers every error with a problem document, and creates nothing on failure', async () => {
    const path = fc.oneof(
      fc.constant('/batches'),
      fc.constantFrom('', '/progress', '/items', '/results', '/cancel', '/pause', '/resume', '/retry', '/nope').chain((suffix) =>
        fc.oneof(fc.constant(existing), fc.uuid(), fc.string({ maxLength: 40 }).map(encodeURIComponent)).map((id) => `/batches/${id}${suffix}`),
      ),
      fc.oneof(fc.string({ maxLength: 40 }).map(encodeURIComponent), fc.constantFrom('%00', '%ED%A0%80', 'x'.repeat(301))).map((id) => `/workers/${id}/release`),
      fc.constantFrom('/health', '/ready', '/workers', '/metrics', '/openapi.json', '/', '/batches/', '//batches', '/batches/%', '/batches/%00', '/batches/prune'),
    );
    const request = fc.record({
      method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'),
      path,
      query,
      contentType,
      body,
      idempotencyKey: fc.option(headerText),
      authorization: fc.option(fc.oneof(headerText, fc.constant('Bearer bl_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'))),
    });

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const before = (await bl.listBatches({ limit: 500 })).length;
        const headers: Record<string, string> = {};
        if (r.contentType) headers['content-type'] = r.contentType;
        if (r.idempotencyKey !== null) headers['idempotency-key'] = r.idempotencyKey;
        if (r.authorization !== null) headers.authorization = r.authorization;
        const sendsBody = r.method !== 'GET';
        const res = await fetch(`${base}${r.path}${r.query}`, { method: r.method, headers, body: sendsBody ? r.body : undefined });
        const text = await res.text();
        expect(res.status, `${r.method} ${r.path}${r.query} → ${res.status}: ${text.slice(0, 300)}`).toBeLessThan(500);
        if (res.status >= 400) {
          expect(res.headers.get('content-type')).toContain('application/problem+json');
          const problem = problemSchema.parse(JSON.parse(text));
          expect(problem.status).toBe(res.status);
          const after = (await bl.listBatches({ limit: 500 })).length;
          expect(after, 'a failed request created a batch').toBe(before);
        }
      }),
      { numRuns: RUNS },
    );

    // No partial batches: every batch that exists holds exactly its total of items.
    for (const batch of await bl.listBatches({ limit: 500 })) {
      let items = 0;
      for (let after = -1; ; ) {
        const page = await bl.items(batch.id, { after, limit: 1_000 });
        items += page.length;
        if (page.length < 1_000) break;
        after = page.at(-1)!.seq;
      }
      expect([batch.id, items]).toEqual([batch.id, batch.total]);
    }
  }, 120_000);
});
