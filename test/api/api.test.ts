/**
 * The HTTP API through real HTTP on a listening server, on both stores: every endpoint and
 * status code, streamed uploads (and a dropped one), problem documents, API keys and tenant
 * isolation.
 */

import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { text as streamText } from 'node:stream/consumers';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKey } from '../../src/api/keys.js';
import { createServer } from '../../src/api/server.js';
import { PRUNE_PAGE } from '../../src/engine/reconciler.js';
import { ApiError, BatchlineClient } from '../../src/client/index.js';
import { Batchline, PermanentError } from '../../src/index.js';
import { gate, sleep, until } from '../helpers/factory.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

if (!inject('pgUrl')) console.warn(inject('pgSkipReason'));

async function raw(base: string, method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(`${base}/api/v1${path}`, { method, body: init.body, headers: init.headers });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** Reads an event stream until `type` arrives, then closes it. */
async function readFor(res: Response, type: string): Promise<string> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  while (!text.includes(`event: ${type}`)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  await reader.cancel();
  return text;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response shapes are asserted below
const getJson = async (url: string): Promise<any> => (await fetch(url)).json();

describe.each(storeKinds)('HTTP API: %s', (kind) => {
  let bl: Batchline;
  let app: FastifyInstance;
  let base: string;
  let cleanup: () => Promise<void>;
  const client = () => new BatchlineClient({ baseUrl: base });

  beforeAll(async () => {
    const db = await freshDatabase(kind);
    cleanup = db.cleanup;
    bl = await Batchline.open({ database: db.database, schema: db.schema, logLevel: 'silent' });
    bl.define('echo', async (row: { n: number }) => ({ twice: row.n * 2 }));
    bl.define('picky', async (row: { n: number }) => {
      if (row.n % 2 === 1) throw new PermanentError(`odd ${row.n}`);
      return { ok: true };
    });
    bl.define('slow', async (_row, ctx) => new Promise((resolve) => setTimeout(resolve, 50_000).unref() && ctx.signal.addEventListener('abort', () => resolve(null))));
    await bl.start({ concurrency: 4 });
    app = await createServer({ batchline: bl, bodyLimit: 64 * 1024 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await bl?.close();
    await cleanup?.();
  });

  it('creates a batch from JSON (201), returns it again for a repeated Idempotency-Key (200), and runs it', async () => {
    const items = [{ n: 1 }, { n: 2 }, { n: 3 }];
    const first = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items, labels: { file: 'a.csv' } }), headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' } });
    expect(first.status).toBe(201);
    expect(first.headers.get('location')).toBe(`/api/v1/batches/${first.body.id}`);
    expect(first.body).toMatchObject({ type: 'echo', tenant: 'default', total: 3, labels: { file: 'a.csv' }, idempotencyKey: 'k-1' });
    const again = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items, labels: { file: 'a.csv' } }), headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    const different = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [{ n: 9 }] }), headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' } });
    expect(different.status).toBe(409);
    expect(different.body.code).toBe('IDEMPOTENCY_CONFLICT');
    // A key beyond ASCII means the same in the header (the client sends its UTF-8 bytes, as curl
    // does) as in the body.
    const unicode = await client().createBatch({ type: 'echo', items }, { idempotencyKey: 'café-日本' });
    expect(unicode).toMatchObject({ created: true, idempotencyKey: 'café-日本' });
    const inBody = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items, idempotencyKey: 'café-日本' }), headers: { 'content-type': 'application/json' } });
    expect([inBody.status, inBody.body.id]).toEqual([200, unicode.id]);

    const done = await bl.wait(first.body.id, { timeoutMs: 20_000 });
    expect(done.succeeded).toBe(3);
    const got = await client().getBatch(first.body.id);
    expect(got).toMatchObject({ status: 'completed', succeeded: 3, remaining: 0, progress: { percent: 100, processed: 3, etaSeconds: 0 } });
    const progress = await client().progress(first.body.id);
    expect(progress).toMatchObject({ processed: 3, total: 3, percent: 100, succeeded: 3, failed: 0, remaining: 0, status: 'completed' });
    expect(progress.itemsPerSecond).toBeGreaterThan(0);
    const { items: page1, nextAfter } = await client().items(first.body.id, { limit: 2 });
    expect(page1.map((i) => [i.seq, i.status, i.result])).toEqual([[0, 'succeeded', { twice: 2 }], [1, 'succeeded', { twice: 4 }]]);
    const { items: page2, nextAfter: end } = await client().items(first.body.id, { after: nextAfter!, limit: 2 });
    expect([page2.map((i) => i.seq), end]).toEqual([[2], null]);
    // A last page that is exactly full says it is the last.
    expect((await client().items(first.body.id, { limit: 3 })).nextAfter).toBeNull();
  });

  it('lists batches newest first with cursor paging and filters', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client().createBatch({ type: 'echo', items: [{ n: i }] })).id);
    const page1 = await client().listBatches({ type: 'echo', limit: 2 });
    expect(page1.batches.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    expect(page1.total).toBeGreaterThanOrEqual(3);
    const page2 = await client().listBatches({ type: 'echo', limit: 2, cursor: page1.nextCursor! });
    expect(page2.batches[0]!.id).toBe(ids[0]);
    // A last page that is exactly full says it is the last.
    const whole = await client().listBatches({ type: 'echo', limit: 500 });
    const exact = await client().listBatches({ type: 'echo', limit: whole.batches.length });
    expect([exact.batches.length, exact.nextCursor]).toEqual([whole.batches.length, null]);
    const none = await client().listBatches({ type: 'no.such.type' });
    expect(none).toEqual({ batches: [], total: 0, nextCursor: null });
    const labelled = await client().createBatch({ type: 'echo', items: [{ n: 1 }], labels: { run: 'r-42', env: 'test' } });
    const byLabel = await client().listBatches({ labels: { run: 'r-42' } });
    expect(byLabel).toMatchObject({ total: 1, batches: [{ id: labelled.id }] });
    expect((await client().listBatches({ labels: { run: 'r-42', env: 'prod' } })).total).toBe(0);
    expect((await raw(base, 'GET', '/batches?label=novalue')).status).toBe(400);
    const bad = await raw(base, 'GET', '/batches?limit=0&status=bogus');
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['query.limit', 'query.status']);
    // A bad status names the ones there are, not just "Invalid input".
    expect(bad.body.errors.find((e: { path: string }) => e.path === 'query.status').message).toMatch(/expected one of .*"queued"/);
  });

  it('answers bad requests with problem documents that name the field', async () => {
    const missing = await raw(base, 'POST', '/batches', { body: JSON.stringify({ items: [] }), headers: { 'content-type': 'application/json' } });
    expect(missing.status).toBe(400);
    expect(missing.type).toContain('application/problem+json');
    expect(missing.body).toMatchObject({ code: 'VALIDATION_ERROR', status: 400, title: expect.any(String), type: expect.stringContaining('validation-error') });
    expect(missing.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['body.items', 'body.type']);

    const malformed = await raw(base, 'POST', '/batches', { body: '{"type": "echo", ', headers: { 'content-type': 'application/json' } });
    expect(malformed).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR', detail: 'request body:1:18: malformed JSON: Expected double-quoted property name' } });
    const comma = await raw(base, 'POST', '/batches', { body: '{"type": "echo",\n "items": [1],\n}', headers: { 'content-type': 'application/json' } });
    expect(comma.body.detail).toBe('request body:3:1: malformed JSON: Expected double-quoted property name');
    const early = await raw(base, 'POST', '/batches', { body: '{"type": "echo",\n "items": [1', headers: { 'content-type': 'application/json' } });
    expect(early.body.detail).toBe("request body:2:13: malformed JSON: Expected ',' or ']' after array element");
    const ended = await raw(base, 'POST', '/batches', { body: '{"type": "echo",\n "items":', headers: { 'content-type': 'application/json' } });
    expect(ended.body.detail).toBe('request body:2: malformed JSON: Unexpected end of JSON input');
    const trailing = await raw(base, 'POST', '/batches', { body: '{"type": "echo", "items": [1]}\n}', headers: { 'content-type': 'application/json' } });
    expect(trailing.body.detail).toBe('request body:2:1: malformed JSON: Unexpected non-whitespace character after the JSON value');
    // A byte order mark is skipped, as in NDJSON and CSV; a charset other than UTF-8 is refused, not misread.
    const bom = await fetch(`${base}/api/v1/batches`, { method: 'POST', body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"type":"echo","items":[1]}')]), headers: { 'content-type': 'application/json' } });
    expect(bom.status).toBe(201);
    for (const type of ['application/json; charset=utf-16', 'application/x-ndjson; charset="ISO-8859-1"', 'text/csv;charset=latin1']) {
      const res = await raw(base, 'POST', '/batches?type=echo', { body: '{"n":1}\n', headers: { 'content-type': type } });
      expect([type, res.status, res.body.detail]).toEqual([type, 415, expect.stringMatching(/^bodies are read as UTF-8, not charset=(utf-16|iso-8859-1|latin1); send UTF-8 text$/)]);
    }
    expect((await raw(base, 'POST', '/batches', { body: '{"type":"echo","items":[1]}', headers: { 'content-type': 'application/json; charset=UTF-8' } })).status).toBe(201);
    for (const [path, type, accepted] of [
      ['/batches', 'text/plain', 'send application/json, application/x-ndjson or text/csv, not "text/plain"'],
      ['/batches', 'application/xml', 'send application/json, application/x-ndjson or text/csv, not "application/xml"'],
      ['/batches/01890000-0000-7000-8000-000000000000/cancel', 'application/xml', 'this request takes no body, or an application/json one, not "application/xml"'],
    ]) {
      const media = await raw(base, 'POST', path!, { body: '<a/>', headers: { 'content-type': type! } });
      expect(media).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE', detail: accepted } });
    }
    const gzipped = await raw(base, 'POST', '/batches?type=echo', { body: '{"n":1}\n', headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' } });
    expect(gzipped).toMatchObject({ status: 415, body: { code: 'UNSUPPORTED_MEDIA_TYPE', detail: 'Content-Encoding "gzip" is not supported; send the body uncompressed' } });
    const big = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [{ s: 'x'.repeat(100_000) }] }), headers: { 'content-type': 'application/json' } });
    expect(big).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(big.body.detail).toContain('send large batches as a streamed NDJSON or CSV body');
    // A client that sends its whole oversize body before reading gets the 413, not a reset.
    const oversize = Buffer.alloc(8 << 20, 0x20);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1');
      let text = '';
      socket.on('data', (data) => (text += data.toString()));
      socket.on('error', reject);
      socket.write(`POST /api/v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${oversize.length}\r\n\r\n`);
      socket.write(oversize, (error) => {
        if (error) return reject(error);
        setTimeout(() => {
          socket.destroy();
          resolve(text);
        }, 200);
      });
    });
    expect(answer).toMatch(/^HTTP\/1.1 413 /);
    const id64 = await raw(base, 'POST', '/batches', { body: '{"type":"echo","items":[{"account":9007199254740993}]}', headers: { 'content-type': 'application/json' } });
    expect(id64).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR', detail: expect.stringContaining('the number 9007199254740993 cannot be kept exactly') } });
    // "__proto__" is data in an item, as in an NDJSON line; anywhere else it is refused by name.
    const poisoned = await raw(base, 'POST', '/batches', { body: '{"type":"echo","items":[1],"__proto__":{"x":1}}', headers: { 'content-type': 'application/json' } });
    expect(poisoned).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR', errors: [{ path: 'body', message: 'Unrecognized key: "__proto__"' }] } });
    const protoLabel = await raw(base, 'POST', '/batches', { body: '{"type":"echo","items":[1],"labels":{"__proto__":"x"}}', headers: { 'content-type': 'application/json' } });
    expect(protoLabel).toMatchObject({ status: 400, body: { errors: [{ path: 'body.labels.__proto__', message: expect.stringContaining('a label cannot be named __proto__') }] } });
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    const protoItem = await raw(base, 'POST', '/batches', { body: '{"type":"echo","items":[{"__proto__":{"x":1},"n":1}]}', headers: { 'content-type': 'application/json' } });
    expect(protoItem.status).toBe(201);
    const [stored] = await bl.items(protoItem.body.id);
    expect(JSON.stringify(stored!.payload)).toBe('{"__proto__":{"x":1},"n":1}');
    await bl.deleteBatch(protoItem.body.id);
    // Text PostgreSQL cannot store is refused by field on every store, before any store sees it.
    const nul = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1], labels: { k: 'v\u0000' } }), headers: { 'content-type': 'application/json' } });
    expect(nul).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR', errors: [{ path: 'body.labels.k', message: expect.stringContaining('U+0000') }] } });
    const badId = await raw(base, 'GET', '/batches/not-a-uuid');
    expect(badId).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR', errors: [{ path: 'path.id' }] } });
    const unknown = await raw(base, 'GET', '/batches/01890000-0000-7000-8000-000000000000');
    expect(unknown).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    const route = await raw(base, 'GET', '/nothing-here');
    expect(route).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect((await bl.listBatches({ type: 'echo', limit: 500 })).every((b) => b.total > 0)).toBe(true);
  });

  it('answers requests that are not valid HTTP with problem documents too', async () => {
    const { port } = new URL(base);
    /** Sends raw bytes and reads what comes back until the server closes. */
    const send = (request: string) =>
      new Promise<{ status: number; type: string; body: Record<string, unknown> }>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(request));
        let text = '';
        socket.on('data', (data) => (text += data.toString()));
        socket.on('error', reject);
        socket.on('close', () => {
          const [head, body] = text.split('\r\n\r\n');
          resolve({ status: Number(head!.split(' ')[1]), type: /content-type: (.*)/i.exec(head!)?.[1] ?? '', body: JSON.parse(body!) });
        });
      });
    const control = await send('POST /api/v1/batches HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\nContent-Length: 2\r\n\r\n{}');
    expect(control).toMatchObject({ status: 400, type: 'application/problem+json', body: { code: 'VALIDATION_ERROR', detail: expect.stringContaining('malformed HTTP request') } });
    const huge = await send(`GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Filler: ${'x'.repeat(40_000)}\r\n\r\n`);
    expect(huge).toMatchObject({ status: 431, type: 'application/problem+json', body: { code: 'HEADERS_TOO_LARGE' } });
    expect((await raw(base, 'GET', '/health')).status).toBe(200);
  });

  it('cancels, pauses, resumes, retries and deletes, with 409 naming the state when an action makes no sense', async () => {
    const slow = await client().createBatch({ type: 'slow', items: Array.from({ length: 20 }, (_, n) => ({ n })) });
    const paused = await client().pause(slow.id);
    expect(paused.status).toBe('paused');
    const resumed = await client().resume(slow.id);
    expect(['queued', 'running']).toContain(resumed.status);
    const cancelled = await client().cancel(slow.id);
    expect(cancelled.status).toBe('cancelled');
    const again = await raw(base, 'POST', `/batches/${slow.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('CONFLICT');
    expect(again.body.detail).toContain('cancelled');

    const picky = await client().createBatch({ type: 'picky', items: [{ n: 1 }, { n: 2 }, { n: 3 }] });
    const finished = await bl.wait(picky.id, { timeoutMs: 20_000 });
    expect(finished).toMatchObject({ succeeded: 1, failed: 2 });
    const failedItems = await client().items(picky.id, { status: 'failed' });
    expect(failedItems.items.map((i) => [i.seq, i.error?.kind, i.error?.message])).toEqual([[0, 'permanent', 'odd 1'], [2, 'permanent', 'odd 3']]);
    const retried = await client().retry(picky.id);
    expect(retried.failed).toBe(0);
    expect(retried.remaining).toBe(2);
    await bl.wait(picky.id, { timeoutMs: 20_000 });

    await client().deleteBatch(picky.id);
    await expect(client().getBatch(picky.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    const deleteAgain = await raw(base, 'DELETE', `/batches/${picky.id}`);
    expect(deleteAgain.status).toBe(404);
  });

  it('takes streamed NDJSON and CSV bodies, and a bad line creates nothing and says where', async () => {
    const ndjson = Array.from({ length: 1_000 }, (_, n) => JSON.stringify({ n })).join('\n');
    const a = await client().uploadBatch('echo', ndjson, { format: 'ndjson', priority: 3, labels: { source: 'upload' } });
    expect(a).toMatchObject({ created: true, total: 1_000, priority: 3, labels: { source: 'upload' } });
    const csv = 'n,name\n1,a\n2,"b, with comma"\n';
    const b = await client().uploadBatch('echo', csv, { format: 'csv' });
    expect(b.total).toBe(2);
    expect((await client().items(b.id)).items[1]!.payload).toEqual({ n: '2', name: 'b, with comma' });

    const before = (await bl.listBatches({ limit: 500 })).length;
    const badJson = await raw(base, 'POST', '/batches?type=echo', { body: '{"n":1}\n{"n":2}\n{oops\n', headers: { 'content-type': 'application/x-ndjson' } });
    expect(badJson.status).toBe(400);
    expect(badJson.body.detail).toContain('request body:3');
    const badCsv = await raw(base, 'POST', '/batches?type=echo', { body: 'n,name\n1,a\n2,b,extra\n', headers: { 'content-type': 'text/csv' } });
    expect(badCsv.status).toBe(400);
    expect(badCsv.body.detail).toMatch(/^request body:3: malformed CSV/);
    const noType = await raw(base, 'POST', '/batches', { body: '{"n":1}\n', headers: { 'content-type': 'application/x-ndjson' } });
    expect(noType).toMatchObject({ status: 400, body: { errors: [{ path: 'query.type', message: 'required' }] } });
    // The query's timeoutMs has the bounds the engine's has, and says so with its path.
    const longTimeout = await raw(base, 'POST', '/batches?type=echo&timeoutMs=604800001', { body: '{"n":1}\n', headers: { 'content-type': 'application/x-ndjson' } });
    expect(longTimeout).toMatchObject({ status: 400, body: { errors: [{ path: 'query.timeoutMs', message: 'expected a whole number from 1 to 604800000' }] } });
    expect((await bl.listBatches({ limit: 500 })).length).toBe(before);
  });

  it('answers a bad line deep in a large upload with a problem, not a reset connection', async () => {
    const before = (await bl.listBatches({ limit: 500 })).length;
    const lines = Array.from({ length: 200_000 }, (_, n) => (n === 150 ? '{broken' : `{"n":${n},"pad":"${'x'.repeat(40)}"}`));
    const bad = await raw(base, 'POST', '/batches?type=echo', { body: lines.join('\n'), headers: { 'content-type': 'application/x-ndjson' } });
    expect(bad).toMatchObject({ status: 400, body: { code: 'VALIDATION_ERROR' } });
    expect(bad.body.detail).toContain('request body:151');
    const long = await raw(base, 'POST', '/batches?type=echo', { body: `{"n":1}\n{"s":"${'y'.repeat(3 << 20)}"}\n`, headers: { 'content-type': 'application/x-ndjson' } });
    expect(long).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
    const longCsv = await raw(base, 'POST', '/batches?type=echo', { body: `a,b\n1,"${'z'.repeat(3 << 20)}"\n`, headers: { 'content-type': 'text/csv' } });
    expect(longCsv).toMatchObject({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE' } });
    // An item refused once read (here, nested too deep) is named by its line too.
    const deep = raw(base, 'POST', '/batches?type=echo', { body: `{"n":1}\n\n${'['.repeat(600)}${']'.repeat(600)}\n`, headers: { 'content-type': 'application/x-ndjson' } });
    expect((await deep).body.detail).toMatch(/^request body:3: item nests arrays and objects more than 512 levels deep/);
    expect((await bl.listBatches({ limit: 500 })).length).toBe(before);
  });

  it('words a complete CSV body with a stray quote or an unclosed one after blank lines as malformed, at its line', async () => {
    const csv = (body: string) => raw(base, 'POST', '/batches?type=echo', { body, headers: { 'content-type': 'text/csv' } });
    const stray = await csv('a,b\n1,2\n3"x",4\n');
    expect(stray.status).toBe(400);
    expect(stray.body.detail).toMatch(/^request body:3: malformed CSV: invalid opening quote: /);
    expect(stray.body.detail).not.toContain('ended early');
    expect((await csv('a,b\n1,2\n3,4\n5,6\n\n\n\n\n"x,1\n')).body.detail).toMatch(/^request body:9: malformed CSV: Quote Not Closed/);
  });

  it('creates nothing when the connection drops mid-upload', async () => {
    const before = (await bl.listBatches({ limit: 500 })).length;
    const { port } = new URL(base);
    await new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/batches?type=echo', headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
      req.on('error', () => resolve());
      for (let i = 0; i < 5_000; i++) req.write(`{"n":${i}}\n`);
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    // The server sees the reset, the submission's stream fails and its transaction rolls back.
    await new Promise((r) => setTimeout(r, 500));
    expect((await bl.listBatches({ limit: 500 })).length).toBe(before);
  });

  it('does not cut off an upload whose body has all arrived, however long the commit takes', async () => {
    const idle = await createServer({ batchline: bl, uploadIdleMs: 300 });
    await idle.listen({ host: '127.0.0.1', port: 0 });
    // The store takes 1 s to commit after reading the last row: longer than the idle limit.
    const submit = bl.store.batchesSubmit;
    bl.store.batchesSubmit = (params) =>
      submit.call(bl.store, {
        ...params,
        chunks: (async function* () {
          yield* params.chunks;
          await new Promise((r) => setTimeout(r, 1_000));
        })(),
      });
    try {
      const port = (idle.server.address() as AddressInfo).port;
      const created = await raw(`http://127.0.0.1:${port}`, 'POST', '/batches?type=echo', { body: '{"n":1}\n{"n":2}\n', headers: { 'content-type': 'application/x-ndjson' } });
      expect(created).toMatchObject({ status: 201, body: { total: 2 } });
    } finally {
      bl.store.batchesSubmit = submit;
      await idle.close();
    }
  });

  it('reads a bounded number of uploads at once, refusing more with 503 and Retry-After', async () => {
    const busy = await createServer({ batchline: bl, maxConcurrentUploads: 1 });
    await busy.listen({ host: '127.0.0.1', port: 0 });
    // The slow upload holds the one slot from when its submission reaches the store.
    const submit = bl.store.batchesSubmit;
    const reading = gate();
    bl.store.batchesSubmit = (params) => (reading.open(), submit.call(bl.store, params));
    try {
      const port = (busy.server.address() as AddressInfo).port;
      const slow = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/batches?type=echo', headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
      const answer = new Promise<number>((resolve, reject) => {
        slow.on('response', (response) => resolve(response.statusCode!));
        slow.on('error', reject);
      });
      slow.write('{"n":1}\n');
      await reading.passed;
      const refused = await raw(`http://127.0.0.1:${port}`, 'POST', '/batches?type=echo', { body: '{"n":2}\n', headers: { 'content-type': 'application/x-ndjson' } });
      expect(refused).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE' } });
      expect(refused.headers.get('retry-after')).toBe('1');
      // Small JSON bodies are not counted; large ones are held whole, so they count as uploads.
      expect((await raw(`http://127.0.0.1:${port}`, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [{ n: 3 }] }), headers: { 'content-type': 'application/json' } })).status).toBe(201);
      const large = JSON.stringify({ type: 'echo', items: Array.from({ length: 20 }, () => ({ s: 'x'.repeat(60_000) })) });
      const held = await raw(`http://127.0.0.1:${port}`, 'POST', '/batches', { body: large, headers: { 'content-type': 'application/json' } });
      expect(held).toMatchObject({ status: 503, body: { code: 'UNAVAILABLE' } });
      // The typed client, given a way to open its body again, waits its turn.
      let opened = 0;
      const body = () => {
        opened++;
        return new Blob(['{"n":6}\n{"n":7}\n']).stream();
      };
      const waiting = new BatchlineClient({ baseUrl: `http://127.0.0.1:${port}` }).uploadBatch('echo', body, { format: 'ndjson' });
      await until(() => opened > 1); // refused once, and sent again after Retry-After
      slow.end('{"n":4}\n');
      expect(await answer).toBe(201);
      expect(await waiting).toMatchObject({ created: true, total: 2 });
      expect(opened).toBeGreaterThan(1);
      const after = await raw(`http://127.0.0.1:${port}`, 'POST', '/batches?type=echo', { body: '{"n":5}\n', headers: { 'content-type': 'application/x-ndjson' } });
      expect(after.status).toBe(201);
      expect((await raw(`http://127.0.0.1:${port}`, 'POST', '/batches', { body: large, headers: { 'content-type': 'application/json' } })).status).toBe(201);
      expect((await raw(`http://127.0.0.1:${port}`, 'POST', '/batches', { body: large, headers: { 'content-type': 'application/json' } })).status).toBe(201);
    } finally {
      bl.store.batchesSubmit = submit;
      await busy.close();
    }
  });

  it('answers a refused or failed upload, then closes the connection if its body stops arriving', async () => {
    // maxConcurrentUploads 0: every streamed upload is refused.
    const strict = await createServer({ batchline: bl, maxConcurrentUploads: 0, uploadIdleMs: 300 });
    await strict.listen({ host: '127.0.0.1', port: 0 });
    const refusing = (strict.server.address() as AddressInfo).port;
    const idle = await createServer({ batchline: bl, uploadIdleMs: 300 });
    await idle.listen({ host: '127.0.0.1', port: 0 });
    const reading = (idle.server.address() as AddressInfo).port;
    try {
      const answeredThenClosed = (port: number, lines: string) =>
        new Promise<string>((resolve) => {
          const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/batches?type=echo', headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
          let status = 'no answer';
          req.on('error', () => undefined);
          req.on('response', (response) => {
            status = String(response.statusCode);
            response.resume();
          });
          req.on('close', () => resolve(`${status} then closed`));
          req.write(lines); // ... and nothing more: the client neither sends nor ends.
        });
      const started = Date.now();
      expect(await answeredThenClosed(refusing, '{"n":1}\n')).toBe('503 then closed');
      expect(await answeredThenClosed(reading, '{"n":1}\nnot json\n')).toBe('400 then closed');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await strict.close();
      await idle.close();
    }
  });

  it('reads away at most readAwayMaxBytes of a failed upload a client keeps sending, then closes', async () => {
    const capped = await createServer({ batchline: bl, readAwayMaxBytes: 4 << 20 });
    await capped.listen({ host: '127.0.0.1', port: 0 });
    try {
      const port = (capped.server.address() as AddressInfo).port;
      const lines = `${JSON.stringify({ s: 'x'.repeat(1000) })}\n`.repeat(64); // about 64 KiB
      const chunk = Buffer.from(`${Buffer.byteLength(lines).toString(16)}\r\n${lines}\r\n`);
      const limit = 64 << 20;
      // A raw socket: Node's HTTP client stops sending once its response has arrived.
      const outcome = await new Promise<{ answer: string; sent: number }>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        let answer = '';
        let sent = 0;
        socket.on('data', (data) => (answer += data.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve({ answer, sent }));
        socket.write('POST /api/v1/batches?type=echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nnot json\n\r\n');
        // ... and then a body without end, as fast as the socket takes it.
        const pump = () => {
          while (!socket.destroyed && sent < limit) {
            sent += chunk.length;
            if (!socket.write(chunk)) return socket.once('drain', pump);
          }
          socket.destroy();
        };
        pump();
      });
      expect(outcome.answer).toMatch(/^HTTP\/1.1 400 /);
      // Closed by the server: what it read away plus what the sockets' buffers held, not all.
      expect(outcome.sent).toBeGreaterThan(4 << 20);
      expect(outcome.sent).toBeLessThan(limit);
    } finally {
      await capped.close();
    }
  });

  it('cuts off an upload that stops sending, and creates nothing', async () => {
    const idle = await createServer({ batchline: bl, uploadIdleMs: 300 });
    await idle.listen({ host: '127.0.0.1', port: 0 });
    try {
      const before = (await bl.listBatches({ limit: 500 })).length;
      const port = (idle.server.address() as AddressInfo).port;
      const started = Date.now();
      const ended = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/batches?type=echo', headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked' } });
        req.on('error', (error) => resolve(`error: ${error.message}`));
        req.on('response', (response) => {
          let text = '';
          response.on('data', (chunk) => (text += chunk));
          response.on('end', () => resolve(`status ${response.statusCode} ${response.headers.connection} ${JSON.parse(text).code}`));
        });
        for (let i = 0; i < 1_000; i++) req.write(`{"n":${i}}\n`);
        // ... and nothing more: the client neither sends nor ends.
      });
      // The client learns why, and the connection is closed.
      expect(ended).toBe('status 408 close REQUEST_TIMEOUT');
      expect(Date.now() - started).toBeLessThan(5_000);
      expect((await bl.listBatches({ limit: 500 })).length).toBe(before);
      // The transaction was rolled back and its connection freed: the server still submits.
      const ok = await raw(`http://127.0.0.1:${port}`, 'POST', '/batches?type=echo', { body: '{"n":1}\n', headers: { 'content-type': 'application/x-ndjson' } });
      expect(ok.status).toBe(201);
    } finally {
      await idle.close();
    }
  });

  it('exports every item\'s outcome as NDJSON and CSV', async () => {
    const batch = await client().createBatch({ type: 'picky', items: Array.from({ length: 2_500 }, (_, n) => ({ n })) });
    await bl.wait(batch.id, { timeoutMs: 30_000 });
    const ndjson = await fetch(`${base}/api/v1/batches/${batch.id}/results`);
    expect(ndjson.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await ndjson.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2_500);
    expect(lines[0]).toEqual({ seq: 0, status: 'succeeded', attempts: 1, result: { ok: true }, error: null });
    expect(lines[1]).toEqual({ seq: 1, status: 'failed', attempts: 1, result: null, error: { kind: 'permanent', message: 'odd 1' } });
    expect(lines.at(-1).seq).toBe(2_499);
    const csv = await (await fetch(`${base}/api/v1/batches/${batch.id}/results?format=csv`)).text();
    const rows = csv.trim().split('\n');
    expect(rows).toHaveLength(2_501);
    expect(rows.slice(0, 3)).toEqual(['seq,status,attempts,result,error', '0,succeeded,1,"{""ok"":true}",', '1,failed,1,,permanent: odd 1']);
    expect((await raw(base, 'GET', `/batches/${batch.id}/results?format=xml`)).status).toBe(400);
  });

  it('lists workers, serves Prometheus metrics and its OpenAPI document', async () => {
    const { workers } = await getJson(`${base}/api/v1/workers`);
    expect(workers[0]).toMatchObject({ pid: process.pid, concurrency: 4, types: expect.arrayContaining(['echo', 'picky', 'slow']), inFlight: expect.any(Number), batches: expect.any(Array) });
    expect(workers[0].heartbeatAgeSeconds).toBeLessThan(30);
    const metrics = await (await fetch(`${base}/api/v1/metrics`)).text();
    expect(metrics).toMatch(/batchline_items_total\{type="echo",outcome="succeeded"\} \d+/);
    expect(metrics).toMatch(/batchline_items_total\{type="picky",outcome="failed"\} \d+/);
    expect(metrics).toContain('batchline_item_duration_seconds_bucket');
    expect(metrics).toMatch(/batchline_batches\{status="completed"\} [1-9]/);
    expect(metrics).toMatch(/batchline_http_requests_total\{method="GET",route="\/api\/v1\/workers",status="200"\} 1/);
    const doc = await getJson(`${base}/api/v1/openapi.json`);
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/batches', '/batches/{id}', '/batches/{id}/progress', '/batches/{id}/results', '/health', '/metrics']));
    expect(doc.components.schemas.CreateBatch.required).toEqual(expect.arrayContaining(['type', 'items']));
    // Ids the API answers are uuids in the document too, not schemas that say nothing.
    expect(doc.components.schemas.Batch.properties.id).toMatchObject({ type: 'string', format: 'uuid' });
    expect(doc.components.schemas.ItemList.properties.items.items.properties.batchId).toMatchObject({ type: 'string', format: 'uuid' });
    // Every status these tests see a route answer is documented for it.
    const statuses = (path: string, method: string) => Object.keys(doc.paths[path][method].responses).sort();
    expect(statuses('/batches', 'post')).toEqual(expect.arrayContaining(['200', '201', '400', '401', '408', '409', '413', '415', '429', '503']));
    expect(statuses('/batches', 'get')).toEqual(expect.arrayContaining(['200', '400', '401', '403', '429', '503']));
    expect(statuses('/batches/{id}', 'delete')).toEqual(expect.arrayContaining(['204', '404', '409', '504']));
    expect(statuses('/batches/{id}/cancel', 'post')).toEqual(expect.arrayContaining(['200', '404', '409', '504']));
    expect(statuses('/metrics', 'get')).toEqual(expect.arrayContaining(['200', '401', '403', '429']));
    expect(statuses('/batches/prune', 'post')).toEqual(expect.arrayContaining(['200', '400', '401', '403', '415', '429']));
    expect(doc.components.schemas.Prune.required).toEqual(['olderThanMs']);
    expect(doc.paths['/ready'].get.responses['200'].content['application/json'].schema.required).toEqual(['ready', 'schemaVersion']);
    expect(doc.paths['/openapi.json'].get.security).toEqual([]);
  });

  it('limits each caller\'s request rate with 429 and Retry-After', async () => {
    // A token every 5 s: the third request is refused however slowly the machine sends them.
    const limited = await createServer({ batchline: bl, rateLimit: { perSecond: 0.2, burst: 2 } });
    await limited.listen({ host: '127.0.0.1', port: 0 });
    try {
      const url = `http://127.0.0.1:${(limited.server.address() as AddressInfo).port}/api/v1/batches?limit=1`;
      const statuses = [];
      let last: Response | undefined;
      for (let i = 0; i < 3; i++) statuses.push((last = await fetch(url)).status);
      expect(statuses).toEqual([200, 200, 429]);
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThanOrEqual(4);
      expect(Number(last!.headers.get('retry-after'))).toBeLessThanOrEqual(5);
      expect(((await last!.json()) as { code: string }).code).toBe('RATE_LIMITED');
      // Keyless probes are limited per address too, in a bucket of their own.
      const health = `http://127.0.0.1:${(limited.server.address() as AddressInfo).port}/api/v1/health`;
      const probes = [];
      for (let i = 0; i < 3; i++) probes.push((await fetch(health)).status);
      expect(probes).toEqual([200, 200, 429]);
    } finally {
      await limited.close();
    }
  });

  it('streams a batch\'s events over SSE, and resumes after Last-Event-ID', async () => {
    const batch = await client().createBatch({ type: 'slow', items: [{ n: 1 }] });
    const controller = new AbortController();
    const res = await fetch(`${base}/api/v1/batches/${batch.id}/events`, { signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    const seen: { id?: string; event: string; data: { id?: string; type?: string; status?: string } }[] = [];
    let buffer = '';
    const readUntil = async (type: string) => {
      while (!seen.some((m) => m.event === type)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${type}`);
        buffer += value;
        const parts = buffer.split('\n\n');
        buffer = parts.pop()!;
        for (const part of parts) {
          if (part.startsWith(':')) continue;
          const fields = Object.fromEntries(part.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]));
          seen.push({ id: fields.id, event: fields.event!, data: JSON.parse(fields.data!) });
        }
      }
    };
    await readUntil('batch:snapshot');
    await client().pause(batch.id);
    await readUntil('batch:paused');
    await client().resume(batch.id);
    await readUntil('batch:resumed');
    controller.abort();
    expect(seen[0]).toMatchObject({ event: 'batch:snapshot', data: { id: batch.id } });
    expect(['queued', 'running']).toContain(seen[0]!.data.status);
    const paused = seen.find((m) => m.event === 'batch:paused')!;
    expect(paused.id).toBeTruthy();

    // Reconnect after the pause: the resume (and what followed) comes again, the pause does not.
    await client().cancel(batch.id);
    const again = await fetch(`${base}/api/v1/events`, { headers: { 'last-event-id': paused.id! } });
    const text = await readFor(again, 'batch:cancelled');
    expect(text).toContain('event: batch:resumed');
    expect(text).not.toContain('event: batch:paused');
    const bad = await raw(base, 'GET', '/events', { headers: { 'last-event-id': 'garbage' } });
    expect(bad.status).toBe(400);
  });

  it('starts a batch\'s event stream with a snapshot no later than its cursor, so no change falls between', async () => {
    const batch = await client().createBatch({ type: 'slow', items: [{ n: 1 }] });
    // A pause commits while the stream opens, just before it takes its cursor.
    const store = bl.store as { eventsCursor: () => Promise<string> };
    const cursor = store.eventsCursor.bind(store);
    store.eventsCursor = async () => {
      store.eventsCursor = cursor;
      await bl.pause(batch.id);
      return cursor();
    };
    const controller = new AbortController();
    try {
      const res = await fetch(`${base}/api/v1/batches/${batch.id}/events`, { signal: controller.signal });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      while (!text.includes('event: batch:snapshot')) text += (await reader.read()).value ?? '';
      // The snapshot shows the pause (it is not among the events, which start after it).
      expect(/event: batch:snapshot\ndata: (.*)\n/.exec(text)![1]).toContain('"status":"paused"');
    } finally {
      store.eventsCursor = cursor;
      controller.abort();
      await bl.cancel(batch.id);
    }
  });

  it('reports health and readiness', async () => {
    const health = await client().health();
    expect(health.status).toBe('ok');
    expect(health.workersActive).toBeGreaterThanOrEqual(1);
    expect(health.batchesProcessed).toBeGreaterThan(0);
    expect(await client().ready()).toMatchObject({ ready: true, schemaVersion: 3 });
  });

  it('answers 503 naming `batchline migrate` when the schema is gone from under it', async () => {
    const db = await freshDatabase(kind);
    const own = await Batchline.open({ database: db.database, schema: db.schema, logLevel: 'silent' });
    const server = await createServer({ batchline: own });
    await server.listen({ host: '127.0.0.1', port: 0 });
    const at = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    try {
      expect((await raw(at, 'GET', '/batches')).status).toBe(200);
      await own.store.migrate({ direction: 'down', steps: 10 });
      for (const path of ['/batches', '/ready']) {
        const res = await raw(at, 'GET', path);
        expect([path, res.status, res.body.code]).toEqual([path, 503, 'UNAVAILABLE']);
        expect(res.body.detail).toMatch(/batchline migrate/);
      }
      // Liveness holds: the process serves; it reports itself degraded and says why.
      const health = await raw(at, 'GET', '/health');
      expect(health).toMatchObject({ status: 200, body: { status: 'degraded', workersActive: null, pendingBatches: null, batchesProcessed: null } });
      expect(health.body.detail).toMatch(/batchline migrate/);
      await own.store.migrate({ direction: 'up' });
      expect((await raw(at, 'GET', '/health')).status).toBe(200);
    } finally {
      await server.close();
      await own.close();
      await db.cleanup();
    }
  });

  it('ends event streams with a stream:closed event when the server shuts down', async () => {
    const server = await createServer({ batchline: bl });
    await server.listen({ host: '127.0.0.1', port: 0 });
    const stream = await fetch(`http://127.0.0.1:${(server.server.address() as AddressInfo).port}/api/v1/events`);
    expect(stream.status).toBe(200);
    const closed = server.close();
    const text = await stream.text();
    await closed;
    expect(text).toContain('event: stream:closed\ndata: {"reason":"the server is shutting down; reconnect with Last-Event-ID to go on"}');
  });

  // Runs last in this file: once a key exists the API requires keys.
  it('checks query strings, headers and body bytes as strictly as JSON fields, creating nothing', async () => {
    const json = { 'content-type': 'application/json' };
    const ndjson = { 'content-type': 'application/x-ndjson' };
    const before = await bl.countBatches({});
    const paths = (res: { body: { errors?: { path: string; message: string }[] } }) => res.body.errors?.map((e) => `${e.path}: ${e.message}`);

    const batch = await client().createBatch({ type: 'echo', items: [{ n: 1 }, { n: 2 }] });
    // An empty or non-decimal number is an error, not 0 or 16.
    for (const after of ['', '%20', '0x10', '1e3']) {
      const res = await raw(base, 'GET', `/batches/${batch.id}/items?after=${after}`);
      expect([after, res.status, paths(res)]).toEqual([after, 400, ['query.after: expected a whole number from -1 to 2147483647']]);
    }
    const empty = await raw(base, 'POST', '/batches?type=echo&priority=', { body: '{"n":1}\n', headers: ndjson });
    expect([empty.status, paths(empty)]).toEqual([400, ['query.priority: expected a whole number from 0 to 10']]);
    const twice = await raw(base, 'GET', '/batches?limit=1&limit=2');
    expect([twice.status, paths(twice)]).toEqual([400, ['query.limit: given more than once; give it once']]);
    const label = await raw(base, 'GET', '/batches?label=a:b&label=a:c');
    expect([label.status, paths(label)]).toEqual([400, ['query.label: label "a" is given twice; give each label once']]);
    // A JSON create carries its options in the body; a query string would be silently dropped.
    const query = await raw(base, 'POST', '/batches?priority=9', { body: JSON.stringify({ type: 'echo', items: [1] }), headers: json });
    expect([query.status, paths(query)]).toEqual([400, ['query.priority: a JSON body carries its options itself; put this in the body']]);
    const type = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'Crash Sum!', items: [1] }), headers: json });
    expect([type.status, paths(type)]).toEqual([400, ['body.type: use letters, digits and . _ : - only']]);
    const streamedType = await raw(base, 'POST', '/batches?type=no%20spaces', { body: '{"n":1}\n', headers: ndjson });
    expect([streamedType.status, paths(streamedType)]).toEqual([400, ['query.type: use letters, digits and . _ : - only']]);
    const noLabelName = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1], labels: { '': 'x' } }), headers: json });
    expect([noLabelName.status, paths(noLabelName)]).toEqual([400, ['body.labels.: key "": a label needs a name']]);
    const longKey = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1] }), headers: { ...json, 'idempotency-key': 'k'.repeat(501) } });
    expect([longKey.status, paths(longKey)]).toEqual([400, ['header.Idempotency-Key: Too big: expected string to have <=500 characters']]);
    // An empty, repeated or non-UTF-8 key header would make a retry create a second batch if it
    // were dropped or joined: each is refused.
    const emptyKey = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1] }), headers: { ...json, 'idempotency-key': '' } });
    expect([emptyKey.status, paths(emptyKey)]).toEqual([400, ['header.Idempotency-Key: is empty; give a key or leave the header out']]);
    const latin1Key = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1] }), headers: { ...json, 'idempotency-key': 'caf\xe9' } });
    expect([latin1Key.status, paths(latin1Key)]).toEqual([400, ['header.Idempotency-Key: is not UTF-8; send the key as UTF-8 bytes']]);
    const repeated = await new Promise<{ status: number; body: { errors: { path: string; message: string }[] } }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: Number(new URL(base).port), method: 'POST', path: '/api/v1/batches', headers: json });
      req.setHeader('idempotency-key', ['a', 'b']);
      req.on('response', async (res) => resolve({ status: res.statusCode!, body: JSON.parse(await streamText(res)) }));
      req.on('error', reject);
      req.end(JSON.stringify({ type: 'echo', items: [1] }));
    });
    expect([repeated.status, paths(repeated)]).toEqual([400, ['header.Idempotency-Key: given 2 times; give the key once']]);
    const twoKeys = await raw(base, 'POST', '/batches', { body: JSON.stringify({ type: 'echo', items: [1], idempotencyKey: 'a' }), headers: { ...json, 'idempotency-key': 'b' } });
    expect([twoKeys.status, paths(twoKeys)]).toEqual([400, ['body.idempotencyKey: differs from the Idempotency-Key header; give the key once']]);

    // Bytes that are not UTF-8 are refused where they are, never stored as U+FFFD.
    const latin1 = Buffer.from('{"n":1}\n{"name":"Jos\xe9"}\n', 'latin1');
    for (const [headers, body, where] of [
      [ndjson, latin1, 'request body:2'],
      [{ 'content-type': 'text/csv' }, Buffer.from('n,name\n1,ok\n2,Jos\xe9\n', 'latin1'), 'request body:3'],
      [json, Buffer.from('{"type":"echo",\n"items":[\n{"name":"Jos\xe9"}]}', 'latin1'), 'request body:3'],
    ] as const) {
      const res = await fetch(`${base}/api/v1/batches${headers === json ? '' : '?type=echo'}`, { method: 'POST', body, headers });
      const problemDoc = (await res.json()) as { code: string; detail: string };
      expect([res.status, problemDoc.code]).toEqual([400, 'VALIDATION_ERROR']);
      expect(problemDoc.detail).toContain(`${where}: not UTF-8 text`);
    }
    expect(await bl.countBatches({})).toBe(before + 1);

    // A problem names the path it could not take, cut short: not kilobytes echoed back.
    for (const [path, status] of [[`/batches/${'x'.repeat(5_000)}`, 400], [`/nope/${'y'.repeat(3_000)}`, 404]] as const) {
      const res = await raw(base, 'GET', path);
      expect([res.status, res.body.detail.length <= 250, res.body.detail]).toEqual([status, true, expect.stringContaining('…')]);
    }
    // A known route asked with another method is a 405 naming the methods it takes.
    const put = await raw(base, 'PUT', '/batches');
    expect([put.status, put.body.code, put.headers.get('allow')]).toEqual([405, 'METHOD_NOT_ALLOWED', 'GET, HEAD, POST']);
    const getCancel = await raw(base, 'GET', `/batches/${batch.id}/cancel`);
    expect([getCancel.status, getCancel.headers.get('allow')]).toEqual([405, 'POST']);
    // /batches/prune fits /batches/:id too, but takes only what its own route does.
    const putPrune = await raw(base, 'PUT', '/batches/prune');
    expect([putPrune.status, putPrune.headers.get('allow')]).toEqual([405, 'POST']);
    for (const method of ['GET', 'HEAD', 'DELETE']) {
      const res = await raw(base, method, '/batches/prune/');
      expect([method, res.status, res.headers.get('allow')]).toEqual([method, 405, 'POST']);
    }
    // Clients that set the JSON type on every request may send an action with no body.
    await bl.wait(batch.id, { timeoutMs: 20_000 });
    const retry = await raw(base, 'POST', `/batches/${batch.id}/retry`, { headers: json });
    expect(retry.status).toBe(200);
    expect((await raw(base, 'POST', `/batches/${batch.id}/retry`, { headers: json, body: '{}' })).status).toBe(200);
    // Anything else sent to an action is refused, not ignored: a body, or a query parameter.
    const text = await raw(base, 'POST', `/batches/${batch.id}/pause`, { headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect([text.status, text.body.detail]).toEqual([415, 'this request takes no body, or an application/json one, not "text/plain"']);
    const fields = await raw(base, 'POST', `/batches/${batch.id}/resume`, { headers: json, body: '{"force":true}' });
    expect([fields.status, paths(fields)]).toEqual([400, ['body: this request takes no body; send none, or {}']]);
    for (const [method, path] of [
      ['POST', `/batches/${batch.id}/pause?x=1`],
      ['GET', `/batches/${batch.id}?x=1`],
      ['GET', `/batches/${batch.id}/progress?x=1`],
      ['GET', `/events?x=1`],
      ['GET', `/workers?x=1`],
      ['DELETE', `/batches/${batch.id}?x=1`],
      ['POST', `/batches/prune?x=1`],
    ] as const) {
      const res = await raw(base, method, path, method === 'POST' ? { headers: json, body: '{"olderThanMs":999999999}' } : {});
      expect([method, path, res.status, paths(res)]).toEqual([method, path, 400, ['query.x: this request takes no query parameters']]);
    }
    expect((await raw(base, 'GET', '/health?probe=1')).status).toBe(200);
    const removed = await raw(base, 'DELETE', `/batches/${batch.id}`, { headers: json });
    expect(removed.status).toBe(204);
  });

  it('answers only loopback names while it runs without keys (no DNS rebinding)', async () => {
    const { port } = new URL(base);
    const get = (host: string) =>
      new Promise<{ status: number; body: { code?: string; detail?: string } }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/api/v1/batches?limit=1', headers: { host } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end();
      });
    expect((await get(`localhost:${port}`)).status).toBe(200);
    expect((await get(`127.0.0.1:${port}`)).status).toBe(200);
    expect((await get(`[::1]:${port}`)).status).toBe(200);
    const rebound = await get(`attacker.example:${port}`);
    expect(rebound.status).toBe(403);
    expect(rebound.body.code).toBe('FORBIDDEN');
    expect(rebound.body.detail).toContain('"attacker.example"');
  });

  it('ends a batch\'s event stream when the batch is deleted, and counts event streams in its metrics', async () => {
    const batch = await client().createBatch({ type: 'echo', items: [{ n: 1 }] });
    await bl.wait(batch.id, { timeoutMs: 20_000 });
    const seen: string[] = [];
    const following = (async () => {
      for await (const event of client().events({ batchId: batch.id })) {
        seen.push(event.event);
        if (event.event === 'stream:closed') expect(event.data).toEqual({ reason: 'the batch was deleted' });
      }
    })();
    while (!seen.includes('batch:snapshot')) await new Promise((resolve) => setTimeout(resolve, 20));
    await client().deleteBatch(batch.id);
    const deletedAt = Date.now();
    await following; // the stream ends by itself
    expect(Date.now() - deletedAt).toBeLessThan(6_000);
    expect(seen).toEqual(['batch:snapshot', 'stream:closed']);

    const metrics = await (await fetch(`${base}/api/v1/metrics`)).text();
    const counted = /batchline_http_requests_total\{method="GET",route="\/api\/v1\/batches\/:id\/events",status="200"\} (\d+)/.exec(metrics);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(1);

    // A cursor this database never gave would skip every event until the database caught up
    // with it: a 400 on both stores.
    const real = kind === 'sqlite' ? null : await bl.store.eventsCursor();
    const made = kind === 'sqlite'
      ? { '99999999': 'is beyond the newest event' }
      : {
          '999999999:999999999:': 'lies beyond the newest transaction',
          '999999999:999999999:|999999999:999999999:|999999998:99': 'lies beyond the newest transaction',
          [`${real}|${real}|999999999:1`]: 'its positions are out of order',
        };
    for (const [cursor, why] of Object.entries(made)) {
      const ahead = await raw(base, 'GET', '/events', { headers: { 'last-event-id': cursor } });
      expect([cursor, ahead.status, ahead.body.code]).toEqual([cursor, 400, 'VALIDATION_ERROR']);
      expect(ahead.body.detail).toContain(why);
    }
  });

  it('exports results and follows events through the typed client', async () => {
    const batch = await client().createBatch({ type: 'picky', items: [{ n: 2 }, { n: 3 }] });
    const events: string[] = [];
    for await (const event of client().events({ batchId: batch.id })) {
      events.push(event.event);
      // It may have finished before the stream began: then the snapshot says so.
      if (event.event === 'batch:completed' || (event.event === 'batch:snapshot' && (event.data as { status: string }).status === 'completed')) break;
    }
    expect(events[0]).toBe('batch:snapshot');
    await bl.wait(batch.id, { timeoutMs: 20_000 });
    const rows = [];
    for await (const row of client().resultRows(batch.id)) rows.push(row);
    expect(rows).toEqual([
      { seq: 0, status: 'succeeded', attempts: 1, result: { ok: true }, error: null },
      { seq: 1, status: 'failed', attempts: 1, result: null, error: { kind: 'permanent', message: 'odd 3' } },
    ]);
    const csv = await new Response(await client().results(batch.id, { format: 'csv' })).text();
    expect(csv.trim().split('\n')).toHaveLength(3);
  });

  it('prunes finished batches older than olderThanMs: a tenant key its own tenant\'s only, an admin any tenant\'s', async () => {
    const tidy = await createKey(bl.store, { tenant: 'tidy', admin: false });
    const keep = await createKey(bl.store, { tenant: 'keep', admin: false });
    const admin = await createKey(bl.store, { tenant: 'ops', admin: true });
    const as = (token: string) => new BatchlineClient({ baseUrl: base, apiKey: token });
    const prune = (token: string | null, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
      raw(base, 'POST', '/batches/prune', { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

    const done = [await as(tidy.token).createBatch({ type: 'echo', items: [{ n: 1 }] }), await as(tidy.token).createBatch({ type: 'echo', items: [{ n: 2 }] })];
    const kept = await as(keep.token).createBatch({ type: 'echo', items: [{ n: 3 }] });
    for (const b of [...done, kept]) await bl.wait(b.id, { timeoutMs: 20_000 });
    const open = await as(tidy.token).createBatch({ type: 'slow', items: [{ n: 4 }] });
    await as(tidy.token).pause(open.id);

    const young = await prune(tidy.token, { olderThanMs: 3_600_000 });
    expect(young).toMatchObject({ status: 200, body: { batches: 0, dryRun: false, more: false, tenant: 'tidy' } });
    expect(Date.parse(young.body.finishedBefore)).toBeLessThan(Date.now() - 3_500_000);
    expect((await prune(tidy.token, { olderThanMs: 0, dryRun: true })).body).toMatchObject({ batches: 2, dryRun: true });
    const other = await prune(tidy.token, { olderThanMs: 0, tenant: 'keep' });
    expect(other).toMatchObject({ status: 403, body: { code: 'FORBIDDEN', detail: expect.stringContaining('cannot prune tenant "keep"') } });
    expect(await as(tidy.token).prune({ olderThanMs: 0 })).toMatchObject({ batches: 2, dryRun: false, more: false });
    for (const b of done) await expect(as(tidy.token).getBatch(b.id)).rejects.toMatchObject({ status: 404 });
    expect((await as(tidy.token).getBatch(open.id)).status).toBe('paused');
    expect((await as(keep.token).getBatch(kept.id)).status).toBe('completed');
    // An admin names the tenant, or prunes every tenant's.
    expect((await prune(admin.token, { olderThanMs: 0, tenant: 'keep', dryRun: true })).body).toMatchObject({ batches: 1, dryRun: true });
    expect((await prune(admin.token, { olderThanMs: 0, tenant: 'keep' })).body).toMatchObject({ batches: 1, tenant: 'keep' });
    expect((await prune(admin.token, { olderThanMs: 0, dryRun: true })).body).toMatchObject({ tenant: null });
    await expect(as(keep.token).getBatch(kept.id)).rejects.toMatchObject({ status: 404 });

    const bad: [unknown, string][] = [
      [{}, 'body.olderThanMs'],
      [{ olderThanMs: -1 }, 'body.olderThanMs'],
      [{ olderThanMs: '30d' }, 'body.olderThanMs'],
      [{ olderThanMs: 1.5 }, 'body.olderThanMs'],
      [{ olderThanMs: 0, dryRun: 'yes' }, 'body.dryRun'],
      [{ olderThanMs: 0, before: '2026-01-01' }, 'body'],
    ];
    for (const [body, path] of bad) {
      const res = await prune(tidy.token, body);
      expect([body, res.status, res.body.code, res.body.errors?.[0]?.path]).toEqual([body, 400, 'VALIDATION_ERROR', path]);
    }
    expect(await prune(tidy.token, 'id,amount\n', { 'content-type': 'text/csv' })).toMatchObject({ status: 415, body: { detail: 'send application/json, not "text/csv"' } });
    expect((await prune(null, { olderThanMs: 0 })).status).toBe(401);
    expect((await bl.getBatch(open.id)).status).toBe('paused');
    await bl.cancel(open.id);
  });

  it('creates nothing when the key is revoked while the upload arrives', async () => {
    // Keys exist from here on (the prune test above made them): making one changes no other test.
    const leaving = await createKey(bl.store, { tenant: 'leaving', admin: false });
    const { port } = new URL(base);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/v1/batches?type=echo',
        headers: { 'content-type': 'application/x-ndjson', 'transfer-encoding': 'chunked', authorization: `Bearer ${leaving.token}` },
      });
      req.on('error', reject);
      req.on('response', (res) => void streamText(res).then((body) => resolve({ status: res.statusCode!, body })));
      for (let i = 0; i < 1_000; i++) req.write(`{"n":${i}}\n`);
      // The key is revoked once the server has let the request in (a second is ample; were it
      // not, the answer would be the 401 of an unknown key, and this test would fail, not pass).
      void sleep(1_000)
        .then(() => bl.store.keyRevoke({ id: leaving.key.id }))
        .then(() => req.end('{"n":-1}\n'));
    });
    const { status, body } = await answer;
    expect([status, JSON.parse(body)]).toEqual([401, expect.objectContaining({ code: 'UNAUTHORIZED', detail: 'the API key was revoked while the body arrived; nothing was created' })]);
    expect(await bl.countBatches({ tenant: 'leaving' })).toBe(0);
  });

  it('answers a prune that outlasts its budget with more: true, and the client asks again until none are left', async () => {
    const hasty = await createServer({ batchline: bl, pruneBudgetMs: 1 });
    await hasty.listen({ port: 0, host: '127.0.0.1' });
    try {
      const url = `http://127.0.0.1:${(hasty.server.address() as AddressInfo).port}`;
      const admin = await createKey(bl.store, { tenant: 'ops', admin: true });
      // One page deletes at most PRUNE_PAGE batches, and this server answers after one page.
      const batches = [];
      for (let i = 0; i < 2 * PRUNE_PAGE + 1; i++) batches.push(await bl.submit('echo', [{ n: i }], { tenant: 'bulk' }));
      for (const b of batches) await bl.wait(b.id, { timeoutMs: 20_000 });
      const first = await raw(url, 'POST', '/batches/prune', {
        body: JSON.stringify({ olderThanMs: 0, tenant: 'bulk' }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
      });
      expect(first).toMatchObject({ status: 200, body: { batches: PRUNE_PAGE, more: true } });
      const rest = await new BatchlineClient({ baseUrl: url, apiKey: admin.token }).prune({ olderThanMs: 0, tenant: 'bulk' });
      expect(rest).toMatchObject({ batches: PRUNE_PAGE + 1, more: false });
      expect(await bl.countBatches({ tenant: 'bulk' })).toBe(0);
    } finally {
      await hasty.close();
    }
  });

  it('isolates tenants: another tenant\'s batch is 404 on every endpoint; no key, a wrong or revoked key is 401', async () => {
    const acme = await createKey(bl.store, { tenant: 'acme', admin: false });
    const globex = await createKey(bl.store, { tenant: 'globex', admin: false });
    const admin = await createKey(bl.store, { tenant: 'ops', admin: true });
    const as = (token: string) => new BatchlineClient({ baseUrl: base, apiKey: token });

    const mine = await as(acme.token).createBatch({ type: 'slow', items: [{ n: 1 }, { n: 2 }] });
    expect(mine.tenant).toBe('acme');
    // Two Authorization headers: which key would act is not guessed.
    const { port } = new URL(base);
    const twoKeys = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(`GET /api/v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${acme.token}\r\nAuthorization: Bearer ${globex.token}\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (data) => (text += data));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(twoKeys).toMatch(/^HTTP\/1\.1 401 /);
    expect(twoKeys).toContain('2 Authorization headers were sent; send one');
    const theirs = await as(globex.token).createBatch({ type: 'echo', items: [{ n: 1 }] });
    expect(theirs.tenant).toBe('globex');

    // globex against acme's batch: every read and write is 404, and nothing changes.
    const attempts: [string, string][] = [
      ['GET', `/batches/${mine.id}`],
      ['GET', `/batches/${mine.id}/progress`],
      ['GET', `/batches/${mine.id}/items`],
      ['POST', `/batches/${mine.id}/cancel`],
      ['POST', `/batches/${mine.id}/pause`],
      ['POST', `/batches/${mine.id}/resume`],
      ['POST', `/batches/${mine.id}/retry`],
      ['DELETE', `/batches/${mine.id}`],
    ];
    for (const [method, path] of attempts) {
      const res = await raw(base, method, path, { headers: { authorization: `Bearer ${globex.token}` } });
      expect([method, path, res.status, res.body.code]).toEqual([method, path, 404, 'NOT_FOUND']);
    }
    expect((await bl.getBatch(mine.id)).status).not.toBe('cancelled');
    const globexList = await as(globex.token).listBatches();
    expect(globexList.batches.map((b) => b.tenant)).toEqual(['globex']);
    const acmeList = await as(acme.token).listBatches();
    expect(acmeList.batches.map((b) => b.id)).toEqual([mine.id]);
    const adminList = await as(admin.token).listBatches({ limit: 500 });
    expect(adminList.batches.map((b) => b.id)).toEqual(expect.arrayContaining([mine.id, theirs.id]));
    expect((await as(admin.token).getBatch(mine.id)).id).toBe(mine.id);
    // ?tenant= narrows an admin's listing; a tenant key may name only its own tenant.
    const adminGlobex = await as(admin.token).listBatches({ tenant: 'globex', limit: 500 });
    expect([adminGlobex.total, adminGlobex.batches.map((b) => b.id)]).toEqual([1, [theirs.id]]);
    expect((await as(acme.token).listBatches({ tenant: 'acme' })).batches.map((b) => b.id)).toEqual([mine.id]);
    const snooping = await raw(base, 'GET', '/batches?tenant=globex', { headers: { authorization: `Bearer ${acme.token}` } });
    expect(snooping).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect(snooping.body.detail).toContain('"acme"');
    expect((await as(acme.token).cancel(mine.id)).status).toBe('cancelled');
    // A prune by globex of everything finished deletes its own batch only.
    await bl.wait(theirs.id, { timeoutMs: 20_000 });
    expect(await as(globex.token).prune({ olderThanMs: 0 })).toMatchObject({ batches: 1 });
    expect((await as(acme.token).getBatch(mine.id)).status).toBe('cancelled');
    await expect(as(globex.token).getBatch(theirs.id)).rejects.toMatchObject({ status: 404 });

    const wrong: Record<string, string>[] = [{}, { authorization: 'Bearer bl_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }, { authorization: 'Basic Zm9vOmJhcg==' }, { authorization: `Bearer ${acme.token}x` }];
    for (const headers of wrong) {
      const res = await raw(base, 'GET', '/batches', { headers });
      expect([headers, res.status, res.body.code, res.headers.get('www-authenticate')]).toEqual([headers, 401, 'UNAUTHORIZED', 'Bearer realm="batchline"']);
    }
    // Where a handler threw shows the server's file layout: `at` for admins, never for tenants.
    const odd = await as(acme.token).createBatch({ type: 'picky', items: [{ n: 1 }] });
    await bl.wait(odd.id, { timeoutMs: 20_000 });
    const [tenantView] = (await as(acme.token).items(odd.id)).items;
    expect(tenantView!.error).toEqual({ kind: 'permanent', name: expect.any(String), message: 'odd 1' });
    const [adminView] = (await as(admin.token).items(odd.id)).items;
    expect(adminView!.error).toMatchObject({ kind: 'permanent', message: 'odd 1', at: expect.stringContaining('api.test.ts') });
    expect(adminView!.error).not.toHaveProperty('stack');
    // Metrics and other tenants' batch ids in /workers are for admin keys only.
    const metrics = await raw(base, 'GET', '/metrics', { headers: { authorization: `Bearer ${globex.token}` } });
    expect(metrics).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect((await fetch(`${base}/api/v1/metrics`, { headers: { authorization: `Bearer ${admin.token}` } })).status).toBe(200);
    const tenantWorkers = (await raw(base, 'GET', '/workers', { headers: { authorization: `Bearer ${globex.token}` } })).body.workers;
    expect(tenantWorkers.every((w: { batches: string[] }) => w.batches.length === 0)).toBe(true);
    expect((await raw(base, 'GET', '/ready')).status).toBe(200);
    // Probes answer without a key with or without a trailing slash, as the routes do.
    expect((await raw(base, 'GET', '/health/')).status).toBe(200);

    // A key holds a bounded number of event streams, and revoking it ends them.
    const capped = await createServer({ batchline: bl, maxStreamsPerKey: 1 });
    await capped.listen({ host: '127.0.0.1', port: 0 });
    const cappedBase = `http://127.0.0.1:${(capped.server.address() as AddressInfo).port}`;
    try {
      const auth = { authorization: `Bearer ${acme.token}` };
      // HEAD answers at once and holds no stream: probing a few times leaves the key its one.
      for (let i = 0; i < 3; i++) {
        const head = await fetch(`${cappedBase}/api/v1/events`, { method: 'HEAD', headers: auth, signal: AbortSignal.timeout(5_000) });
        expect([head.status, head.headers.get('content-type'), await head.text()]).toEqual([200, 'text/event-stream; charset=utf-8', '']);
      }
      const stream = await fetch(`${cappedBase}/api/v1/events`, { headers: auth });
      // The headers a HEAD promised.
      expect([stream.status, stream.headers.get('content-type'), stream.headers.get('cache-control')]).toEqual([200, 'text/event-stream; charset=utf-8', 'no-cache']);
      const tooMany = await raw(cappedBase, 'GET', '/events', { headers: auth });
      expect(tooMany).toMatchObject({ status: 429, body: { code: 'RATE_LIMITED' } });
      expect(tooMany.headers.get('retry-after')).toBe('5');
      // Another key has streams of its own.
      const theirs = new AbortController();
      expect((await fetch(`${cappedBase}/api/v1/events`, { headers: { authorization: `Bearer ${globex.token}` }, signal: theirs.signal })).status).toBe(200);
      theirs.abort();
      await bl.store.keyRevoke({ id: acme.key.id });
      const revokedAt = Date.now();
      const text = await readFor(stream, 'stream:closed');
      expect(text).toContain('event: stream:closed');
      expect(Date.now() - revokedAt).toBeLessThan(8_000);
    } finally {
      await capped.close();
    }
    await expect(as(acme.token).listBatches()).rejects.toMatchObject({ status: 401 });
    // Liveness needs no key.
    expect((await raw(base, 'GET', '/health')).status).toBe(200);
    await expect(as(globex.token).getBatch(mine.id)).rejects.toBeInstanceOf(ApiError);
  });

  it("releases a dead worker's chunks for an admin key: 403 for a tenant key, 404 unknown, 409 for its own worker", async () => {
    const tenant = await createKey(bl.store, { tenant: 'acme', admin: false });
    const admin = await createKey(bl.store, { tenant: 'ops', admin: true });
    const as = (token: string) => new BatchlineClient({ baseUrl: base, apiKey: token });
    // A worker elsewhere that died holding a chunk of a type no worker here runs.
    const batch = await bl.submit('ghost', [{ n: 1 }, { n: 2 }], { tenant: 'acme' });
    const dead = 'gone-host:4242:deadbeef';
    const [held] = await bl.store.chunksLease({ workerId: dead, types: ['ghost'], maxItems: 10, leaseMs: 60_000 });
    expect(held?.batchId).toBe(batch.id);
    await bl.store.workerHeartbeat({ id: dead, host: 'gone-host', pid: 4242, types: ['ghost'], concurrency: 1, processed: 0, inFlight: 2, batches: [batch.id] });
    const path = `/workers/${encodeURIComponent(dead)}/release`;

    const refused = await raw(base, 'POST', path, { headers: { authorization: `Bearer ${tenant.token}` } });
    expect([refused.status, refused.body.code]).toEqual([403, 'FORBIDDEN']);
    expect((await bl.getBatch(batch.id)).status).toBe('running');
    const withBody = await raw(base, 'POST', path, { headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' }, body: '{"force":true}' });
    expect([withBody.status, withBody.body.code]).toEqual([400, 'VALIDATION_ERROR']);
    expect((await raw(base, 'GET', path, { headers: { authorization: `Bearer ${admin.token}` } })).status).toBe(405);

    expect(await as(admin.token).releaseWorker(dead)).toEqual({ id: dead, chunks: 1 });
    // Its items are pending again at once, for the next worker that runs the type.
    expect((await bl.items(batch.id, { status: 'pending' })).map((i) => i.seq)).toEqual([0, 1]);
    expect((await bl.workers()).map((w) => w.id)).not.toContain(dead);
    await expect(as(admin.token).releaseWorker(dead)).rejects.toMatchObject({ status: 404, problem: { code: 'NOT_FOUND', detail: expect.stringContaining(`no worker ${dead}`) } });
    const own = (await bl.workers()).find((w) => w.pid === process.pid)!;
    await expect(as(admin.token).releaseWorker(own.id)).rejects.toMatchObject({ status: 409, problem: { code: 'CONFLICT', detail: expect.stringContaining('runs in this process') } });
    const doc = await getJson(`${base}/api/v1/openapi.json`);
    expect(Object.keys(doc.paths['/workers/{id}/release'].post.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '409']));
    await bl.deleteBatch(batch.id);
  });
});
