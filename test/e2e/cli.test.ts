/**
 * The `batchline` command as users run it: help, the demo, run/submit/status/migrate, their
 * JSON output and exit codes, and clear errors for bad input that create nothing.
 */

import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchline, exited, FIXTURE_PROCESSORS, serveAddress, spawnBatchline } from '../helpers/cli.js';
import pg from 'pg';
import { Batchline } from '../../src/index.js';
import { freshDatabase, pgUrl, storeKinds } from '../helpers/stores.js';

const { Client } = pg;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'batchline-cli-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('batchline --help', () => {
  it.each(['demo', 'run', 'worker', 'submit', 'status', 'migrate', 'prune'])('documents %s', async (command) => {
    const { code, stdout } = await batchline([command, '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: batchline ${command}`);
    expect(stdout).toContain('--database');
  });

  it.each(['workers list', 'workers release'])('documents %s', async (command) => {
    const { code, stdout } = await batchline([...command.split(' '), '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain(`Usage: batchline ${command}`);
    expect(stdout).toContain('--database');
  });

  it('lists every command and the exit codes', async () => {
    const { code, stdout } = await batchline(['--help']);
    expect(code).toBe(0);
    for (const command of ['demo', 'run', 'worker', 'workers', 'submit', 'status', 'migrate']) expect(stdout).toContain(command);
    expect(stdout).toContain('Exit codes: 0 all done, 1 failures or incomplete, 2 usage error');
  });
});

describe('batchline demo', () => {
  it('processes 100,000 transactions on the embedded store with a matching balance', async () => {
    const cwd = mkdtempSync(join(dir, 'demo-'));
    const { code, stdout, stderr } = await batchline(['demo', '--seed', '42'], { cwd });
    // Nothing but progress lines (printed every 5 s when not on a terminal, on a slow machine).
    expect(stderr.split('\n').filter((line) => line !== '' && !line.startsWith('txn.apply: '))).toEqual([]);
    expect(code).toBe(0);
    expect(stdout).toContain('Total: 100,000 items, 100,000 succeeded, 0 failed');
    expect(stdout).toMatch(/Balance from the CSV: +(-?\d+\.\d\d)\nBalance from the batches: +\1 ✓ match/);
    expect(stdout).toContain(join(cwd, '.batchline', 'batchline.db'));
    expect(stdout.match(/completed {2}10,000 {2}10,000 {5}0/g)).toHaveLength(10);
  });

  it.each(storeKinds)('prints one JSON object with --json (%s)', async (kind) => {
    const location = await freshDatabase(kind);
    try {
      const { code, stdout } = await batchline(['demo', '--items', '3000', '--batches', '3', '--seed', '5', '--json', '--database', location.database], { cwd: dir });
      expect(code).toBe(0);
      const result = JSON.parse(stdout);
      expect(result).toMatchObject({ total: 3000, succeeded: 3000, failed: 0, balanceMatches: true, ok: true, seed: 5 });
      expect(result.batches).toHaveLength(3);
      expect(result.balance).toBe(result.expectedBalance);
    } finally {
      await location.cleanup();
    }
  });
});

describe('batchline run', () => {
  it('runs a JSONL file through TypeScript processors and prints the documented JSON', async () => {
    const location = await freshDatabase('sqlite');
    const file = write('amounts.jsonl', [1, 2, 3, 4, 5, 6].map((id) => JSON.stringify({ id, amount: `${id}.25` })).join('\n'));
    const { code, stdout } = await batchline(['run', '--processors', FIXTURE_PROCESSORS, '--type', 'txn.validate', '--file', file, '--batches', '2', '--json', '--database', location.database]);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout);
    expect(Object.keys(summary).sort()).toEqual(['batches', 'elapsedMs', 'failed', 'itemsPerSecond', 'succeeded', 'total']);
    expect(summary).toMatchObject({ total: 6, succeeded: 6, failed: 0 });
    expect(summary.batches.map((b: Record<string, unknown>) => [b.status, b.total, b.succeeded, b.failed, b.aggregates])).toEqual([
      ['completed', 3, 3, 0, { amount: '6.75' }],
      ['completed', 3, 3, 0, { amount: '15.75' }],
    ]);
    expect(Object.keys(summary.batches[0]).sort()).toEqual(['aggregates', 'failed', 'id', 'status', 'succeeded', 'total']);

    // Run again under one idempotency key: the second run submits nothing and says so.
    const keyed = ['run', '--processors', FIXTURE_PROCESSORS, '--type', 'txn.validate', '--file', file, '--idempotency-key', 'k1', '--database', location.database];
    expect((await batchline(keyed)).code).toBe(0);
    const again = await batchline(keyed);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('The idempotency key was already used for this file: nothing new was submitted');
    // Its batches were done before it began: it finished nothing, at no rate.
    expect(JSON.parse((await batchline([...keyed, '--json'])).stdout)).toMatchObject({ created: false, total: 6, succeeded: 6, itemsPerSecond: 0 });
    await location.cleanup();
  });

  it('names where a TypeScript processor threw by its file and line, in a CommonJS package too', async () => {
    // npm init's package.json has no "type": Node treats .ts there as CommonJS.
    const project = mkdtempSync(join(dir, 'cjs-'));
    writeFileSync(join(project, 'package.json'), '{ "name": "billing", "version": "1.0.0" }\n');
    mkdirSync(join(project, 'node_modules'));
    symlinkSync(fileURLToPath(new URL('../..', import.meta.url)), join(project, 'node_modules', 'batchline'));
    writeFileSync(
      join(project, 'processors.ts'),
      "import { PermanentError } from 'batchline';\n\nexport default {\n  refund: async (row: { id: number }) => {\n    throw new PermanentError(`no refund for ${row.id}`);\n  },\n};\n",
    );
    writeFileSync(join(project, 'rows.jsonl'), '{"id":1}\n');
    const location = await freshDatabase('sqlite');
    const out = await batchline(['run', '--processors', join(project, 'processors.ts'), '--type', 'refund', '--file', join(project, 'rows.jsonl'), '--json', '--database', location.database]);
    expect(out.code, out.stderr).toBe(1);
    const bl = await Batchline.open({ database: location.database, logLevel: 'silent' });
    const [item] = await bl.items(JSON.parse(out.stdout).batches[0].id);
    await bl.close();
    expect(item!.error).toMatchObject({ kind: 'permanent', message: 'no refund for 1' });
    expect(item!.error!.at).toMatch(new RegExp(`${join(project, 'processors.ts')}:5:\\d+\\)$`));
    // `import ... from 'batchline'` got the running Batchline, not a second copy compiled to
    // CommonJS (whose source maps put every frame of the running copy at one wrong line).
    expect(item!.error!.stack).toContain(`at Worker.startItem (${new URL('../../dist/engine/worker.js', import.meta.url).href}:`);
    await location.cleanup();
  });

  it('says how to use top-level await in a TypeScript processor of a CommonJS package', async () => {
    const project = mkdtempSync(join(dir, 'cjs-tla-'));
    writeFileSync(join(project, 'package.json'), '{ "name": "billing", "version": "1.0.0" }\n');
    writeFileSync(join(project, 'processors.ts'), 'const rate = await Promise.resolve(2);\nexport default { double: async (row: { a: number }) => row.a * rate };\n');
    writeFileSync(join(project, 'rows.jsonl'), '{"a":1}\n');
    const out = await batchline(['run', '--processors', join(project, 'processors.ts'), '--type', 'double', '--file', join(project, 'rows.jsonl'), '--database', join(project, 'x.db')]);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/processors\.ts:1:\d+: ERROR: Top-level await/);
    expect(out.stderr).toContain('rename it to .mts or add "type": "module"');
  });

  it('exits 1 when items fail, and shows the CSV rows as objects of strings', async () => {
    const location = await freshDatabase('sqlite');
    const file = write('mixed.csv', 'id,amount\n1,10.00\n2,-3.50\n3,1.05\n');
    const { code, stdout } = await batchline(['run', '--processors', FIXTURE_PROCESSORS, '--type', 'txn.validate', '--file', file, '--database', location.database]);
    expect(code).toBe(1);
    expect(stdout).toContain('Total: 3 items, 2 succeeded, 1 failed');
    expect(stdout).toContain('11.05');
    await location.cleanup();
  });
});

describe('bad input: a clear error, exit 2, nothing submitted', () => {
  let database: string;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ database, cleanup } = await freshDatabase('sqlite'));
  });
  afterAll(async () => cleanup());

  const expectNothingSubmitted = async () => {
    const status = await batchline(['status', '--json', '--database', database]);
    expect(JSON.parse(status.stdout).batches).toEqual([]);
  };

  it('names the file and line of a malformed CSV row', async () => {
    const file = write('bad.csv', 'id,amount\n1,1.00\n2,2.00\n3,3.00,extra\n4,4.00\n');
    const { code, stderr } = await batchline(['submit', '--type', 't', '--file', file, '--database', database]);
    expect(code).toBe(2);
    expect(stderr).toMatch(new RegExp(`batchline: error: ${file}:4: malformed CSV: .*`));
    await expectNothingSubmitted();
  });

  it('names the file and line of a malformed JSONL line, even with several batches', async () => {
    const file = write('bad.jsonl', '{"a":1}\n{"a":2}\n\n{"a":\n{"a":5}\n');
    const { code, stderr } = await batchline(['submit', '--type', 't', '--file', file, '--batches', '2', '--database', database]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${file}:4: malformed JSON`);
    await expectNothingSubmitted();
  });

  it('refuses a number JSON would change (an int64 id), naming it and its line', async () => {
    const file = write('ids.jsonl', '{"account":42,"amount":"1.00"}\n{"account":9007199254740993,"amount":"2.00"}\n');
    const { code, stderr } = await batchline(['submit', '--type', 't', '--file', file, '--database', database]);
    expect(code).toBe(2);
    expect(stderr).toBe(`batchline: error: ${file}:2: the number 9007199254740993 cannot be kept exactly (JSON numbers are read as 64-bit floats): send it as a string, "9007199254740993"\n`);
    await expectNothingSubmitted();
  });

  it('refuses what is not a readable UTF-8 file, saying what it is instead', async () => {
    const latin1 = join(dir, 'latin1.csv');
    writeFileSync(latin1, Buffer.from('id,name\n1,Jos\xe9\n', 'latin1'));
    const latin1Lines = join(dir, 'latin1.jsonl');
    writeFileSync(latin1Lines, Buffer.concat([Buffer.from('{"a":1}\n{"a":2}\n{"name":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    const folder = join(dir, 'folder.csv');
    mkdirSync(folder, { recursive: true });
    const headerOnly = write('header-only.csv', 'id,amount\n');
    const cases: [string, string][] = [
      [latin1, `${latin1}:2: not UTF-8 text (another encoding, such as Latin-1?); save the file as UTF-8`],
      [latin1Lines, `${latin1Lines}:3: not UTF-8 text`],
      [folder, `cannot read ${folder}: it is a directory`],
      [headerOnly, `${headerOnly} has no items (it is empty, or a CSV file with its header line only)`],
    ];
    for (const [file, message] of cases) {
      for (const batches of ['1', '2']) {
        const out = await batchline(['submit', '--type', 't', '--file', file, '--batches', batches, '--database', database]);
        expect([file, batches, out.code, out.stderr]).toEqual([file, batches, 2, expect.stringContaining(`batchline: error: ${message}`)]);
        expect(out.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      }
    }
    await expectNothingSubmitted();
  });

  it('rejects an oversize payload with its size and line', async () => {
    const file = write('big.jsonl', `{"a":1}\n${JSON.stringify({ blob: 'x'.repeat(1_100_000) })}\n`);
    const { code, stderr } = await batchline(['submit', '--type', 't', '--file', file, '--database', database]);
    expect(code).toBe(2);
    expect(stderr).toContain(`${file}:2: item is 1100011 bytes as JSON; the limit is 1048576`);
    await expectNothingSubmitted();
  });

  it('rejects an unknown processor type, a missing processors file and a missing data file', async () => {
    const file = write('ok.jsonl', '{"id":1,"amount":"1.00"}\n');
    const unknown = await batchline(['run', '--processors', FIXTURE_PROCESSORS, '--type', 'nope', '--file', file, '--database', database]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown processor type "nope"');
    expect(unknown.stderr).toContain('defines crash.sum, cpu.busy, slow.sum, deaf.wait, poison.once, txn.validate');
    const missing = await batchline(['run', '--processors', join(dir, 'none.ts'), '--type', 'x', '--file', file, '--database', database]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('none.ts does not exist');
    const noData = await batchline(['submit', '--type', 't', '--file', join(dir, 'none.csv'), '--database', database]);
    expect(noData.code).toBe(2);
    expect(noData.stderr).toContain('none.csv: no such file');
    // A file that cannot be read, or has no known format, is found before any database is made.
    const fresh = join(dir, 'fresh');
    mkdirSync(fresh);
    for (const args of [['submit', '--type', 't', 'none.csv'], ['run', '--processors', FIXTURE_PROCESSORS, '--type', 'crash.sum', 'data.txt']]) {
      const out = await batchline(args, { cwd: fresh });
      expect([out.code, readdirSync(fresh)]).toEqual([2, []]);
    }
    // The file may also come as the last argument; none, or two different ones, is a usage error.
    const noFile = await batchline(['submit', '--type', 't', '--database', database]);
    expect([noFile.code, noFile.stderr]).toEqual([2, 'batchline: error: no file given: name it as --file PATH (or as the last argument)\n']);
    const twoFiles = await batchline(['run', '--processors', FIXTURE_PROCESSORS, '--type', 'crash.sum', file, '--file', join(dir, 'other.csv'), '--database', database]);
    expect([twoFiles.code, twoFiles.stderr]).toEqual([2, `batchline: error: two files given, ${JSON.stringify(file)} and --file ${JSON.stringify(join(dir, 'other.csv'))}: give one\n`]);
    await expectNothingSubmitted();
    const bare = await batchline(['submit', '--type', 't', file, '--json', '--database', join(dir, 'bare.sqlite')]);
    expect(bare.code, bare.stderr).toBe(0);
    expect(JSON.parse(bare.stdout).batches[0].total).toBeGreaterThan(0);
  });

  it('says what is wrong with a processors module: its default export, an option, a syntax error and its line', async () => {
    const file = write('one-row.jsonl', '{"a":1}\n');
    const run = (name: string, source: string) =>
      batchline(['run', '--processors', write(name, source), '--type', 'echo', '--file', file, '--database', database]);
    const array = await run('array.mjs', 'export default [async () => {}];\n');
    expect([array.code, array.stderr]).toEqual([2, `batchline: error: ${join(dir, 'array.mjs')} must export default an object mapping types to handlers, like { 'txn.apply': handler }\n`]);
    const option = await run('option.mjs', 'export default { echo: { handler: async () => {}, timeoutMs: "30s" } };\n');
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('processor "echo" must be a function or { handler, maxAttempts?, timeoutMs?, backoff? }: timeoutMs: ');
    expect(option.stderr).toContain('expected number');
    const syntax = await run('syntax.mjs', 'export default {\n  echo: async () => { const x = ; },\n};\n');
    expect([syntax.code, syntax.stderr]).toEqual([2, `batchline: error: cannot load processors from ${join(dir, 'syntax.mjs')}:2: Unexpected token ';'\n`]);
    await expectNothingSubmitted();
  });

  it('creates no database when the processors module cannot be loaded, and migrate down creates none', async () => {
    const nowhere = join(dir, 'never-created.db');
    const data = write('for-run.jsonl', '{"a":1}\n');
    for (const command of [['worker'], ['run', '--type', 'x', '--file', data]]) {
      const out = await batchline([...command, '--processors', join(dir, 'none.mjs'), '--database', nowhere]);
      expect([out.code, out.stderr]).toEqual([2, `batchline: error: cannot load processors: ${join(dir, 'none.mjs')} does not exist\n`]);
    }
    const down = await batchline(['migrate', 'down', '--database', nowhere]);
    expect([down.code, down.stdout]).toEqual([0, `SQLite ${nowhere}: schema version 0 → 0; there is no such database: nothing to revert\n`]);
    expect(existsSync(nowhere)).toBe(false);
  });

  it('names the field of a bad submit option, in one line', async () => {
    const file = write('one.jsonl', '{"a":1}\n');
    const { code, stderr } = await batchline(['submit', '--type', 't', '--file', file, '--tenant', 'x/y', '--database', database]);
    expect([code, stderr]).toEqual([2, 'batchline: error: submit options: tenant: use letters, digits and . _ : - only\n']);
    await expectNothingSubmitted();
  });

  it('rejects bad flags and values', async () => {
    const bad = await batchline(['demo', '--items', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--items <n>' argument 'lots' is invalid");
    // Decimal digits only: Number() would take 0x10 as 16 and 1e3 as 1000.
    for (const value of ['0x10', '1e3', '']) {
      const odd = await batchline(['demo', '--items', value]);
      expect([odd.code, odd.stderr]).toEqual([2, `batchline: error: option '--items <n>' argument '${value}' is invalid. expected a whole number from 1 to 100000000. (run with --help for usage)\n`]);
    }
    const unknown = await batchline(['status', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("batchline: error: unknown option '--frobnicate' (run with --help for usage)\n");
    const level = await batchline(['status', '--log-level', 'loud', '--database', database]);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain("option '--log-level <level>' argument 'loud' is invalid. expected one of fatal, error, warn");
    // Where to work: a URL that is not http(s) names its flag or variable; both places at once
    // is ambiguous; an explicit --database beats $BATCHLINE_URL.
    const scheme = await batchline(['status', '--server', '127.0.0.1:7700']);
    expect([scheme.code, scheme.stderr]).toEqual([2, 'batchline: error: --server "127.0.0.1:7700" is not an http(s) URL; for example http://127.0.0.1:7700\n']);
    const envScheme = await batchline(['monitor', '--all', '--no-follow'], { env: { BATCHLINE_URL: 'localhost:7700' } });
    expect([envScheme.code, envScheme.stderr]).toEqual([2, 'batchline: error: $BATCHLINE_URL "localhost:7700" is not an http(s) URL; for example http://127.0.0.1:7700\n']);
    const both = await batchline(['status', '--server', 'http://127.0.0.1:1', '--database', database]);
    expect([both.code, both.stderr]).toEqual([2, 'batchline: error: --server and --database name two places to work on: give one\n']);
    const explicit = await batchline(['status', '--database', database, '--json'], { env: { BATCHLINE_URL: 'http://127.0.0.1:1' } });
    expect(explicit.code).toBe(0);
    const direction = await batchline(['migrate', 'sideways', '--database', database]);
    expect(direction.code).toBe(2);
    expect(direction.stderr).toContain('direction must be up or down');
    // Retention: a duration needs its unit, and serve runs no reconciler without workers.
    const bare = await batchline(['prune', '--older-than', '30', '--database', database]);
    expect([bare.code, bare.stderr]).toEqual([2, "batchline: error: option '--older-than <duration>' argument '30' is invalid. expected a duration with its unit, such as 500ms, 2s, 30m, 1h or 7d (30 alone could be any of them). (run with --help for usage)\n"]);
    const huge = await batchline(['prune', '--older-than', '99999999d', '--database', database]);
    expect([huge.code, huge.stderr]).toEqual([2, "batchline: error: option '--older-than <duration>' argument '99999999d' is invalid. expected a duration of at most 36500d. (run with --help for usage)\n"]);
    const interval = await batchline(['monitor', '--all', '--interval', '2h', '--database', database]);
    expect([interval.code, interval.stderr]).toEqual([2, expect.stringContaining("argument '2h' is invalid. expected a duration of at most 1h.")]);
    const missing = await batchline(['prune', '--database', database]);
    expect([missing.code, missing.stderr]).toEqual([2, "batchline: error: required option '--older-than <duration>' not specified (run with --help for usage)\n"]);
    const retain = await batchline(['worker', '--processors', FIXTURE_PROCESSORS, '--retain', 'forever', '--database', database]);
    expect([retain.code, retain.stderr]).toEqual([2, expect.stringContaining("option '--retain <duration>' argument 'forever' is invalid")]);
    const apiOnly = await batchline(['serve', '--no-workers', '--retain', '30d', '--database', database]);
    expect(apiOnly.code).toBe(2);
    expect(apiOnly.stderr).toContain('--retain needs workers in this process');
  });

  it('says what is wrong with a database URL, or an unreachable database', async () => {
    const wrong = await batchline(['status', '--database', 'mysql://root@localhost/x']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('unsupported database "mysql://root@localhost/x": use a postgres:// URL or a SQLite file path');
    const unreachable = await batchline(['status', '--database', 'postgres://nobody:secret@127.0.0.1:1/x']);
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toContain('cannot use PostgreSQL 127.0.0.1:1/x schema batchline');
    expect(unreachable.stderr).toContain('ECONNREFUSED');
    expect(unreachable.stderr).not.toContain('secret');
    // A server that answers and hangs up is named as a refused one is.
    const { createServer } = await import('node:net');
    const hangUp = createServer((socket) => socket.end('x'));
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    const port = (hangUp.address() as { port: number }).port;
    const hungUp = await batchline(['status', '--database', `postgres://nobody@127.0.0.1:${port}/x`]);
    hangUp.close();
    expect([hungUp.code, hungUp.stderr]).toEqual([2, `batchline: error: cannot use PostgreSQL 127.0.0.1:${port}/x schema batchline: Connection terminated unexpectedly\n`]);
    const pool = await batchline(['status', '--database', 'postgres://nobody@127.0.0.1:1/x?pool_size=0']);
    expect([pool.code, pool.stderr]).toEqual([2, 'batchline: error: ?pool_size=0 in the database URL must be a whole number from 1 to 1000\n']);
    // A SQLite path in a directory that does not exist is a typo, not a new database.
    const missingDir = join(dir, 'no-such-dir');
    const typo = await batchline(['submit', '--type', 't', '--file', write('one.csv', 'a\n1\n'), '--database', join(missingDir, 'db.sqlite')]);
    expect([typo.code, typo.stderr]).toEqual([2, `batchline: error: cannot open SQLite database ${join(missingDir, 'db.sqlite')}: directory ${missingDir} does not exist (create it, or check --database / DATABASE_URL)\n`]);
    expect(existsSync(missingDir)).toBe(false);
    const twice = await batchline(['status', '--database', 'postgres://nobody@127.0.0.1:1/x?schema=blue', '--schema', 'green']);
    expect([twice.code, twice.stderr]).toEqual([2, 'batchline: error: two schemas given: ?schema=blue in the database URL and green as the schema option (--schema); give one\n']);
  });

  it('reads without creating: status, monitor and keys list on a database without Batchline are usage errors', async () => {
    const nowhere = join(dir, 'typo.db');
    for (const command of [['status'], ['monitor', '--all'], ['keys', 'list'], ['keys', 'revoke', 'k1']]) {
      const out = await batchline([...command, '--database', nowhere]);
      expect([command, out.code, out.stderr]).toEqual([command, 2, `batchline: error: there is no SQLite database ${nowhere}: check --database (or DATABASE_URL), or submit a batch first\n`]);
    }
    expect(existsSync(nowhere)).toBe(false);
    if (pgUrl) {
      const schema = `bl_typo_${process.pid}`;
      for (const command of [['status'], ['keys', 'list']]) {
        const typo = await batchline([...command, '--database', pgUrl, '--schema', schema]);
        expect(typo.code).toBe(2);
        expect(typo.stderr).toContain(`schema ${schema} holds no Batchline tables: check --database and --schema`);
      }
      const pg = new Client({ connectionString: pgUrl });
      await pg.connect();
      try {
        expect((await pg.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema])).rowCount).toBe(0);
      } finally {
        await pg.end();
      }
    }
  });

  it('steers batches: pause, resume, cancel, retry and delete, with exit 2 naming a state that does not allow it', async () => {
    const file = write('steer.csv', 'id,amount\n1,1.00\n2,2.00\n');
    const submitArgs = ['submit', '--type', 'nobody.runs.this', '--file', file, '--idempotency-key', 'steer-1', '--json', '--database', database];
    const submitted = await batchline(submitArgs);
    // Submitted all the same, with a note that nothing will run it until a worker does.
    expect([submitted.code, submitted.stderr]).toEqual([0, 'batchline: note: no live worker runs type nobody.runs.this (no worker is live); its items wait until a worker whose processors define it starts\n']);
    const id = JSON.parse(submitted.stdout).batches[0].id as string;
    const step = async (...args: string[]) => {
      const out = await batchline([...args, '--json', '--database', database]);
      return { code: out.code, stderr: out.stderr, batches: out.code === 0 ? JSON.parse(out.stdout).batches : null };
    };
    expect(await step('pause', id)).toMatchObject({ code: 0, batches: [{ id, status: 'paused', total: 2, remaining: 2 }] });
    expect(await step('resume', id)).toMatchObject({ code: 0, batches: [{ id, status: 'queued' }] });
    expect(await step('cancel', id)).toMatchObject({ code: 0, batches: [{ id, status: 'cancelled', remaining: 0 }] });
    // Submitted again under its key, it is found finished: no note, since it needs no worker.
    expect(await batchline(submitArgs)).toMatchObject({ code: 0, stderr: '' });
    const again = await step('cancel', id);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^batchline: error: .*cancelled/);
    expect((await step('retry', id)).code).toBe(2);
    expect(await step('delete', id)).toMatchObject({ code: 0, batches: [{ id, status: 'deleted' }] });
    const gone = await step('pause', id);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain('not found');
  });

  it('steers every batch given and shows what it did when one of them cannot be steered', async () => {
    const file = write('steer-many.csv', 'id,amount\n1,1.00\n');
    const submitOne = async () => JSON.parse((await batchline(['submit', '--type', 'nobody.runs.this', '--file', file, '--json', '--database', database])).stdout).batches[0].id as string;
    const [first, last] = [await submitOne(), await submitOne()];
    const unknown = '01900000-0000-7000-8000-000000000000';
    const out = await batchline(['cancel', first, unknown, last, '--json', '--database', database]);
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/^batchline: error: batch 01900000-.* not found\n$/);
    expect(JSON.parse(out.stdout).batches).toMatchObject([
      { id: first, status: 'cancelled' },
      { id: unknown, status: 'unchanged', error: expect.stringContaining('not found') },
      { id: last, status: 'cancelled' },
    ]);
    const table = await batchline(['delete', first, unknown, unknown, '--database', database]);
    expect(table.code).toBe(2);
    expect(table.stdout).toMatch(new RegExp(`${first}\\s+deleted`));
    expect(table.stderr).toMatch(/^batchline: error: 2 of 3 batches unchanged: batch .* not found; batch .* not found\n$/);
  });

  it('says not found for an unknown batch', async () => {
    const { code, stderr } = await batchline(['status', '01900000-0000-7000-8000-000000000000', '--database', database]);
    expect(code).toBe(2);
    expect(stderr).toContain('batch 01900000-0000-7000-8000-000000000000 not found');
  });

  it('shows a batch by id only within the --tenant given', async () => {
    const file = write('tenant.csv', 'id,amount\n1,1.00\n');
    const id = JSON.parse((await batchline(['submit', '--type', 'nobody.runs.this', '--tenant', 'acme', '--file', file, '--json', '--database', database])).stdout).batches[0].id as string;
    const other = await batchline(['status', id, '--tenant', 'globex', '--database', database]);
    expect([other.code, other.stderr]).toEqual([2, `batchline: error: batch ${id} not found\n`]);
    const own = await batchline(['status', id, '--tenant', 'acme', '--json', '--database', database]);
    expect(JSON.parse(own.stdout).batches.map((b: { id: string }) => b.id)).toEqual([id]);
  });
});

describe.each(storeKinds)('prune (%s)', (kind) => {
  it('deletes finished batches older than --older-than, by --tenant, or only counts them with --dry-run; open ones stay', async () => {
    const location = await freshDatabase(kind);
    const db = ['--database', location.database];
    try {
      const file = write(`prune-${kind}.csv`, 'id,amount\n1,1.00\n2,2.00\n');
      const submitOne = async (...extra: string[]) =>
        JSON.parse((await batchline(['submit', '--type', 'nobody.runs.this', '--file', file, '--json', ...extra, ...db])).stdout).batches[0].id as string;
      const [mine, theirs, open] = [await submitOne(), await submitOne('--tenant', 'acme'), await submitOne()];
      expect((await batchline(['cancel', mine, theirs, ...db])).code).toBe(0);
      const prune = async (...args: string[]) => {
        const out = await batchline(['prune', ...args, ...db]);
        expect([out.code, out.stderr]).toEqual([0, '']);
        return out.stdout;
      };

      expect(JSON.parse(await prune('--older-than', '1h', '--json'))).toMatchObject({ batches: 0, dryRun: false });
      const dry = JSON.parse(await prune('--older-than', '0s', '--dry-run', '--json'));
      expect(dry).toMatchObject({ batches: 2, dryRun: true });
      expect(Date.parse(dry.finishedBefore)).toBeGreaterThan(Date.now() - 60_000);
      expect(JSON.parse((await batchline(['status', '--json', ...db])).stdout).batches).toHaveLength(3);
      expect(await prune('--older-than', '0s', '--tenant', 'acme')).toMatch(/^deleted 1 batch of tenant acme finished before \d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
      expect(JSON.parse(await prune('--older-than', '0s', '--json'))).toMatchObject({ batches: 1, dryRun: false });
      const left = JSON.parse((await batchline(['status', '--json', ...db])).stdout).batches;
      expect(left.map((b: { id: string; status: string }) => [b.id, b.status])).toEqual([[open, 'queued']]);

      // Through a server's API: the same prune, by a server that may be all an operator reaches.
      const late = await submitOne('--tenant', 'acme');
      expect((await batchline(['cancel', late, ...db])).code).toBe(0);
      const server = spawnBatchline(['serve', '--port', '0', '--no-workers', ...db]);
      try {
        const address = await serveAddress(server);
        const remote = await batchline(['prune', '--server', address, '--older-than', '0s', '--tenant', 'acme', '--json']);
        expect([remote.code, remote.stderr]).toEqual([0, '']);
        expect(JSON.parse(remote.stdout)).toMatchObject({ batches: 1, dryRun: false, more: false, tenant: 'acme' });
        const both = await batchline(['prune', '--server', address, '--older-than', '0s', ...db]);
        expect([both.code, both.stderr]).toEqual([2, 'batchline: error: --server and --database name two places to work on: give one\n']);
      } finally {
        server.kill('SIGTERM');
        await exited(server);
      }
      expect((await batchline(['status', late, ...db])).code).toBe(2);
    } finally {
      await location.cleanup();
    }
  });

  it('has a worker with --retain delete finished batches once they are that old', async () => {
    const location = await freshDatabase(kind);
    const db = ['--database', location.database];
    // Finished before the worker starts (a cancelled batch needs no worker): its reconciler's
    // first prune must find it, whenever that pass comes.
    const file = write(`retain-${kind}.jsonl`, Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: i, amount: '1.00' })).join('\n'));
    const submitted = await batchline(['submit', '--type', 'nobody.runs.this', '--file', file, '--json', ...db]);
    const id = JSON.parse(submitted.stdout).batches[0].id as string;
    expect((await batchline(['cancel', id, ...db])).code).toBe(0);
    const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--retain', '0s', '--lease-ms', '3000', ...db]);
    try {
      const deadline = Date.now() + 20_000;
      let status;
      do {
        await new Promise((resolve) => setTimeout(resolve, 200));
        status = await batchline(['status', id, '--json', ...db]);
      } while (status.code !== 2 && Date.now() < deadline);
      expect([status.code, status.stderr]).toEqual([2, `batchline: error: batch ${id} not found\n`]);
      expect(worker.output()).toContain('finished batches past retention deleted');
    } finally {
      worker.kill('SIGTERM');
      expect((await exited(worker)).code).toBe(0);
      await location.cleanup();
    }
  });
});

describe.each(storeKinds)('submit, status, migrate (%s)', (kind) => {
  it('submits idempotently, reports status with exit codes, and migrates down and up', async () => {
    const location = await freshDatabase(kind);
    const db = ['--database', location.database];
    try {
      const file = write(`items-${kind}.jsonl`, Array.from({ length: 100 }, (_, i) => JSON.stringify({ id: i, amount: '1.00' })).join('\n'));
      const first = await batchline(['submit', '--type', 'txn.validate', '--file', file, '--batches', '2', '--idempotency-key', 'nightly-1', '--json', ...db]);
      expect(first.code).toBe(0);
      const created = JSON.parse(first.stdout);
      expect(created.created).toBe(true);
      expect(created.batches.map((b: { total: number }) => b.total)).toEqual([50, 50]);
      const again = await batchline(['submit', '--type', 'txn.validate', '--file', file, '--batches', '2', '--idempotency-key', 'nightly-1', ...db]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('was already used for this file: nothing new was created');
      for (const b of created.batches) expect(again.stdout).toContain(b.id);

      const pending = await batchline(['status', '--json', ...db]);
      expect(pending.code).toBe(1);
      expect(JSON.parse(pending.stdout).batches).toHaveLength(2);

      const ids = created.batches.map((b: { id: string }) => b.id);
      const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, ...db]);
      const waited = await batchline(['status', ...ids, '--wait', '--timeout-ms', '30000', ...db]);
      worker.kill('SIGTERM');
      expect((await exited(worker)).code).toBe(0);
      expect(waited.code).toBe(0);
      expect(waited.stdout.match(/completed/g)).toHaveLength(2);

      const orphan = await batchline(['submit', '--type', 'nobody.runs.this', '--file', file, '--json', ...db]);
      const orphanId = JSON.parse(orphan.stdout).batches[0].id;
      const timedOut = await batchline(['status', orphanId, '--wait', '--timeout-ms', '500', ...db]);
      expect(timedOut.code).toBe(1);
      expect(timedOut.stderr).toContain(`batch ${orphanId} is still queued after 500 ms (100 items left)`);
      const unbounded = await batchline(['status', orphanId, '--timeout-ms', '500', ...db]);
      expect([unbounded.code, unbounded.stderr]).toEqual([2, 'batchline: error: --timeout-ms bounds --wait; without --wait there is nothing to time out\n']);

      const down = await batchline(['migrate', 'down', '--steps', '3', '--json', ...db]);
      expect(down.code).toBe(0);
      expect(JSON.parse(down.stdout)).toMatchObject({ before: 3, current: 0, latest: 3 });
      const one = await batchline(['migrate', 'up', '--steps', '1', ...db]);
      expect(one.stdout).toContain('schema version 0 → 1 (latest 3)');
      const up = await batchline(['migrate', ...db]);
      expect(up.code).toBe(0);
      expect(up.stdout).toContain('schema version 1 → 3 (latest 3)');
      expect((await batchline(['status', '--json', ...db])).stdout).toContain('"batches": []');
    } finally {
      await location.cleanup();
    }
  });
});
