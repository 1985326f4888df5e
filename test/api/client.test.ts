/**
 * The typed client's retries, against a stand-in for a proxy between it and the server: what
 * it may send again without risking a second batch, and what it must not.
 */

import { describe, expect, it } from 'vitest';
import { ApiError, BatchlineClient } from '../../src/client/index.js';

/** A fetch that answers with `responses` in turn and counts the requests. */
function answering(...responses: (() => Response)[]) {
  const calls: string[] = [];
  const fetchImpl = (async (input: string | URL, init?: RequestInit) => {
    calls.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`);
    return responses[Math.min(calls.length - 1, responses.length - 1)]!();
  }) as typeof fetch;
  return { calls, fetchImpl };
}

const proxyBusy = () => new Response('<html>503 Service Unavailable</html>', { status: 503, headers: { 'content-type': 'text/html', 'retry-after': '0' } });
const batchlineBusy = () =>
  new Response(JSON.stringify({ type: 'x', title: 'Service unavailable', status: 503, detail: 'busy', code: 'UNAVAILABLE' }), {
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '0' },
  });
const created = () => new Response(JSON.stringify({ id: '01900000-0000-7000-8000-000000000000' }), { status: 201, headers: { 'content-type': 'application/json' } });

describe('client checks', () => {
  it('refuses items JSON would send changed (NaN as null, a Map as {}), as submit does, sending nothing', async () => {
    const { calls, fetchImpl } = answering(created);
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    const refused = client.createBatch({ type: 't', items: [{ amount: '1.00' }, { amount: NaN }] });
    await expect(refused).rejects.toMatchObject({ status: 400, code: 'VALIDATION_ERROR', problem: { detail: expect.stringMatching(/^item 2: item has NaN at \.amount/), errors: [{ path: 'body.items.1' }] } });
    await expect(client.createBatch({ type: 't', items: [new Map([['a', 1]])] })).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
    expect(calls).toEqual([]);
  });
});

describe('client retries', () => {
  it('does not send a create again after a proxy\'s 503, which may come after the server acted', async () => {
    const { calls, fetchImpl } = answering(proxyBusy, created);
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    await expect(client.createBatch({ type: 't', items: [1] })).rejects.toBeInstanceOf(ApiError);
    expect(calls).toEqual(['POST /api/v1/batches']);
  });

  it("sends a create again after Batchline's own 503, which it answers before acting", async () => {
    const { calls, fetchImpl } = answering(batchlineBusy, created);
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    await client.createBatch({ type: 't', items: [1] });
    expect(calls).toEqual(['POST /api/v1/batches', 'POST /api/v1/batches']);
  });

  it('reads again after any 503 with Retry-After', async () => {
    const batch = () => new Response(JSON.stringify({ id: 'b' }), { status: 200, headers: { 'content-type': 'application/json' } });
    const { calls, fetchImpl } = answering(proxyBusy, batch);
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    await client.getBatch('01900000-0000-7000-8000-000000000000');
    expect(calls).toHaveLength(2);
  });
});

describe('client prune', () => {
  const page = (batches: number, more: boolean) => () =>
    new Response(JSON.stringify({ batches, finishedBefore: '2026-11-01T00:00:00.000Z', dryRun: false, more, tenant: null }), { status: 200, headers: { 'content-type': 'application/json' } });
  const refused = () =>
    new Response(JSON.stringify({ type: 'x', title: 'Unauthorized', status: 401, detail: 'the API key was revoked', code: 'UNAUTHORIZED' }), { status: 401, headers: { 'content-type': 'application/problem+json' } });

  it('asks again while the server says more are left, and adds the pages up', async () => {
    const { calls, fetchImpl } = answering(page(100, true), page(100, true), page(7, false));
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    expect(await client.prune({ olderThanMs: 0 })).toMatchObject({ batches: 207, more: false });
    expect(calls).toHaveLength(3);
  });

  it('stops when a request deleted nothing while more were said to be left (another prune holds them)', async () => {
    const { calls, fetchImpl } = answering(page(100, true), page(0, true), page(5, false));
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    expect(await client.prune({ olderThanMs: 0 })).toMatchObject({ batches: 100, more: true });
    expect(calls).toHaveLength(2);
  });

  it('says how many earlier requests deleted when a later one fails', async () => {
    const { fetchImpl } = answering(page(100, true), refused);
    const client = new BatchlineClient({ baseUrl: 'http://batchline.test', fetch: fetchImpl });
    await expect(client.prune({ olderThanMs: 0 })).rejects.toMatchObject({
      status: 401,
      message: '401 UNAUTHORIZED: the API key was revoked (after earlier requests of this prune deleted 100 batches)',
    });
  });
});
