/**
 * Schema snapshots: what the migrations create on each store, compared with the committed
 * snapshot files beside this test. A change to the schema shows up here as a diff to review
 * (and needs a new numbered migration once released); `vitest -u` accepts it.
 */

import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { freshStore, pgUrl, storeKinds, type StoreKind } from '../helpers/stores.js';

async function dumpSchema(kind: StoreKind, location: { database: string; schema?: string }): Promise<string> {
  if (kind === 'sqlite') {
    const db = new Database(location.database, { readonly: true });
    try {
      const rows = db
        .prepare(`SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND sql IS NOT NULL ORDER BY type, name`)
        .all() as { type: string; name: string; sql: string }[];
      return rows.map((r) => `-- ${r.type} ${r.name}\n${r.sql.trim()};\n`).join('\n');
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: pgUrl! });
  await client.connect();
  try {
    const schema = location.schema!;
    const name = (text: string) => text.replaceAll(`"${schema}".`, 'batchline.').replaceAll(`${schema}.`, 'batchline.');
    const columns = await client.query(
      `SELECT table_name, column_name, data_type, is_nullable, column_default
         FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
      [schema],
    );
    const indexes = await client.query(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, [schema]);
    const constraints = await client.query(
      `SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS def
         FROM pg_constraint WHERE connamespace = $1::regnamespace ORDER BY conrelid::regclass::text, conname`,
      [schema],
    );
    const views = await client.query(
      `SELECT viewname, definition FROM pg_views WHERE schemaname = $1 ORDER BY viewname`,
      [schema],
    );
    return [
      '-- columns',
      ...columns.rows.map((c) => `${c.table_name}.${c.column_name} ${c.data_type}${c.is_nullable === 'NO' ? ' not null' : ''}${c.column_default ? ` default ${name(c.column_default)}` : ''}`),
      '',
      '-- constraints',
      ...constraints.rows.map((c) => `${name(c.t)} ${c.conname}: ${name(c.def)}`),
      '',
      '-- indexes',
      ...indexes.rows.map((i) => name(i.indexdef)),
      '',
      '-- views',
      ...views.rows.map((v) => `${v.viewname}:\n${name(v.definition)}`),
      '',
    ].join('\n');
  } finally {
    await client.end();
  }
}

describe.each(storeKinds)('schema: %s', (kind) => {
  let store: Awaited<ReturnType<typeof freshStore>> | undefined;
  afterEach(async () => {
    await store?.dispose();
    store = undefined;
  });

  it('matches the committed snapshot', async () => {
    store = await freshStore(kind);
    await expect(await dumpSchema(kind, store.location)).toMatchFileSnapshot(`./__snapshots__/schema.${kind}.sql`);
  });

  it('migrates down to nothing and back up to the same schema', async () => {
    store = await freshStore(kind);
    const before = await dumpSchema(kind, store.location);
    await store.migrate({ direction: 'down', steps: 100 });
    expect(await store.migrationStatus()).toMatchObject({ current: 0 });
    const empty = await dumpSchema(kind, store.location);
    expect(empty).not.toContain('chunks');
    await store.migrate({ direction: 'up' });
    expect(await dumpSchema(kind, store.location)).toBe(before);
  });
});
