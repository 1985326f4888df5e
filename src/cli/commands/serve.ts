/**
 * `batchline serve`: the HTTP API, and by default workers and the reconciler, in one process.
 * `--no-workers` serves the API only, so API and worker processes scale apart. SIGTERM or
 * SIGINT: stop accepting requests, finish the ones in flight, stop workers gracefully, exit 0.
 */

import { Command } from 'commander';
import { isIP, type AddressInfo } from 'node:net';
import { createServer } from '../../api/server.js';
import { CliError, EXIT, integer, openBatchline, withDatabase, withRetention, type DatabaseOptions } from '../common.js';
import { defineProcessors, loadProcessors } from '../processors.js';

interface ServeOptions extends DatabaseOptions {
  processors?: string;
  host: string;
  port: number;
  workers: boolean;
  concurrency: number;
  rateLimit: number;
  shutdownMs: number;
  retain?: number;
}

/** Loopback addresses (and `localhost`), which may be served without API keys. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Why `listen` failed, for the errors a user fixes with --host or --port. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the port is in use (another batchline serve?); choose another with --port',
  EACCES: 'not allowed to bind that port (below 1024 needs privileges); choose another with --port',
  EADDRNOTAVAIL: 'this machine has no such address; check --host',
};

/** The `serve` command. */
export function serveCommand(): Command {
  return withDatabase(
    withRetention(new Command('serve'))
      .summary('serve the HTTP API (and run workers)')
      .description(
        'Serve the HTTP API under /api/v1 and, unless --no-workers, run workers for the types in --processors and the reconciler. ' +
          'Once any API key exists (batchline keys create), every request needs one; without keys the server only listens on loopback.',
      )
      .option('--processors <file>', ".ts or .js module whose default export maps types to handlers (needed to run workers)")
      .option('--host <address>', 'address to listen on', '127.0.0.1')
      .option('--port <n>', 'port to listen on (0: any free port)', integer(0, 65_535), 7700)
      .option('--no-workers', 'serve the API only; run workers elsewhere (batchline worker)')
      .option('--concurrency <n>', 'items running at once in this process', integer(1, 10_000), 10)
      .option('--rate-limit <n>', 'requests per second per API key (bursts of twice that); 0 turns the limit off', integer(0), 100)
      .option('--shutdown-ms <ms>', 'how long requests and running items get to finish after a signal', integer(0), 10_000),
    'info',
  ).action(async (options: ServeOptions) => {
    // Retention is the reconciler's, which runs with this process's workers: asked for
    // without them, it would silently do nothing.
    if (options.retain !== undefined && !(options.workers && options.processors)) {
      throw new CliError(
        '--retain needs workers in this process (the reconciler that deletes old batches runs with them): give --processors, ' +
          'pass --retain to batchline worker instead, or run batchline prune on a schedule',
        EXIT.usage,
      );
    }
    // The processors first: a module that does not load creates nothing.
    const processors = options.workers && options.processors ? await loadProcessors(options.processors) : null;
    const bl = await openBatchline(options, true, 'json');
    try {
      if (!isLoopback(options.host) && !(await bl.store.keysExist())) {
        throw new CliError(
          `refusing to serve on ${options.host} without API keys: anyone who can reach it could read and change every batch. ` +
            'Create a key first (batchline keys create --tenant <name>), or serve on 127.0.0.1.',
          EXIT.usage,
        );
      }
      const types = processors ? defineProcessors(bl, options.processors!, processors) : [];
      if (options.workers && !options.processors) bl.logger.warn('no --processors given: serving the API without workers');
      const app = await createServer({
        batchline: bl,
        logger: bl.logger,
        rateLimit: options.rateLimit === 0 ? false : { perSecond: options.rateLimit, burst: options.rateLimit * 2 },
        shutdownMs: options.shutdownMs,
      });
      await app.listen({ host: options.host, port: options.port }).catch((error: NodeJS.ErrnoException) => {
        const why = LISTEN_ERRORS[error.code ?? ''];
        throw why ? new CliError(`cannot listen on ${options.host}:${options.port}: ${why}`, EXIT.usage) : error;
      });
      // The address bound, as given (0.0.0.0 is every address, not the loopback one Fastify names).
      const bound = app.server.address() as AddressInfo;
      const address = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
      if (types.length > 0) await bl.start({ concurrency: options.concurrency, handleSignals: false, reconciler: { retainFinishedMs: options.retain } });
      // Tests and scripts read the address from this line (with --port 0 it is the only way to know it).
      console.log(`listening on ${address}`);
      bl.logger.info({ address, types, workers: types.length > 0, store: bl.store.description }, 'serving; SIGTERM or SIGINT stops it');

      const signal = await new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      bl.logger.info({ signal }, 'stopping: draining requests and workers');
      const deadline = setTimeout(() => {
        bl.logger.error('shutdown took too long; exiting');
        process.exit(EXIT.failures);
      }, options.shutdownMs + 30_000);
      deadline.unref();
      // Requests drain (uploads get --shutdown-ms, then are cut off) while the workers stop,
      // both within the deadline; the store closes once neither needs it.
      await Promise.all([app.close(), bl.stop({ timeoutMs: options.shutdownMs })]);
      await bl.close({ timeoutMs: options.shutdownMs });
      bl.logger.info('stopped');
      // A handler that ignored its abort signal may still hold the event loop (a timer, a
      // socket); its chunk was handed back, so nothing is left to wait for.
      process.exit(EXIT.ok);
    } catch (error) {
      await bl.close();
      throw error;
    }
  });
}
