/**
 * `npm run bench`: runs every scenario of bench/scenarios.ts (each in its own
 * process, `--repeats` times, median kept), writes the raw results with the machine's details
 * to bench/results/, and regenerates docs/benchmarks.md.
 *
 *   npm run bench                      # everything, 3 runs each
 *   npm run bench -- --repeats 1 --only batchline-sqlite-noop,batchline-postgres-noop
 *   npx tsx bench/report.ts            # only regenerate docs/benchmarks.md
 *
 * The comparison with other job queues is a separate suite: bench/peers (npm run bench:peers).
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { machine, median, root } from './machine.js';
import { writeReport } from './report.js';
import { SCENARIOS, type ScenarioOptions, type ScenarioResult } from './scenarios.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const options: ScenarioOptions = {
  items: Number(arg('items', '100000')),
  concurrency: Number(arg('concurrency', '10')),
  pgUrl: arg('pg', process.env.BATCHLINE_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'),
};
const repeats = Number(arg('repeats', '3'));
const only = arg('only', '').split(',').filter(Boolean);
const names = Object.keys(SCENARIOS).filter((n) => only.length === 0 || only.includes(n));

function runScenario(name: string): Promise<ScenarioResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/scenarios.ts', name, JSON.stringify(options)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`scenario ${name} exited ${code}`));
      resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ScenarioResult);
    });
  });
}


const info = await machine(options.pgUrl);
console.error(`machine: ${JSON.stringify(info)}`);
const results: (ScenarioResult & { runs: number[] })[] = [];
for (const name of names) {
  const runs: ScenarioResult[] = [];
  for (let i = 0; i < repeats; i++) {
    try {
      const result = await runScenario(name);
      console.error(`${name} run ${i + 1}: ${result.ms} ms, ${result.itemsPerSecond} items/s, ${result.maxRssMb} MB`);
      runs.push(result);
    } catch (error) {
      console.error(`${name}: ${(error as Error).message}`);
      break;
    }
  }
  if (runs.length === 0) continue;
  const ms = median(runs.map((r) => r.ms));
  const chosen = runs.find((r) => r.ms === ms)!;
  results.push({ ...chosen, runs: runs.map((r) => r.ms) });
}

const date = new Date().toISOString().slice(0, 10);
mkdirSync(`${root}/bench/results`, { recursive: true });
const resultFile = `bench/results/${date}-${info.host}.json`;
// A partial run (--only) keeps the other scenarios of the same day and machine, marked with
// the commit they were measured at.
if (only.length > 0 && existsSync(`${root}/${resultFile}`)) {
  const earlier = JSON.parse(readFileSync(`${root}/${resultFile}`, 'utf8')) as { results: (ScenarioResult & { runs: number[]; commit?: string })[]; machine: { commit: string } };
  const rerun = new Set(results.map((r) => `${r.system.split(' ')[0]}-${r.store}-${r.scenario}`));
  const kept = earlier.results
    .filter((r) => !rerun.has(`${r.system.split(' ')[0]}-${r.store}-${r.scenario}`))
    .map((r) => ({ ...r, commit: r.commit ?? earlier.machine.commit }));
  results.push(...kept);
}
writeFileSync(`${root}/${resultFile}`, `${JSON.stringify({ date, machine: info, options, repeats, results }, null, 2)}\n`);
writeReport();
console.error(`wrote ${resultFile} and docs/benchmarks.md`);
for (const r of results) console.log(`${r.scenario.padEnd(13)} ${r.system.padEnd(22)} ${r.store.padEnd(9)} ${String(r.itemsPerSecond).padStart(8)} items/s`);
