/**
 * The worker process of one measurement: `node --import tsx bench/peers/worker.ts <json>`,
 * started (and in W3 SIGKILLed and restarted) by driver.ts. It runs one system's workers with
 * one workload's handler and tells the driver over IPC how many handlers have returned.
 *
 * Messages to the driver: { ready }, { handled: n } (a running total, every 50 ms when it
 * changed; 5 ms in crash workloads), and on SIGTERM, after a graceful stop, { stopped, maxRssMb }.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import { openEffects, type Effects } from './effects.js';
import { loadSystem } from './systems/index.js';
import type { HandlerKind, ItemWork, SystemSettings } from './systems/system.js';
import { SLOW_ITEM_MS } from './workloads.js';

interface WorkerArgs {
  system: string;
  kind: HandlerKind;
  settings: SystemSettings;
  /** How often to report the handler count (default 50 ms). */
  reportMs?: number;
}

const send = (message: object) => process.send?.(message);
const args = JSON.parse(process.argv[2]!) as WorkerArgs;
const system = await loadSystem(args.system);

let effects: Effects | null = null;
let work: ItemWork;
if (args.kind === 'balance' && system.name !== 'batchline') {
  effects = await openEffects(system.backend, args.settings);
  work = effects.apply;
} else if (args.kind === 'slow') {
  work = async () => void (await sleep(SLOW_ITEM_MS));
} else {
  work = async () => {};
}

let handled = 0;
let reported = 0;
const running = await system.work(args.settings, args.kind, work, () => handled++);
// W3 kills the process at a share of the items handled: the count must be fresh for the kill
// to land near it, so crash workloads report every 5 ms (at 250,000 items/s, 1.25 % apart).
const reporter = setInterval(() => {
  if (handled !== reported) send({ handled: (reported = handled) });
}, args.reportMs ?? 50);
send({ ready: true });

process.once('SIGTERM', async () => {
  clearInterval(reporter);
  await running.stop();
  await effects?.close();
  send({ handled });
  send({ stopped: true, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) });
  process.disconnect?.();
  process.exit(0);
});
