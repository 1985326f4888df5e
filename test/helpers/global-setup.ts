/**
 * Decides once per run whether the PostgreSQL suites run. Under CI (`CI` set) a PostgreSQL
 * that cannot be reached fails the run; on a laptop the PostgreSQL suites are skipped and the
 * reason is printed, while the SQLite suites run as usual.
 */

import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string | null;
    pgSkipReason: string;
  }
}

export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export default async function setup(project: TestProject): Promise<void> {
  const url = process.env.BATCHLINE_TEST_DATABASE_URL ?? DEFAULT_TEST_PG_URL;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    project.provide('pgUrl', url);
    project.provide('pgSkipReason', '');
  } catch (error) {
    const reason = `PostgreSQL suites skipped: cannot connect to ${url} (${(error as Error).message}). Start PostgreSQL or set BATCHLINE_TEST_DATABASE_URL.`;
    if (process.env.CI) throw new Error(`CI requires PostgreSQL: ${reason}`);
    console.warn(`\n${reason}\n`);
    project.provide('pgUrl', null);
    project.provide('pgSkipReason', reason);
  } finally {
    await client.end().catch(() => {});
  }
}
