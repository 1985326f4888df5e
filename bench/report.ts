/**
 * Writes docs/benchmarks.md from the newest recorded results: the engine's own benchmark
 * (`npm run bench`, bench/results/<date>-<host>.json) and the side-by-side one
 * (`npm run bench:peers`, bench/results/peers-<date>.json), the load test of the API
 * (bench/results/loadtest-<date>.json) and the upload memory benchmark (`npm run bench:upload`,
 * bench/results/upload-<date>.json). The runners call it; to
 * regenerate by hand: `npx tsx bench/report.ts`.
 *
 * Nothing in the tables is typed in: every number comes from a results file, and the file is
 * named next to the table. The prose that interprets the side-by-side run lives in
 * bench/peers/NOTES.md and is included as written.
 */

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RunResult, Workload } from './peers/workloads.js';
import type { ScenarioOptions, ScenarioResult } from './scenarios.js';
import type { UploadRun } from './upload.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const fmt = (n: number) => n.toLocaleString('en-US');

interface EngineResults {
  date: string;
  machine: Record<string, string | number>;
  options: ScenarioOptions;
  repeats: number;
  results: (ScenarioResult & { runs: number[]; commit?: string })[];
}

type Median = RunResult & { runs: (number | null)[]; busyBefore?: number[] };

/** A run that began while the machine was busier than this (share of CPU) is marked in the tables. */
const BUSY = 0.15;

export interface PeerResults {
  date: string;
  quick: boolean;
  repeats: number;
  minutes: number;
  machine: Record<string, string | number>;
  versions: Record<string, string>;
  configs: Record<string, { byWorkload: Record<string, { name: string; why: string }>; tried: Record<string, string> }>;
  workloads: Workload[];
  medians: Median[];
  runs?: (RunResult & { repetition: number; busyBefore: number })[];
  failures?: { system: string; workload: string; repetition: number; seconds: number; error: string }[];
}

/** Targets of issue 2, items per second end to end on a 2-core machine. */
const ENGINE_TARGETS: Record<string, number> = { sqlite: 100_000, postgres: 50_000 };

/** The number a workload is judged by (lower is better): the small batch's time in W5, total time otherwise. */
export function primary(r: RunResult): number {
  if (r.workload === 'W5') return r.smallBatchMs ?? Number.POSITIVE_INFINITY;
  return r.unfinished > 0 ? Number.POSITIVE_INFINITY : r.totalMs;
}

/** The newest results file whose name matches. */
function newest(pattern: RegExp): string | null {
  const dir = `${root}/bench/results`;
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => pattern.test(f)).sort();
  return files.length > 0 ? `bench/results/${files.at(-1)}` : null;
}

function engineSection(file: string, saved: EngineResults): string[] {
  const { machine: m, results: rows } = saved;
  const byName = (system: string, store: string, scenario: string) => rows.find((r) => r.system.startsWith(system) && r.store === store && r.scenario === scenario);
  return [
    '## Batchline alone (`npm run bench`)',
    '',
    `Raw results: \`${file}\`. Every scenario runs in its own Node process, ${saved.repeats} time(s); the`,
    'table shows the median run. Each measures **end to end**: workers are started first, then the',
    'clock runs from the first item submitted until the last item is recorded as done, and the run',
    'then checks that every item completed (and, for transactions, that the balance equals the one',
    `computed from the file). Items: ${fmt(saved.options.items)}; worker concurrency: ${saved.options.concurrency}; workers in the submitting process.`,
    '',
    '- **noop**: items whose handler does nothing, submitted as one batch.',
    '- **noop-once**: the same with `maxAttempts: 1`, so every item runs on its final attempt and',
    '  start marks (what a crash may fail) stay a window ahead of the items started.',
    '- **transactions**: the workload of the batch framework Batchline replaces: a CSV of random',
    '  DEPOSIT/WITHDRAWAL rows, read and submitted as 10 batches, each row validated and added to an',
    '  exact decimal balance.',
    '',
    `Machine: ${m.cores} cores (${m.cpu}), ${m.memoryGb} GB, ${m.os}, Node ${m.node}, SQLite ${m.sqlite}, PostgreSQL ${m.postgres}.`,
    '',
    '| scenario | store | items/s | median ms | runs (ms) | peak RSS | commit |',
    '| --- | --- | ---: | ---: | --- | ---: | --- |',
    ...rows
      .filter((r) => r.system === 'batchline')
      .map((r) => `| ${r.scenario} | ${r.store} | ${fmt(r.itemsPerSecond)} | ${fmt(r.ms)} | ${r.runs.join(', ')} | ${r.maxRssMb} MB | ${r.commit ?? m.commit} |`),
    '',
    '| target (issue 2) | measured | met |',
    '| --- | ---: | --- |',
    ...Object.entries(ENGINE_TARGETS).map(([store, target]) => {
      const r = byName('batchline', store, 'noop');
      return `| ${store} no-op end to end ≥ ${fmt(target)} items/s | ${r ? fmt(r.itemsPerSecond) : 'not run'} | ${r ? (r.itemsPerSecond >= target ? 'yes' : 'no') : '-'} |`;
    }),
    '',
    'For scale: the batch framework Batchline replaces processed its transactions file at 300-400 rows/s.',
    '',
  ];
}

const ms = (v: number | null | undefined) => (v === null || v === undefined ? '-' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${fmt(v)} ms`);

/** "12.3×" Batchline's advantage (peer's number / ours), or "0.8×" where the peer is faster. */
function ratio(ours: number, theirs: number): string {
  if (!Number.isFinite(theirs) && Number.isFinite(ours)) return '∞ (peer never finished)';
  if (!Number.isFinite(ours)) return 'ours did not finish';
  return `${(theirs / ours).toFixed(theirs / ours >= 10 ? 0 : 1)}×`;
}

function outcome(r: Median, w: Workload): string {
  const parts: string[] = [];
  if (r.balance) parts.push(`balance ${r.balance.matches ? 'exact' : `**off by ${formatCents(BigInt(r.balance.actualCents) - BigInt(r.balance.expectedCents))}**`}, lost ${r.balance.lost}, applied twice ${r.balance.appliedTwice}`);
  if (r.kills !== undefined) parts.push(`${r.kills} kills${r.killedAt?.length ? ` (at ${r.killedAt.map((f) => `${Math.round(f * 100)} %`).join(', ')})` : ''}`);
  if (r.crashes) parts.push(`**worker crashed by itself ${r.crashes} time(s)** (restarted; see the run's log)`);
  if (r.unfinished > 0 && !w.smallItems) parts.push(`**${fmt(r.unfinished)} unfinished** when the run ended`);
  if (r.failed > 0) parts.push(`${fmt(r.failed)} failed`);
  if (w.idealMs) parts.push(`${(r.totalMs / w.idealMs).toFixed(2)}× ideal`);
  if (r.smallBatchMs !== undefined && r.smallBatchMs === null) parts.push(`small batch not done within ${ms(w.timeoutMs)} (${r.smallDone}/${w.smallItems})`);
  return parts.join('; ');
}

function formatCents(cents: bigint): string {
  const sign = cents < 0n ? '-' : '';
  const abs = cents < 0n ? -cents : cents;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

function peersSection(file: string, saved: PeerResults): string[] {
  const lines: string[] = [
    '## Side by side with pg-boss, graphile-worker and BullMQ (`npm run bench:peers`)',
    '',
    `Raw results: \`${file}\` (${saved.date}, ${saved.repeats} repetition(s), ${saved.minutes} minutes). How it runs: bench/peers/README.md.`,
    `Machine: ${saved.machine.cores} cores (${saved.machine.cpu}), ${saved.machine.memoryGb} GB, ${saved.machine.os}, Node ${saved.machine.node}, PostgreSQL ${saved.machine.postgres}, Redis ${saved.machine.redis}; Batchline at commit ${saved.machine.commit}.`,
    '',
    'Every run is a fresh driver process that resets the system, starts one worker process,',
    'starts the clock and submits; the clock stops when the system itself has recorded every item',
    'as completed (its tables or counters, not the handlers). Runs are interleaved (Batchline, then',
    'a peer, for each peer), after the machine is quiet and PostgreSQL has checkpointed. Tables show',
    'the median run (for an even number of runs, the slower of the two middle ones); "runs" lists',
    `every repetition, with * on a run that began while the machine was over ${BUSY * 100} % busy. The ratio is`,
    'the peer\'s number divided by Batchline\'s: above 1× Batchline is faster, below 1× the peer is.',
    '',
    '### Configurations',
    '',
    'Each peer runs each workload in the configuration that did best on it in the sweep below',
    '(W3: fewest items lost or applied twice, then fastest; W5 takes W1\'s).',
    '',
    `| system | version | ${saved.workloads.map((w) => w.id).join(' | ')} |`,
    `| --- | --- | ${saved.workloads.map(() => '---').join(' | ')} |`,
    ...Object.entries(saved.configs).map(([s, c]) => `| ${s} | ${saved.versions[s]} | ${saved.workloads.map((w) => c.byWorkload[w.id]?.name ?? '-').join(' | ')} |`),
    '',
    ...Object.entries(saved.configs).flatMap(([s, c]) => Object.entries(c.tried).map(([name, text]) => `- ${s} **${name}**: ${text}`)),
    '',
  ];
  lines.push(...sweepSection());
  for (const w of saved.workloads) {
    const rows = saved.medians.filter((m) => m.workload === w.id);
    const ours = rows.find((r) => r.system === 'batchline');
    const w5 = w.id === 'W5';
    lines.push(
      `### ${w.id} ${w.title}: ${fmt(w.items)} items${w5 ? ` from one tenant, then ${w.smallItems} from another` : ''}, concurrency ${w.concurrency}`,
      '',
      w5
        ? '| system | small batch done after | runs | ratio | big batch submit | big items done at small submit | worker peak RSS | outcome |'
        : '| system | total | submit | process | items/s | runs (total) | ratio | worker peak RSS | outcome |',
      w5 ? '| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |' : '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |',
      ...rows.map((r) => {
        const runs = r.runs.map((v, i) => `${v === null ? 'not done' : fmt(v)}${(r.busyBefore?.[i] ?? 0) > BUSY ? '*' : ''}`).join(', ');
        const rat = r.system === 'batchline' || !ours ? '' : ratio(primary(ours), primary(r));
        const lost = (saved.failures ?? []).filter((f) => f.workload === w.id && f.system === r.system);
        const note = [outcome(r, w), lost.length > 0 ? `${lost.length} more run(s) gave no result: ${lost[0]!.error}` : ''].filter(Boolean).join('; ');
        const name = `${r.system} ${saved.versions[r.system] ?? ''}`.trim();
        return w5
          ? `| ${name} | ${r.smallBatchMs === null ? `not within ${ms(w.timeoutMs)}` : ms(r.smallBatchMs)} | ${runs} | ${rat} | ${ms(r.submitMs)} | ${r.bigDoneAtSmallSubmit === undefined ? '-' : fmt(r.bigDoneAtSmallSubmit)} | ${r.workerRssMb ?? '-'} MB | ${note} |`
          : `| ${name} | ${ms(r.totalMs)} | ${ms(r.submitMs)} | ${ms(r.processMs)} | ${fmt(r.itemsPerSecond)} | ${runs} | ${rat} | ${r.workerRssMb ?? '-'} MB | ${note} |`;
      }),
      ...(saved.failures ?? [])
        .filter((f) => f.workload === w.id && !rows.some((r) => r.system === f.system))
        .filter((f, i, all) => all.findIndex((g) => g.system === f.system) === i)
        .map((f) => {
          const n = (saved.failures ?? []).filter((g) => g.workload === w.id && g.system === f.system).length;
          const name = `${f.system} ${saved.versions[f.system] ?? ''}`.trim();
          const text = `**no result** in ${n} of ${saved.repeats} run(s): ${f.error}`;
          return w5 ? `| ${name} | - | - | - | - | - | - | ${text} |` : `| ${name} | - | - | - | - | - | - | - | ${text} |`;
        }),
      '',
    );
  }
  lines.push(...targets(saved), '');
  const notes = `${root}/bench/peers/NOTES.md`;
  if (existsSync(notes)) lines.push(readFileSync(notes, 'utf8').trim(), '');
  return lines;
}

/** The newest `--sweep` run: every configuration of every peer, so the choice above can be checked. */
function sweepSection(): string[] {
  const file = newest(/^peers-\d{4}-\d{2}-\d{2}-sweep\.json$/);
  if (!file) return [];
  const sweep = JSON.parse(readFileSync(`${root}/${file}`, 'utf8')) as PeerResults;
  const ids = sweep.workloads.map((w) => w.id);
  const keys = [...new Set(sweep.medians.map((m) => `${m.system}|${m.config}`))];
  return [
    `Configurations tried (\`${file}\`, ${sweep.repeats} repetition(s); total time, lower is better, with items lost or applied twice where any were):`,
    '',
    `| system | configuration | ${sweep.workloads.map((w) => `${w.id} ${w.title} (${fmt(w.items)})`).join(' | ')} |`,
    `| --- | --- | ${ids.map(() => '---:').join(' | ')} |`,
    ...keys.map((key) => {
      const [system, config] = key.split('|') as [string, string];
      const cells = ids.map((id) => {
        const m = sweep.medians.find((r) => r.workload === id && r.system === system && r.config === config);
        if (!m) return '-';
        const time = m.unfinished > 0 ? `${fmt(m.unfinished)} unfinished` : ms(m.totalMs);
        const harm = m.balance && (m.balance.lost > 0 || m.balance.appliedTwice > 0 || !m.balance.matches) ? ` (lost ${fmt(m.balance.lost)}, twice ${fmt(m.balance.appliedTwice)})` : '';
        return `${time}${harm}`;
      });
      return `| ${system} | ${config} | ${cells.join(' | ')} |`;
    }),
    '',
  ];
}

/** Issue 3's targets for Batchline, judged from the medians. */
function targets(saved: PeerResults): string[] {
  const find = (w: string, s: string) => saved.medians.find((m) => m.workload === w && m.system === s);
  const rows: string[] = ['### Targets (issue 3)', '', '| target | measured | met |', '| --- | --- | --- |'];
  const w1 = find('W1', 'batchline');
  const pgPeers = saved.medians.filter((m) => m.workload === 'W1' && m.system !== 'batchline' && m.system !== 'bullmq');
  const best = pgPeers.sort((a, b) => primary(a) - primary(b))[0];
  if (w1 && best) {
    const x = primary(best) / primary(w1);
    rows.push(`| W1 end to end ≥ 5× the best peer on the same PostgreSQL | ${x.toFixed(1)}× (${best.system}: ${ms(best.totalMs)}, Batchline: ${ms(w1.totalMs)}) | ${x >= 5 ? 'yes' : 'no'} |`);
  }
  for (const id of ['W2', 'W3']) {
    // Every run must be exact, not only the median one.
    const all = (saved.runs ?? saved.medians).filter((r) => r.workload === id && r.system === 'batchline' && r.balance);
    if (all.length > 0) {
      const exact = all.filter((r) => r.balance!.matches).length;
      const lost = all.reduce((n, r) => n + r.balance!.lost + r.unfinished, 0);
      const twice = all.reduce((n, r) => n + r.balance!.appliedTwice, 0);
      const ok = exact === all.length && lost === 0 && twice === 0;
      rows.push(`| ${id} balance exact, 0 lost, 0 applied twice (every run) | exact in ${exact} of ${all.length} runs, ${lost} lost, ${twice} twice in all | ${ok ? 'yes' : 'no'} |`);
    }
  }
  const w4 = find('W4', 'batchline');
  const w4spec = saved.workloads.find((w) => w.id === 'W4');
  if (w4 && w4spec?.idealMs) {
    const x = w4.totalMs / w4spec.idealMs;
    rows.push(`| W4 within 1.5× of ideal (${ms(w4spec.idealMs)}) | ${x.toFixed(2)}× (${ms(w4.totalMs)}) | ${x <= 1.5 ? 'yes' : 'no'} |`);
  }
  const w5 = find('W5', 'batchline');
  if (w5) rows.push(`| W5 small batch done in under 2 s | ${ms(w5.smallBatchMs)} | ${w5.smallBatchMs !== null && w5.smallBatchMs !== undefined && w5.smallBatchMs < 2_000 ? 'yes' : 'no'} |`);
  return rows;
}

/** The newest `batchline loadtest --json` report saved as bench/results/loadtest-<date>.json. */
function loadtestSection(): string[] {
  const file = newest(/^loadtest-\d{4}-\d{2}-\d{2}\.json$/);
  if (!file) return [];
  const r = JSON.parse(readFileSync(`${root}/${file}`, 'utf8')) as {
    setup: string;
    batches: number;
    itemsPerBatch: number;
    clients: number;
    type: string;
    requests: number;
    created: number;
    deduplicated: number;
    expectedDeduplicated: number;
    failedRequests: number;
    submissionsPerSecond: number;
    itemsPerSecond: number;
    seconds: number;
    latencyMs: { p50: number; p95: number; p99: number; max: number };
    countsAddUp: boolean;
  };
  return [
    '## Load test of the HTTP API (`batchline loadtest`)',
    '',
    `Raw report: \`${file}\`. ${r.setup}`,
    '',
    '| batches × items | clients | requests | created | deduplicated (repeated on purpose) | failed requests | submissions/s | items/s end to end | latency p50 / p95 / p99 / max | counts add up |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    `| ${fmt(r.batches)} × ${fmt(r.itemsPerBatch)} (${r.type}) | ${r.clients} | ${fmt(r.requests)} | ${fmt(r.created)} | ${fmt(r.deduplicated)} (${fmt(r.expectedDeduplicated)}) | ${r.failedRequests} | ${r.submissionsPerSecond} | ${fmt(r.itemsPerSecond)} | ${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99} / ${r.latencyMs.max} ms | ${r.countsAddUp ? 'yes' : 'no'} |`,
    '',
  ];
}

/** The newest `npm run bench:upload` results, bench/results/upload-<date>.json. */
function uploadSection(): string[] {
  const file = newest(/^upload-\d{4}-\d{2}-\d{2}\.json$/);
  if (!file) return [];
  const saved = JSON.parse(readFileSync(`${root}/${file}`, 'utf8')) as { machine: Record<string, string | number>; heapMb: number; runs: UploadRun[] };
  const lines = [
    '## Memory of a streamed upload (`npm run bench:upload`)',
    '',
    `Raw results: \`${file}\`, commit ${saved.machine.commit}. \`batchline serve --no-workers\` with its JavaScript heap capped at ${saved.heapMb} MB receives one NDJSON body of`,
    'about 50 bytes a row through the typed client; its resident memory is read from /proc just before the upload and at its peak.',
    'Flat memory shows as the same peak whatever the size of the body.',
    '',
    '| store | rows | body | time | rows/s | RSS before | peak RSS |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of saved.runs) {
    lines.push(`| ${r.store} | ${fmt(r.rows)} | ${r.bodyMb} MB | ${r.seconds} s | ${fmt(r.rowsPerSecond)} | ${r.rssBeforeMb} MB | ${r.peakRssMb} MB |`);
  }
  return [...lines, ''];
}

/** Regenerates docs/benchmarks.md from the newest engine and side-by-side results. */
export function writeReport(): void {
  const lines = ['# Benchmarks', '', 'Generated by bench/report.ts from the files in bench/results/; do not edit by hand.', ''];
  const peersFile = newest(/^peers-\d{4}-\d{2}-\d{2}\.json$/);
  if (peersFile) lines.push(...peersSection(peersFile, JSON.parse(readFileSync(`${root}/${peersFile}`, 'utf8')) as PeerResults));
  lines.push(...loadtestSection());
  lines.push(...uploadSection());
  const engineFile = newest(/^\d{4}-\d{2}-\d{2}-.+\.json$/);
  if (engineFile) lines.push(...engineSection(engineFile, JSON.parse(readFileSync(`${root}/${engineFile}`, 'utf8')) as EngineResults));
  writeFileSync(`${root}/docs/benchmarks.md`, `${lines.join('\n').trim()}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeReport();
  console.error('regenerated docs/benchmarks.md');
}
