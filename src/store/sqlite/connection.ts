/**
 * The embedded store's connection: one better-sqlite3 handle, its statement cache, write
 * transactions, and the row shapes and helpers that the store's modules share.
 */

import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { InputError, NotFoundError, schemaBehind, StoreUnavailableError } from '../../core/errors.js';
import { isBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import type { EventType } from '../../core/types.js';
import type { BatchRowBase } from '../shared.js';
import type { BatchRef, ChunkRow } from '../store.js';
import * as sql from './statements.js';

export type BatchRow = BatchRowBase & {
  aggregates: string;
  submit_digest: string | null;
  leased_items: number;
  served_at: number | null;
  progress_at: number | null;
};

export interface ChunkDbRow {
  id: number;
  batch_id: string;
  seq0: number | null;
  seqs: string | null;
  skip: number;
  n: number;
  payloads: string;
  state: string | null;
  status: ChunkRow['status'];
  attempt: number;
  error: string | null;
}
export interface SqliteStoreOptions {
  /** Path of the database file; its folder is created when missing. */
  path: string;
  /**
   * Create the file's directory when it is missing (default true). Off for a path the user
   * typed: a typo there must not quietly start a second, empty database.
   */
  createDirectory?: boolean;
  /** How long a write waits for another process's transaction before failing. */
  busyTimeoutMs?: number;
}
export const iso = (ms: number) => new Date(ms).toISOString();

/** A chunks row as read from SQLite → the store-independent shape. */
export function toChunkRow(row: ChunkDbRow): ChunkRow {
  return {
    id: row.id,
    batchId: row.batch_id,
    seq0: row.seq0,
    seqs: row.seqs === null ? null : (JSON.parse(row.seqs) as number[]),
    skip: row.skip,
    n: row.n,
    status: row.status,
    attempt: row.attempt,
    payloads: JSON.parse(row.payloads) as unknown[],
    state: row.state === null ? null : (JSON.parse(row.state) as (ItemStateEntry | null)[]),
    error: row.error == null ? null : JSON.parse(row.error),
  };
}

/** One SQLite database file, opened in WAL mode with a busy timeout. */
export class SqliteConnection {
  readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(options: SqliteStoreOptions) {
    try {
      if (options.path !== ':memory:') {
        const directory = dirname(options.path);
        if (options.createDirectory === false && !existsSync(directory)) {
          throw new InputError(`cannot open SQLite database ${options.path}: directory ${directory} does not exist (create it, or check --database / DATABASE_URL)`, {
            code: 'invalid_database_url',
          });
        }
        mkdirSync(directory, { recursive: true });
      }
      this.db = new Database(options.path);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 10_000}`);
      this.db.pragma('foreign_keys = ON');
    } catch (error) {
      if (error instanceof InputError) throw error;
      throw new StoreUnavailableError(`cannot open SQLite database ${options.path}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** A prepared statement, cached by its text. */
  stmt(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      try {
        statement = this.db.prepare(text);
      } catch (error) {
        // Tables or columns this version needs are missing: the database was migrated down
        // (or never up) under a running process.
        if (/^no such (table|column)/.test((error as Error).message)) throw schemaBehind(`SQLite database ${this.db.name}`, error);
        throw error;
      }
      this.statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Every operation first yields to the event loop. better-sqlite3 is synchronous, so without
   * this an `await store.x()` loop (a status poll) would run on microtasks alone and starve the
   * timers and I/O of everything else in the process, workers included.
   */
  turn(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  /** Runs `fn` in a BEGIN IMMEDIATE transaction, translating lock timeouts. */
  tx<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT') {
        throw new StoreUnavailableError(`SQLite database is locked by another process: ${(error as Error).message}`, {
          cause: error,
        });
      }
      if (/^no such (table|column)/.test((error as Error).message)) throw schemaBehind(`SQLite database ${this.db.name}`, error);
      throw error;
    }
  }

  /** Appends an audit event inside the caller's transaction. */
  event(batch: { id: string; tenant: string } | null, type: EventType, data: Record<string, unknown>, now: number): void {
    this.stmt(sql.EVENT_INSERT).run(batch?.id ?? null, batch?.tenant ?? null, type, JSON.stringify(data), iso(now));
  }

  /** The batch row, or NotFoundError (also for malformed ids and other tenants' batches). */
  batchRow(ref: BatchRef): BatchRow {
    const tenant = ref.tenant ?? null;
    // Ids are UUIDs, stored in lower case; PostgreSQL's uuid type takes any case, and so does this.
    const row = isBatchId(ref.id) ? (this.stmt(sql.BATCH_GET).get(ref.id.toLowerCase(), tenant, tenant) as BatchRow | undefined) : undefined;
    if (!row) throw new NotFoundError(`batch ${ref.id} not found`);
    return row;
  }

  /** Forgets prepared statements (after migrations change the schema). */
  resetStatements(): void {
    this.statements.clear();
  }
}
