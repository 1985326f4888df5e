/**
 * Where CLI commands read batches from: the database (--database, the default) or a running
 * server's HTTP API (--server URL --api-key K, or BATCHLINE_URL and BATCHLINE_API_KEY), so
 * the same command works on a laptop and against a deployed service.
 */

import type { Command } from 'commander';
import type { BatchStatus } from '../core/statuses.js';
import type { Batch } from '../core/types.js';
import { isWorkerActive } from '../core/types.js';
import type { Batchline } from '../engine/batchline.js';
import { BatchlineClient, type ApiBatch } from '../client/index.js';
import { CliError, EXIT, openExisting, type DatabaseOptions } from './common.js';

export interface SourceOptions extends DatabaseOptions {
  server?: string;
  apiKey?: string;
}

/** Worker activity as the monitor shows it. */
export interface WorkerActivity {
  active: number;
  /** Age of the freshest heartbeat, in seconds; null with no workers. */
  lastHeartbeatAgeSeconds: number | null;
  /** Item types the active workers run, together. */
  types: string[];
}

export interface BatchSource {
  getBatch(id: string): Promise<Batch | ApiBatch>;
  /** Every batch (all pages) of the given statuses, of `tenant` when given. */
  listBatches(filter: { tenant?: string; status: BatchStatus[] }): Promise<(Batch | ApiBatch)[]>;
  /** Whether any batch (of `tenant`), whatever its status, exists. */
  anyBatch(tenant?: string): Promise<boolean>;
  workers(): Promise<WorkerActivity>;
  close(): Promise<void>;
}

/** Adds --server and --api-key (defaults from BATCHLINE_URL and BATCHLINE_API_KEY). */
export function withServer(command: Command): Command {
  return command
    .option('--server <url>', 'go through this server\'s HTTP API instead of the database (default: $BATCHLINE_URL)')
    .option('--api-key <key>', 'API key for --server (default: $BATCHLINE_API_KEY)');
}

function activity(workers: { heartbeatAt: number; types: string[] }[], now = Date.now()): WorkerActivity {
  const active = workers.filter((w) => isWorkerActive(w.heartbeatAt, now));
  return {
    active: active.length,
    lastHeartbeatAgeSeconds: active.length === 0 ? null : Math.min(...active.map((w) => now - w.heartbeatAt)) / 1000,
    types: [...new Set(active.flatMap((w) => w.types))].sort(),
  };
}

function fromDatabase(bl: Batchline): BatchSource {
  return {
    getBatch: (id) => bl.getBatch(id),
    async listBatches({ tenant, status }) {
      const all: Batch[] = [];
      for (let before: string | undefined; ; ) {
        const page = await bl.listBatches({ tenant, status, before, limit: 500 });
        all.push(...page);
        if (page.length < 500) return all;
        before = page.at(-1)!.id;
      }
    },
    anyBatch: async (tenant) => (await bl.listBatches({ tenant, limit: 1 })).length > 0,
    workers: async () => activity((await bl.workers()).map((w) => ({ heartbeatAt: w.heartbeatAt.getTime(), types: w.types }))),
    close: () => bl.close(),
  };
}

function fromServer(client: BatchlineClient): BatchSource {
  return {
    getBatch: (id) => client.getBatch(id),
    async listBatches({ tenant, status }) {
      const all: ApiBatch[] = [];
      for (let cursor: string | undefined; ; ) {
        const page = await client.listBatches({ status, tenant, limit: 500, cursor });
        all.push(...page.batches);
        if (!page.nextCursor) return all;
        cursor = page.nextCursor;
      }
    },
    anyBatch: async (tenant) => (await client.listBatches({ tenant, limit: 1 })).batches.length > 0,
    workers: async () => {
      const { workers } = await client.workers();
      // Ages as the server measured them: this machine's clock may be off from the server's.
      const now = Date.now();
      return activity(workers.map((w) => ({ heartbeatAt: now - w.heartbeatAgeSeconds * 1000, types: w.types })), now);
    },
    close: async () => {},
  };
}

/**
 * The server a command goes through, or null for the database: --server, else $BATCHLINE_URL
 * unless --database names a database (an explicit flag beats the environment). Giving both
 * flags, or a URL that is not http(s), is a usage error that names where the value came from.
 */
export function serverOf(options: SourceOptions): string | null {
  if (options.server !== undefined && options.database !== undefined) {
    throw new CliError('--server and --database name two places to work on: give one', EXIT.usage);
  }
  const [server, from] = options.server !== undefined ? [options.server, '--server'] : [options.database === undefined ? process.env.BATCHLINE_URL : undefined, '$BATCHLINE_URL'];
  if (!server) return null;
  let url: URL | null = null;
  try {
    url = new URL(server);
  } catch {
    // reported below
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new CliError(`${from} ${JSON.stringify(server)} is not an http(s) URL; for example http://127.0.0.1:7700`, EXIT.usage);
  }
  return server;
}

/** A client for `server` with --api-key, else $BATCHLINE_API_KEY. */
export function clientFor(server: string, options: SourceOptions, extra: { retries?: number } = {}): BatchlineClient {
  return new BatchlineClient({ baseUrl: server, apiKey: options.apiKey ?? process.env.BATCHLINE_API_KEY, ...extra });
}

/** The API when --server (or BATCHLINE_URL) is given, the database otherwise. */
export async function openSource(options: SourceOptions): Promise<BatchSource> {
  const server = serverOf(options);
  if (server) return fromServer(clientFor(server, options));
  return fromDatabase(await openExisting(options));
}
