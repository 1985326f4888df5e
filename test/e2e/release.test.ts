/**
 * `batchline workers release`: a SIGKILLed worker's chunks come back at once, not when its
 * (here one-minute) leases expire, and every item still runs exactly once into the totals.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { batchline, exited, FIXTURE_PROCESSORS, spawnBatchline } from '../helpers/cli.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { deferCleanups, freshScratch, storeKinds } from '../helpers/stores.js';

const ITEMS = 200;
const LEASE_MS = 60_000;

describe.each(storeKinds)('workers release: %s', (kind) => {
  const defer = deferCleanups();

  it('hands a killed worker\'s chunks back now, and the batch completes exactly', async () => {
    const { location, dir } = await freshScratch(kind, 'release', defer);
    const file = join(dir, 'rows.jsonl');
    const amounts = Array.from({ length: ITEMS }, (_, id) => ((id * 37) % 1000) + id / 100);
    writeFileSync(file, amounts.map((a, id) => JSON.stringify({ id, amount: a.toFixed(2) })).join('\n'));
    const expected = amounts.reduce((sum, a) => sum + Math.round(a * 100), 0);

    const db = ['--database', location.database];
    const submitted = await batchline(['submit', '--type', 'slow.sum', '--file', file, '--json', ...db]);
    expect(submitted.code).toBe(0);
    const [{ id }] = JSON.parse(submitted.stdout).batches as { id: string }[];
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent', migrate: false });
    defer(() => bl.close());

    const worker = (concurrency: number) =>
      spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', String(concurrency), '--lease-ms', String(LEASE_MS), '--log-level', 'warn', ...db]);
    const first = worker(2);
    defer(() => void first.kill('SIGKILL'));
    // Killed once it is at work and has committed some of it (checkpoints every 2 s).
    for (const until = Date.now() + 30_000; Date.now() < until && (await bl.getBatch(id)).succeeded === 0; ) await sleep(100);
    const listed = await batchline(['workers', 'list', '--json', ...db]);
    expect(listed.code, listed.stderr).toBe(0);
    const [row] = JSON.parse(listed.stdout).workers as { id: string; pid: number }[];
    expect(row?.pid).toBe(first.pid);
    first.kill('SIGKILL');
    expect((await exited(first)).signal).toBe('SIGKILL');
    const before = await bl.getBatch(id);
    expect(before.remaining).toBeGreaterThan(0);

    const released = await batchline(['workers', 'release', row!.id, '--json', ...db]);
    expect(released.code, released.stderr).toBe(0);
    expect(JSON.parse(released.stdout)).toEqual({ released: [{ id: row!.id, chunks: expect.any(Number) }] });
    expect(JSON.parse(released.stdout).released[0].chunks).toBeGreaterThanOrEqual(1);
    // Released once: a second time, the worker is unknown.
    const again = await batchline(['workers', 'release', row!.id, ...db]);
    expect([again.code, again.stderr]).toEqual([2, expect.stringContaining(`no worker ${row!.id}`)]);

    const releasedAt = Date.now();
    const second = worker(50);
    defer(() => void second.kill('SIGKILL'));
    let batch = await bl.getBatch(id);
    while (batch.status !== 'completed' && Date.now() - releasedAt < LEASE_MS / 2) {
      await sleep(100);
      batch = await bl.getBatch(id);
    }
    // Well before the dead worker's leases would have expired.
    expect(batch).toMatchObject({ status: 'completed', total: ITEMS, succeeded: ITEMS, failed: 0 });
    expect(Date.now() - releasedAt).toBeLessThan(LEASE_MS / 2);
    const cents = batch.aggregates.amount!.split('.');
    expect(BigInt(cents[0]!) * 100n + BigInt((cents[1] ?? '0').padEnd(2, '0'))).toBe(BigInt(expected));
    expect(await counterMismatches(kind, location)).toEqual([]);
    second.kill('SIGTERM');
    expect((await exited(second)).code).toBe(0);
  });
});
