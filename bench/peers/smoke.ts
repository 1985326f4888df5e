/**
 * Smoke test for the peer adapters: runs graphile-worker and pg-boss one after another
 * on the no-op workload and prints one JSON line per peer (name, version, ms, jobs, jobs/s).
 * Any adapter that cannot verify exactly N completed jobs throws, and this script exits 1.
 *
 *   npx tsx bench/peers/smoke.ts [jobs=2000] [concurrency=10]
 *
 * PG_URL overrides the local default. For comparable numbers use the harness
 * (bench/scenarios.ts), which runs each peer in a process of its own.
 */

import type { PeerResult } from './common.js';
import { runGraphileWorker } from './graphile-worker.js';
import { runPgBoss } from './pg-boss.js';

const jobs = Number(process.argv[2] ?? 2000);
const concurrency = Number(process.argv[3] ?? 10);
if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error('usage: tsx bench/peers/smoke.ts [jobs] [concurrency]');
  process.exit(2);
}
const url = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const peers: Array<[string, () => Promise<PeerResult>]> = [
  ['graphile-worker', () => runGraphileWorker({ url, jobs, concurrency })],
  ['pg-boss', () => runPgBoss({ url, jobs, concurrency })],
];

let failed = false;
for (const [name, runPeer] of peers) {
  try {
    const r = await runPeer();
    console.log(JSON.stringify({ ...r, ms: Math.round(r.ms), enqueueMs: Math.round(r.enqueueMs), jobsPerSecond: Math.round((r.jobs * 1000) / r.ms), concurrency }));
  } catch (err) {
    failed = true;
    console.log(JSON.stringify({ name, error: err instanceof Error ? err.message : String(err) }));
  }
}
process.exit(failed ? 1 : 0);
