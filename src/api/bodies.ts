/**
 * Reading request bodies. JSON bodies are parsed whole, with errors that name line and column;
 * NDJSON and CSV bodies reach their route as the raw stream, which the submission reads item by
 * item. A body that stops arriving is cut off, and the rest of a body the server has already
 * answered is read away (within limits), so its sender gets the answer, not a reset.
 */

import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { InputError } from '../core/errors.js';
import { inexactNumber } from '../core/json-numbers.js';
import { firstNonUtf8Line } from '../engine/sources.js';
import { problem, type Problem } from './problem.js';

/** A refused body up to this size is read to its end, so its sender gets the answer. */
export const READ_AWAY_MAX_BYTES = 256 << 20;

/** How long, and how much of, an answered body is read away before its connection is closed. */
export interface ReadAwayLimits {
  idleMs: number;
  maxBytes: number;
}

/** JSON bodies larger than this (or of unknown length) count against the upload budget. */
export const LARGE_JSON_BYTES = 1 << 20;

export const STREAMED: Record<string, 'jsonl' | 'csv'> = { 'application/x-ndjson': 'jsonl', 'application/jsonl': 'jsonl', 'text/csv': 'csv' };

/**
 * Calls `onIdle` once if a request body stops arriving: no byte for `idleMs` while the server
 * waits for one (nothing of the body is left unread). Once the body is complete it never
 * fires, so a slow commit after the last byte is not mistaken for an idle client. Returns the
 * stop function.
 */
function whenIdle(request: IncomingMessage, idleMs: number, onIdle: (bytesRead: number) => void): () => void {
  let bytes = request.socket.bytesRead;
  let lastProgress = Date.now();
  const timer = setInterval(() => {
    if (request.complete || request.destroyed) return clearInterval(timer);
    if (request.socket.bytesRead !== bytes || request.readableLength > 0) {
      bytes = request.socket.bytesRead;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress >= idleMs) {
      clearInterval(timer);
      onIdle(bytes);
    }
  }, Math.max(50, Math.min(1_000, idleMs / 4)));
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Fails an upload whose body stops arriving: its readers see an InputError (`body_idle`), so
 * the submission rolls back and the client is answered 408.
 */
export function cutOffWhenIdle(request: IncomingMessage, idleMs: number, log: FastifyBaseLogger): () => void {
  return whenIdle(request, idleMs, (bytesRead) => {
    log.warn({ idleMs, bytesRead }, 'upload cut off: its body stopped arriving');
    request.emit('error', new InputError(`nothing of the body arrived for ${idleMs} ms; the upload is cut off and nothing was created`, { code: 'body_idle' }));
  });
}

/**
 * Reads away the rest of a body the server has already answered (a refused or failed upload),
 * so a client still sending gets the answer rather than a reset connection. A client that
 * stops sending is disconnected after `idleMs`, and one that sends more than `maxBytes` after
 * the answer at once, instead of holding the socket (and the server's reading) for ever.
 */
export function readAway(request: IncomingMessage, { idleMs, maxBytes }: ReadAwayLimits, log: FastifyBaseLogger): void {
  if (request.readableEnded || request.destroyed) return;
  let discarded = 0;
  request.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > maxBytes && !request.socket.destroyed) {
      log.warn({ discarded }, 'connection closed: more of an answered body than the server reads away');
      request.socket.destroy();
    }
  });
  request.resume();
  whenIdle(request, idleMs, (bytesRead) => {
    log.warn({ idleMs, bytesRead }, 'connection closed: the rest of an answered body stopped arriving');
    request.socket.destroy();
  });
}

/**
 * A JSON body that does not parse, named by line and column where V8 gives an offset, by its
 * last line when it ended early; V8's other messages quote the text around the fault instead.
 */
function malformedJson(text: string, error: Error): InputError {
  // "… in JSON at position 7", or "… after JSON at position 36" for text after the value.
  const offset = / (?:in|after) JSON at position (\d+)/.exec(error.message)?.[1];
  const reason = error.message.replace(/ in JSON at position \d+.*$/, '').replace(/ after JSON at position \d+.*$/, ' after the JSON value');
  const lineOf = (before: string) => before.split('\n').length;
  let where = 'request body';
  if (offset !== undefined) {
    const before = text.slice(0, Number(offset));
    where = `request body:${lineOf(before)}:${before.length - before.lastIndexOf('\n')}`;
  } else if (reason.startsWith('Unexpected end')) {
    where = `request body:${lineOf(text)}`;
  }
  return new InputError(`malformed JSON: ${reason}`, { where, code: 'malformed_json' });
}

/** A request's media type, lower-cased without parameters (`application/json`); '' without a Content-Type. */
/**
 * The charset a Content-Type names, lower-cased, when it names one other than UTF-8 (or its
 * subset US-ASCII): bodies are read as UTF-8, so such a body is refused, not misread.
 */
export function otherCharset(request: FastifyRequest): string | null {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  return charset === undefined || ['utf-8', 'utf8', 'us-ascii'].includes(charset) ? null : charset;
}

export function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** The 415 for a body whose content type a route does not read, naming the types it does. */
export function unsupportedType(request: FastifyRequest): Problem {
  const given = JSON.stringify(request.headers['content-type'] || 'no content type');
  const route = request.method === 'POST' ? request.routeOptions.url : undefined;
  const takes =
    route === '/api/v1/batches'
      ? 'send application/json, application/x-ndjson or text/csv'
      : route === '/api/v1/batches/prune'
        ? 'send application/json'
        : 'this request takes no body, or an application/json one';
  return problem('UNSUPPORTED_MEDIA_TYPE', `${takes}, not ${given}`);
}

/** Installs the body parsers of every route: streamed bodies as the raw stream, JSON as below. */
export function readBodies(app: FastifyInstance): void {
  // Streamed bodies reach the handler as the raw request stream.
  app.addContentTypeParser(Object.keys(STREAMED), (_request, payload, done) => done(null, payload));
  // JSON bodies are read as NDJSON lines are: JSON.parse, whose objects hold a "__proto__"
  // key as plain data (as stored items must), with an error naming line and column. They are
  // refused when a number in them would be changed by reading it (an int64 id), and when their
  // bytes are not UTF-8, rather than read with U+FFFD in their place. An empty body is no body:
  // clients that set the JSON type on every request (a POST /cancel) are not refused for it.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser<Buffer>('application/json', { parseAs: 'buffer' }, (_request, bytes, done) => {
    // A byte order mark is no part of the JSON (RFC 8259 lets a reader skip it), as in NDJSON and CSV bodies.
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    if (bytes.length === 0) return done(null, undefined);
    if (!isUtf8(bytes)) {
      const where = `request body:${firstNonUtf8Line(bytes)}`;
      return done(new InputError('not UTF-8 text (another encoding, such as Latin-1?); send JSON as UTF-8', { where, code: 'not_utf8' }));
    }
    const body = bytes.toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (error) {
      return done(malformedJson(body, error as Error));
    }
    const inexact = inexactNumber(body);
    if (inexact === null) return done(null, value);
    done(new InputError(`the number ${inexact} cannot be kept exactly (JSON numbers are read as 64-bit floats); send it as a string, "${inexact}"`, { where: 'request body', code: 'inexact_number' }));
  });
}
