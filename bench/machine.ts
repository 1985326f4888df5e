/**
 * What every benchmark result records about where it ran, and a wait for a quiet machine.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';

export const root = fileURLToPath(new URL('..', import.meta.url));

/** The machine's hardware, OS, Node, SQLite and PostgreSQL versions, and the commit measured. */
export async function machine(pgUrl: string): Promise<Record<string, string | number>> {
  const sqlite = new Database(':memory:');
  const sqliteVersion = (sqlite.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  sqlite.close();
  let postgres = 'unavailable';
  try {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    postgres = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    await client.end();
  } catch {
    // reported as unavailable
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
  } catch {
    // not a git checkout
  }
  return {
    host: hostname(),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
    sqlite: sqliteVersion,
    postgres,
    commit,
  };
}

function cpuTimes(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3]! + (fields[4] ?? 0); // idle + iowait
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Waits until the whole machine's CPU use over half a second drops below `threshold`
 * (default 15 %), for at most `maxMs`. Returns the last reading (0..1). Linux only; elsewhere
 * returns 0 at once.
 */
export async function waitQuiet(threshold = 0.15, maxMs = 30_000): Promise<number> {
  const until = Date.now() + maxMs;
  let busy = 0;
  do {
    let before: { busy: number; total: number };
    try {
      before = cpuTimes();
    } catch {
      return 0;
    }
    await sleep(500);
    const after = cpuTimes();
    busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    if (busy < threshold) return busy;
  } while (Date.now() < until);
  return busy;
}

/**
 * The median of numbers, always one of them: for an even count, the higher of the two middle
 * ones. Benchmarks report times, so the higher middle is the slower run: the choice never
 * flatters a system measured an even number of times (Batchline in bench:peers, once per peer).
 */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
