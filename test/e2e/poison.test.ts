/**
 * A poison item on its final attempt: the item SIGKILLs its `batchline worker` process. The
 * crash may fail the items that could have run under the lost lease (at most once is what a
 * final attempt promises), but not the rest of the chunk: the worker writes how far it has
 * started items before starting them, and the next lease gives the items beyond that mark back.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Batchline } from '../../src/index.js';
import { batchline, exited, FIXTURE_PROCESSORS, spawnBatchline } from '../helpers/cli.js';
import { sleep } from '../helpers/factory.js';
import { counterMismatches } from '../helpers/sql.js';
import { deferCleanups, freshScratch, storeKinds } from '../helpers/stores.js';

const ITEMS = 3_000;
// Stored chunks hold 500 items. The poison sits late in one, so the worker holds the next chunk
// too (leased ahead, not started): a crash must fail neither that chunk nor the rest of its own.
const POISON = 1_450;

describe.each(storeKinds)('poison item on its final attempt: %s', (kind) => {
  const defer = deferCleanups();

  it('fails what may have run when the worker dies, and runs the rest of the chunk', async () => {
    const { location, dir } = await freshScratch(kind, 'poison', defer);
    const file = join(dir, 'rows.jsonl');
    writeFileSync(file, Array.from({ length: ITEMS }, (_, id) => JSON.stringify(id === POISON ? { id, kill: true } : { id })).join('\n'));

    const db = ['--database', location.database];
    const submitted = await batchline(['submit', '--type', 'poison.once', '--file', file, '--json', ...db]);
    expect(submitted.code).toBe(0);
    const [{ id }] = JSON.parse(submitted.stdout).batches as { id: string }[];

    const bl = await Batchline.open({ database: location.database, logLevel: 'silent', migrate: false });
    defer(() => bl.close());
    let crashes = 0;
    let logs = '';
    const deadline = Date.now() + 90_000;
    // Leases of 2 s: long enough that a busy machine does not lose one without the crash.
    const start = () => spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--concurrency', '4', '--lease-ms', '2000', '--log-level', 'warn', ...db]);
    let worker = start();
    defer(() => void worker.kill('SIGKILL'));
    while (Date.now() < deadline && (await bl.getBatch(id)).status !== 'completed') {
      if (worker.exitCode !== null || worker.signalCode !== null) {
        const exit = await exited(worker);
        expect(exit.signal).toBe('SIGKILL');
        crashes++;
        logs += worker.output();
        worker = start();
      }
      await sleep(200);
    }
    logs += worker.output();
    const batch = await bl.getBatch(id);
    expect(batch).toMatchObject({ status: 'completed', total: ITEMS, remaining: 0 });
    expect(crashes).toBe(1);

    const failed = await bl.items(id, { status: 'failed', limit: ITEMS });
    // What may have run: items finished since the last commit, items running at the kill, and
    // the start mark's window ahead of them (about 100 ms of items, 80 here). Without marks,
    // every unrecorded item of the chunks the worker held failed: about 500 to 600.
    expect(failed.length).toBeGreaterThanOrEqual(1);
    // Which items failed, as runs of seqs, and any lease lost without the crash: what to look
    // at should this fail.
    const runs: [number, number][] = [];
    for (const { seq } of failed) {
      const last = runs.at(-1);
      if (last && last[1] === seq - 1) last[1] = seq;
      else runs.push([seq, seq]);
    }
    expect(failed.length, `failed ${JSON.stringify(runs)}; lease losses logged: ${logs.split('worker:lease-lost').length - 1}`).toBeLessThanOrEqual(250);
    expect(failed.find((item) => item.seq === POISON)?.error?.kind).toBe('lease_lost');
    expect(batch.succeeded).toBe(ITEMS - failed.length);
    expect(await counterMismatches(kind, location)).toEqual([]);
  }, 120_000);
});
