/**
 * Store fixtures for tests: each test gets its own SQLite file or its own PostgreSQL schema,
 * dropped afterwards, so tests never see each other's rows.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, inject } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';

export type StoreKind = 'sqlite' | 'postgres';

/** The PostgreSQL URL of this run, or null when the PostgreSQL suites are skipped. */
export const pgUrl: string | null = inject('pgUrl');

/** Store kinds that run in this environment, for describe.each. */
export const storeKinds: StoreKind[] = pgUrl ? ['sqlite', 'postgres'] : ['sqlite'];

let counter = 0;

/** A fresh, empty location for a store: a database setting plus a cleanup. */
export async function freshDatabase(kind: StoreKind): Promise<{ database: string; schema?: string; cleanup: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'batchline-test-'));
    return { database: join(dir, 'batchline.db'), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const schema = `bl_test_${process.pid}_${Date.now().toString(36)}_${counter++}`;
  return {
    database: `${pgUrl}?schema=${schema}`,
    schema,
    cleanup: async () => {
      const client = new pg.Client({ connectionString: pgUrl! });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

/** A migrated store in a fresh location; `dispose()` closes and drops it. */
export async function freshStore(
  kind: StoreKind,
): Promise<Store & { dispose: () => Promise<void>; location: { database: string; schema?: string } }> {
  const location = await freshDatabase(kind);
  const store: Store =
    kind === 'sqlite'
      ? new SqliteStore({ path: location.database })
      : await PostgresStore.connect({ url: pgUrl!, schema: location.schema!, display: `test schema ${location.schema}` });
  await store.migrate({ direction: 'up' });
  return Object.assign(store, {
    location,
    dispose: async () => {
      await store.close();
      await location.cleanup();
    },
  });
}

/** Something to undo after a test: a store to drop, a directory to delete, a process to kill. */
export type Cleanup = () => Promise<void> | void;

/**
 * Registers an afterEach (in the calling describe) that runs what each test deferred, last
 * first; returns the function that defers one cleanup.
 */
export function deferCleanups(): (cleanup: Cleanup) => void {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return (cleanup) => void cleanups.push(cleanup);
}

/** A fresh store location and an empty scratch directory, both removed by `defer`. */
export async function freshScratch(
  kind: StoreKind,
  prefix: string,
  defer: (cleanup: Cleanup) => void,
): Promise<{ location: { database: string; schema?: string }; dir: string }> {
  const location = await freshDatabase(kind);
  defer(location.cleanup);
  const dir = mkdtempSync(join(tmpdir(), `batchline-${prefix}-`));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return { location, dir };
}
