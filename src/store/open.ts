/**
 * Choosing and opening a store from a database setting: a `postgres://` URL opens PostgreSQL;
 * anything else that names a file (or nothing at all) opens the embedded SQLite store.
 */

import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import type { Store } from './store.js';

/** Where the embedded store keeps its data when no database is given. */
export const DEFAULT_SQLITE_PATH = './.batchline/batchline.db';
export const DEFAULT_SCHEMA = 'batchline';

export type DatabaseTarget =
  | { kind: 'sqlite'; path: string }
  | { kind: 'postgres'; url: string; schema: string; display: string; poolSize?: number };

const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** Validates a PostgreSQL schema name (it is quoted into SQL, so only plain identifiers pass). */
export function checkSchema(schema: string): string {
  if (!SCHEMA_RE.test(schema)) {
    throw new InputError(`schema ${JSON.stringify(schema)} must be a lower-case identifier (letters, digits, _)`, { code: 'invalid_schema' });
  }
  return schema;
}

/**
 * Reads a database setting: `postgres://user@host:5432/db?schema=name&pool_size=10`,
 * `sqlite:path`, a file path, or undefined (then `DATABASE_URL`, then ./.batchline/batchline.db).
 */
export function resolveDatabase(database?: string, schema?: string): DatabaseTarget {
  const setting = database ?? process.env.DATABASE_URL ?? DEFAULT_SQLITE_PATH;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(setting)?.[1]?.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') {
    let url: URL;
    try {
      url = new URL(setting);
    } catch {
      throw new InputError(`database URL ${JSON.stringify(redact(setting))} is not a valid URL`, { code: 'invalid_database_url' });
    }
    const inUrl = url.searchParams.getAll('schema');
    if (new Set(inUrl).size > 1) {
      throw new InputError(`two schemas given in the database URL: ${inUrl.map((name) => `?schema=${name}`).join(' and ')}; give one`, { code: 'invalid_database_url' });
    }
    const fromUrl = inUrl[0] ?? null;
    url.searchParams.delete('schema');
    if (schema !== undefined && fromUrl !== null && schema !== fromUrl) {
      throw new InputError(`two schemas given: ?schema=${fromUrl} in the database URL and ${schema} as the schema option (--schema); give one`, {
        code: 'invalid_database_url',
      });
    }
    const chosen = checkSchema(schema ?? fromUrl ?? process.env.BATCHLINE_SCHEMA ?? DEFAULT_SCHEMA);
    // ?pool_size=N: connections each process keeps (ours, like ?schema=; PostgreSQL never sees it).
    const pool = url.searchParams.get('pool_size');
    url.searchParams.delete('pool_size');
    const poolSize = pool === null ? undefined : Number(pool);
    if (poolSize !== undefined && !(/^\d+$/.test(pool!) && poolSize >= 1 && poolSize <= 1_000)) {
      throw new InputError(`?pool_size=${pool} in the database URL must be a whole number from 1 to 1000`, { code: 'invalid_database_url' });
    }
    const display = `PostgreSQL ${url.hostname || 'localhost'}:${url.port || 5432}${url.pathname} schema ${chosen}`;
    return { kind: 'postgres', url: url.toString(), schema: chosen, display, ...(poolSize === undefined ? {} : { poolSize }) };
  }
  // A schema is PostgreSQL's; one given for SQLite is most likely a database option that went astray.
  if (schema !== undefined) {
    throw new InputError(`a schema (${schema}) was given, but ${JSON.stringify(redact(setting))} is a SQLite database, which has none: drop the schema, or name a postgres:// URL`, {
      code: 'invalid_database_url',
    });
  }
  if (scheme === 'sqlite' || scheme === 'file') {
    const path = setting.slice(scheme.length + 1).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new InputError(`database ${JSON.stringify(setting)} names no file`, { code: 'invalid_database_url' });
    return { kind: 'sqlite', path: path === ':memory:' ? path : resolve(path) };
  }
  // One-letter "schemes" are Windows drive letters, not URLs.
  if (scheme && scheme.length > 1) {
    throw new InputError(
      `unsupported database ${JSON.stringify(redact(setting))}: use a postgres:// URL or a SQLite file path`,
      { code: 'invalid_database_url' },
    );
  }
  return { kind: 'sqlite', path: resolve(setting) };
}

/** A URL with its password replaced, for messages. */
export function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

/** Opens the store a database setting names. Migrations are the caller's choice. */
export async function openStore(options: { database?: string; schema?: string; poolSize?: number } = {}): Promise<Store> {
  const target = resolveDatabase(options.database, options.schema);
  if (target.kind === 'sqlite') {
    const { SqliteStore } = await import('./sqlite/sqlite-store.js');
    // Only the default location's directory is made on demand; a path given must have one.
    return new SqliteStore({ path: target.path, createDirectory: target.path === resolve(DEFAULT_SQLITE_PATH) });
  }
  const { PostgresStore } = await import('./postgres/postgres-store.js');
  return PostgresStore.connect({ url: target.url, schema: target.schema, display: target.display, poolSize: options.poolSize ?? target.poolSize });
}
