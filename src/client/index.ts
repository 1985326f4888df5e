/**
 * A typed client of the Batchline HTTP API, over `fetch`. Used by the CLI (`--server`), the
 * tests and the dashboard; importable as `batchline/client` with no server-side dependencies.
 *
 * ```ts
 * const client = new BatchlineClient({ baseUrl: 'http://127.0.0.1:7700', apiKey: process.env.BATCHLINE_API_KEY });
 * const batch = await client.createBatch({ type: 'txn.apply', items: rows }, { idempotencyKey: 'file-2026-11-22' });
 * const progress = await client.progress(batch.id);
 * ```
 *
 * Every non-2xx answer throws an ApiError carrying the server's problem (`code`, `detail`,
 * field `errors`).
 */

import type { z } from 'zod';
import { lossyItem } from '../core/json-values.js';
import type { Progress } from '../core/progress.js';
import type { ItemStatus, BatchStatus } from '../core/statuses.js';
import type { Problem } from '../api/problem.js';
import type { PayloadOf } from '../engine/registry.js';
import type { batchSchema, createBatchBody, healthSchema, itemSchema, pruneBody, pruneResultSchema } from '../api/schemas.js';

export type ApiBatch = z.infer<typeof batchSchema>;
export type ApiItem = z.infer<typeof itemSchema>;
export type Health = z.infer<typeof healthSchema>;
/** A batch to create; items of a type declared in ItemTypes must have its payload type. */
export type CreateBatchInput<T extends string = string> = Omit<z.input<typeof createBatchBody>, 'type' | 'items'> & { type: T; items: PayloadOf<T>[] };
export type PruneInput = z.input<typeof pruneBody>;
export type ApiPruneResult = z.infer<typeof pruneResultSchema>;
export interface ApiWorker {
  id: string;
  host: string;
  pid: number;
  types: string[];
  concurrency: number;
  processed: number;
  inFlight: number;
  batches: string[];
  startedAt: string;
  heartbeatAt: string;
  heartbeatAgeSeconds: number;
}
export type { Problem, Progress };

/** A non-2xx answer: `status` and the problem document the server sent. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    // Status 0 is not HTTP's: the server was not reached, and the code says so.
    super(`${status === 0 ? '' : `${status} `}${problem.code}: ${problem.detail}${problem.errors ? ` (${problem.errors.map((e) => `${e.path}: ${e.message}`).join('; ')})` : ''}`);
    this.name = 'ApiError';
  }

  get code(): string {
    return this.problem.code;
  }
}

export interface ClientOptions {
  /** Server address, such as `http://127.0.0.1:7700` (the `/api/v1` prefix is added). */
  baseUrl: string;
  apiKey?: string;
  /** Replaces the global fetch (tests, proxies). */
  fetch?: typeof fetch;
  /**
   * How many times a 429, or a 503 with Retry-After, is retried after waiting as it says
   * (default 5). A streamed body is retried only when given as a function that opens it again.
   */
  retries?: number;
}

type Query = Record<string, string | number | string[] | undefined>;
/** What fetch accepts as a request body. */
type BodyInit = NonNullable<RequestInit['body']>;

/** One line of the results export. */
export interface ResultRow {
  seq: number;
  status: ItemStatus;
  attempts: number;
  result: unknown;
  error: { kind: string; message: string } | null;
}

/** One server-sent event: its id (the cursor to resume after), its type and its data. */
export interface ServerEvent {
  id: string | null;
  /** `batch:snapshot`, `batch:progress`, `batch:completed`, …, or `stream:closed`. */
  event: string;
  data: unknown;
}

/** The lines of a byte stream of UTF-8 text, without their line breaks. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    const parts = (rest + decoder.decode(chunk, { stream: true })).split(/\r?\n/);
    rest = parts.pop()!;
    yield* parts;
  }
  rest += decoder.decode();
  if (rest !== '') yield rest;
}

/** A typed client of the HTTP API over fetch; errors are ApiErrors carrying the server's problem. */
export class BatchlineClient {
  private readonly base: string;
  private readonly fetchImpl: typeof fetch;

  /** A client of the server at `options.baseUrl`, sending `options.apiKey` as a bearer token when given. */
  constructor(private readonly options: ClientOptions) {
    this.base = `${options.baseUrl.replace(/\/+$/, '')}/api/v1`;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /**
   * Creates a batch from items in memory. A repeated idempotency key returns the first batch
   * (`created: false`). Items of a type declared in ItemTypes are checked at compile time.
   */
  async createBatch<T extends string>(input: CreateBatchInput<T>, options: { idempotencyKey?: string } = {}): Promise<ApiBatch & { created: boolean }> {
    // JSON.stringify would send NaN as null and a Map as {}: refused here, as `submit` refuses
    // them, rather than created as data the caller never meant.
    for (const [index, item] of (Array.isArray(input.items) ? input.items : []).entries()) {
      const lossy = lossyItem(item);
      if (lossy) {
        const detail = `item ${index + 1}: ${lossy}`;
        throw new ApiError(400, { type: 'https://batchline.dev/problems/validation-error', title: 'Invalid request', status: 400, detail, code: 'VALIDATION_ERROR', errors: [{ path: `body.items.${index}`, message: lossy }] });
      }
    }
    const res = await this.send('POST', '/batches', {
      body: JSON.stringify(input),
      headers: { 'content-type': 'application/json', ...idempotencyHeaders(options.idempotencyKey) },
    });
    return { ...((await res.json()) as ApiBatch), created: res.status === 201 };
  }

  /**
   * Creates a batch from a streamed NDJSON or CSV body (a string, bytes, or a stream such as
   * `Readable.toWeb(createReadStream(file))`), without holding it in memory. Pass a function
   * that opens the stream to let the client send it again when the server asks to retry later
   * (429, or 503 with Retry-After while it reads its most uploads at once).
   */
  async uploadBatch(
    type: string,
    body: BodyInit | (() => BodyInit),
    options: { format: 'ndjson' | 'csv'; priority?: number; maxAttempts?: number; timeoutMs?: number; labels?: Record<string, string>; idempotencyKey?: string },
  ): Promise<ApiBatch & { created: boolean }> {
    const query: Query = {
      type,
      priority: options.priority,
      maxAttempts: options.maxAttempts,
      timeoutMs: options.timeoutMs,
      label: options.labels ? Object.entries(options.labels).map(([k, v]) => `${k}:${v}`) : undefined,
    };
    const res = await this.send('POST', '/batches', {
      query,
      body,
      headers: {
        'content-type': options.format === 'csv' ? 'text/csv' : 'application/x-ndjson',
        ...idempotencyHeaders(options.idempotencyKey),
      },
      duplex: 'half',
    });
    return { ...((await res.json()) as ApiBatch), created: res.status === 201 };
  }

  /**
   * Batches, newest first; `total` counts every page; `labels` must all match; `tenant` narrows
   * an admin key's view (a tenant key may name only its own); pass `nextCursor` back as `cursor`
   * for the next page.
   */
  async listBatches(
    query: { status?: BatchStatus | BatchStatus[]; type?: string; tenant?: string; labels?: Record<string, string>; limit?: number; cursor?: string } = {},
  ): Promise<{ batches: ApiBatch[]; total: number; nextCursor: string | null }> {
    const { labels, ...rest } = query;
    return (await this.send('GET', '/batches', { query: { ...rest, label: labels ? Object.entries(labels).map(([k, v]) => `${k}:${v}`) : undefined } })).json() as never;
  }

  /** One batch with its counters, aggregates, progress percent, throughput and ETA. */
  async getBatch(id: string): Promise<ApiBatch> {
    return (await this.send('GET', `/batches/${encodeURIComponent(id)}`)).json() as never;
  }

  /** A batch's progress: processed, total, percent, succeeded, failed, remaining, items/s, ETA, status. */
  async progress(id: string): Promise<Progress> {
    return (await this.send('GET', `/batches/${encodeURIComponent(id)}/progress`)).json() as never;
  }

  /** Items in seq order; pass `nextAfter` back as `after` for the next page. */
  async items(id: string, query: { status?: ItemStatus; after?: number; limit?: number } = {}): Promise<{ items: ApiItem[]; nextAfter: number | null }> {
    return (await this.send('GET', `/batches/${encodeURIComponent(id)}/items`, { query })).json() as never;
  }

  /** Cancels the batch: once this returns, no item of it starts. A finished batch is a 409 ApiError. */
  cancel(id: string): Promise<ApiBatch> {
    return this.action(id, 'cancel');
  }

  /** Pauses the batch: no new item starts until resume; running ones finish. */
  pause(id: string): Promise<ApiBatch> {
    return this.action(id, 'pause');
  }

  /** Resumes a paused batch. */
  resume(id: string): Promise<ApiBatch> {
    return this.action(id, 'resume');
  }

  /** Re-runs the batch's failed items. */
  retry(id: string): Promise<ApiBatch> {
    return this.action(id, 'retry');
  }

  /** Deletes the batch with its items and events (an open batch is cancelled first). */
  async deleteBatch(id: string): Promise<void> {
    await this.send('DELETE', `/batches/${encodeURIComponent(id)}`);
  }

  /**
   * Deletes finished batches older than `olderThanMs` with their items and events (a tenant
   * key: its own tenant's; an admin key: `tenant`'s, or every tenant's); the result's `tenant`
   * says which it covered. One request deletes for a few seconds; this calls again while the
   * server answers `more`, and adds them up (`finishedBefore` is the last request's cutoff).
   * An error after earlier requests deleted batches says how many in its detail.
   */
  async prune(input: PruneInput): Promise<ApiPruneResult> {
    let batches = 0;
    for (;;) {
      let page: ApiPruneResult;
      try {
        const res = await this.send('POST', '/batches/prune', { body: JSON.stringify(input), headers: { 'content-type': 'application/json' } });
        page = (await res.json()) as ApiPruneResult;
      } catch (error) {
        if (!(error instanceof ApiError) || batches === 0) throw error;
        throw new ApiError(error.status, { ...error.problem, detail: `${error.problem.detail} (after earlier requests of this prune deleted ${batches} batches)` });
      }
      batches += page.batches;
      if (!page.more || (page.batches === 0 && !input.dryRun)) return { ...page, batches };
    }
  }

  /**
   * Every item's outcome as the server streams it (`GET /batches/:id/results`): NDJSON lines
   * `{ seq, status, attempts, result, error }` or CSV rows, as a byte stream to pipe to a file.
   */
  async results(id: string, options: { format?: 'ndjson' | 'csv' } = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send('GET', `/batches/${encodeURIComponent(id)}/results`, { query: { format: options.format ?? 'ndjson' } });
    return res.body ?? new ReadableStream({ start: (controller) => controller.close() });
  }

  /** Every item's outcome, parsed from the NDJSON export, one at a time (the batch is never held whole). */
  async *resultRows(id: string): AsyncGenerator<ResultRow> {
    for await (const line of lines(await this.results(id, { format: 'ndjson' }))) {
      if (line.trim() !== '') yield JSON.parse(line) as ResultRow;
    }
  }

  /**
   * Server-sent events, as they come: one batch's (starting with its `batch:snapshot`) when
   * `batchId` is given, else every batch the key may see. Pass the last `id` seen as
   * `lastEventId` to resume after it. Ends when the server ends the stream (`stream:closed`
   * says why, when it does) or `signal` aborts.
   */
  async *events(options: { batchId?: string; lastEventId?: string; signal?: AbortSignal } = {}): AsyncGenerator<ServerEvent> {
    const path = options.batchId ? `/batches/${encodeURIComponent(options.batchId)}/events` : '/events';
    const res = await this.send('GET', path, {
      headers: { accept: 'text/event-stream', ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}) },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (!res.body) return;
    let event: Partial<ServerEvent> & { data?: string } = {};
    try {
      for await (const line of lines(res.body)) {
        if (line === '') {
          if (event.event && event.data !== undefined) yield { id: event.id ?? null, event: event.event, data: JSON.parse(event.data) };
          event = {};
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'id') event.id = value;
          else if (field === 'event') event.event = value;
          else if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
        }
      }
    } catch (error) {
      if (!options.signal?.aborted) throw error;
    }
  }

  /** Workers that sent a heartbeat recently. */
  async workers(): Promise<{ workers: ApiWorker[] }> {
    return (await this.send('GET', '/workers')).json() as never;
  }

  /**
   * Declares a worker dead and hands its chunks back now (admin keys): what `batchline workers
   * release` does. A 404 ApiError for a worker the database does not know.
   */
  async releaseWorker(id: string): Promise<{ id: string; chunks: number }> {
    return (await this.send('POST', `/workers/${encodeURIComponent(id)}/release`)).json() as never;
  }

  /** Liveness: `{ status, workersActive, pendingBatches, batchesProcessed }`. */
  async health(): Promise<Health> {
    return (await this.send('GET', '/health')).json() as never;
  }

  /** Readiness: the database is reachable and its migrations are current (else a 503 ApiError). */
  async ready(): Promise<{ ready: true; schemaVersion: number }> {
    return (await this.send('GET', '/ready')).json() as never;
  }

  private async action(id: string, name: string): Promise<ApiBatch> {
    return (await this.send('POST', `/batches/${encodeURIComponent(id)}/${name}`)).json() as never;
  }

  private async send(
    method: string,
    path: string,
    init: { query?: Query; body?: BodyInit | (() => BodyInit); headers?: Record<string, string>; duplex?: 'half'; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const url = new URL(`${this.base}${path}`);
    for (const [key, value] of Object.entries(init.query ?? {})) {
      if (value === undefined) continue;
      for (const v of [value].flat()) url.searchParams.append(key, String(v));
    }
    const request = (): RequestInit =>
      ({
        method,
        body: typeof init.body === 'function' ? init.body() : init.body,
        headers: { accept: 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}), ...init.headers },
        ...(init.duplex ? { duplex: init.duplex } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      }) as RequestInit;
    // A stream can be sent once; a string, nothing, or a function that opens the stream again, any number of times.
    const replayable = init.body === undefined || typeof init.body === 'string' || typeof init.body === 'function';
    let res: Response;
    for (let attempt = 0; ; attempt++) {
      try {
        res = await this.fetchImpl(url, request());
      } catch (error) {
        const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
        throw new ApiError(0, { type: 'about:blank', title: 'Server unreachable', status: 0, detail: `cannot reach ${this.options.baseUrl}: ${cause}`, code: 'UNAVAILABLE' });
      }
      // Asked to come back later: too many requests, or (503 with Retry-After) too busy right
      // now. Batchline answers those before acting; a 503 from a proxy in between may come
      // after the request went through, so only a GET, or Batchline's own problem, is retried.
      const ours = (res.headers.get('content-type') ?? '').startsWith('application/problem+json');
      const later = res.status === 429 || (res.status === 503 && res.headers.has('retry-after') && (method === 'GET' || ours));
      if (!later || !replayable || attempt >= (this.options.retries ?? 5)) break;
      await res.body?.cancel();
      const wait = Number(res.headers.get('retry-after') ?? 1);
      await new Promise((resolve) => setTimeout(resolve, Math.min(60, Number.isFinite(wait) ? wait : 1) * 1000));
    }
    if (res.ok) return res;
    const text = await res.text();
    let problem: Problem;
    try {
      problem = JSON.parse(text) as Problem;
    } catch {
      problem = { type: 'about:blank', title: res.statusText, status: res.status, detail: text.slice(0, 500) || res.statusText, code: 'INTERNAL' };
    }
    throw new ApiError(res.status, problem);
  }
}

/**
 * The `Idempotency-Key` header for a key, its UTF-8 bytes as a byte string: fetch takes only
 * byte strings in headers, and the server reads the bytes back as UTF-8, so any key the body
 * could carry works in the header too.
 */
function idempotencyHeaders(key: string | undefined): Record<string, string> {
  if (!key) return {};
  return { 'idempotency-key': String.fromCharCode(...new TextEncoder().encode(key)) };
}
