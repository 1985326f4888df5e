/**
 * Logging: pino, to stderr, so stdout stays clean for command output and `--json`.
 * `BATCHLINE_LOG_LEVEL` sets the level when the caller does not.
 */

import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * A pino logger writing to stderr: JSON lines (the default, for log shippers), or with
 * `format: 'text'` one line a person reads, `batchline: warn: <message> (key=value …)`, as the
 * CLI's commands other than `worker` and `serve` write them.
 */
export function createLogger(options: { level?: string; format?: 'json' | 'text' } = {}): Logger {
  const level = options.level ?? process.env.BATCHLINE_LOG_LEVEL ?? 'info';
  // Our errors' messages already say what caused them ("cannot use …: <the driver's message>"):
  // the cause stays a field of its own rather than being added to the message a second time.
  const serializers = { err: pino.stdSerializers.errWithCause };
  if (options.format !== 'text') return pino({ level, base: { pid: process.pid }, serializers }, pino.destination({ fd: 2, sync: true }));
  return pino({ level, base: undefined, timestamp: false, serializers }, { write: (line: string) => void process.stderr.write(`${textLine(JSON.parse(line) as Record<string, unknown>)}\n`) });
}

/** One JSON log record as text: its level, message, error and the plain values it carries. */
function textLine(record: Record<string, unknown>): string {
  const { level, msg, err, ...fields } = record;
  const label = pino.levels.labels[level as number] ?? String(level);
  const error = err && typeof err === 'object' && 'message' in err ? `: ${String(err.message)}` : '';
  const values = Object.entries(fields)
    .filter(([, value]) => value !== null && typeof value !== 'object')
    .map(([key, value]) => `${key}=${String(value)}`);
  return `batchline: ${label}: ${String(msg ?? '')}${error}${values.length > 0 ? ` (${values.join(' ')})` : ''}`;
}
