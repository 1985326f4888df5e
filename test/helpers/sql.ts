/**
 * Running the SQL users run: the verification queries of docs/operations.md, read from the
 * page itself so the documented query is the tested one.
 */

import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { pgUrl, type StoreKind } from './stores.js';

/** The fenced ```sql <name> block of docs/operations.md. */
export function docQuery(name: string): string {
  const page = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const match = new RegExp('```sql ' + name + '\\n([\\s\\S]*?)```').exec(page);
  if (!match) throw new Error(`docs/operations.md has no sql block named ${name}`);
  return match[1]!;
}

/** Runs a query against a test database; `batchline.` in PostgreSQL SQL means the test schema. */
export async function runSql(kind: StoreKind, location: { database: string; schema?: string }, query: string): Promise<Record<string, unknown>[]> {
  if (kind === 'sqlite') {
    const db = new Database(location.database, { readonly: true });
    try {
      return db.prepare(query).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: pgUrl! });
  await client.connect();
  try {
    return (await client.query(query.replaceAll('batchline.', `"${location.schema}".`))).rows;
  } finally {
    await client.end();
  }
}

/** The documented counter check for every batch; returns rows that do not show ✓. */
export async function counterMismatches(kind: StoreKind, location: { database: string; schema?: string }): Promise<Record<string, unknown>[]> {
  const rows = await runSql(kind, location, docQuery(`verify-counters-${kind}`));
  return rows.filter((r) => r.ok !== '✓');
}
