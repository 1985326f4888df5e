/**
 * `batchline worker`: work batches of the module's types until SIGTERM or SIGINT, then stop
 * gracefully and exit 0. A second signal exits at once.
 */

import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { metricsServer } from '../../api/metrics.js';
import type { Batchline } from '../../engine/batchline.js';
import { CliError, EXIT, integer, openBatchline, withDatabase, withRetention, type DatabaseOptions } from '../common.js';
import { defineProcessors, loadProcessors } from '../processors.js';

interface WorkerCommandOptions extends DatabaseOptions {
  processors: string;
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  shutdownMs: number;
  metricsPort?: number;
  metricsHost: string;
  retain?: number;
}

/** The `worker` command: work batches until signalled. */
export function workerCommand(): Command {
  return withDatabase(
    withRetention(new Command('worker'))
      .summary('work batches until signalled')
      .description(
        'Lease and run items of the types exported by --processors, from any batch in the database, until SIGTERM or SIGINT. ' +
          'On a signal: stop leasing, hand unstarted items back, let running items finish within --shutdown-ms, commit, exit 0. ' +
          'Run as many workers as you like, on as many machines as share the database.',
      )
      .requiredOption('--processors <file>', ".ts or .js module whose default export maps types to handlers: { 'txn.apply': handler }")
      .option('--concurrency <n>', 'items running at once in this process', integer(1, 10_000), 10)
      .option('--lease-ms <ms>', 'lease duration; a crashed worker\'s items wait this long before others take them', integer(200), 30_000)
      .option('--poll-ms <ms>', 'how often an idle worker looks for work (PostgreSQL also wakes it by NOTIFY)', integer(10), 500)
      .option('--shutdown-ms <ms>', 'how long running items get to finish after a signal', integer(0), 10_000)
      .option('--metrics-port <port>', 'serve Prometheus metrics of this process at GET /metrics on this port (0: any free port)', integer(0, 65_535))
      .option('--metrics-host <host>', 'address for --metrics-port (it has no keys: keep it where only the scraper reaches)', '127.0.0.1'),
    'info',
  ).action(async (options: WorkerCommandOptions) => {
    // A signal while the worker starts (opening the database, loading processors) is held
    // and delivered once the worker's own handlers are in place, so it stops gracefully with
    // exit 0 instead of dying mid-start.
    let early: NodeJS.Signals | undefined;
    // Held only while nothing else listens: once the worker's handlers are in, they take it.
    const hold = (signal: NodeJS.Signals) => {
      if (process.listenerCount(signal) === 1) early ??= signal;
    };
    process.on('SIGTERM', hold);
    process.on('SIGINT', hold);
    const release = () => {
      process.off('SIGTERM', hold);
      process.off('SIGINT', hold);
    };
    // The processors first: a module that does not load creates nothing.
    let bl;
    let types: string[];
    try {
      const processors = await loadProcessors(options.processors);
      bl = await openBatchline(options, true, 'json');
      types = defineProcessors(bl, options.processors, processors);
    } catch (error) {
      release();
      await bl?.close();
      throw error;
    }
    const metrics = options.metricsPort === undefined ? null : await listenForScrapes(bl, options.metricsHost, options.metricsPort).catch(async (error) => {
      release();
      await bl.close();
      throw error;
    });
    const stopped = new Promise<string | undefined>((resolve) => bl.once('worker:stopped', ({ signal }) => resolve(signal)));
    await bl.start({
      concurrency: options.concurrency,
      leaseMs: options.leaseMs,
      pollMs: options.pollMs,
      handleSignals: true,
      shutdownMs: options.shutdownMs,
      reconciler: { retainFinishedMs: options.retain },
    });
    release();
    if (early) process.kill(process.pid, early);
    bl.logger.info({ types, concurrency: options.concurrency, store: bl.store.description }, 'worker running; SIGTERM or SIGINT stops it');
    // The signal handlers are one-shot: a second signal while stopping ends the process at once.
    const signal = await stopped;
    await bl.close({ timeoutMs: options.shutdownMs });
    await metrics?.close();
    bl.logger.info({ signal }, 'worker stopped');
    // A handler that ignored its abort signal may still hold the event loop (a timer, a
    // socket); its chunk was handed back, so nothing is left to wait for.
    process.exit(EXIT.ok);
  });
}

/** Starts the metrics server; a port that cannot be had is a usage error. */
async function listenForScrapes(bl: Batchline, host: string, port: number): Promise<FastifyInstance> {
  const app = await metricsServer(bl);
  try {
    const address = await app.listen({ host, port });
    bl.logger.info({ url: `${address}/metrics` }, `metrics on ${address}/metrics`);
    return app;
  } catch (error) {
    await app.close();
    throw new CliError(`cannot serve metrics on ${host}:${port}: ${(error as Error).message}`, EXIT.usage);
  }
}
