/**
 * `npm run bench:upload`: how much memory `batchline serve` takes to stream a large NDJSON
 * upload into one batch. For each store and each size it starts a fresh `serve --no-workers`
 * with its JavaScript heap capped (64 MB by default, far less than the rows as objects),
 * uploads the rows through the typed client, and reads the server's resident memory from
 * /proc before and at its peak. Memory that stays flat shows as the same peak for 1,000,000
 * and 3,000,000 rows; memory that grows with the body shows as a peak that grows with it.
 *
 *   npm run bench:upload
 *   npm run bench:upload -- --rows 1000000 --stores sqlite
 *
 * Writes bench/results/upload-<date>.json and regenerates docs/benchmarks.md. Linux only
 * (it reads /proc/<pid>/status).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import pg from 'pg';
import { BatchlineClient } from '../src/client/index.js';
import { machine, root } from './machine.js';
import { writeReport } from './report.js';

export interface UploadRun {
  store: 'sqlite' | 'postgres';
  rows: number;
  bodyMb: number;
  seconds: number;
  rowsPerSecond: number;
  /** Resident memory of the idle server just before the upload. */
  rssBeforeMb: number;
  /** The server's peak resident memory (VmHWM) once the upload has been answered. */
  peakRssMb: number;
}

/** A process's resident memory in MB from /proc: `VmRSS` now or `VmHWM`, its peak so far. */
export function rssMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)![1]) / 1024);
}

/** The NDJSON line of row `i`: about 50 bytes, an id, an account and a 2-decimal amount. */
function ndjsonLine(i: number): string {
  return `{"id":${i},"account":"ACC-${i % 1000}","amount":"${(i % 100_000) / 100}"}\n`;
}

/** An NDJSON body of `rows` rows, generated 5,000 lines at a time as the server reads it. */
export function ndjsonBody(rows: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i >= rows) return controller.close();
      let chunk = '';
      for (const end = Math.min(rows, i + 5_000); i < end; i++) chunk += ndjsonLine(i);
      controller.enqueue(encoder.encode(chunk));
    },
  });
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const CLI = join(root, 'dist/cli/main.js');

/** Starts `batchline serve --no-workers` on a free port and resolves with its address. */
async function serve(database: string, heapMb: number): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--no-workers', '--database', database], {
    env: { ...process.env, NODE_OPTIONS: `--max-old-space-size=${heapMb}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr!.on('data', (d) => (output += d));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 30_000);
    child.stdout!.on('data', (d) => {
      output += d;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}:\n${output}`)));
  });
  return { child, address };
}

/** A fresh, empty database for one run and a cleanup that removes it. */
async function freshDatabase(store: UploadRun['store'], pgUrl: string): Promise<{ database: string; cleanup: () => Promise<void> }> {
  if (store === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'batchline-upload-'));
    return { database: join(dir, 'batchline.db'), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const schema = `bl_bench_upload_${process.pid}`;
  const dropSchema = async () => {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  };
  await dropSchema();
  return { database: `${pgUrl}${pgUrl.includes('?') ? '&' : '?'}schema=${schema}`, cleanup: dropSchema };
}

/** Uploads `rows` rows to a fresh server on `store` and measures it. */
async function measure(store: UploadRun['store'], rows: number, heapMb: number, pgUrl: string): Promise<UploadRun> {
  const { database, cleanup } = await freshDatabase(store, pgUrl);
  const { child, address } = await serve(database, heapMb);
  try {
    const rssBeforeMb = rssMb(child.pid!, 'VmRSS');
    const started = performance.now();
    const batch = await new BatchlineClient({ baseUrl: address }).uploadBatch('upload.rows', ndjsonBody(rows), { format: 'ndjson' });
    const seconds = (performance.now() - started) / 1000;
    const peakRssMb = rssMb(child.pid!, 'VmHWM');
    if (batch.total !== rows) throw new Error(`${store}: the batch holds ${batch.total} items, not ${rows}`);
    let bytes = 0;
    for (let i = 0; i < rows; i++) bytes += ndjsonLine(i).length;
    return {
      store,
      rows,
      bodyMb: Math.round(bytes / 2 ** 20),
      seconds: Math.round(seconds * 10) / 10,
      rowsPerSecond: Math.round(rows / seconds),
      rssBeforeMb,
      peakRssMb,
    };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
    await cleanup();
  }
}

async function main(): Promise<void> {
  const sizes = arg('rows', '1000000,3000000').split(',').map(Number);
  const stores = arg('stores', 'sqlite,postgres').split(',') as UploadRun['store'][];
  const heapMb = Number(arg('heap-mb', '64'));
  const pgUrl = arg('pg', process.env.BATCHLINE_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test');
  const info = await machine(pgUrl);
  console.error(`machine: ${JSON.stringify(info)}`);
  const runs: UploadRun[] = [];
  for (const store of stores) {
    for (const rows of sizes) {
      const run = await measure(store, rows, heapMb, pgUrl);
      console.error(`${store} ${rows} rows (${run.bodyMb} MB): ${run.seconds} s, RSS ${run.rssBeforeMb} MB before, ${run.peakRssMb} MB peak`);
      runs.push(run);
    }
  }
  const date = new Date().toISOString().slice(0, 10);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  const file = `bench/results/upload-${date}.json`;
  writeFileSync(join(root, file), `${JSON.stringify({ date, machine: info, heapMb, runs }, null, 2)}\n`);
  console.error(`wrote ${file}`);
  writeReport();
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
