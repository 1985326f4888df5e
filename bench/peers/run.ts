/**
 * `npm run bench:peers`: Batchline side by side with pg-boss, graphile-worker and BullMQ (on
 * Redis and on its PostgreSQL backend), on the five workloads of workloads.ts.
 *
 * Runs are interleaved, ours then a peer's, for every peer, workload and repetition, each in
 * a fresh driver process (driver.ts) after the machine has gone quiet and PostgreSQL has
 * checkpointed; every system resets its own state first. Medians of the repetitions go to
 * bench/results/peers-<date>.json, with the machine, the versions and the configurations, and
 * a full run regenerates docs/benchmarks.md.
 *
 *   npm run bench:peers                          # everything, 3 repetitions (about an hour)
 *   npm run bench:peers -- --quick               # 10,000 items, 1 repetition, Batchline once per workload (under 5 minutes)
 *   npm run bench:peers -- --systems batchline,pg-boss --workloads W1,W2 --repeats 1
 *   npm run bench:peers -- --config pg-boss=batch-100      # try another configuration
 *   npm run bench:peers -- --sweep --systems pg-boss --workloads W1,W4 --repeats 1
 *                                                # every configuration of each peer, no Batchline
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { machine, median, root, waitQuiet } from '../machine.js';
import { primary, writeReport } from '../report.js';
import type { DriverArgs } from './driver.js';
import { loadSystem, SYSTEM_NAMES } from './systems/index.js';
import { workloads, type RunResult, type Workload } from './workloads.js';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    systems: { type: 'string', default: SYSTEM_NAMES.join(',') },
    workloads: { type: 'string', default: 'W1,W2,W3,W4,W5' },
    config: { type: 'string', multiple: true, default: [] },
    pg: { type: 'string', default: process.env.BATCHLINE_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    redis: { type: 'string', default: process.env.BATCHLINE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/1' },
    sweep: { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (opts.help) {
  console.log(`usage: npm run bench:peers -- [--quick] [--repeats N] [--systems a,b] [--workloads W1,W2]
                                [--config system=name ...] [--sweep] [--pg URL] [--redis URL] [--docs]
systems: ${SYSTEM_NAMES.join(', ')}
--sweep runs every configuration each peer lists (bench/results/peers-<date>-sweep.json).
A full run (not --quick, --config or --sweep) regenerates docs/benchmarks.md; --docs forces it.`);
  process.exit(0);
}

const systems = opts.systems.split(',').filter(Boolean);
for (const s of systems) await loadSystem(s); // fails early on an unknown name
const selected = workloads(opts.quick).filter((w) => opts.workloads.split(',').includes(w.id));
const repeats = Number(opts.repeats ?? (opts.quick ? 1 : 3));
const configs = Object.fromEntries(opts.config.map((c) => c.split('=') as [string, string]));
const peers = systems.filter((s) => s !== 'batchline');
const withOurs = systems.includes('batchline');

async function checkServices(): Promise<void> {
  const problems: string[] = [];
  try {
    const client = new pg.Client({ connectionString: opts.pg, connectionTimeoutMillis: 3_000 });
    await client.connect();
    await client.end();
  } catch (error) {
    problems.push(`PostgreSQL at ${opts.pg}: ${(error as Error).message}\n  start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`);
  }
  if (systems.includes('bullmq')) {
    const redis = new Redis(opts.redis, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3_000, retryStrategy: () => null });
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      problems.push(`Redis at ${opts.redis}: ${(error as Error).message}\n  start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`);
    } finally {
      redis.disconnect();
    }
  }
  if (problems.length > 0) {
    console.error(`bench:peers needs these services (see bench/peers/README.md):\n${problems.join('\n')}`);
    process.exit(2);
  }
}

async function checkpoint(): Promise<void> {
  const client = new pg.Client({ connectionString: opts.pg });
  await client.connect();
  await client.query('CHECKPOINT');
  await client.end();
}

/** A run may take its workload's limit plus this long (setup, submitting, checks) before it is killed. */
export const RUN_LIMIT_EXTRA_MS = 180_000;

/** One driver process; its last stdout line is the RunResult. Killed (with its worker) after the workload's limit. */
function runOnce(system: string, workload: Workload, config: string | undefined): Promise<RunResult> {
  const args: DriverArgs = { system, workload, settings: { pgUrl: opts.pg, redisUrl: opts.redis, concurrency: workload.concurrency, config } };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/peers/driver.ts', JSON.stringify(args)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // its own process group, so a stuck run is killed with its worker
    });
    const limit = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), workload.timeoutMs + RUN_LIMIT_EXTRA_MS);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      if (signal === 'SIGKILL') return reject(new Error(`killed at the harness's limit of ${Math.round((workload.timeoutMs + RUN_LIMIT_EXTRA_MS) / 1000)} s`));
      if (code !== 0) return reject(new Error(`${system} ${workload.id}: driver exited ${signal ?? code}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)!) as RunResult);
    });
  });
}

function summary(r: RunResult): string {
  const parts = [`${r.totalMs} ms`, `${r.itemsPerSecond}/s`, `worker ${r.workerRssMb} MB`];
  if (r.balance) parts.push(`balance ${r.balance.matches ? 'matches' : 'WRONG'}, lost ${r.balance.lost}, twice ${r.balance.appliedTwice}`);
  if (r.unfinished && r.workload !== 'W5') parts.push(`${r.unfinished} unfinished`);
  if (r.smallBatchMs !== undefined) parts.push(`small batch ${r.smallBatchMs === null ? `not done (${r.smallDone}/100)` : `${r.smallBatchMs} ms`}`);
  return parts.join(', ');
}

await checkServices();
const info = { ...(await machine(opts.pg)), redis: await redisVersion() };
console.error(`machine: ${JSON.stringify(info)}`);
const versions: Record<string, string> = {};
const configsUsed: Record<string, { name: string; text: string; tried: Record<string, string> }> = {};
for (const s of systems) {
  const system = await loadSystem(s);
  versions[s] = system.version;
  const name = configs[s] ?? Object.keys(system.configs)[0]!;
  configsUsed[s] = { name, text: system.configs[name]!, tried: system.configs };
}

const runs: (RunResult & { repetition: number; busyBefore: number })[] = [];
/** Runs that did not produce a result (a crash, or the harness's time limit), kept in the results. */
const failures: { system: string; workload: string; config?: string; repetition: number; seconds: number; error: string }[] = [];
async function measure(system: string, workload: Workload, repetition: number, config = configs[system]): Promise<void> {
  const busyBefore = await waitQuiet();
  await checkpoint();
  const label = `[${repetition}/${repeats}] ${workload.id} ${workload.title} ${system}${config ? ` (${config})` : ''}`;
  const began = Date.now();
  try {
    const r = await runOnce(system, workload, config);
    runs.push({ ...r, repetition, busyBefore: Math.round(busyBefore * 100) / 100 });
    console.error(`${label}: ${summary(r)}`);
  } catch (error) {
    const seconds = Math.round((Date.now() - began) / 1000);
    failures.push({ system, workload: workload.id, ...(config ? { config } : {}), repetition, seconds, error: (error as Error).message });
    console.error(`${label}: FAILED after ${seconds} s: ${(error as Error).message}`);
  }
}

const started = Date.now();
for (let repetition = 1; repetition <= repeats; repetition++) {
  for (const workload of selected) {
    if (opts.sweep) {
      for (const peer of peers) for (const config of Object.keys(configsUsed[peer]!.tried)) await measure(peer, workload, repetition, config);
      continue;
    }
    if (peers.length === 0 && withOurs) await measure('batchline', workload, repetition);
    // Interleaved: Batchline before each peer, so slow drift of the machine hits both alike.
    // --quick, a smoke run, measures Batchline once per workload to stay within its minutes.
    for (const [i, peer] of peers.entries()) {
      if (withOurs && (!opts.quick || i === 0)) await measure('batchline', workload, repetition);
      await measure(peer, workload, repetition);
    }
  }
}

/** Per workload, system and configuration, the run with the median primary number, and every run's number. */
const measured = [...new Map(runs.map((r) => [`${r.system} ${r.config}`, { system: r.system, config: r.config }])).values()];
const medians = selected.flatMap((w) =>
  measured.flatMap(({ system: s, config }) => {
    const mine = runs.filter((r) => r.workload === w.id && r.system === s && r.config === config);
    if (mine.length === 0) return [];
    const values = mine.map(primary);
    const m = median(values);
    return [{ ...mine.find((r) => primary(r) === m)!, runs: values.map((v) => (Number.isFinite(v) ? v : null)) }];
  }),
);

const date = new Date().toISOString().slice(0, 10);
const kind = opts.quick ? '-quick' : opts.sweep ? '-sweep' : Object.keys(configs).length > 0 ? '-configs' : '';
const file = `bench/results/peers-${date}${kind}.json`;
mkdirSync(`${root}/bench/results`, { recursive: true });
if (opts.sweep && existsSync(`${root}/${file}`)) {
  // Sweeps add up over the day: keep what an earlier sweep measured and this one did not.
  const earlier = JSON.parse(readFileSync(`${root}/${file}`, 'utf8')) as { medians: typeof medians; runs: typeof runs; failures?: typeof failures; workloads: Workload[] };
  const key = (r: RunResult) => `${r.workload} ${r.system} ${r.config}`;
  const fresh = new Set(medians.map(key));
  medians.push(...earlier.medians.filter((m) => !fresh.has(key(m))));
  runs.push(...earlier.runs.filter((r) => !fresh.has(key(r))));
  failures.push(...(earlier.failures ?? []).filter((f) => !fresh.has(`${f.workload} ${f.system} ${f.config}`)));
  for (const w of earlier.workloads) if (!selected.some((s) => s.id === w.id)) selected.push(w);
  selected.sort((a, b) => a.id.localeCompare(b.id));
}
writeFileSync(
  `${root}/${file}`,
  `${JSON.stringify({ date, quick: opts.quick, repeats, minutes: Math.round((Date.now() - started) / 6000) / 10, machine: info, versions, configs: configsUsed, workloads: selected, medians, runs, failures }, null, 2)}\n`,
);
console.error(`wrote ${file} (${Math.round((Date.now() - started) / 1000)} s)`);
if (opts.docs || kind === '') {
  writeReport();
  console.error('regenerated docs/benchmarks.md');
}
for (const m of medians) console.log(`${m.workload} ${`${m.system} (${m.config})`.padEnd(36)} ${summary(m)}`);
process.exit(0);

async function redisVersion(): Promise<string> {
  if (!systems.includes('bullmq')) return 'not used';
  const redis = new Redis(opts.redis, { lazyConnect: true });
  await redis.connect();
  const infoText = await redis.info('server');
  redis.disconnect();
  return /redis_version:(\S+)/.exec(infoText)?.[1] ?? 'unknown';
}
