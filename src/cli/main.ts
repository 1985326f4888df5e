#!/usr/bin/env node
/**
 * The `batchline` command. Each subcommand lives in commands/; this file wires them up and
 * turns every failure into one line on stderr and a documented exit code.
 */

import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { demoCommand } from './commands/demo.js';
import { keysCommand } from './commands/keys.js';
import { loadtestCommand } from './commands/loadtest.js';
import { migrateCommand } from './commands/migrate.js';
import { monitorCommand } from './commands/monitor.js';
import { pruneCommand } from './commands/prune.js';
import { runCommand } from './commands/run.js';
import { serveCommand } from './commands/serve.js';
import { statusCommand } from './commands/status.js';
import { steerCommands } from './commands/steer.js';
import { submitCommand } from './commands/submit.js';
import { workerCommand } from './commands/worker.js';
import { workersCommand } from './commands/workers.js';
import { describeFailure, EXIT } from './common.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

const program = new Command('batchline')
  .description('Batchline: run batches of items through your TypeScript processors, exactly, on SQLite or PostgreSQL.')
  .version(version)
  .addHelpText('after', '\nExit codes: 0 all done, 1 failures or incomplete, 2 usage error (bad flags, input, type or database).')
  .exitOverride();

/** Commander's own errors (unknown option, bad value) in the one-line form of every other error. */
const output = {
  outputError: (message: string, write: (text: string) => void) => write(`batchline: ${message.trim()} (run with --help for usage)\n`),
};
program.configureOutput(output);

for (const command of [demoCommand(), runCommand(), workerCommand(), serveCommand(), submitCommand(), statusCommand(), monitorCommand(), ...steerCommands(), pruneCommand(), loadtestCommand(), keysCommand(), workersCommand(), migrateCommand()]) {
  for (const sub of [command, ...command.commands]) sub.configureOutput(output);
  program.addCommand(command.exitOverride());
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; every other commander error is a usage error, already printed.
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    const { code, message } = describeFailure(error);
    console.error(`batchline: error: ${message}`);
    process.exitCode = code;
  }
}
