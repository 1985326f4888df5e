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
