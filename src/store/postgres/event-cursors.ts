/**
 * Following the events table by cursor on PostgreSQL. A cursor is `from` (a snapshot:
 * everything visible in it was read) or `from|to|txid:id` (reading the window between two
 * snapshots, up to that event); see EVENTS_FOLLOW. A cursor this database never gave (made up,
 * or from another database) is refused rather than followed.
 */

import { InputError } from '../../core/errors.js';
import { toEvent } from '../shared.js';
import type { EventsFollowParams, FollowedEvent } from '../store.js';
import type { PgConnection } from './connection.js';

/** Reads events after a cursor, and checks cursors against what the database has given. */
export class PgEventCursors {
  /** The highest transaction horizon (snapshot xmax) read from the database. */
  private latestXmax = 0n;
  /** The newest event id known to have been given. */
  private latestEventId = 0n;

  constructor(private readonly c: PgConnection) {}

  /** Events after cursor `after`, and the cursor to follow them from. */
  async follow(params: EventsFollowParams): Promise<{ events: FollowedEvent[]; cursor: string }> {
    const [from, givenTo, position] = params.after.split('|');
    const [txid, id] = position ? position.split(':') : [];
    if (!from || !isSnapshot(from) || (givenTo !== undefined && !isSnapshot(givenTo)) || (position && !/^\d+:\d+$/.test(position))) {
      throw new InputError(`${JSON.stringify(params.after)} is not an event cursor`);
    }
    const xmax = (snapshot: string) => BigInt(snapshot.split(':')[1]!);
    if (givenTo !== undefined && (xmax(from) > xmax(givenTo) || (txid !== undefined && BigInt(txid) >= xmax(givenTo)))) {
      throw new InputError(`${JSON.stringify(params.after)} is not an event cursor this database gave: its positions are out of order`);
    }
    const to = givenTo ?? (await this.now());
    const horizon = xmax(to) > xmax(from) ? xmax(to) : xmax(from);
    if (horizon > this.latestXmax) await this.now();
    if (horizon > this.latestXmax) {
      throw new InputError(`${JSON.stringify(params.after)} is not an event cursor this database gave: it lies beyond the newest transaction (${this.latestXmax})`);
    }
    if (id !== undefined && BigInt(id) > this.latestEventId) {
      const [row] = await this.c.query<{ id: string }>(this.c.pool, this.c.sql.EVENTS_SEQUENCE);
      this.latestEventId = BigInt(row!.id);
      if (BigInt(id) > this.latestEventId) {
        throw new InputError(`${JSON.stringify(params.after)} is not an event cursor this database gave: event ${id} is beyond the newest event (${this.latestEventId})`);
      }
    }
    const rows = await this.c.query<Parameters<typeof toEvent>[0]>(this.c.pool, this.c.sql.EVENTS_FOLLOW, [
      from, to, txid ?? null, id ?? null, params.tenant ?? null, params.types?.length ? params.types : null, params.limit,
    ]);
    const events = rows.map(toEvent) as FollowedEvent[];
    // A full page may have more in this window; otherwise the window is read and the next starts at `to`.
    return { events, cursor: events.length === params.limit ? events.at(-1)!.cursor : to };
  }

  /** A cursor of now: following it yields only later commits. Cursors this store has seen pass without a query. */
  async now(): Promise<string> {
    const [row] = await this.c.query<{ cursor: string }>(this.c.pool, this.c.sql.EVENTS_CURSOR);
    const xmax = BigInt(row!.cursor.split(':')[1]!);
    if (xmax > this.latestXmax) this.latestXmax = xmax;
    return row!.cursor;
  }
}

/**
 * `xmin:xmax:xip,...` as PostgreSQL writes a pg_snapshot: xmin <= xmax, and each running
 * transaction in [xmin, xmax) in ascending order. Anything else was not given by a database.
 */
function isSnapshot(text: string): boolean {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text);
  if (!match) return false;
  const [xmin, xmax] = [BigInt(match[1]!), BigInt(match[2]!)];
  if (xmin > xmax) return false;
  if (match[3] === '') return true;
  const xip = match[3]!.split(',');
  if (xip.some((x) => x === '')) return false;
  return xip.map(BigInt).every((x, i, all) => x >= xmin && x < xmax && (i === 0 || x >= all[i - 1]!));
}
