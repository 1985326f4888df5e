/**
 * `batchline monitor` as a real process: exit 0 when nothing is left, 1 when the timeout
 * passes with work remaining (or items failed or were cancelled, with --fail-on-failed), 2 on
 * usage errors;
 * against the database and through a server's API.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { sleep, until } from '../helpers/factory.js';
import { batchline, exited, FIXTURE_PROCESSORS, serveAddress, spawnBatchline } from '../helpers/cli.js';

describe('monitor', () => {
  let dir: string;
  let db: string[];
  let good: string;
  let mixed: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'batchline-monitor-'));
    db = ['--database', join(dir, 'db.sqlite')];
    good = join(dir, 'good.csv');
    mixed = join(dir, 'mixed.csv');
    writeFileSync(good, `id,amount\n${Array.from({ length: 200 }, (_, i) => `${i},1.00`).join('\n')}\n`);
    writeFileSync(mixed, 'id,amount\n1,1.00\n2,-5.00\n3,2.00\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const submit = async (file: string, type = 'txn.validate', database = db) => {
    const out = await batchline(['submit', '--type', type, '--file', file, '--json', ...database]);
    expect(out.code).toBe(0);
    return JSON.parse(out.stdout).batches[0].id as string;
  };

  it('exits 2 on usage errors: nothing to watch, two selectors, a bad duration, an unknown batch', async () => {
    for (const args of [[], ['--all', '--tenant', 'acme'], ['--all', '--interval', 'soon'], ['--all', '--timeout', '30'], ['01890000-0000-7000-8000-000000000000']]) {
      const out = await batchline(['monitor', ...args, ...db]);
      expect([args, out.code]).toEqual([args, 2]);
    }
  });

  it('exits 1 when the timeout passes with work remaining, naming what is incomplete', async () => {
    // A database of its own: the batch nobody runs must not be watched by `--all` below.
    const own = ['--database', join(dir, 'orphan.sqlite')];
    const orphan = await submit(good, 'nobody.runs.this', own);
    const out = await batchline(['monitor', orphan, '--timeout', '1s', '--interval', '200ms', ...own]);
    expect(out.code).toBe(1);
    // In a log, the view at the start and the last one, so the summary matches a table.
    expect(out.stdout.split('\nworkers: ')).toHaveLength(3);
    // The time is how long it watched, rounded: a slow last read can make it 2s.
    expect(out.stderr).toMatch(new RegExp(`incomplete after [12]s: ${orphan} \\(queued, 200 remaining\\)`));
    // ... and says why it cannot finish: nothing runs its type.
    expect(out.stderr).toContain('no active worker runs nobody.runs.this: start workers whose processors define it');
    const snapshot = await batchline(['monitor', orphan, '--no-follow', '--json', ...own]);
    expect(snapshot.code).toBe(1);
    expect(JSON.parse(snapshot.stdout)).toMatchObject({ ok: false, remaining: 200, incomplete: [orphan], unservedTypes: ['nobody.runs.this'] });
  });

  it('exits 0 once every watched batch has nothing left, and 1 with --fail-on-failed when items failed or were cancelled', async () => {
    const ok = await submit(good);
    const bad = await submit(mixed);
    // --all watches the batches open at its first listing: the worker starts once it is drawn.
    const watching = spawnBatchline(['monitor', '--all', '--timeout', '60s', '--interval', '200ms', ...db]);
    await until(() => watching.output().includes('workers:'));
    const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, ...db]);
    try {
      const watched = { ...(await exited(watching)), stdout: watching.output() };
      expect(watched.code).toBe(0);
      expect(watched.stdout).toContain('2 batches: 202 succeeded, 1 failed, 0 remaining of 203');
      expect(watched.stdout).toMatch(/workers: 1 active/);
      expect(watched.stdout.split('BATCH').at(-1)).not.toContain('no active worker runs'); // the last view
      const strict = await batchline(['monitor', ok, bad, '--fail-on-failed', '--json', ...db]);
      expect(strict.code).toBe(1);
      expect(JSON.parse(strict.stdout)).toMatchObject({ ok: false, failed: 1, remaining: 0 });
      const prose = await batchline(['monitor', ok, bad, '--fail-on-failed', ...db]);
      expect(prose.code).toBe(1);
      expect(prose.stderr).toContain(`items that did not succeed in: ${bad} (1 failed)`);
      expect((await batchline(['monitor', ok, '--fail-on-failed', ...db])).code).toBe(0);
      // A cancelled batch has nothing left, but ran nothing: --fail-on-failed does not pass it.
      const dropped = await submit(good, 'nobody.runs.this');
      expect((await batchline(['cancel', dropped, ...db])).code).toBe(0);
      const lenient = await batchline(['monitor', dropped, ...db]);
      expect([lenient.code, lenient.stdout]).toEqual([0, expect.stringContaining('1 batch: 0 succeeded, 0 failed, 200 cancelled, 0 remaining of 200')]);
      const gate = await batchline(['monitor', dropped, '--fail-on-failed', '--json', ...db]);
      expect([gate.code, JSON.parse(gate.stdout)]).toEqual([1, expect.objectContaining({ ok: false, cancelled: 200, remaining: 0 })]);
      expect((await batchline(['monitor', dropped, '--fail-on-failed', ...db])).stderr).toContain(`items that did not succeed in: ${dropped} (200 cancelled)`);
    } finally {
      worker.kill('SIGTERM');
      await exited(worker);
    }
  });

  it('watches through a server\'s API with --server', async () => {
    const server = spawnBatchline(['serve', '--port', '0', '--processors', FIXTURE_PROCESSORS, ...db]);
    try {
      const address = await serveAddress(server);
      const id = await submit(good);
      const out = await batchline(['monitor', id, '--server', address, '--timeout', '60s', '--interval', '200ms', '--json']);
      expect(out.code).toBe(0);
      expect(JSON.parse(out.stdout)).toMatchObject({ ok: true, succeeded: 200, remaining: 0, batches: [{ id, status: 'completed', percent: 100 }] });
      // Ids are UUIDs: any case names the same batch.
      const upper = await batchline(['monitor', id.toUpperCase(), '--server', address, '--no-follow', '--json']);
      expect([upper.code, JSON.parse(upper.stdout).batches[0].id]).toEqual([0, id]);
      const missing = await batchline(['monitor', '01890000-0000-7000-8000-000000000000', '--server', address]);
      expect(missing.code).toBe(2);
      // A tenant key asking for another tenant is told so, not shown an empty "nothing left".
      const key = JSON.parse((await batchline(['keys', 'create', '--tenant', 'acme', '--json', ...db])).stdout).token as string;
      for (const command of ['monitor', 'status']) {
        const snooping = await batchline([command, '--tenant', 'globex', '--server', address, '--api-key', key]);
        expect([command, snooping.code]).toEqual([command, 2]);
        expect(snooping.stderr).toContain('cannot list tenant "globex"');
      }
    } finally {
      server.kill('SIGTERM');
      await exited(server);
    }
  });

  it('keeps watching when a watched batch is deleted or the server stops answering, then exits 1 at the timeout', async () => {
    const own = ['--database', join(dir, 'vanishing.sqlite')];
    const [gone, stays] = [await submit(good, 'nobody.runs.this', own), await submit(good, 'nobody.runs.this', own)];
    // A tenant with no batch at all is most likely a typo: a usage error, not "nothing left".
    const typo = await batchline(['monitor', '--tenant', 'defualt', ...own]);
    expect([typo.code, typo.stderr]).toEqual([2, 'batchline: error: tenant "defualt" has no batches: check --tenant\n']);
    const watching = spawnBatchline(['monitor', gone, stays, '--timeout', '4s', '--interval', '200ms', ...own]);
    await until(() => watching.output().includes('workers:')); // it has drawn the batches once
    // Deleted from this process: quicker than a CLI's start, well within the monitor's 4 s.
    const deleter = await Batchline.open({ database: join(dir, 'vanishing.sqlite'), logLevel: 'silent' });
    await deleter.deleteBatch(gone);
    await deleter.close();
    const watched = await exited(watching);
    expect(watched.code, watching.output()).toBe(1);
    expect(watching.output()).toContain(`batch ${gone} was deleted; no longer watched`);
    expect(watching.output()).toMatch(new RegExp(`incomplete after [45]s: ${stays} \\(queued, 200 remaining\\)`));

    const server = spawnBatchline(['serve', '--port', '0', ...own]);
    const address = await serveAddress(server);
    const remote = spawnBatchline(['monitor', stays, '--server', address, '--timeout', '5s', '--interval', '200ms']);
    await until(() => remote.output().includes('workers:'));
    server.kill('SIGTERM');
    await exited(server);
    const remotely = await exited(remote);
    expect(remotely.code, remote.output()).toBe(1);
    expect(remote.output()).toContain('cannot read the batches now');
    expect(remote.output()).toMatch(new RegExp(`incomplete after [56]s: ${stays}`));
  });

  it('sees a finished batch that runs again (retry-failed) and waits for it', async () => {
    const database = join(dir, 'retried.sqlite');
    const own = ['--database', database];
    const bl = await Batchline.open({ database, logLevel: 'silent' });
    try {
      const retried = await submit(mixed, 'txn.validate', own);
      const slow = await bl.submit('slow.sum', Array.from({ length: 40 }, (_, id) => ({ id, amount: '1.00' })));
      const watching = spawnBatchline(['monitor', '--all', '--timeout', '12s', '--interval', '200ms', ...own]);
      await until(() => watching.output().includes('workers:')); // it has listed both
      const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '2', ...own]);
      try {
        while ((await bl.getBatch(retried)).status !== 'completed') await sleep(100);
        await sleep(600); // the monitor has read it finished
        // Run its failed item again, and hold it: the monitor must not count it as done.
        await bl.retryFailed(retried);
        await bl.pause(retried);
        const exit = await exited(watching);
        expect(exit.code, watching.output()).toBe(1);
        expect(watching.output()).toMatch(new RegExp(`incomplete after \\d+s: ${retried} \\(paused, 1 remaining\\)\n`));
        expect((await bl.getBatch(slow.id)).status).toBe('completed');
      } finally {
        worker.kill('SIGTERM');
        await exited(worker);
      }
    } finally {
      await bl.close();
    }
  }, 30_000);

  it('watches hundreds of batches through a rate-limited server, reading each finished one once', async () => {
    // A day's run of one batch per organisation: 300 batches of 100 ms items, watched with
    // --all through a server that allows 50 requests per second. The server runs no workers:
    // a worker process starts once the monitor has listed what it watches, so it watches all 300.
    const database = join(dir, 'many.sqlite');
    const bl = await Batchline.open({ database, logLevel: 'silent' });
    for (let i = 0; i < 300; i++) await bl.submit('slow.sum', [{ id: 1, amount: '1.00' }, { id: 2, amount: '2.00' }]);
    await bl.close();
    const server = spawnBatchline(['serve', '--port', '0', '--no-workers', '--rate-limit', '50', '--database', database]);
    let worker: ReturnType<typeof spawnBatchline> | undefined;
    try {
      const address = await serveAddress(server);
      const requests = async (route: string, status: string, retry = false) => {
        let response = await fetch(`${address}/api/v1/metrics`);
        // The test's own reads share the monitor's budget: a 429 reads as "not yet" while it
        // runs, and is waited out for the counts at the end.
        while (retry && response.status === 429) {
          await sleep(1_000);
          response = await fetch(`${address}/api/v1/metrics`);
        }
        if (response.status !== 200) return 0;
        const metrics = await response.text();
        return Number(new RegExp(`batchline_http_requests_total\\{method="GET",route="${route}",status="${status}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
      };
      const watching = batchline(['monitor', '--all', '--server', address, '--timeout', '90s', '--interval', '200ms', '--json']);
      // Polled slowly: every /metrics read takes from the same 50 per second.
      await until(async () => (await sleep(250), (await requests('/api/v1/batches', '200')) > 0), 30_000);
      worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '20', '--database', database]);
      const out = await watching;
      expect(out.code, out.stderr).toBe(0);
      const report = JSON.parse(out.stdout) as { ok: boolean; succeeded: number; remaining: number; batches: unknown[] };
      expect(report).toMatchObject({ ok: true, remaining: 0, succeeded: 600 });
      expect(report.batches).toHaveLength(300);
      // Every refresh lists the open batches; each batch is read alone only once it left that
      // list, and again at every tenth refresh (a finished batch may run again). Reading every
      // batch on every refresh, as the monitor once did, makes 300 reads per refresh.
      const lists = await requests('/api/v1/batches', '200', true);
      const reads = await requests('/api/v1/batches/:id', '200', true);
      expect(lists).toBeGreaterThan(2);
      expect(reads).toBeGreaterThanOrEqual(300);
      expect(reads).toBeLessThanOrEqual(300 * (1 + Math.floor(lists / 10)));
    } finally {
      worker?.kill('SIGTERM');
      server.kill('SIGTERM');
      await Promise.all([exited(server), worker && exited(worker)]);
    }
  }, 120_000);
});
