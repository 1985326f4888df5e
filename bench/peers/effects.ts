/**
 * The side effect of the balance workloads (W2, W3) for the peers, and how it is checked.
 *
 * A peer's handler does what users of a job queue do today: it adds the transaction to one
 * shared balance row (PostgreSQL) or key (Redis, for BullMQ on Redis), and in the same
 * statement (or MULTI) appends the item's index to a ledger. The ledger is what tells, after
 * a crash, which items were applied never (lost) or more than once (applied twice): a job
 * queue runs a job at least once, so a worker killed between its write and the job's
 * completion runs that job again.
 *
 * Batchline does not use this: its handler calls `ctx.aggregate`, which is committed in the
 * same transaction as the item's outcome (systems/batchline.ts checks it from the batch).
 */

import { Redis } from 'ioredis';
import pg from 'pg';
import { signedCents } from '../../src/cli/demo-data.js';
import { execute, type Payload, type SystemSettings } from './systems/system.js';

/** How the balance came out. */
export interface EffectCheck {
  /** The balance the handlers produced, in cents. */
  balanceCents: bigint;
  /** Items never applied. */
  lost: number;
  /** Items applied more than once. */
  appliedTwice: number;
}

/** The handler-side writer. */
export interface Effects {
  apply(payload: Payload): Promise<void>;
  close(): Promise<void>;
}

const SCHEMA = 'bench_effects';
const BALANCE_KEY = 'bench:balance';
const LEDGER_KEY = 'bench:applied';

function cents(payload: Payload): bigint {
  if (payload.type === undefined || payload.amount === undefined) throw new Error(`item ${payload.i} is not a transaction`);
  return signedCents({ type: payload.type, amount: payload.amount });
}

/** Drops the balance and ledger (before a run, and once it is checked). */
export async function clearEffects(backend: 'postgres' | 'redis', settings: SystemSettings): Promise<void> {
  if (backend === 'redis') {
    const redis = new Redis(settings.redisUrl, { lazyConnect: true });
    await redis.connect();
    await redis.del(BALANCE_KEY, LEDGER_KEY);
    await redis.quit();
    return;
  }
  await execute(settings.pgUrl, `DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
}

/** An empty balance (0) and ledger for a run. */
export async function resetEffects(backend: 'postgres' | 'redis', settings: SystemSettings): Promise<void> {
  await clearEffects(backend, settings);
  if (backend === 'redis') return;
  await execute(
    settings.pgUrl,
    `CREATE SCHEMA ${SCHEMA}`,
    `CREATE TABLE ${SCHEMA}.balance (id int PRIMARY KEY, cents bigint NOT NULL)`,
    `INSERT INTO ${SCHEMA}.balance VALUES (1, 0)`,
    `CREATE TABLE ${SCHEMA}.applied (i int NOT NULL)`,
  );
}

/** Opens the writer a peer's handler calls, with a pool as big as the worker's concurrency. */
export async function openEffects(backend: 'postgres' | 'redis', settings: SystemSettings): Promise<Effects> {
  if (backend === 'redis') {
    const redis = new Redis(settings.redisUrl);
    return {
      apply: async (payload) => {
        const result = await redis.multi().incrby(BALANCE_KEY, String(cents(payload))).hincrby(LEDGER_KEY, String(payload.i), 1).exec();
        const failed = result?.find(([err]) => err);
        if (!result || failed) throw failed?.[0] ?? new Error('redis MULTI was discarded');
      },
      close: async () => void (await redis.quit()),
    };
  }
  const pool = new pg.Pool({ connectionString: settings.pgUrl, max: Math.min(settings.concurrency, 20) });
  const sql = `WITH b AS (UPDATE ${SCHEMA}.balance SET cents = cents + $1 WHERE id = 1) INSERT INTO ${SCHEMA}.applied (i) VALUES ($2)`;
  return {
    apply: async (payload) => void (await pool.query(sql, [String(cents(payload)), payload.i])),
    close: () => pool.end(),
  };
}

/** Reads the balance and the ledger of items 0..items-1. */
export async function checkEffects(backend: 'postgres' | 'redis', settings: SystemSettings, items: number): Promise<EffectCheck> {
  if (backend === 'redis') {
    const redis = new Redis(settings.redisUrl, { lazyConnect: true });
    await redis.connect();
    try {
      const balance = (await redis.get(BALANCE_KEY)) ?? '0';
      const ledger = await redis.hgetall(LEDGER_KEY);
      let lost = 0;
      let appliedTwice = 0;
      for (let i = 0; i < items; i++) {
        const n = Number(ledger[String(i)] ?? 0);
        if (n === 0) lost++;
        else if (n > 1) appliedTwice++;
      }
      return { balanceCents: BigInt(balance), lost, appliedTwice };
    } finally {
      await redis.quit();
    }
  }
  const client = new pg.Client({ connectionString: settings.pgUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ cents: string; lost: number; twice: number }>(
      `SELECT (SELECT cents FROM ${SCHEMA}.balance WHERE id = 1)::text AS cents,
              count(*) FILTER (WHERE n = 0)::int AS lost,
              count(*) FILTER (WHERE n > 1)::int AS twice
         FROM (SELECT s.i, count(a.i) AS n
                 FROM generate_series(0, $1::int - 1) AS s(i)
                 LEFT JOIN ${SCHEMA}.applied a ON a.i = s.i
                GROUP BY s.i) AS per_item`,
      [items],
    );
    return { balanceCents: BigInt(rows[0]!.cents), lost: rows[0]!.lost, appliedTwice: rows[0]!.twice };
  } finally {
    await client.end();
  }
}
