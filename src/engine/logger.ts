/**
 * Logging: pino, to stderr, so stdout stays clean for command output and `--json`.
 * `BATCHLINE_LOG_LEVEL` sets the level when the caller does not.
 */

import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A pino logger writing JSON lines to stderr. */
export function createLogger(options: { level?: string } = {}): Logger {
  return pino(
    { level: options.level ?? process.env.BATCHLINE_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
}
