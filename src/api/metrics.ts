/**
 * Prometheus metrics, with prom-client, in a registry of each server's own (so two servers in
 * one process, as in tests, do not collide). `serve` answers them at `GET /api/v1/metrics`;
 * `batchline worker --metrics-port` at `GET /metrics` (metricsServer), so the item counts of
 * worker processes that serve no API can be scraped too:
 *
 *   batchline_items_total{type,outcome}          items run in this process (succeeded, failed, retried, cancelled)
 *   batchline_item_duration_seconds{type}        histogram of item run time
 *   batchline_lease_losses_total                 chunks whose lease was lost (another worker took them)
 *   batchline_batches{status}                    batches per status in the database (queue depth: queued + running)
 *   batchline_http_requests_total{method,route,status}      (serve only)
 *   batchline_http_request_duration_seconds{method,route}   (serve only)
 *   plus Node's process metrics (memory, CPU, event loop lag).
 */

import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BATCH_STATUSES } from '../core/statuses.js';
import type { Batchline } from '../engine/batchline.js';

/**
 * A registry with Node's process metrics and the engine's (items, durations, lease losses,
 * batches per status), wired to `bl`'s events until `detach` is called.
 */
function engineMetrics(bl: Batchline): { registry: Registry; detach: () => void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'batchline_' });

  const items = new Counter({ name: 'batchline_items_total', help: 'Items run in this process, by type and outcome', labelNames: ['type', 'outcome'], registers: [registry] });
  const duration = new Histogram({
    name: 'batchline_item_duration_seconds',
    help: 'Item run time, by type',
    labelNames: ['type'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  const leaseLosses = new Counter({ name: 'batchline_lease_losses_total', help: 'Chunks whose lease this process lost', registers: [registry] });
  new Gauge({
    name: 'batchline_batches',
    help: 'Batches in the database by status (queued + running is the queue depth)',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await bl.store.batchesCount();
      for (const status of BATCH_STATUSES) this.set({ status }, counts[status] ?? 0);
    },
  });

  const onItem = ({ type, outcome, ms }: { type: string; outcome: string; ms: number }) => {
    items.inc({ type, outcome });
    duration.observe({ type }, ms / 1000);
  };
  const onLeaseLost = () => leaseLosses.inc();
  bl.on('worker:item', onItem);
  bl.on('worker:lease-lost', onLeaseLost);
  return {
    registry,
    detach: () => {
      bl.off('worker:item', onItem);
      bl.off('worker:lease-lost', onLeaseLost);
    },
  };
}

/** The API server's metrics: its registry, and a way to count requests whose reply was hijacked. */
export interface ServerMetrics {
  registry: Registry;
  /** Counts a hijacked request (status 200) that began at `startedAt` (performance.now()). */
  recordHijacked(request: FastifyRequest, startedAt: number): void;
}

/** Creates the API server's registry: the engine's metrics and the server's requests. */
export function instrument(app: FastifyInstance, bl: Batchline): ServerMetrics {
  const { registry, detach } = engineMetrics(bl);
  app.addHook('onClose', async () => detach());

  const requests = new Counter({ name: 'batchline_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const latency = new Histogram({
    name: 'batchline_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const record = (request: FastifyRequest, status: number, seconds: number) => {
    // The route pattern, not the URL: ids would make a label per batch.
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: String(status) });
    latency.observe({ method: request.method, route }, seconds);
  };
  app.addHook('onResponse', async (request, reply) => record(request, reply.statusCode, reply.elapsedTime / 1000));
  return {
    registry,
    // A hijacked reply (an event stream) skips onResponse; its route counts it when it ends.
    recordHijacked: (request, startedAt) => record(request, 200, (performance.now() - startedAt) / 1000),
  };
}

/**
 * A server answering only `GET /metrics` with the engine's metrics, for worker processes
 * (`batchline worker --metrics-port`). Not yet listening. It has no keys: bind it where only
 * the scraper reaches (loopback by default).
 */
export async function metricsServer(bl: Batchline): Promise<FastifyInstance> {
  const app = Fastify();
  const { registry, detach } = engineMetrics(bl);
  app.addHook('onClose', async () => detach());
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  return app;
}
