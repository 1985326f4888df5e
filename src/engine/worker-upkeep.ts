/**
 * A worker's upkeep: the store calls it makes on a clock besides leasing and committing.
 *
 * - renewal keeps the leases of held chunks alive and moves their start deadlines;
 * - the control poll hears of cancel, pause and delete of batches it runs (also woken by the
 *   store's notifications, which may be missed);
 * - the heartbeat keeps the worker's row (GET /workers, `monitor`) current.
 *
 * Each call logs and carries on when the store fails: the next tick tries again, and a lease
 * not renewed in time is one the worker stops starting items of (worker.ts, "Safety").
 */

import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { BatchStatus } from '../core/statuses.js';
import type { Store } from '../store/store.js';
import type { ChunkRun } from './chunk-run.js';
import type { Registry } from './registry.js';
import type { WorkerSettings } from './worker-options.js';

/** What the upkeep reads of the worker it serves, and what it tells it. */
export interface UpkeepHost {
  readonly id: string;
  /** The chunks the worker holds, by chunk id. */
  readonly runs: ReadonlyMap<number, ChunkRun>;
  /** Counts for the worker's row. */
  counts(): { processed: number; inFlight: number };
  /** The start deadline of a lease renewed by a request sent at `requestedAt`. */
  startDeadline(requestedAt: number): number;
  /** The store no longer holds this lease for the worker. */
  lost(chunkId: number, why: string): void;
  /** Leases were renewed: items held back near their deadlines may start. */
  renewed(): void;
  /** A batch the worker runs was cancelled or paused (status), or deleted (undefined). */
  batchChanged(batchId: string, status: BatchStatus | undefined): void;
}

/** Renewal, control poll and heartbeat on their timers; see the module comment. */
export class WorkerUpkeep {
  private timers: NodeJS.Timeout[] = [];
  private controlPolling = false;
  private controlAgain = false;

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly logger: Logger,
    private readonly settings: WorkerSettings,
    private readonly host: UpkeepHost,
  ) {}

  /** Writes the worker's row once, then runs the three on their timers until `stop()`. */
  async start(): Promise<void> {
    await this.heartbeat();
    this.every(Math.max(50, Math.floor(this.settings.leaseMs / 3)), () => void this.renew());
    this.every(this.settings.controlPollMs, () => void this.pollControl());
    this.every(this.settings.heartbeatMs, () => void this.heartbeat());
  }

  /** Ends the timers (a call in flight still finishes). */
  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
  }

  /**
   * Reads the status of every batch the worker runs now; `notified` when a store notification
   * asked for it, so that one arriving during a poll gets a poll of its own.
   */
  async pollControl(notified = false): Promise<void> {
    if (this.controlPolling) {
      // A notification during a poll may be about a change that poll read too early.
      if (notified) this.controlAgain = true;
      return;
    }
    if (this.host.runs.size === 0) return;
    this.controlPolling = true;
    this.controlAgain = false;
    try {
      const ids = this.batchIds();
      const statuses = await this.store.batchesStatus({ ids });
      for (const id of ids) {
        const status = statuses.get(id);
        if (status === undefined || status === 'cancelled' || status === 'paused') this.host.batchChanged(id, status);
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'control poll failed');
    } finally {
      this.controlPolling = false;
      if (this.controlAgain) void this.pollControl();
    }
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private batchIds(): string[] {
    return [...new Set([...this.host.runs.values()].map((run) => run.batchId))];
  }

  private async renew(): Promise<void> {
    const { runs } = this.host;
    if (runs.size === 0) return;
    const leases = [...runs.values()].map((run) => ({ chunkId: run.chunkId, leaseNo: run.lease.leaseNo }));
    const requestedAt = Date.now();
    try {
      const { lost } = await this.store.chunksRenew({ workerId: this.host.id, leases, leaseMs: this.settings.leaseMs });
      const lostSet = new Set(lost);
      for (const { chunkId } of leases) {
        const run = runs.get(chunkId);
        if (run && !lostSet.has(chunkId)) run.startDeadline = this.host.startDeadline(requestedAt);
      }
      const sent = new Map(leases.map((l) => [l.chunkId, l.leaseNo]));
      for (const chunkId of lost) {
        const run = runs.get(chunkId);
        // A chunk whose final commit is in flight is no longer leased: not a lost lease. Nor
        // is a chunk leased again since this renewal was sent.
        if (!run || run.closed || run.lease.leaseNo !== sent.get(chunkId)) continue;
        this.host.lost(chunkId, 'renewal found it taken or expired');
      }
      this.host.renewed();
    } catch (error) {
      this.logger.warn({ err: error }, 'lease renewal failed; retrying');
    }
  }

  private async heartbeat(): Promise<void> {
    try {
      const { processed, inFlight } = this.host.counts();
      await this.store.workerHeartbeat({
        id: this.host.id,
        host: hostname(),
        pid: process.pid,
        types: this.registry.types(),
        concurrency: this.settings.concurrency,
        processed,
        inFlight,
        batches: this.batchIds(),
      });
    } catch (error) {
      this.logger.warn({ err: error }, 'worker heartbeat failed');
    }
  }
}
