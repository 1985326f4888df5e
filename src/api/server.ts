/**
 * The HTTP API (`/api/v1`) on Fastify. `createServer` builds it around an open Batchline;
 * `batchline serve` listens with it and, by default, runs workers in the same process.
 *
 * Every response that is not a success is `application/problem+json` (problem.ts). Request
 * parts are validated with the zod schemas of schemas.ts; a failure names the fields.
 *
 * Submitting: `POST /batches` takes JSON (`{ type, items, ... }`), or a streamed body of
 * `application/x-ndjson` or `text/csv` with `?type=`. Streamed bodies go straight from the
 * socket into the submission's transaction, item by item, so a 1,000,000-row upload never sits
 * in memory, and a dropped connection rolls the whole batch back. How bodies are read is in
 * bodies.ts; how the other parts of a request are, in requests.ts.
 */

import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { InputError, NotFoundError } from '../core/errors.js';
import { progressOf } from '../core/progress.js';
import type { Batch, Item } from '../core/types.js';
import { isWorkerActive } from '../core/types.js';
import type { Batchline } from '../engine/batchline.js';
import { streamItems, type StreamSource } from '../engine/sources.js';
import { Authenticator, isLoopbackHost, listingScope, stillValid, tenantScope } from './auth.js';
import { cutOffWhenIdle, LARGE_JSON_BYTES, mediaType, otherCharset, READ_AWAY_MAX_BYTES, readAway, readBodies, STREAMED, unsupportedType, type ReadAwayLimits } from './bodies.js';
import { instrument } from './metrics.js';
import { SSE_HEADERS, streamEvents, type StreamScope } from './sse.js';
import { openApiDocument } from './openapi.js';
import { DEFAULT_RATE_LIMIT, RateLimiter, type RateLimitOptions } from './rate-limit.js';
import { clientErrorResponse, problem, ProblemError, sendProblem, toProblem } from './problem.js';
import { idempotencyKeyOf, parse, parseLabels, refuseProtoLabel } from './requests.js';
import { createBatchBody, createBatchQuery, idParams, itemsQuery, listQuery, pruneBody, resultsQuery, workerParams } from './schemas.js';

export interface ServerOptions {
  batchline: Batchline;
  /** Logs requests and errors; default: silent. */
  logger?: Logger;
  /** Largest JSON body in bytes (default 16 MiB); streamed NDJSON and CSV bodies have no total limit. */
  bodyLimit?: number;
  /** Tenant of submissions when the API runs without keys (default `default`). */
  defaultTenant?: string;
  /** Requests per caller (API key, or client address without keys); false turns the limit off. */
  rateLimit?: RateLimitOptions | false;
  /**
   * A streamed upload that sends nothing for this long (default 30 s) is cut off and creates
   * nothing: its submission holds a database transaction open while it reads.
   */
  uploadIdleMs?: number;
  /**
   * The most of an already answered body (a refused or failed upload) the server reads away
   * so its sender gets the answer (default 256 MiB); past it, the connection is closed.
   */
  readAwayMaxBytes?: number;
  /** Event streams (SSE) one API key (or client address without keys) may hold open (default 20). */
  maxStreamsPerKey?: number;
  /**
   * Streamed uploads this process reads at once (default 4); more are refused with 503 and
   * Retry-After. Each holds a database connection for as long as its body takes, and the
   * workers in the same process need connections too.
   */
  maxConcurrentUploads?: number;
  /**
   * Once the server starts closing, how long a streamed upload still arriving gets to finish
   * (default 10 s); then it is cut off (503, nothing created), so a slow uploader cannot hold
   * the shutdown past its deadline.
   */
  shutdownMs?: number;
  /**
   * How long one `POST /batches/prune` goes on deleting before it answers with `more: true`
   * (default 5 s), so a prune of a long history never outlasts a proxy's timeout; the client
   * asks again until nothing is left.
   */
  pruneBudgetMs?: number;
}

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** `text` cut in the middle to about `max` characters: a problem echoes a path, not kilobytes of it. */
function elide(text: string, max = 200): string {
  return text.length <= max ? text : `${text.slice(0, max - 60)}…${text.slice(-59)}`;
}

/** Routes that read a query string (each parses it strictly). */
const TAKES_QUERY = new Set(['/api/v1/batches', '/api/v1/batches/:id/items', '/api/v1/batches/:id/results']);

/**
 * Steering takes no body. Clients that send the JSON type with every request may send an
 * empty body or `{}`; anything else (fields, or text) is refused rather than ignored.
 */
function refuseBody(request: FastifyRequest): void {
  const body = request.body;
  if (body === undefined || body === null || body === '') return;
  if (mediaType(request) !== 'application/json') throw new ProblemError(unsupportedType(request));
  if (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0) return;
  throw new ProblemError(problem('VALIDATION_ERROR', 'invalid body', [{ path: 'body', message: 'this request takes no body; send none, or {}' }]));
}

/** JSON of a batch for the API: dates as ISO strings and its progress. */
export function batchView(batch: Batch, now = Date.now()) {
  return {
    ...batch,
    createdAt: batch.createdAt.toISOString(),
    startedAt: batch.startedAt?.toISOString() ?? null,
    finishedAt: batch.finishedAt?.toISOString() ?? null,
    progress: progressOf(batch, now),
  };
}

/**
 * An item as the API shows it. Where a handler threw (`at`, `stack`) shows the server's file
 * layout: an admin (the operator) sees `at`; a tenant key sees neither. The stack stays in the
 * database (`items` view, `bl.items()`).
 */
function itemView(item: Item, admin: boolean) {
  if (!item.error) return item;
  const { stack: _stack, at, ...error } = item.error;
  return { ...item, error: admin && at !== undefined ? { ...error, at } : error };
}

/** Builds the API server (not yet listening). */
export async function createServer(options: ServerOptions): Promise<FastifyInstance> {
  const bl = options.batchline;
  const auth = new Authenticator(bl.store, options.defaultTenant ?? 'default');
  const uploadIdleMs = options.uploadIdleMs ?? 30_000;
  const readAwayLimits: ReadAwayLimits = { idleMs: uploadIdleMs, maxBytes: options.readAwayMaxBytes ?? READ_AWAY_MAX_BYTES };
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger | undefined,
    // Requests are counted by /metrics; logging each one would drown the worker's log.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 16 << 20,
    routerOptions: { ignoreTrailingSlash: true },
    // Errors Fastify raises before routing (a malformed URL such as /batches/%) get problems too.
    frameworkErrors: (error, _request, reply) => {
      void sendProblem(reply, problem('VALIDATION_ERROR', `malformed request: ${elide(error.message)}`));
    },
    // And those Node's HTTP parser refuses before Fastify sees a request.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable && socket.bytesWritten === 0) socket.end(clientErrorResponse(error as NodeJS.ErrnoException));
      socket.destroySoon();
    },
  });

  readBodies(app);

  app.setErrorHandler((error, request, reply) => {
    // A streamed upload that failed part-way leaves body unread; read it to the end so the
    // client, still sending, gets the answer instead of a reset connection.
    readAway(request.raw, readAwayLimits, request.log);
    // Fastify closes the connection on a body over the limit without reading the rest, so a
    // client still sending it gets a reset, often before it could read the 413. Up to
    // readAwayLimits.maxBytes the rest is read away instead, and the answer always arrives.
    const declared = Number(request.headers['content-length'] ?? 0);
    if ((error as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE' && declared <= readAwayLimits.maxBytes) reply.removeHeader('connection');
    const p = (error as { code?: string }).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? unsupportedType(request) : toProblem(error);
    if (p.status >= 500 && !(error instanceof InputError)) request.log.error({ err: error }, 'request failed');
    // A client that stopped sending gets its answer, then the connection is closed rather
    // than left waiting for a body that is not coming; so does an upload cut off by shutdown.
    const cutOff = error instanceof InputError && error.code === 'shutting_down';
    if (cutOff) reply.raw.once('finish', () => request.raw.socket.destroy());
    const headers: Record<string, string> = p.status === 408 || cutOff ? { connection: 'close' } : {};
    if (cutOff) headers['retry-after'] = '5';
    if (p.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer realm="batchline"';
    return sendProblem(reply, p, headers);
  });
  // Routes by pattern and method, so a known path asked with another method is a 405 naming
  // the methods it has (Allow), not a 404 saying it does not exist.
  const routes: { pattern: RegExp; method: string; url: string }[] = [];
  app.addHook('onRoute', (route) => {
    if ((route.config as { refusesMethod?: boolean } | undefined)?.refusesMethod) return;
    const pattern = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z]+/g, '[^/]+')}/?$`);
    for (const method of [route.method].flat()) routes.push({ pattern, method, url: route.url });
  });
  const refuseMethod = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0]!;
    // A path with a route of its own (/batches/prune) takes that route's methods, not those of
    // a pattern it also fits (/batches/:id).
    const exact = routes.filter((r) => r.url === path.replace(/(.)\/+$/, '$1'));
    const allowed = [...new Set((exact.length > 0 ? exact : routes.filter((r) => r.pattern.test(path))).map((r) => r.method))].sort();
    if (allowed.length > 0) {
      return sendProblem(reply, problem('METHOD_NOT_ALLOWED', `${path} takes ${allowed.join(', ')}, not ${request.method}`), { allow: allowed.join(', ') });
    }
    return sendProblem(reply, problem('NOT_FOUND', `no route ${request.method} ${elide(path)}`));
  };
  app.setNotFoundHandler(refuseMethod);

  const metrics = instrument(app, bl);
  // Ends open event streams when the server closes, so close() does not wait on them, and
  // gives uploads still arriving `shutdownMs` before they are cut off (nothing created).
  const closing = new AbortController();
  const arriving = new Set<IncomingMessage>();
  const shutdownMs = options.shutdownMs ?? 10_000;
  app.addHook('preClose', async () => {
    closing.abort();
    if (arriving.size === 0) return;
    const timer = setTimeout(() => {
      for (const raw of arriving) {
        if (raw.complete) continue;
        app.log.warn({ shutdownMs }, 'upload cut off: the server is shutting down');
        raw.emit('error', new InputError(`the server is shutting down and the upload had not arrived within ${shutdownMs} ms; nothing was created: retry against another server`, { code: 'shutting_down' }));
      }
    }, shutdownMs);
    timer.unref();
  });
  const limiter = options.rateLimit === false ? null : new RateLimiter(options.rateLimit ?? DEFAULT_RATE_LIMIT);
  const maxStreams = options.maxStreamsPerKey ?? 20;
  const maxUploads = options.maxConcurrentUploads ?? 4;
  let uploads = 0;
  /** Answers an upload over the budget with 503 and Retry-After, reading its body away. */
  const refuseUpload = (request: FastifyRequest, reply: FastifyReply) => {
    readAway(request.raw, readAwayLimits, request.log);
    return sendProblem(reply, problem('UNAVAILABLE', `${uploads} uploads are being read already, the most this server takes at once; retry shortly`), { 'retry-after': '1' });
  };
  /** Probes that must answer without a key (liveness) or are scraped by infrastructure. */
  const open = new Set(['/api/v1/health', '/api/v1/ready', '/api/v1/openapi.json']);
  app.decorateRequest('caller', null as never);
  app.addHook('onRequest', async (request, reply) => {
    // The router ignores a trailing slash; so must this check, or a probe of /health/ gets 401.
    if (open.has(request.url.split('?')[0]!.replace(/(.)\/+$/, '$1'))) {
      // Keyless, so limited per client address: a flood of probes cannot run the store hot.
      const wait = limiter?.take(`open ${request.ip}`) ?? 0;
      if (wait > 0) return sendProblem(reply, problem('RATE_LIMITED', `too many requests from this address; retry in ${wait} s`), { 'retry-after': String(wait) });
      return;
    }
    try {
      request.caller = await auth.authenticate(request);
      // Without keys the server answers as an admin to whoever reaches it, which it allows on
      // loopback only; a web page whose name resolves to 127.0.0.1 (DNS rebinding) must not
      // be such a caller, so only requests addressed to a loopback name are answered.
      if (request.caller.keyId === null && !isLoopbackHost(request.hostname)) {
        return sendProblem(
          reply,
          problem('FORBIDDEN', `without API keys this server answers only requests addressed to localhost or 127.0.0.1, not ${JSON.stringify(request.hostname)}; create a key (batchline keys create) to serve other names`),
        );
      }
    } catch (error) {
      // Failed attempts are limited per client address, so guessing costs as much as using.
      const wait = limiter?.take(`unauthenticated ${request.ip}`) ?? 0;
      if (wait > 0) return sendProblem(reply, problem('RATE_LIMITED', `too many failed requests from this address; retry in ${wait} s`), { 'retry-after': String(wait) });
      throw error;
    }
    const wait = limiter?.take(request.caller.keyId ?? request.ip) ?? 0;
    if (wait > 0) {
      return sendProblem(reply, problem('RATE_LIMITED', `more than the allowed requests per second for this ${request.caller.keyId ? 'API key' : 'client'}; retry in ${wait} s`), {
        'retry-after': String(wait),
      });
    }
    // Bodies are read as sent, as UTF-8: another charset would be misread, and a compressed
    // body refused as "not UTF-8".
    const charset = otherCharset(request);
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    const unreadable =
      charset !== null
        ? `bodies are read as UTF-8, not charset=${charset}; send UTF-8 text`
        : encoding && encoding !== 'identity'
          ? `Content-Encoding ${JSON.stringify(encoding)} is not supported; send the body uncompressed`
          : null;
    if (unreadable !== null) {
      readAway(request.raw, readAwayLimits, request.log);
      return sendProblem(reply, problem('UNSUPPORTED_MEDIA_TYPE', unreadable));
    }
    // A large JSON body is held whole, parsed, until its batch is created: such bodies share
    // the streamed uploads' budget, so memory stays bounded however many arrive at once.
    const length = request.headers['content-length'];
    const json = mediaType(request) === 'application/json';
    if (request.method === 'POST' && json && (length === undefined || Number(length) > LARGE_JSON_BYTES)) {
      if (uploads >= maxUploads) return refuseUpload(request, reply);
      uploads++;
      reply.raw.once('close', () => uploads--);
    }
  });

  /**
   * The items of an upload, then a last look at the caller's key before the batch is committed:
   * a key revoked while its body arrived (which can take minutes) creates nothing.
   */
  const untilRevoked = (items: StreamSource, caller: FastifyRequest['caller']): StreamSource => ({
    // Where an item came from (its line) still names it in a refusal.
    where: (index) => items.where(index),
    async *[Symbol.asyncIterator]() {
      yield* items;
      if (!(await stillValid(bl.store, caller))) {
        throw new ProblemError(problem('UNAUTHORIZED', 'the API key was revoked while the body arrived; nothing was created'));
      }
    },
  });

  /** A batch the caller may see, or 404 (never 403: another tenant's batch does not exist for it). */
  const visibleBatch = (request: FastifyRequest, id: string) => bl.getBatch(id, { tenant: tenantScope(request.caller) });

  await app.register(
    async (api) => {
      // Routes of batches, events and workers that read no query string refuse one, as those
      // that read one refuse a parameter they do not know: a misspelt option is said, not
      // ignored. Probes and the metrics scrape are left to the tools that call them.
      api.addHook('preHandler', async (request) => {
        const route = request.routeOptions.url ?? '';
        if (TAKES_QUERY.has(route) || !/^\/api\/v1\/(batches|events|workers)/.test(route)) return;
        const given = Object.keys(request.query as object);
        if (given.length > 0) {
          throw new ProblemError(problem('VALIDATION_ERROR', 'invalid query', given.map((name) => ({ path: `query.${name}`, message: 'this request takes no query parameters' }))));
        }
      });

      api.post('/batches', async (request, reply) => {
        const contentType = mediaType(request);
        const format = STREAMED[contentType];
        let submitted;
        if (format) {
          const query = parse(createBatchQuery, request.query, 'query');
          const labels = parseLabels(query.label);
          const idempotencyKey = idempotencyKeyOf(request, query.idempotencyKey, 'query.idempotencyKey');
          if (uploads >= maxUploads) return refuseUpload(request, reply);
          uploads++;
          arriving.add(request.raw);
          // The submission's transaction stays open while the body arrives: a client that
          // stops sending must not hold it (and a pool connection) for ever.
          const stopWatching = cutOffWhenIdle(request.raw, uploadIdleMs, request.log);
          try {
            submitted = await bl.submit(query.type, untilRevoked(streamItems(request.raw, format), request.caller), {
              tenant: request.caller.tenant,
              ...(query.priority !== undefined ? { priority: query.priority } : {}),
              ...(query.maxAttempts !== undefined ? { maxAttempts: query.maxAttempts } : {}),
              ...(query.timeoutMs !== undefined ? { timeoutMs: query.timeoutMs } : {}),
              ...(Object.keys(labels).length > 0 ? { labels } : {}),
              ...(idempotencyKey ? { idempotencyKey } : {}),
            });
          } finally {
            uploads--;
            arriving.delete(request.raw);
            stopWatching();
          }
        } else if (contentType === 'application/json') {
          // Options of a JSON submission are in its body; the query string is for streamed ones.
          const given = Object.keys(request.query as object);
          if (given.length > 0) {
            throw new ProblemError(
              problem('VALIDATION_ERROR', 'invalid query', given.map((name) => ({ path: `query.${name}`, message: 'a JSON body carries its options itself; put this in the body' }))),
            );
          }
          refuseProtoLabel(request.body);
          const { type, items, idempotencyKey: bodyKey, ...rest } = parse(createBatchBody, request.body, 'body');
          const idempotencyKey = idempotencyKeyOf(request, bodyKey, 'body.idempotencyKey');
          submitted = await bl.submit(type, items, {
            ...rest,
            tenant: request.caller.tenant,
            ...(idempotencyKey ? { idempotencyKey } : {}),
          });
        } else {
          throw new ProblemError(unsupportedType(request));
        }
        const { created, ...batch } = submitted;
        return reply.code(created ? 201 : 200).header('location', `/api/v1/batches/${batch.id}`).send(batchView(batch));
      });

      api.get('/batches', async (request) => {
        const query = parse(listQuery, request.query, 'query');
        const labels = parseLabels(query.label);
        const filter = {
          tenant: listingScope(request.caller, query.tenant),
          ...(query.status ? { status: [query.status].flat() } : {}),
          ...(query.type ? { type: query.type } : {}),
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
        };
        // One more than the page, to know whether another follows: a full last page ends with null.
        const [found, total] = await Promise.all([
          bl.listBatches({ ...filter, ...(query.cursor ? { before: query.cursor } : {}), limit: query.limit + 1 }),
          bl.countBatches(filter),
        ]);
        const batches = found.slice(0, query.limit);
        const now = Date.now();
        return { batches: batches.map((b) => batchView(b, now)), total, nextCursor: found.length > query.limit ? batches.at(-1)!.id : null };
      });

      api.get('/batches/:id', async (request) => {
        const { id } = parse(idParams, request.params, 'path');
        return batchView(await visibleBatch(request, id));
      });

      api.get('/batches/:id/progress', async (request) => {
        const { id } = parse(idParams, request.params, 'path');
        return progressOf(await visibleBatch(request, id));
      });

      api.get('/batches/:id/items', async (request) => {
        const { id } = parse(idParams, request.params, 'path');
        const query = parse(itemsQuery, request.query, 'query');
        await visibleBatch(request, id);
        const found = await bl.items(id, { ...(query.status ? { status: query.status } : {}), ...(query.after !== undefined ? { after: query.after } : {}), limit: query.limit + 1 });
        const items = found.slice(0, query.limit);
        return { items: items.map((item) => itemView(item, request.caller.admin)), nextAfter: found.length > query.limit ? items.at(-1)!.seq : null };
      });

      api.get('/batches/:id/results', async (request, reply) => {
        const { id } = parse(idParams, request.params, 'path');
        const { format } = parse(resultsQuery, request.query, 'query');
        await visibleBatch(request, id);
        // Pages of items become lines as the client reads them; nothing holds the whole batch.
        async function* lines(): AsyncGenerator<string> {
          if (format === 'csv') yield stringify([['seq', 'status', 'attempts', 'result', 'error']]);
          let after = -1;
          for (;;) {
            const page = await bl.items(id, { after, limit: 1_000 });
            for (const item of page) {
              const error = item.error ? { kind: item.error.kind, message: item.error.message } : null;
              yield format === 'csv'
                ? stringify([[item.seq, item.status, item.attempts, item.result === undefined || item.result === null ? '' : JSON.stringify(item.result), error ? `${error.kind}: ${error.message}` : '']])
                : `${JSON.stringify({ seq: item.seq, status: item.status, attempts: item.attempts, result: item.result ?? null, error })}\n`;
            }
            if (page.length < 1_000) return;
            after = page.at(-1)!.seq;
          }
        }
        return reply
          .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
          .header('content-disposition', `attachment; filename="${id}.${format === 'csv' ? 'csv' : 'ndjson'}"`)
          .send(Readable.from(lines()));
      });

      /**
       * Runs one event stream, at most `maxStreamsPerKey` at once per key (each polls the
       * store), ended when the key is revoked.
       */
      const openStreams = new Map<string, number>();
      const stream = async (request: FastifyRequest, reply: FastifyReply, scope: StreamScope) => {
        // HEAD says what a GET would answer without opening a stream, nor holding one of the key's.
        if (request.method === 'HEAD') return reply.headers(SSE_HEADERS).send();
        const caller = request.caller;
        const who = caller.keyId ?? request.ip;
        const open = openStreams.get(who) ?? 0;
        if (open >= maxStreams) {
          const detail = `this ${caller.keyId ? 'API key' : 'client'} already has ${open} event streams open, the most allowed; close one first`;
          return sendProblem(reply, problem('RATE_LIMITED', detail), { 'retry-after': '5' });
        }
        openStreams.set(who, open + 1);
        const startedAt = performance.now();
        const revoked = async () => ((await stillValid(bl.store, caller)) ? null : 'the API key was revoked');
        const closedBecause = scope.closedBecause;
        try {
          await streamEvents(bl, request, reply, { ...scope, closedBecause: async () => (await revoked()) ?? (await closedBecause?.()) ?? null }, closing.signal);
          metrics.recordHijacked(request, startedAt);
        } finally {
          const left = (openStreams.get(who) ?? 1) - 1;
          if (left === 0) openStreams.delete(who);
          else openStreams.set(who, left);
        }
      };

      api.get('/events', async (request, reply) => stream(request, reply, { tenant: tenantScope(request.caller) }));

      api.get('/batches/:id/events', async (request, reply) => {
        const { id } = parse(idParams, request.params, 'path');
        await visibleBatch(request, id);
        const snapshot = async () => batchView(await visibleBatch(request, id));
        // A deleted batch has no more events (its own are deleted with it): say so and end.
        const deleted = () =>
          bl.getBatch(id).then(
            () => null,
            (error: unknown) => {
              if (error instanceof NotFoundError) return 'the batch was deleted';
              throw error;
            },
          );
        return stream(request, reply, { tenant: tenantScope(request.caller), batchId: id, snapshot, closedBecause: deleted });
      });

      const action = (path: string, run: (id: string) => Promise<Batch>) =>
        api.post(`/batches/:id/${path}`, async (request) => {
          refuseBody(request);
          const { id } = parse(idParams, request.params, 'path');
          await visibleBatch(request, id);
          return batchView(await run(id));
        });
      action('cancel', (id) => bl.cancel(id));
      action('pause', (id) => bl.pause(id));
      action('resume', (id) => bl.resume(id));
      action('retry', async (id) => (await bl.retryFailed(id)).batch);

      api.delete('/batches/:id', async (request, reply: FastifyReply) => {
        refuseBody(request);
        const { id } = parse(idParams, request.params, 'path');
        await visibleBatch(request, id);
        await bl.deleteBatch(id);
        return reply.code(204).send();
      });

      // GET, HEAD and DELETE /batches/prune would otherwise reach /batches/:id, as a batch
      // with the id "prune"; they are refused like any other method the path does not take.
      api.route({ method: ['GET', 'HEAD', 'DELETE'], url: '/batches/prune', exposeHeadRoute: false, config: { refusesMethod: true }, handler: refuseMethod });
      api.post('/batches/prune', async (request) => {
        if (request.headers['content-type'] !== undefined && mediaType(request) !== 'application/json') {
          throw new ProblemError(unsupportedType(request));
        }
        const body = parse(pruneBody, request.body, 'body');
        const tenant = listingScope(request.caller, body.tenant, 'prune');
        const result = await bl.prune({ olderThanMs: body.olderThanMs, dryRun: body.dryRun, budgetMs: options.pruneBudgetMs ?? 5_000, ...(tenant === undefined ? {} : { tenant }) });
        return { ...result, finishedBefore: result.finishedBefore.toISOString(), tenant: tenant ?? null };
      });

      api.get('/workers', async (request) => {
        const now = Date.now();
        // Rows of workers that stopped without saying so stay until a reconciler prunes them.
        const workers = (await bl.workers()).filter((w) => isWorkerActive(w.heartbeatAt, now));
        const admin = request.caller.admin;
        return {
          workers: workers.map((w) => ({
            id: w.id,
            host: w.host,
            pid: w.pid,
            types: w.types,
            concurrency: w.concurrency,
            processed: w.processed,
            inFlight: w.inFlight,
            // Batch ids of every tenant: only admin keys see them.
            batches: admin ? w.batches : [],
            startedAt: w.startedAt.toISOString(),
            heartbeatAt: w.heartbeatAt.toISOString(),
            heartbeatAgeSeconds: Math.round((now - w.heartbeatAt.getTime()) / 100) / 10,
          })),
        };
      });

      api.post('/workers/:id/release', async (request) => {
        refuseBody(request);
        // A worker serves every tenant: declaring one dead is the operator's call.
        if (!request.caller.admin) throw new ProblemError(problem('FORBIDDEN', "a worker serves every tenant's batches: releasing one takes an admin key"));
        const { id } = parse(workerParams, request.params, 'path');
        return { id, ...(await bl.releaseWorker(id)) };
      });

      api.get('/metrics', async (request, reply) => {
        // Counts cover every tenant: scrapers use an admin key.
        if (!request.caller.admin) return sendProblem(reply, problem('FORBIDDEN', 'metrics cover every tenant: use an admin key'));
        return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
      });

      api.get('/openapi.json', async () => openApiDocument(version));

      // Liveness: this process serves. A database that cannot be read makes it `degraded`
      // (counts null, `detail` says why), not a 503 that would have an orchestrator restart
      // a process that cannot help it; /ready is the probe that turns 503.
      api.get('/health', async () => {
        try {
          const [counts, workers] = await Promise.all([bl.store.batchesCount(), bl.workers()]);
          const fresh = workers.filter((w) => isWorkerActive(w.heartbeatAt));
          return {
            status: 'ok' as const,
            workersActive: fresh.length,
            pendingBatches: (counts.queued ?? 0) + (counts.running ?? 0) + (counts.paused ?? 0),
            batchesProcessed: (counts.completed ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0),
          };
        } catch (error) {
          const detail = toProblem(error).detail;
          return { status: 'degraded' as const, workersActive: null, pendingBatches: null, batchesProcessed: null, detail };
        }
      });

      api.get('/ready', async (_request, reply) => {
        try {
          const status = await bl.store.migrationStatus();
          if (status.current !== status.latest) {
            return sendProblem(reply, problem('UNAVAILABLE', `database schema is at version ${status.current}, this server needs ${status.latest}: run \`batchline migrate\``));
          }
          return { ready: true, schemaVersion: status.current };
        } catch (error) {
          return sendProblem(reply, problem('UNAVAILABLE', `database unreachable: ${(error as Error).message}`));
        }
      });
    },
    { prefix: '/api/v1' },
  );
  return app;
}
