/**
 * Graceful shutdown of a real `batchline worker`: on SIGTERM it stops leasing, lets running
 * items finish, hands unstarted ones back without using their attempt, commits and exits 0;
 * another worker then finishes the batch.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { batchline, exited, FIXTURE_PROCESSORS, spawnBatchline } from '../helpers/cli.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('graceful shutdown: %s', (kind) => {
  /**
   * Submits `lines` (JSONL) as one batch of `type` through the CLI into a fresh database, and
   * runs `body` with the batch id, the database flags, a Batchline to watch it and the database's
   * location; cleans up.
   */
  const withBatch = async (type: string, lines: string, body: (id: string, db: string[], bl: Batchline, location: { database: string; schema?: string }) => Promise<void>) => {
    const location = await freshDatabase(kind);
    const dir = mkdtempSync(join(tmpdir(), 'batchline-shutdown-'));
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    try {
      const file = join(dir, 'items.jsonl');
      writeFileSync(file, lines);
      const db = ['--database', location.database];
      const { stdout } = await batchline(['submit', '--type', type, '--file', file, '--json', ...db]);
      await body(JSON.parse(stdout).batches[0].id as string, db, bl, location);
    } finally {
      await bl.close();
      rmSync(dir, { recursive: true, force: true });
      await location.cleanup();
    }
  };

  /** Sends SIGTERM, expects exit 0, and returns how long the process took to exit. */
  const terminate = async (worker: ReturnType<typeof spawnBatchline>) => {
    const signalledAt = Date.now();
    worker.kill('SIGTERM');
    const { code } = await exited(worker);
    expect(code, worker.output()).toBe(0);
    return Date.now() - signalledAt;
  };

  it('finishes or hands back in-flight work on SIGTERM and exits 0', () =>
    withBatch('slow.sum', Array.from({ length: 400 }, (_, id) => JSON.stringify({ id, amount: '0.01' })).join('\n'), async (id, db, bl, location) => {
      const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '8', '--log-level', 'info', ...db]);
      while ((await bl.getBatch(id)).succeeded < 16) await sleep(20);
      expect(await terminate(worker)).toBeLessThan(5_000);
      expect(worker.output()).toContain('worker stopped');

      const stopped = await bl.getBatch(id);
      expect(stopped.status).toBe('running');
      expect(stopped.succeeded).toBeGreaterThanOrEqual(16);
      expect(stopped.remaining).toBeGreaterThan(0);
      expect(await bl.items(id, { status: 'running' })).toEqual([]);
      const pending = await bl.items(id, { status: 'pending', limit: 1_000 });
      expect(pending).toHaveLength(stopped.remaining);
      expect(pending.every((item) => item.attempts === 0)).toBe(true);
      expect(await bl.workers()).toEqual([]);

      const second = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '50', ...db]);
      const done = await bl.wait(id, { timeoutMs: 30_000 });
      second.kill('SIGINT');
      expect((await exited(second)).code).toBe(0);
      expect(done).toMatchObject({ status: 'completed', succeeded: 400, failed: 0, aggregates: { amount: '4.00' } });
      expect(await counterMismatches(kind, location)).toEqual([]);
    }));

  it('exits after its shutdown deadline even when a handler ignores its abort signal', () =>
    withBatch('deaf.wait', '{"id":1}\n{"id":2}\n', async (id, db, bl) => {
      const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--shutdown-ms', '500', '--log-level', 'info', ...db]);
      while ((await bl.items(id, { status: 'running' })).length < 2) await sleep(20);
      // 500 ms for the items, then a grace period after aborting them: far from the minute.
      expect(await terminate(worker)).toBeLessThan(15_000);
      expect(worker.output()).toContain('items did not stop after abort');
      expect(await bl.items(id, { status: 'running' })).toEqual([]);
      expect((await bl.getBatch(id)).remaining).toBe(2);
    }));

  it('stops `batchline run` on SIGINT as a worker stops, says what is left, and exits 1', async () => {
    const location = await freshDatabase(kind);
    const dir = mkdtempSync(join(tmpdir(), 'batchline-shutdown-'));
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    try {
      const file = join(dir, 'items.jsonl');
      writeFileSync(file, Array.from({ length: 400 }, (_, id) => JSON.stringify({ id, amount: '0.01' })).join('\n'));
      const db = ['--database', location.database];
      const run = spawnBatchline(['run', '--processors', FIXTURE_PROCESSORS, '--type', 'slow.sum', '--file', file, '--concurrency', '8', '--json', ...db]);
      let id: string | undefined;
      while (!id || (await bl.getBatch(id)).succeeded < 16) {
        await sleep(20);
        id ??= (await bl.listBatches())[0]?.id;
      }
      const signalledAt = Date.now();
      run.kill('SIGINT');
      const { code } = await exited(run);
      expect(code, run.output()).toBe(1);
      expect(Date.now() - signalledAt).toBeLessThan(5_000);
      const summary = JSON.parse(run.output().slice(run.output().indexOf('{')));
      expect(summary).toMatchObject({ interrupted: 'SIGINT', total: 400, failed: 0, remaining: 400 - summary.succeeded });
      expect(summary).not.toHaveProperty('created');

      // Nothing was left leased or charged an attempt it did not use.
      const stopped = await bl.getBatch(id);
      expect(stopped.succeeded).toBe(summary.succeeded);
      expect(stopped.remaining).toBe(400 - summary.succeeded);
      expect(await bl.items(id, { status: 'running' })).toEqual([]);
      const pending = await bl.items(id, { status: 'pending', limit: 1_000 });
      expect(pending).toHaveLength(stopped.remaining);
      expect(pending.every((item) => item.attempts === 0)).toBe(true);

      const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '50', ...db]);
      const done = await bl.wait(id, { timeoutMs: 30_000 });
      worker.kill('SIGTERM');
      expect((await exited(worker)).code).toBe(0);
      expect(done).toMatchObject({ status: 'completed', succeeded: 400, failed: 0, aggregates: { amount: '4.00' } });
      expect(await counterMismatches(kind, location)).toEqual([]);
    } finally {
      await bl.close();
      rmSync(dir, { recursive: true, force: true });
      await location.cleanup();
    }
  });
});
