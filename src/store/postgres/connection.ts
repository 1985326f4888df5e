/**
 * The PostgreSQL store's connection: the pool, the schema's statements, transactions with
 * retries, error translation, and the row shapes the store's modules share.
 */

import pg from 'pg';
import { InputError, NotFoundError, schemaBehind, StoreUnavailableError } from '../../core/errors.js';
import { isBatchId } from '../../core/ids.js';
import type { ItemStateEntry } from '../../core/item-state.js';
import type { EventType } from '../../core/types.js';
import type { BatchRowBase } from '../shared.js';
import type { BatchRef, ChunkRow } from '../store.js';
import { statements, type PgStatements } from './statements.js';

export type BatchRow = BatchRowBase & { submit_digest: string | null; leased_items: number };
export type Queryable = pg.Pool | pg.PoolClient;

export interface ChunkDbRow {
  id: string;
  batch_id: string;
  seq0: number | null;
  seqs: number[] | null;
  skip: number;
  n: number;
  payloads: unknown[];
  state: (ItemStateEntry | null)[] | null;
  status: ChunkRow['status'];
  attempt: number;
  error: ChunkRow['error'];
}

/** A chunks row as read from PostgreSQL → the store-independent shape. */
export const toChunkRow = (r: ChunkDbRow): ChunkRow => ({
  id: Number(r.id),
  batchId: r.batch_id,
  seq0: r.seq0,
  seqs: r.seqs,
  skip: r.skip,
  n: r.n,
  status: r.status,
  attempt: r.attempt,
  payloads: r.payloads,
  state: r.state,
  error: r.error,
});

/** Error codes worth retrying the whole transaction for. */
const RETRY_CODES = new Set(['40001', '40P01']);
/** Error codes (and socket errors) that mean the database is unreachable or going away. */
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300', '3D000', '28P01', '28000']);
/** Undefined table, column, schema: this version's tables are not all there. */
const SCHEMA_CODES = new Set(['42P01', '42703', '3F000']);
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE', 'EAI_AGAIN']);

export interface NewEvent {
  batch_id: string | null;
  tenant: string | null;
  type: EventType;
  data: Record<string, unknown>;
}

export interface PostgresStoreOptions {
  url: string;
  schema: string;
  /** Human-readable location (no password), for messages. */
  display: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /**
   * How long one of the store's own transactions may sit idle between its statements before
   * PostgreSQL ends its session (default 10 s; see TX_IDLE_LIMIT_MS). Not for submissions,
   * whose transaction waits on the items as they arrive.
   */
  txIdleLimitMs?: number;
}

/**
 * A transaction of the store's (a commit, a lease) sends its statements back to back. One idle
 * for longer belongs to a process that froze mid-way (a stopped VM, a long pause) while holding
 * row locks every other worker's commits on its batch wait for; PostgreSQL ends its session
 * after this long (`idle_in_transaction_session_timeout`, per transaction), which rolls it back
 * and frees them. Well under the default 30 s lease, so the others' leases outlast the stall.
 */
export const TX_IDLE_LIMIT_MS = 10_000;
/** A pool on one database and the statements of one schema. */
export class PgConnection {
  readonly sql: PgStatements;
  readonly schema: string;
  /** The schema as a quoted identifier, for the few statements built here. */
  readonly quoted: string;
  readonly description: string;
  private readonly txIdleLimitMs: number;

  constructor(
    readonly pool: pg.Pool,
    options: PostgresStoreOptions,
  ) {
    this.schema = options.schema;
    this.txIdleLimitMs = options.txIdleLimitMs ?? TX_IDLE_LIMIT_MS;
    this.quoted = `"${options.schema}"`;
    this.sql = statements(this.quoted);
    this.description = options.display;
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => {});
    // Nor may one that dies while checked out. The pool stops listening for a client's errors
    // the moment it hands the client out, and a connection can die in that very instant (its
    // FATAL in the same socket read as its startup reply, before tx() could listen): seen as
    // an uncaught 'error' when pg_terminate_backend hit new connections. So every client is
    // listened to for its whole life, and tx() reports what killed it.
    this.pool.on('connect', (client) => {
      client.on('error', (error) => this.deaths.set(client, error));
    });
  }

  /** The error that broke each client, kept until the client is collected. */
  private readonly deaths = new WeakMap<pg.PoolClient | pg.Client, Error>();

  /** Driver error → our error: unreachable databases become StoreUnavailableError. */
  translate(error: unknown): unknown {
    const code = (error as { code?: string }).code;
    if (error instanceof InputError) return error;
    if (code && (UNAVAILABLE_CODES.has(code) || SOCKET_CODES.has(code))) {
      return new StoreUnavailableError(`cannot use ${this.description}: ${(error as Error).message}`, { cause: error });
    }
    if (code && SCHEMA_CODES.has(code)) return schemaBehind(this.description, error);
    // Class 22, data exceptions: a value PostgreSQL cannot take (a NUL in text, an integer out
    // of range, a malformed cursor). The input was wrong, not the database.
    if (code?.startsWith('22') && error instanceof pg.DatabaseError) {
      return new InputError(`PostgreSQL cannot take a value of this request: ${error.message}`, { code: 'invalid_value', cause: error });
    }
    return error;
  }

  /** Runs one statement, translating driver errors. */
  async query<R extends pg.QueryResultRow>(db: Queryable, text: string, params: unknown[] = []): Promise<R[]> {
    try {
      return (await db.query<R>(text, params)).rows;
    } catch (error) {
      throw this.translate(error);
    }
  }

  /**
   * Runs `fn` in a transaction, retrying deadlocks and serialisation failures (unless `retry`
   * is false: a streamed submission cannot be read twice).
   */
  async tx<T>(
    fn: (client: pg.PoolClient) => Promise<T>,
    options: { isolation?: 'READ COMMITTED' | 'REPEATABLE READ'; retry?: boolean; waitsOnCaller?: boolean } = {},
  ): Promise<T> {
    const isolation = options.isolation ?? 'READ COMMITTED';
    // One round trip: BEGIN and the idle limit as one simple query. A transaction that waits on
    // its caller between statements (a submission reading its items) has none.
    const begin = options.waitsOnCaller
      ? `BEGIN ISOLATION LEVEL ${isolation}`
      : `BEGIN ISOLATION LEVEL ${isolation}; SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(this.txIdleLimitMs)}`;
    const maxAttempts = options.retry === false ? 1 : 8;
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.translate(error);
      }
      let broken: Error | undefined;
      try {
        await client.query(begin);
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // If the connection died between statements, that is the error worth reporting.
        const death = this.deaths.get(client);
        const translated = death ? this.translate(death) : this.translate(error);
        // A connection that failed under us is destroyed rather than returned to the pool.
        if (translated instanceof StoreUnavailableError) broken = translated;
        else await client.query('ROLLBACK').catch(() => {});
        const code = (error as { code?: string }).code;
        if (!(code && RETRY_CODES.has(code) && attempt < maxAttempts)) throw translated;
      } finally {
        client.release(broken);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
  }

  /** Appends audit events within the caller's transaction. */
  async events(db: Queryable, events: NewEvent[]): Promise<void> {
    if (events.length > 0) await this.query(db, this.sql.EVENTS_INSERT, [JSON.stringify(events)]);
  }

  /** Notifies listeners when the caller's transaction commits. */
  async notify(db: Queryable, topic: 'work' | 'control'): Promise<void> {
    await this.query(db, `SELECT pg_notify($1, $2)`, [`${this.schema}_${topic}`, topic]);
  }

  /** The batch row, or NotFoundError (also for malformed ids and other tenants' batches). */
  async batchRow(db: Queryable, ref: BatchRef): Promise<BatchRow> {
    const rows = isBatchId(ref.id) ? await this.query<BatchRow>(db, this.sql.BATCH_GET, [ref.id, ref.tenant ?? null]) : [];
    if (!rows[0]) throw new NotFoundError(`batch ${ref.id} not found`);
    return rows[0];
  }
}
