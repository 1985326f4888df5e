/**
 * Server-Sent Events: `GET /events` (every batch the caller may see) and
 * `GET /batches/:id/events` (one batch, starting with a `batch:snapshot` of its state).
 *
 * Events come from the events table (state changes: submitted, started, paused, completed,
 * cancelled, …, and progress snapshots), followed with the store's commit-ordered cursor.
 * Each SSE message's `id` is that cursor, so a client that reconnects with `Last-Event-ID`
 * resumes exactly after the last event it saw. Progress snapshots are thinned to at most two
 * per second per batch; a comment line every 15 s keeps proxies from closing an idle stream.
 * A stream checks every two seconds that it may go on: a revoked key, or its batch deleted,
 * ends it with a `stream:closed` event giving the reason.
 */

import type { FastifyReply, FastifyRequest } from 'fastify';
import type { BatchEvent } from '../core/types.js';
import type { Batchline } from '../engine/batchline.js';

const POLL_MS = 250;
const PROGRESS_EVERY_MS = 500;
const KEEPALIVE_MS = 15_000;
const RECHECK_MS = 2_000;
/** Bytes of events a client may leave unread before its stream is ended. */
const MAX_UNREAD_BYTES = 1 << 20;

export interface StreamScope {
  /** Only this tenant's events; undefined for admins. */
  tenant?: string;
  /** Only this batch's events. */
  batchId?: string;
  /**
   * Read after the stream's cursor is taken, and sent first (the per-batch stream's current
   * state): a change committed between the two is then in the events too, never in neither.
   */
  snapshot?: () => Promise<unknown>;
  /**
   * Asked every few seconds: a reason (the caller's key was revoked, the batch was deleted)
   * ends the stream with a `stream:closed` event saying it; null lets it go on.
   */
  closedBecause?: () => Promise<string | null>;
}

function message(event: { id?: string; type: string; data: unknown }): string {
  return `${event.id ? `id: ${event.id}\n` : ''}event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

function payload(event: BatchEvent): unknown {
  return { id: event.id, batchId: event.batchId, tenant: event.tenant, type: event.type, data: event.data, createdAt: event.createdAt.toISOString() };
}

/** The headers of an event stream: a GET's, and a HEAD's without the stream. */
export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const;

/**
 * Streams events to the client until it disconnects or `closing` aborts (server shutdown).
 * Throws (for a problem answer) only before the stream starts; once the 200 is sent, the reply
 * is the stream's own and Fastify's response hooks do not see it.
 */
export async function streamEvents(bl: Batchline, request: FastifyRequest, reply: FastifyReply, scope: StreamScope, closing: AbortSignal): Promise<void> {
  const resume = request.headers['last-event-id'];
  let cursor = typeof resume === 'string' && resume !== '' ? resume : await bl.store.eventsCursor();
  // Check the cursor before committing to a stream, so a bad Last-Event-ID is a 400.
  await bl.store.eventsFollow({ after: cursor, tenant: scope.tenant, limit: 1 });
  const snapshot = scope.snapshot ? await scope.snapshot() : undefined;

  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, { ...SSE_HEADERS, connection: 'keep-alive', 'x-accel-buffering': 'no' });
  // Send the headers now: without a first event the client would not see the 200 (and an
  // EventSource would not open) until the first keepalive, 15 s later.
  out.flushHeaders();
  let open = true;
  request.raw.on('close', () => (open = false));
  if (snapshot !== undefined) out.write(message({ type: 'batch:snapshot', data: snapshot }));

  const lastProgress = new Map<string, number>();
  let lastWrite = Date.now();
  const closeWith = (reason: string) => {
    if (open && !out.destroyed) out.write(message({ type: 'stream:closed', data: { reason } }));
  };
  try {
    await follow();
    if (closing.aborted) closeWith('the server is shutting down; reconnect with Last-Event-ID to go on');
  } catch (error) {
    // The stream cannot answer with an error any more (its 200 is sent): log it and end the
    // stream, so the client reconnects with Last-Event-ID.
    request.log.warn({ err: error }, 'event stream failed; closing it');
    closeWith('the server could not read events; reconnect with Last-Event-ID to go on');
  } finally {
    out.end();
  }

  async function follow(): Promise<void> {
    let checkedAt = Date.now();
    while (open && !out.destroyed && !closing.aborted) {
      if (scope.closedBecause && Date.now() - checkedAt >= RECHECK_MS) {
        checkedAt = Date.now();
        const reason = await scope.closedBecause();
        if (reason !== null) {
          closeWith(reason);
          return;
        }
      }
      // A client that stops reading would have the server buffer its events without bound:
      // past a megabyte unread, the stream ends, and the client resumes with Last-Event-ID.
      if (out.writableLength > MAX_UNREAD_BYTES) {
        request.log.warn({ unread: out.writableLength }, 'event stream client is not reading; closing the stream');
        return;
      }
      const { events, cursor: next } = await bl.store.eventsFollow({ after: cursor, tenant: scope.tenant, limit: 500 });
      for (const event of events) {
        cursor = event.cursor;
        if (scope.batchId && event.batchId !== scope.batchId) continue;
        if (event.type === 'batch:progress' && event.batchId) {
          const last = lastProgress.get(event.batchId) ?? 0;
          if (Date.now() - last < PROGRESS_EVERY_MS) continue;
          lastProgress.set(event.batchId, Date.now());
        }
        out.write(message({ id: event.cursor, type: event.type, data: payload(event) }));
        lastWrite = Date.now();
      }
      cursor = next;
      if (Date.now() - lastWrite >= KEEPALIVE_MS) {
        out.write(': keepalive\n\n');
        lastWrite = Date.now();
      }
      if (events.length < 500) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
}
