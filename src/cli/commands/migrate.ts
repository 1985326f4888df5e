/**
 * `batchline migrate`: apply or revert schema migrations.
 */

import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { SQLITE_MIGRATIONS } from '../../store/sqlite/migrations.js';
import { openStore, resolveDatabase, type DatabaseTarget } from '../../store/open.js';
import { cannotOpen, CliError, integer, printJson, withDatabase, type DatabaseOptions } from '../common.js';

interface MigrateOptions extends DatabaseOptions {
  steps?: number;
  json?: boolean;
}

/** The `migrate` command: apply or revert schema migrations. */
export function migrateCommand(): Command {
  return withDatabase(
    new Command('migrate')
      .summary('apply (up) or revert (down) schema migrations')
      .description(
        'up (default): apply every pending migration, or the next --steps. down: revert the last --steps migrations (default 1); down past the ' +
          'first migration drops every Batchline table and the data in them. Opening Batchline also applies pending migrations.',
      )
      .argument('[direction]', 'up or down', 'up')
      .option('--steps <n>', 'how many migrations to apply (up; default all pending) or revert (down; default 1)', integer(1))
      .option('--json', 'print the resulting version as JSON'),
  ).action(async (direction: string, options: MigrateOptions) => {
    if (direction !== 'up' && direction !== 'down') throw new CliError(`direction must be up or down, got ${JSON.stringify(direction)}`);
    // Reverting creates nothing: not a SQLite file, nor (below) a PostgreSQL schema, where there
    // is nothing to revert (most likely a typo in --database or --schema).
    if (direction === 'down') {
      let target: DatabaseTarget;
      try {
        target = resolveDatabase(options.database, options.schema);
      } catch (error) {
        throw cannotOpen(error);
      }
      if (target.kind === 'sqlite' && target.path !== ':memory:' && !existsSync(target.path)) {
        return report(options, `SQLite ${target.path}`, 0, { current: 0, latest: SQLITE_MIGRATIONS.at(-1)!.version }, 'there is no such database: nothing to revert');
      }
    }
    const store = await openStore({ database: options.database, schema: options.schema }).catch((error: unknown) => {
      throw cannotOpen(error);
    });
    try {
      const before = await store.migrationStatus();
      if (direction === 'down' && before.current === 0) {
        return report(options, store.description, 0, before, 'it holds no Batchline tables: nothing to revert');
      }
      const after = await store.migrate({ direction, steps: options.steps });
      if (options.json) printJson({ store: store.description, before: before.current, ...after });
      else console.log(`${store.description}: schema version ${before.current} → ${after.current} (latest ${after.latest})`);
    } finally {
      await store.close();
    }
  });
}

/** Prints the outcome of a `migrate` that changed nothing, and why. */
function report(options: MigrateOptions, store: string, before: number, after: { current: number; latest: number }, why: string): void {
  if (options.json) printJson({ store, before, ...after, note: why });
  else console.log(`${store}: schema version ${before} → ${after.current}; ${why}`);
}
