/**
 * `batchline keys create|list|revoke`: API keys for `serve`. A key belongs to one tenant (or
 * is an admin key, which sees every tenant). Its token is printed once, at creation; the
 * database keeps only a hash.
 */

import { Command } from 'commander';
import { createKey } from '../../api/keys.js';
import type { ApiKey } from '../../core/types.js';
import { submitOptionsSchema } from '../../engine/submission.js';
import { CliError, EXIT, openBatchline, openExisting, printJson, table, withDatabase, type DatabaseOptions } from '../common.js';

interface JsonOption extends DatabaseOptions {
  json?: boolean;
}

const view = (k: ApiKey) => ({ id: k.id, name: k.name, tenant: k.tenant, admin: k.admin, createdAt: k.createdAt.toISOString(), revokedAt: k.revokedAt?.toISOString() ?? null });

/** The `keys` command and its subcommands. */
export function keysCommand(): Command {
  const keys = new Command('keys').summary('create, list and revoke API keys').description('API keys for `batchline serve`: bearer tokens that belong to one tenant, or admin keys that see every tenant.');

  keys.addCommand(
    withDatabase(
      new Command('create')
        .description('Create a key and print its token, once. Requests then send: Authorization: Bearer <token>.')
        .option('--tenant <name>', 'tenant the key acts for (its batches are the only ones it sees, unless --admin; required without --admin)')
        .option('--admin', 'see and act on every tenant\'s batches')
        .option('--name <text>', 'a note to recognise the key by in `keys list`')
        .option('--json', 'print { key, token } as JSON'),
    )
      .exitOverride()
      .action(async (options: JsonOption & { tenant?: string; admin?: boolean; name?: string }) => {
      // An admin key sees every tenant; what it submits goes to --tenant, else `default`.
      if (options.tenant === undefined && !options.admin) throw new CliError("required option '--tenant <name>' not specified (or give --admin for a key that sees every tenant)", EXIT.usage);
      options.tenant ??= 'default';
      const tenant = submitOptionsSchema.shape.tenant.safeParse(options.tenant);
      if (!tenant.success) throw new CliError(`--tenant ${JSON.stringify(options.tenant)}: ${tenant.error.issues[0]!.message}`, EXIT.usage);
      const bl = await openBatchline(options);
      try {
        const { key, token } = await createKey(bl.store, { tenant: options.tenant, admin: Boolean(options.admin), ...(options.name ? { name: options.name } : {}) });
        if (options.json) printJson({ key: view(key), token });
        else {
          console.log(token);
          console.error(`created key ${key.id} for tenant ${key.tenant}${key.admin ? ' (admin)' : ''}; the token above is shown only now`);
        }
      } finally {
        await bl.close();
      }
    }),
  );

  keys.addCommand(
    withDatabase(new Command('list').description('List keys (never their tokens), revoked ones included.').option('--json', 'print JSON')).exitOverride().action(async (options: JsonOption) => {
      // Reading keys never creates a database: a mistyped --database or --schema would
      // otherwise report "no keys" for a production database that has some.
      const bl = await openExisting(options);
      try {
        const all = (await bl.store.keysList()).map(view);
        if (options.json) printJson({ keys: all });
        else if (all.length === 0) console.log('no keys: the API is open on loopback only (create one with batchline keys create --tenant <name>)');
        else console.log(table(['ID', 'NAME', 'TENANT', 'ADMIN', 'CREATED', 'REVOKED'], all.map((k) => [k.id, k.name, k.tenant, k.admin ? 'yes' : 'no', k.createdAt, k.revokedAt ?? '-'])));
      } finally {
        await bl.close();
      }
    }),
  );

  keys.addCommand(
    withDatabase(new Command('revoke').description('Revoke a key: requests with it get 401 from then on.').argument('<id>', 'the key id (from keys list)').option('--json', 'print JSON')).exitOverride().action(
      async (id: string, options: JsonOption) => {
        const bl = await openExisting(options);
        try {
          const before = await bl.store.keyFind({ id });
          const key = await bl.store.keyRevoke({ id });
          if (options.json) printJson({ key: view(key), alreadyRevoked: Boolean(before?.revokedAt) });
          else if (before?.revokedAt) console.log(`key ${key.id} (tenant ${key.tenant}) was already revoked at ${key.revokedAt!.toISOString()}`);
          else console.log(`revoked key ${key.id} (tenant ${key.tenant})`);
        } finally {
          await bl.close();
        }
      },
    ),
  );
  return keys;
}
