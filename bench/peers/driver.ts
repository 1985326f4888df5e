/**
 * One measurement: `node --import tsx bench/peers/driver.ts <json>` runs one workload on one
 * system and prints one JSON line (a RunResult). run.ts starts one driver per run, so no two
 * systems ever share a process, a pool or a heap.
 *
 * The driver resets the system, starts a worker process (worker.ts) and waits until it is
 * ready, then starts the clock and submits. It follows progress through the handler counts
 * the worker reports, and decides "done" only from the system's own records (`recorded`):
 * the clock stops when the system has recorded every item as completed. In W3 it SIGKILLs
 * the worker process at the workload's fractions and starts a new one each time.
 */

import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { signedCents } from '../../src/cli/demo-data.js';
import { checkEffects, clearEffects, resetEffects, type EffectCheck } from './effects.js';
import { loadSystem } from './systems/index.js';
import { chosenConfig, type Producer, type Submission, type System, type SystemSettings } from './systems/system.js';
import { payloads, type RunResult, type Workload } from './workloads.js';

export interface DriverArgs {
  system: string;
  workload: Workload;
  settings: SystemSettings;
}

const WORKER = new URL('./worker.js', import.meta.url).pathname.replace(/\.js$/, '.ts');

/** A worker process and the handler count it last reported. */
class WorkerProcess {
  handled = 0;
  maxRssMb: number | null = null;
  /** The process ended without the driver killing or stopping it: it crashed by itself. */
  crashed = false;
  private ending = false;
  private constructor(readonly child: ChildProcess) {
    child.once('exit', () => (this.crashed = !this.ending));
  }

  static async start(args: DriverArgs): Promise<WorkerProcess> {
    const reportMs = args.workload.crashAt ? 5 : 50;
    const child = fork(WORKER, [JSON.stringify({ system: args.system, kind: args.workload.handler, settings: args.settings, reportMs })], {
      execArgv: ['--import', 'tsx', ...(process.env.BENCH_WORKER_NODE_OPTIONS?.split(' ').filter(Boolean) ?? [])],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker = new WorkerProcess(child);
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (m: { ready?: boolean; handled?: number; stopped?: boolean; maxRssMb?: number }) => {
        if (m.handled !== undefined) worker.handled = m.handled;
        if (m.maxRssMb !== undefined) worker.maxRssMb = m.maxRssMb;
        if (m.ready) resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`worker process exited (${signal ?? code}) before it was ready`)));
    });
    await ready;
    return worker;
  }

  async kill(): Promise<void> {
    this.ending = true;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }

  /** Graceful stop; SIGKILL after `graceMs`. */
  async stop(graceMs = 60_000): Promise<void> {
    this.ending = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Polls `recorded` until `wanted` items of the submission are completed or failed, or `giveUp()` says so. */
async function waitRecorded(
  producer: Producer,
  submission: Submission,
  wanted: number,
  started: number,
  giveUp: () => boolean,
  ready: () => boolean = () => true,
  onTick: () => Promise<void> = async () => {},
  everyMs = 2_000,
  /** Longest sleep between ticks (W3 ticks every 5 ms while kills are due, so they land on time). */
  tickMs: () => number = () => 100,
): Promise<{ done: number; failed: number; at: number }> {
  let last = { done: 0, failed: 0 };
  let polled = 0;
  for (;;) {
    const now = performance.now();
    // Handler counts can fall short (a killed worker's last ones never arrive), so the
    // system's records are read every `everyMs` whatever the counts say.
    if (ready() || now - polled >= everyMs) {
      polled = now;
      last = await producer.recorded(submission);
      if (last.done + last.failed >= wanted) return { ...last, at: performance.now() };
    }
    if (giveUp()) return { ...last, at: now };
    await onTick();
    // Poll at about 1/200 of the elapsed time: precise for short runs, light for long ones.
    await sleep(Math.min(tickMs(), Math.max(5, (performance.now() - started) / 200)));
  }
}

/**
 * Tells the harness what the run is doing, as a line `#phase <name>` on stdout: a run the
 * harness kills at its time limit is then reported with the phase it was stuck in.
 */
function phase(name: string): void {
  process.stdout.write(`#phase ${name}\n`);
}

async function measure(args: DriverArgs): Promise<RunResult> {
  const { workload, settings } = args;
  const system: System = await loadSystem(args.system);
  const config = chosenConfig(system, settings);
  phase('reset');
  await system.reset(settings);
  const balance = workload.handler === 'balance';
  if (balance && system.name !== 'batchline') await resetEffects(system.backend, settings);

  let worker = await WorkerProcess.start(args);
  let handledBefore = 0; // by workers killed earlier
  // A worker process that dies by itself (a peer's unhandled error) is restarted, as a
  // supervisor would, and counted: the run goes on, and the report says it happened.
  let crashes = 0;
  const supervise = async () => {
    if (!worker.crashed) return;
    crashes++;
    handledBefore += worker.handled;
    await system.recoverDeadWorker?.(settings);
    worker = await WorkerProcess.start(args);
  };
  const producer = await system.producer(settings);
  try {
    phase(workload.smallItems ? 'submit-big' : 'submit');
    const started = performance.now();
    const submission = await producer.submit(payloads(workload, workload.items, 'big'), workload.items, 'big');
    const submitMs = performance.now() - started;

    let smallBatchMs: number | null | undefined;
    let smallDone: number | undefined;
    let bigDoneAtSmallSubmit: number | undefined;
    let end: { done: number; failed: number; at: number };
    let kills = 0;
    const killedAt: number[] = [];
    if (workload.smallItems) {
      // W5: the second tenant submits once the big batch is being worked through (every
      // system alike); the clock that matters is the small batch's.
      phase('big-backlog');
      const wanted = workload.smallAfterDone ?? 0;
      const backlog = await waitRecorded(producer, submission, wanted, started, () => performance.now() > started + workload.timeoutMs + submitMs, undefined, supervise);
      bigDoneAtSmallSubmit = backlog.done;
      phase('small');
      const smallStarted = performance.now();
      const small = await producer.submit(payloads(workload, workload.smallItems, 'small'), workload.smallItems, 'small');
      const r = await waitRecorded(producer, small, workload.smallItems, smallStarted, () => performance.now() > smallStarted + workload.timeoutMs, undefined, supervise);
      smallDone = r.done;
      smallBatchMs = r.done + r.failed >= workload.smallItems ? r.at - smallStarted : null;
      end = { ...(await producer.recorded(submission)), at: performance.now() };
    } else {
      const crashAt = [...(workload.crashAt ?? [])];
      const total = () => handledBefore + worker.handled;
      const deadline = started + workload.timeoutMs;
      let lastProgress = { handled: 0, at: performance.now() };
      // A run whose handlers stop making progress (jobs held by a dead worker that the system
      // never frees) ends after this long, reporting what is unfinished.
      const stallMs = workload.recoverAfterSeconds ? workload.recoverAfterSeconds * 1000 * 3 + 5_000 : workload.timeoutMs;
      const stalled = () => performance.now() - lastProgress.at > stallMs;
      end = await waitRecorded(
        producer,
        submission,
        workload.items,
        started,
        () => performance.now() > deadline || stalled(),
        () => total() >= workload.items || stalled(),
        async () => {
          if (process.env.BENCH_DEBUG) console.error(`${Math.round(performance.now() - started)} ms: handled ${total()}`);
          await supervise();
          if (total() !== lastProgress.handled) lastProgress = { handled: total(), at: performance.now() };
          // A kill waits until the worker started after the last one has handled something:
          // a run that passed two marks between ticks (10,000 items go by fast) would otherwise
          // kill the new worker before it ran anything, two kills landing as one.
          if (crashAt.length > 0 && total() >= crashAt[0]! * workload.items && (kills === 0 || worker.handled > 0)) {
            crashAt.shift();
            killedAt.push(Math.round((total() / workload.items) * 1000) / 1000);
            handledBefore += worker.handled;
            await worker.kill();
            kills++;
            await system.recoverDeadWorker?.(settings);
            worker = await WorkerProcess.start(args);
            lastProgress.at = performance.now();
          }
        },
        workload.crashAt ? 250 : 2_000,
        () => (crashAt.length > 0 ? 5 : 100),
      );
    }
    const totalMs = end.at - started;
    phase('stop');
    await worker.stop();
    phase('check');

    let check: EffectCheck | undefined;
    if (balance) {
      check = system.name === 'batchline'
        ? await (system as System & { check(s: SystemSettings, id: string, n: number): Promise<EffectCheck> }).check(settings, submission.batchId!, workload.items)
        : await checkEffects(system.backend, settings, workload.items);
    }
    let expected = 0n;
    if (balance) for (const p of payloads(workload, workload.items)) expected += signedCents({ type: p.type!, amount: p.amount! });

    return {
      system: system.name,
      version: system.version,
      config,
      workload: workload.id,
      items: workload.items,
      concurrency: workload.concurrency,
      submitMs: Math.round(submitMs),
      processMs: Math.round(totalMs - submitMs),
      totalMs: Math.round(totalMs),
      itemsPerSecond: Math.round((end.done * 1000) / totalMs),
      workerRssMb: worker.maxRssMb,
      driverRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      unfinished: workload.items - end.done - end.failed,
      failed: end.failed,
      ...(check
        ? {
            balance: {
              expectedCents: String(expected),
              actualCents: String(check.balanceCents),
              matches: check.balanceCents === expected,
              lost: check.lost,
              appliedTwice: check.appliedTwice,
            },
          }
        : {}),
      ...(workload.crashAt ? { kills, killedAt } : {}),
      ...(crashes > 0 ? { crashes } : {}),
      ...(workload.idealMs ? { idealMs: workload.idealMs } : {}),
      ...(workload.smallItems ? { smallBatchMs: smallBatchMs === null || smallBatchMs === undefined ? null : Math.round(smallBatchMs), smallDone, bigDoneAtSmallSubmit } : {}),
    };
  } finally {
    await producer.close().catch(() => {});
    await worker.stop(5_000).catch(() => {});
    phase('clear');
    await system.clear(settings).catch((error: Error) => console.error(`${system.name}: clearing after the run failed: ${error.message}`));
    if (balance && system.name !== 'batchline') await clearEffects(system.backend, settings).catch(() => {});
  }
}

const args = JSON.parse(process.argv[2]!) as DriverArgs;
args.settings.concurrency = args.workload.concurrency;
if (args.workload.recoverAfterSeconds) args.settings.recoverAfterSeconds = args.workload.recoverAfterSeconds;
const result = await measure(args);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
