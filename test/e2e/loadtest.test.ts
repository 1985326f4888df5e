/**
 * `batchline loadtest` against `batchline serve` (on PostgreSQL when available), as real
 * processes: concurrent idempotent submissions, deliberate repeats deduplicated, every count
 * and amount adding up (exit 0); batches that never finish are a mismatch (exit 1).
 */

import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchline, exited, serveAddress, spawnBatchline } from '../helpers/cli.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

const PROCESSORS = fileURLToPath(new URL('../../dist/cli/loadtest-processors.js', import.meta.url));
const kind = storeKinds.at(-1)!;

describe(`loadtest against serve (${kind})`, () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let server: ReturnType<typeof spawnBatchline>;
  let address: string;

  beforeAll(async () => {
    db = await freshDatabase(kind);
    server = spawnBatchline(['serve', '--port', '0', '--processors', PROCESSORS, '--database', db.database, ...(db.schema ? ['--schema', db.schema] : [])]);
    address = await serveAddress(server);
  });
  afterAll(async () => {
    server?.kill('SIGTERM');
    if (server) await exited(server);
    await db?.cleanup();
  });

  it('creates every batch once from 10 clients, deduplicates the repeats, and every count adds up', async () => {
    const out = await batchline(['loadtest', '--server', address, '--batches', '40', '--items', '100', '--clients', '10', '--repeat', '25', '--json']);
    expect(out.code, `${out.stderr}\n${out.stdout}`).toBe(0);
    const report = JSON.parse(out.stdout);
    expect(report).toMatchObject({ ok: true, countsAddUp: true, created: 40, failedRequests: 0, clients: 10 });
    expect(report.deduplicated).toBe(report.expectedDeduplicated);
    expect(report.deduplicated).toBeGreaterThan(0);
    expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50);
    expect(report.itemsPerSecond).toBeGreaterThan(0);
  });

  it('exits 1 when batches do not finish, and 2 when the server cannot be reached', async () => {
    const stuck = await batchline(['loadtest', '--server', address, '--batches', '2', '--items', '5', '--type', 'nobody.runs.this', '--timeout', '1s']);
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toContain('not finished within 1000 ms');
    // Batches of a type no worker runs are given up on once that is clear, not at the timeout.
    const startedAt = Date.now();
    const unserved = await batchline(['loadtest', '--server', address, '--batches', '2', '--items', '5', '--type', 'nobody.runs.this', '--timeout', '5m']);
    expect(unserved.code).toBe(1);
    expect(unserved.stderr).toContain('no active worker runs nobody.runs.this (for 15 s)');
    expect(Date.now() - startedAt).toBeLessThan(60_000);
    const nowhere = await batchline(['loadtest', '--server', 'http://127.0.0.1:9', '--batches', '1']);
    expect(nowhere.code).toBe(2);
    expect(nowhere.stderr).toContain('cannot use the server at http://127.0.0.1:9');
  });

  // Runs last: once a key exists the server requires keys.
  it('exits 2 before sending a batch when the server refuses its key', async () => {
    const keyed = await batchline(['keys', 'create', '--tenant', 'acme', '--database', db.database, ...(db.schema ? ['--schema', db.schema] : [])]);
    expect(keyed.code).toBe(0);
    const refused = await batchline(['loadtest', '--server', address, '--batches', '2', '--items', '5', '--api-key', 'bl_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`cannot use the server at ${address}: 401 UNAUTHORIZED`);
  });
});
