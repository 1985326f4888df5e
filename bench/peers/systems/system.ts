/**
 * What the harness needs from each system it compares (Batchline and every peer): reset its
 * state, submit items from a producer, count what it has recorded as done, and run workers in
 * a process of their own with one of the workloads' handlers.
 *
 * A system never judges its own run: the driver (driver.ts) counts completions through
 * `recorded`, and the balance workloads check their side effects through effects.ts.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import pg from 'pg';

/** The handler a workload runs for every item. */
export type HandlerKind = 'noop' | 'balance' | 'slow';

/** One item as the producer submits it. Transactions carry `type` and `amount` (balance workloads). */
export interface Payload {
  i: number;
  tenant?: string;
  type?: string;
  amount?: string;
}

/** Connection details and the knobs every system is given alike. */
export interface SystemSettings {
  /** PostgreSQL connection string (every system but BullMQ on Redis keeps its jobs here). */
  pgUrl: string;
  /** Redis connection string (BullMQ on Redis). */
  redisUrl: string;
  /** Items running at once in the worker process. */
  concurrency: number;
  /**
   * Seconds after which a job held by a dead worker goes back to the queue, where the system
   * lets you choose (W3 sets it; otherwise the system's default applies).
   */
  recoverAfterSeconds?: number;
  /** Names a configuration from the system's `configs` (default: its first, the best found). */
  config?: string;
}

/** What a submission returned: how to find its jobs again when counting them. */
export interface Submission {
  count: number;
  /** Job ids, kept only for small submissions, which are then counted by id. */
  ids?: string[];
  /** Batchline: the batch id. */
  batchId?: string;
}

/** Jobs of a submission recorded as finished by the system itself. */
export interface Recorded {
  done: number;
  failed: number;
}

/** The submitting side, in the driver process. */
export interface Producer {
  /** Submits `count` items; W5's big tenant is 1,000,000, so items arrive as a generator. */
  submit(items: Iterable<Payload>, count: number, tenant: string): Promise<Submission>;
  /** How many of the submission's jobs the system has recorded as completed or failed. */
  recorded(submission: Submission): Promise<Recorded>;
  close(): Promise<void>;
}

/** A running worker pool, in the worker process. */
export interface RunningWorkers {
  /** Graceful stop: finish or hand back what runs, then close connections. */
  stop(): Promise<void>;
}

/** The handler the worker process gives a system: runs one item's work. */
export type ItemWork = (payload: Payload) => Promise<void>;

export interface System {
  /** Package name, e.g. `pg-boss`. */
  name: string;
  /** Installed version. */
  version: string;
  /** Where its jobs live. */
  backend: 'postgres' | 'redis';
  /** Configurations that were tried; the first is the one used unless `settings.config` names another. */
  configs: Record<string, string>;
  /** Drops every table, schema or key the system left behind, so each run starts empty. */
  reset(settings: SystemSettings): Promise<void>;
  /**
   * Drops what a run left (schema, keys) once it is measured, so the next run, of whichever
   * system, does not share the database with a million finished or stuck jobs.
   */
  clear(settings: SystemSettings): Promise<void>;
  /**
   * W3, after the worker process was SIGKILLed and before its replacement starts: what an
   * operator's supervisor would do about a worker known to be dead, where the system offers
   * it (graphile-worker's forceUnlockWorkers). Systems that free a dead worker's jobs on their
   * own (leases, lock expiry, stalled checks) leave this out.
   */
  recoverDeadWorker?(settings: SystemSettings): Promise<void>;
  producer(settings: SystemSettings): Promise<Producer>;
  /**
   * Starts workers for `kind`. Peers call `work` for every job; Batchline runs its own handler
   * for the same workload (`ctx.aggregate` for the balance). `onHandled` is called once per
   * job whose handler returned.
   */
  work(settings: SystemSettings, kind: HandlerKind, work: ItemWork, onHandled: () => void): Promise<RunningWorkers>;
}

/** Throws unless `name` is a plain lower-case SQL identifier (schemas are interpolated into SQL). */
export function assertIdentifier(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`unsafe schema name: ${JSON.stringify(name)}`);
  return name;
}

/** Consecutive arrays of at most `size` items from any iterable. */
export function* slices<T>(items: Iterable<T>, size: number): Generator<T[]> {
  let slice: T[] = [];
  for (const item of items) {
    slice.push(item);
    if (slice.length === size) {
      yield slice;
      slice = [];
    }
  }
  if (slice.length > 0) yield slice;
}

/** The config named in settings, or the system's first (best) one; throws on an unknown name. */
export function chosenConfig(system: Pick<System, 'name' | 'configs'>, settings: SystemSettings): string {
  const name = settings.config ?? Object.keys(system.configs)[0]!;
  if (!(name in system.configs)) throw new Error(`${system.name} has no config ${JSON.stringify(name)}; known: ${Object.keys(system.configs).join(', ')}`);
  return name;
}

/** The installed version of a package, read from its package.json (found by walking up from its entry). */
export function installedVersion(pkg: string): string {
  const require = createRequire(import.meta.url);
  let dir = require.resolve(pkg);
  for (;;) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json found for ${pkg}`);
    dir = parent;
    try {
      const json = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')) as { name?: string; version?: string };
      if (json.name === pkg && json.version) return json.version;
    } catch {
      // not here; keep walking up
    }
  }
}

/** Runs SQL statements on a short-lived connection of its own. */
export async function execute(url: string, ...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const sql of statements) await client.query(sql);
  } finally {
    await client.end();
  }
}
