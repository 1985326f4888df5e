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
 *   npm run bench:peers -- --systems batchline,pg-boss --workloads W1,W2 --repeats 1   # -partial.json
 *   npm run bench:peers -- --config pg-boss=batch-100      # try another configuration
 *   npm run bench:peers -- --sweep --repeats 1   # every configuration of each peer on W1-W4, no Batchline;
 *                                                # later runs take each peer's best per workload
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    workloads: { type: 'string' },
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
--sweep runs every configuration each peer lists on W1-W4 (bench/results/peers-<date>-sweep.json);
  later runs take, per peer and workload, the configuration that did best there.
Only a full run (every system and workload, 3 repetitions, no --config) writes peers-<date>.json
and regenerates docs/benchmarks.md; anything less writes peers-<date>-partial.json (or -quick,
-sweep, -configs) and leaves the docs alone (--docs regenerates them from the files as they are).`);
  process.exit(0);
}

const systems = opts.systems.split(',').filter(Boolean);
for (const s of systems) await loadSystem(s); // fails early on an unknown name
// A sweep compares configurations on W1-W4; W5 (fairness) takes W1's choice.
const chosenWorkloads = (opts.workloads ?? (opts.sweep ? 'W1,W2,W3,W4' : 'W1,W2,W3,W4,W5')).split(',');
const selected = workloads(opts.quick).filter((w) => chosenWorkloads.includes(w.id));
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

/** One driver process; its last stdout line is the RunResult. Killed (with its worker) after the workload's run limit. */
function runOnce(system: string, workload: Workload, config: string | undefined): Promise<RunResult> {
  const args: DriverArgs = { system, workload, settings: { pgUrl: opts.pg, redisUrl: opts.redis, concurrency: workload.concurrency, config } };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...(process.env.BENCH_DRIVER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []), 'bench/peers/driver.ts', JSON.stringify(args)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true, // its own process group, so a stuck run is killed with its worker
    });
    const began = Date.now();
    const limit = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), workload.runLimitMs);
    let out = '';
    // The driver announces each phase (`#phase name`); a killed run is reported with its last.
    let current = { name: 'start', at: began };
    child.stdout.on('data', (d) => {
      out += d;
      for (const match of String(d).matchAll(/^#phase (\S+)$/gm)) current = { name: match[1]!, at: Date.now() };
    });
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      if (signal === 'SIGKILL') {
        const inPhase = `${Math.round((Date.now() - current.at) / 1000)} s in phase ${current.name}`;
        return reject(new Error(`killed at the harness's limit of ${Math.round(workload.runLimitMs / 1000)} s, ${inPhase} (${PHASES[current.name] ?? current.name})`));
      }
      if (code !== 0) return reject(new Error(`${system} ${workload.id}: driver exited ${signal ?? code}`));
      resolve(JSON.parse(out.trim().split('\n').filter((line) => !line.startsWith('#')).at(-1)!) as RunResult);
    });
  });
}

/** What each phase the driver announces means, for the report of a run that was killed. */
const PHASES: Record<string, string> = {
  start: 'starting the driver',
  reset: 'resetting the system',
  submit: 'submitting the items',
  'submit-big': 'submitting the big batch',
  'big-backlog': 'waiting for the big batch to be under way',
  small: 'waiting for the small batch',
  stop: 'stopping the worker',
  check: 'checking the outcome',
  clear: 'dropping what the run left',
};

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
const sweep = opts.sweep ? null : newestSweep();
/** Per system: the configuration each workload runs with, why, and every one it lists. */
const configsUsed: Record<string, { byWorkload: Record<string, { name: string; why: string }>; tried: Record<string, string> }> = {};
for (const s of systems) {
  const system = await loadSystem(s);
  versions[s] = system.version;
  const byWorkload = Object.fromEntries(selected.map((w) => [w.id, chooseConfig(s, Object.keys(system.configs), w.id)]));
  configsUsed[s] = { byWorkload, tried: system.configs };
}

/**
 * The configuration a peer runs a workload with: `--config system=name` if given; else the
 * one that did best on that workload in the newest sweep (W3: fewest items lost or applied
 * twice, then time; W5, never swept, takes W1's); else the system's first.
 */
function chooseConfig(system: string, names: string[], workload: string): { name: string; why: string } {
  if (configs[system]) return { name: configs[system], why: '--config' };
  const swept = (sweep?.results.medians ?? []).filter((m) => m.system === system && m.workload === (workload === 'W5' ? 'W1' : workload) && names.includes(m.config));
  if (swept.length === 0) return { name: names[0]!, why: system === 'batchline' ? 'its defaults' : 'first listed (no sweep)' };
  const harm = (m: RunResult) => (m.balance ? m.balance.lost + m.balance.appliedTwice + (m.balance.matches ? 0 : 1) : 0) + m.unfinished;
  const best = [...swept].sort((a, b) => (workload === 'W3' ? harm(a) - harm(b) : 0) || primary(a) - primary(b))[0]!;
  const rule = workload === 'W3' ? 'fewest lost or doubled, then fastest' : 'fastest';
  return { name: best.config, why: `${rule} in ${sweep!.file}${workload === 'W5' ? ' on W1' : ''}` };
}

function newestSweep(): { file: string; results: { medians: RunResult[] } } | null {
  const dir = `${root}/bench/results`;
  if (!existsSync(dir)) return null;
  const file = readdirSync(dir).filter((f) => /^peers-\d{4}-\d{2}-\d{2}-sweep\.json$/.test(f)).sort().at(-1);
  return file ? { file: `bench/results/${file}`, results: JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) } : null;
}

const runs: (RunResult & { repetition: number; busyBefore: number })[] = [];
/** Runs that did not produce a result (a crash, or the harness's time limit), kept in the results. */
const failures: { system: string; workload: string; config?: string; repetition: number; seconds: number; error: string }[] = [];
async function measure(system: string, workload: Workload, repetition: number, config = configsUsed[system]!.byWorkload[workload.id]!.name): Promise<void> {
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
    return [{ ...mine.find((r) => primary(r) === m)!, runs: values.map((v) => (Number.isFinite(v) ? v : null)), busyBefore: mine.map((r) => r.busyBefore) }];
  }),
);

const date = new Date().toISOString().slice(0, 10);
// Only a full run (every system and workload, 3 repetitions, chosen configurations) is
// `peers-<date>.json`, which the docs show; anything less is kept beside it, never over it.
const full = !opts.quick && !opts.sweep && Object.keys(configs).length === 0 && repeats === 3 && systems.length === SYSTEM_NAMES.length && selected.length === 5;
const kind = opts.quick ? '-quick' : opts.sweep ? '-sweep' : Object.keys(configs).length > 0 ? '-configs' : full ? '' : '-partial';
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
