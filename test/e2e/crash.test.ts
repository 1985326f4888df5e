/**
 * Crash test (issue 2, point 2): three real `batchline worker` processes run 100,000 items that
 * add two-decimal amounts to an aggregate, while workers are SIGKILLed at random moments and
 * restarted. At the end every item is terminal, every batch's counters equal its items, and
 * the aggregate equals the file's sum to the cent.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { formatCents } from '../../src/core/decimal.js';
import { seededRandom } from '../../src/core/random.js';
import { batchline, exited, FIXTURE_PROCESSORS, spawnBatchline } from '../helpers/cli.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { deferCleanups, freshScratch, storeKinds } from '../helpers/stores.js';

const ITEMS = 100_000;
const WORKERS = 3;
const MIN_KILLS = 5;

describe.each(storeKinds)('crash test: %s', (kind) => {
  const defer = deferCleanups();

  it('loses nothing and counts every amount once while workers are SIGKILLed', async () => {
    const { location, dir } = await freshScratch(kind, 'crash', defer);

    const random = seededRandom(kind === 'sqlite' ? 11 : 12);
    let expectedCents = 0n;
    const lines: string[] = [];
    for (let id = 0; id < ITEMS; id++) {
      const cents = BigInt(Math.floor(random() * 2_000_000) - 500_000);
      expectedCents += cents;
      lines.push(JSON.stringify({ id, amount: formatCents(cents) }));
    }
    const file = join(dir, 'amounts.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);

    const db = ['--database', location.database];
    const submitted = await batchline(['submit', '--type', 'crash.sum', '--file', file, '--batches', '4', '--json', ...db]);
    // Workers start after the submit: the only word on stderr is the note that none runs it yet.
    expect(submitted.stderr).toBe('batchline: note: no live worker runs type crash.sum (no worker is live); its items wait until a worker whose processors define it starts\n');
    expect(submitted.code).toBe(0);
    const ids: string[] = JSON.parse(submitted.stdout).batches.map((b: { id: string }) => b.id);
    expect(ids).toHaveLength(4);

    const startWorker = () =>
      spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '16', '--lease-ms', '1500', '--log-level', 'warn', ...db]);
    const workers = Array.from({ length: WORKERS }, startWorker);
    defer(() => workers.forEach((w) => w.kill('SIGKILL')));

    const bl = await Batchline.open({ database: location.database, logLevel: 'silent', migrate: false });
    defer(() => bl.close());
    const remaining = async () => (await Promise.all(ids.map((id) => bl.getBatch(id)))).reduce((n, b) => n + b.remaining, 0);

    // Kill a random worker every 0.7-2 s while work remains, and start a new one in its place.
    let kills = 0;
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline) {
      await sleep(700 + random() * 1_300);
      const left = await remaining();
      if (process.env.CRASH_DEBUG) console.log(new Date().toISOString(), { left, kills });
      if (left === 0) break;
      if (left < ITEMS * 0.02 && kills >= MIN_KILLS) continue;
      const victim = Math.floor(random() * WORKERS);
      workers[victim]!.kill('SIGKILL');
      await exited(workers[victim]!);
      kills++;
      workers[victim] = startWorker();
    }
    expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(await remaining()).toBe(0);

    const debug = (what: string) => process.env.CRASH_DEBUG && console.log(new Date().toISOString(), what);
    debug('work done');
    // Workers still alive stop gracefully on SIGTERM and exit 0. A replacement started by
    // the last kill may still be booting (a process killed while Node loads its modules dies
    // of the signal, as any process would): wait until each has registered its heartbeat.
    await Promise.all(
      workers.map(async (w) => {
        for (let i = 0; i < 600 && !(await bl.workers()).some((info) => info.pid === w.pid); i++) await sleep(50);
      }),
    );
    const codes = await Promise.all(
      workers.map(async (w) => {
        w.kill('SIGTERM');
        return (await exited(w)).code;
      }),
    );
    expect(codes, workers.map((w) => w.output()).join('\n')).toEqual([0, 0, 0]);

    debug('workers stopped');
    const batches = await Promise.all(ids.map((id) => bl.getBatch(id)));
    for (const batch of batches) {
      expect(batch.status).toBe('completed');
      expect(batch.failed).toBe(0);
    }
    expect(batches.reduce((n, b) => n + b.succeeded, 0)).toBe(ITEMS);
    expect(await counterMismatches(kind, location)).toEqual([]);
    debug('counters checked');
    const total = batches.reduce((sum, b) => sum + BigInt(b.aggregates.amount!.replace('.', '')), 0n);
    expect(total).toBe(expectedCents);

    // The kills hit running work: expired leases were handed back and items ran again.
    const expired = (await Promise.all(ids.map((id) => bl.events({ batchId: id, types: ['batch:lease-expired'], limit: 1_000 })))).flat();
    expect(expired.length).toBeGreaterThan(0);
    const { runSql } = await import('../helpers/sql.js');
    const [retried] = await runSql(kind, location, `SELECT count(*) AS n FROM ${kind === 'postgres' ? 'batchline.' : ''}items WHERE attempts > 1`);
    expect(Number(retried!.n)).toBeGreaterThan(0);
  }, 240_000);
});
