/**
 * A 1,000,000-row NDJSON upload through `batchline serve` with the server's heap capped at
 * 64 MB: the rows (about 50 MB of text, several times that as objects) could not be buffered,
 * so success shows they are streamed. The server's peak RSS is read from /proc and printed,
 * and must stay far below what buffering would take. `npm run bench:upload` compares the peak
 * at 1,000,000 and 3,000,000 rows.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ndjsonBody, rssMb } from '../../bench/upload.js';
import { BatchlineClient } from '../../src/client/index.js';
import { exited, serveAddress, spawnBatchline } from '../helpers/cli.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

const ROWS = 1_000_000;

describe.each(storeKinds)('1,000,000-row upload: %s', (kind) => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let server: ReturnType<typeof spawnBatchline>;
  let address: string;

  beforeAll(async () => {
    db = await freshDatabase(kind);
    server = spawnBatchline(['serve', '--port', '0', '--no-workers', '--database', db.database, ...(db.schema ? ['--schema', db.schema] : [])], {
      env: { NODE_OPTIONS: '--max-old-space-size=64' },
    });
    address = await serveAddress(server);
  });
  afterAll(async () => {
    server?.kill('SIGTERM');
    if (server) await exited(server);
    await db?.cleanup();
  });

  it('streams into one batch with the server\'s memory flat', async () => {
    const baseline = rssMb(server.pid!, 'VmRSS');
    const started = performance.now();
    const batch = await new BatchlineClient({ baseUrl: address }).uploadBatch('upload.rows', ndjsonBody(ROWS), { format: 'ndjson' });
    const seconds = (performance.now() - started) / 1000;
    const peak = rssMb(server.pid!, 'VmHWM');
    console.log(`${kind}: ${ROWS} rows uploaded in ${seconds.toFixed(1)} s; server peak RSS ${baseline} MB before, ${peak} MB after (heap capped at 64 MB)`);
    expect(batch).toMatchObject({ created: true, total: ROWS, status: 'queued' });
    expect(peak).toBeLessThan(300);
  }, 180_000);
});
