/**
 * Batchline as one of the compared systems, on the same PostgreSQL as the peers, with its
 * defaults: chunked leases whose size adapts to item time, group commit, LISTEN/NOTIFY wakeups.
 *
 * Its balance handler does what a Batchline user writes: `ctx.aggregate('balance', amount)`,
 * which is committed in the same transaction as the item's outcome, so a killed worker can
 * neither lose nor double an item's amount. A second aggregate counts applications, which is
 * how the check below tells "applied twice" apart from "lost"; the check reads them, and the
 * items, from the public tables (`batches`, the `items` view).
 */

import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { readFileSync } from 'node:fs';
import { Batchline } from '../../../src/index.js';
import { applyTransaction, type Transaction } from '../../../src/cli/demo-data.js';
import type { EffectCheck } from '../effects.js';
import { assertIdentifier, execute, type Payload, type System, type SystemSettings } from './system.js';

const SCHEMA = assertIdentifier('batchline_bench');
const TYPE = 'bench';
const root = new URL('../../../', import.meta.url);

function database(settings: SystemSettings): string {
  return `${settings.pgUrl}${settings.pgUrl.includes('?') ? '&' : '?'}schema=${SCHEMA}`;
}

function version(): string {
  const { version: v } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string };
  try {
    return `${v} (${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim()})`;
  } catch {
    return v;
  }
}

async function open(settings: SystemSettings): Promise<Batchline> {
  return Batchline.open({ database: database(settings), logLevel: 'warn' });
}

export const batchline: System & { check(settings: SystemSettings, batchId: string, items: number): Promise<EffectCheck> } = {
  name: 'batchline',
  version: version(),
  backend: 'postgres',
  configs: {
    default: 'defaults: adaptive lease size (up to 8,000 items), group commit, LISTEN/NOTIFY wakeups; leaseMs = recovery time in W3, where the killed worker is released at once (releaseWorker, as graphile-worker\'s forceUnlockWorkers)',
  },

  async clear(settings) {
    await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  },

  async reset(settings) {
    await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
    // Migrate now, so neither side races to create the schema during the run.
    await (await open(settings)).close();
  },

  /**
   * As graphile-worker's forceUnlockWorkers: `releaseWorker` for a worker known to be dead.
   * Called between the kill and the restart, when no worker runs, so every worker row left is
   * the dead one's (a worker writes its row before it leases anything).
   */
  async recoverDeadWorker(settings) {
    const bl = await open(settings);
    try {
      for (const worker of await bl.workers()) await bl.releaseWorker(worker.id);
    } finally {
      await bl.close();
    }
  },

  async producer(settings) {
    const bl = await open(settings);
    return {
      async submit(items, _count, tenant) {
        const batch = await bl.submit(TYPE, items, { tenant, maxAttempts: 10 });
        return { count: batch.total, batchId: batch.id };
      },
      async recorded(submission) {
        const batch = await bl.getBatch(submission.batchId!);
        return { done: batch.succeeded, failed: batch.failed + batch.cancelled };
      },
      close: () => bl.close(),
    };
  },

  async work(settings, kind, work, onHandled) {
    const bl = await open(settings);
    bl.define<Payload>(TYPE, async (payload, ctx) => {
      if (kind === 'balance') {
        await applyTransaction(payload as unknown as Transaction, ctx);
        ctx.aggregate('applied', 1);
      } else {
        await work(payload);
      }
      onHandled();
    });
    await bl.start({
      concurrency: settings.concurrency,
      handleSignals: false,
      ...(settings.recoverAfterSeconds ? { leaseMs: settings.recoverAfterSeconds * 1000 } : {}),
    });
    return { stop: () => bl.close() };
  },

  /**
   * Read from Batchline's public SQL surface, as a user would check by hand, not from the
   * engine's API or the batch's counters: the balance is the batch's exact aggregate (the
   * driver compares it with the sum computed from the seed); "lost" are the seqs the `items`
   * view does not show succeeded; "applied twice" is how far the `applied` aggregate (1 per
   * success, committed with the item's outcome) exceeds the succeeded seqs, plus any seq the
   * view shows succeeded more than once.
   */
  async check(settings, batchId, items) {
    const client = new pg.Client({ connectionString: settings.pgUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ balance: string | null; applied: string | null; succeeded: number; seqs: number }>(
        `SELECT b.aggregates->>'balance' AS balance, b.aggregates->>'applied' AS applied,
                count(i.seq) FILTER (WHERE i.status = 'succeeded')::int AS succeeded,
                count(DISTINCT i.seq) FILTER (WHERE i.status = 'succeeded')::int AS seqs
           FROM ${SCHEMA}.batches b LEFT JOIN ${SCHEMA}.items i ON i.batch_id = b.id
          WHERE b.id = $1 GROUP BY b.id`,
        [batchId],
      );
      const r = rows[0]!;
      return {
        balanceCents: BigInt((r.balance ?? '0.00').replace('.', '')),
        lost: items - r.seqs,
        appliedTwice: Math.max(0, Number(r.applied ?? 0) - r.seqs) + (r.succeeded - r.seqs),
      };
    } finally {
      await client.end();
    }
  },
};
