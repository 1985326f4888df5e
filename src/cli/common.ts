/**
 * What every CLI command shares: the database options, opening Batchline, exit codes, turning
 * errors into one clear line, number parsing, and plain tables.
 */

import { ApiError } from '../client/index.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { BatchlineError, InputError, StoreUnavailableError } from '../core/errors.js';
import type { Batch } from '../core/types.js';
import { existsSync } from 'node:fs';
import { Batchline } from '../engine/batchline.js';
import { createLogger } from '../engine/logger.js';
import { ensureReadable, formatOf } from '../engine/sources.js';
import { resolveDatabase, type DatabaseTarget } from '../store/open.js';

/** Exit codes, as documented in docs/cli.md. */
export const EXIT = {
  /** Everything asked for is done, nothing failed. */
  ok: 0,
  /** Work ran but items failed, or it is not finished. */
  failures: 1,
  /** The command could not start: bad flags, bad input, unknown type, bad or unreachable database. */
  usage: 2,
} as const;

/** An error that ends the command with a given exit code and message. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

export interface DatabaseOptions {
  database?: string;
  schema?: string;
  logLevel?: string;
}

/** Adds --database, --schema and --log-level to a command. */
export function withDatabase(command: Command, logLevel = 'warn'): Command {
  return command
    .option('--database <url>', 'postgres://… URL or SQLite file (default: $DATABASE_URL, then ./.batchline/batchline.db)')
    .option('--schema <name>', 'PostgreSQL schema (default: batchline, or ?schema= in the URL)')
    .option('--log-level <level>', `log level for stderr: ${LOG_LEVELS.join(', ')}`, logLevelOf, logLevel);
}

/**
 * Adds the data file, as `--file PATH` or as a bare `PATH` (how people type it): the command's
 * `file` option holds it either way. Neither, two different files, or one that cannot be read
 * or whose format its name does not tell is a usage error, found before the action opens a
 * database (so a mistyped name creates no `.batchline` directory).
 */
export function withFile(command: Command): Command {
  return command
    .argument('[file]', 'the same as --file')
    .option('--file <path>', 'items as .csv, .jsonl or .ndjson')
    .hook('preAction', async (self) => {
      const [given] = self.processedArgs as (string | undefined)[];
      const named = self.getOptionValue('file') as string | undefined;
      if (given !== undefined && named !== undefined && given !== named) {
        throw new CliError(`two files given, ${JSON.stringify(given)} and --file ${JSON.stringify(named)}: give one`);
      }
      if (given === undefined && named === undefined) throw new CliError('no file given: name it as --file PATH (or as the last argument)');
      const file = given ?? named!;
      self.setOptionValue('file', file);
      formatOf(file);
      await ensureReadable(file);
    });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** A parser for --log-level, for commander: one of pino's levels. */
function logLevelOf(value: string): string {
  if (!LOG_LEVELS.includes(value)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}.`);
  return value;
}

/**
 * Opens Batchline on the database the options name. Anything that stops it opening (a bad URL,
 * an unreachable server, a permission the migrations need) is a usage error: nothing ran.
 * Logs are lines a person reads, or JSON for the long-running `worker` and `serve`.
 */
export async function openBatchline(options: DatabaseOptions, migrate = true, logs: 'json' | 'text' = 'text'): Promise<Batchline> {
  try {
    const logger = createLogger({ level: options.logLevel, format: logs });
    return await Batchline.open({ database: options.database, schema: options.schema, logger, migrate });
  } catch (error) {
    throw cannotOpen(error);
  }
}

/**
 * Opens Batchline on a database that already holds it, creating nothing (status, monitor and
 * the steering commands): a database
 * without Batchline's tables, most likely a typo in --database or --schema, is a usage error
 * rather than an empty listing, and so is one whose schema this version cannot read yet.
 */
export async function openExisting(options: DatabaseOptions): Promise<Batchline> {
  let target: DatabaseTarget;
  try {
    target = resolveDatabase(options.database, options.schema);
  } catch (error) {
    throw cannotOpen(error);
  }
  const where = target.kind === 'sqlite' ? `SQLite database ${target.path}` : target.display;
  if (target.kind === 'sqlite' && target.path !== ':memory:' && !existsSync(target.path)) {
    throw new CliError(`there is no ${where}: check --database (or DATABASE_URL), or submit a batch first`, EXIT.usage);
  }
  const bl = await openBatchline(options, false);
  const { current, latest } = await bl.store.migrationStatus();
  if (current >= latest) return bl;
  await bl.close();
  throw new CliError(
    current === 0
      ? `${where} holds no Batchline tables: check --database and --schema, or run \`batchline migrate\``
      : `${where} is at schema version ${current}; this version of batchline needs ${latest}: run \`batchline migrate\``,
    EXIT.usage,
  );
}

/** The usage error for a database that cannot be opened or migrated. */
export function cannotOpen(error: unknown): CliError {
  if (error instanceof StoreUnavailableError || error instanceof InputError) return new CliError(error.message, EXIT.usage);
  return new CliError(`cannot open the database: ${(error as Error).message}`, EXIT.usage);
}

/**
 * "30m", "2s", "500ms", "1h", "7d" → milliseconds, at most 36500d (100 years). A bare number
 * is refused: `--timeout 30` could mean seconds or minutes as easily as milliseconds.
 */
export function duration(value: string): number {
  return durationUpTo('36500d')(value);
}

/** A parser for durations (see duration) of at most `max`, such as "1h", for commander. */
export function durationUpTo(max: string): (value: string) => number {
  const maxMs = milliseconds(max);
  return (value) => {
    const ms = milliseconds(value);
    if (ms > maxMs) throw new InvalidArgumentError(`expected a duration of at most ${max}.`);
    return ms;
  };
}

/** A duration with its unit in milliseconds, or the error that says how to write one. */
function milliseconds(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(value.trim());
  if (!match) {
    const bare = /^\d+(?:\.\d+)?$/.test(value.trim());
    throw new InvalidArgumentError(`expected a duration with its unit, such as 500ms, 2s, 30m, 1h or 7d${bare ? ` (${value} alone could be any of them)` : ''}.`);
  }
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2]!]!;
  return Math.round(Number(match[1]) * unit);
}

/** Adds --retain to a command that runs the reconciler (worker, serve). */
export function withRetention(command: Command): Command {
  return command.addOption(
    new Option('--retain <duration>', 'delete batches, with their items and events, once they finished this long ago, such as 30d (default: keep them)').argParser(duration),
  );
}

/**
 * An option taking a duration (see duration), at most `max` when given, whose default `--help`
 * shows as written ("30m").
 */
export function durationOption(flags: string, description: string, fallback: string, max?: string): Option {
  return new Option(flags, description).argParser(max ? durationUpTo(max) : duration).default(duration(fallback), fallback);
}

/** A parser for integer options within bounds, for commander. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    // Decimal digits only (underscores may group them: 100_000): Number() would also take
    // 0x10, 1e3 and an empty string.
    const n = /^-?\d+(?:_\d+)*$/.test(value.trim()) ? Number(value.trim().replaceAll('_', '')) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}.`);
    }
    return n;
  };
}

/**
 * The exit code and one-line message for an error a command threw. Bad input (InputError,
 * NotFoundError, ConflictError) is a usage error; anything that went wrong once work had
 * started, the database going away included, is 1. BATCHLINE_DEBUG=1 prints the stack too.
 */
export function describeFailure(error: unknown): { code: number; message: string } {
  // One line, as every error of the CLI is (a driver's or a compiler's may span several).
  const message = process.env.BATCHLINE_DEBUG && error instanceof Error ? (error.stack ?? error.message) : (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ');
  if (error instanceof CliError) return { code: error.exitCode, message };
  // The server refused the request as given (bad input, unknown batch, wrong key): a usage error.
  // An unreachable server (status 0) is a usage error, as an unreachable database is.
  if (error instanceof ApiError) return { code: error.status === 0 || (error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) ? EXIT.usage : EXIT.failures, message };
  if (error instanceof StoreUnavailableError || (error instanceof BatchlineError && error.code === 'timeout')) return { code: EXIT.failures, message };
  if (error instanceof BatchlineError) return { code: EXIT.usage, message };
  return { code: EXIT.failures, message };
}

/** Prints one JSON document to stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Left-aligned text table with a header row. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** 100000 → "100,000". */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** The fields of a batch the CLI shows and prints as JSON (the API's batches have them too). */
export type BatchCounts = Pick<Batch, 'id' | 'type' | 'tenant' | 'status' | 'total' | 'succeeded' | 'failed' | 'cancelled' | 'remaining' | 'aggregates'>;

/** The fields of a batch the CLI shows and prints as JSON. */
export function batchSummary(batch: BatchCounts): BatchCounts {
  const { id, type, tenant, status, total, succeeded, failed, cancelled, remaining, aggregates } = batch;
  return { id, type, tenant, status, total, succeeded, failed, cancelled, remaining, aggregates };
}

/** True when every batch completed with no failed or cancelled items. */
export function allSucceeded(batches: Pick<Batch, 'status' | 'failed' | 'cancelled'>[]): boolean {
  return batches.every((b) => b.status === 'completed' && b.failed === 0 && b.cancelled === 0);
}
