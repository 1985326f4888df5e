/**
 * One leased chunk inside a worker: which slots are recorded, what changed since the last
 * commit, and the commit that writes it. Entries are kept as JSON text, made once when an item
 * finishes, so a commit of 500 items is one string join rather than a re-serialisation.
 *
 * States: running (slots being started) → closing (no new starts: done, cancelled, paused,
 * draining or lease lost) → closed (its final commit is queued or it was dropped).
 */

import { addDecimal, formatDecimal, type Decimal } from '../core/decimal.js';
import type { ItemError, RunOptions } from '../core/types.js';
import type { ChunkCommit, LeasedChunk, RetryChunk } from '../store/store.js';
import type { Processor, Registry } from './registry.js';

/**
 * JSON text every store can hold: PostgreSQL's JSON functions refuse the escapes of U+0000
 * and of lone surrogates (which JSON.stringify writes for strings that contain them), and one
 * such result or error message would keep its chunk from ever committing. Those characters
 * become U+FFFD, the replacement character, on every store alike. An escape counts only
 * after an even run of backslashes (`\\u0000` is a backslash and the text "u0000").
 */
export function storableJson(json: string): string {
  if (!json.includes('\\u')) return json;
  return json.replace(/(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/gi, '$1\\ufffd');
}

/**
 * Why a chunk stopped starting items before all of them ran; `rebalanced`: the worker hands
 * its items back because it holds more than it can soon run.
 */
export type StopReason = 'cancelled' | 'paused' | 'draining' | 'rebalanced' | 'lost';

/**
 * One leased chunk as the worker runs it: its slots' recorded outcomes, which slots have
 * started, the next slot to start, and why it stopped starting, if it did.
 */
export class ChunkRun {
  /** JSON text of each slot's entry; null while unrecorded. */
  private readonly entries: (string | null)[];
  /** Next slot to consider starting. */
  private cursor: number;
  /** Unrecorded slots not yet started. */
  unstarted = 0;
  /** Items of this chunk running now. */
  running = 0;
  /** Items started under this lease (recorded or not). */
  started = 0;
  /** Set once no new item may start; the reason decides how the chunk is closed. */
  stopped: StopReason | null = null;
  /** True once the final commit was queued (or the chunk dropped); later outcomes are ignored. */
  closed = false;
  /** Local time after which no item may start unless a renewal moves it. */
  startDeadline: number;
  /**
   * Slots at or after this may not start yet: on a chunk's final attempt the worker first
   * writes a start mark this far (ChunkCommit.startedBefore), so that a crash fails only the
   * items that may have run. Infinity when no mark is needed.
   */
  startLimit = Infinity;
  /** The furthest start mark asked for (written, or on its way): at least startLimit. */
  markAsked = 0;
  lastCommitAt: number;
  /** Commit number the next commit builds on (each commit advances it by one). */
  private commitNo: number;

  private delta = { succeeded: 0, failed: 0, cancelled: 0, moved: 0 };
  private aggregates = new Map<string, Decimal>();
  private retries = new Map<string, RetryChunk & { payloadList: string[] }>();

  constructor(
    readonly lease: LeasedChunk,
    readonly processor: Processor,
    readonly options: RunOptions,
    startDeadline: number,
    now: number,
  ) {
    this.entries = new Array<string | null>(lease.n).fill(null);
    lease.state?.forEach((entry, i) => {
      if (entry !== null && i >= lease.skip) this.entries[i] = JSON.stringify(entry);
    });
    for (let i = lease.skip; i < lease.n; i++) if (this.entries[i] === null) this.unstarted++;
    this.cursor = lease.skip;
    this.commitNo = lease.commitNo;
    this.startDeadline = startDeadline;
    this.lastCommitAt = now;
  }

  get chunkId(): number {
    return this.lease.chunkId;
  }

  get batchId(): string {
    return this.lease.batchId;
  }

  /** Seq of a slot. */
  seqOf(slot: number): number {
    return this.lease.seqs ? this.lease.seqs[slot]! : this.lease.seq0! + slot;
  }

  /** The slot takeSlot() would return next, or -1. */
  peekSlot(): number {
    while (this.cursor < this.lease.n && this.entries[this.cursor] !== null) this.cursor++;
    return this.cursor < this.lease.n ? this.cursor : -1;
  }

  /** The next unrecorded, unstarted slot, or -1; marks it started. */
  takeSlot(): number {
    const slot = this.peekSlot();
    if (slot < 0) return -1;
    this.cursor++;
    this.unstarted--;
    this.running++;
    this.started++;
    return slot;
  }

  /**
   * Hands every unstarted slot from `from` on to a retry chunk that is runnable at once, as
   * items that have used `attemptsUsed` attempts: the previous lease's start mark shows they
   * never ran under it, so the attempt this lease took for them is not theirs to lose.
   */
  moveUnstarted(from: number, attemptsUsed: number): void {
    for (let slot = Math.max(from, this.cursor); slot < this.lease.n; slot++) {
      if (this.entries[slot] !== null) continue;
      this.entries[slot] = `{"s":"moved","a":${attemptsUsed}}`;
      this.unstarted--;
      this.delta.moved++;
      this.addRetry(slot, 'unstarted', attemptsUsed, 0);
    }
  }

  /**
   * Keeps the first `keep` unstarted slots and hands every later one to a retry chunk that is
   * runnable at once; returns how many went. They never ran under this lease, so it costs
   * them no attempt.
   */
  handBack(keep: number): number {
    let slot = this.peekSlot();
    if (slot < 0) return 0;
    for (let kept = 0; slot < this.lease.n && kept < keep; slot++) if (this.entries[slot] === null) kept++;
    const before = this.unstarted;
    this.moveUnstarted(slot, this.lease.attempt - 1);
    return before - this.unstarted;
  }

  /** True when every slot is recorded and nothing runs: the chunk can close as done. */
  get complete(): boolean {
    return this.unstarted === 0 && this.running === 0;
  }

  /** Whether anything was recorded since the last commit. */
  get dirty(): boolean {
    const d = this.delta;
    return d.succeeded + d.failed + d.cancelled + d.moved > 0;
  }

  succeed(slot: number, resultJson: string | undefined, aggregates: [string, Decimal][] | null): void {
    const r = resultJson === undefined ? '' : `,"r":${resultJson}`;
    this.record(slot, `{"s":"succeeded","a":${this.lease.attempt}${r}}`);
    this.delta.succeeded++;
    if (aggregates) {
      for (const [name, value] of aggregates) {
        const sum = this.aggregates.get(name);
        this.aggregates.set(name, sum ? addDecimal(sum, value) : value);
      }
    }
  }

  fail(slot: number, error: ItemError): void {
    this.record(slot, `{"s":"failed","a":${this.lease.attempt},"e":${JSON.stringify(error)}}`);
    this.delta.failed++;
  }

  cancel(slot: number): void {
    this.record(slot, `{"s":"cancelled","a":${this.lease.attempt}}`);
    this.delta.cancelled++;
  }

  /** Hands the item to a retry chunk that becomes runnable after `delayMs`. */
  retry(slot: number, delayMs: number, groupKey: string): void {
    this.record(slot, `{"s":"moved","a":${this.lease.attempt}}`);
    this.delta.moved++;
    this.addRetry(slot, groupKey, this.lease.attempt, delayMs);
  }

  private addRetry(slot: number, groupKey: string, attempt: number, delayMs: number): void {
    let group = this.retries.get(groupKey);
    if (!group) {
      group = { attempt, delayMs, seqs: [], payloads: '', payloadList: [] };
      this.retries.set(groupKey, group);
    }
    group.seqs.push(this.seqOf(slot));
    group.payloadList.push(JSON.stringify(this.lease.payloads[slot]));
  }

  /** Delay already chosen for a retry group in this commit window, so one window makes one retry chunk. */
  retryDelay(groupKey: string): number | undefined {
    return this.retries.get(groupKey)?.delayMs;
  }

  /** Records the outcome of a started slot. Only started slots are recorded one by one. */
  private record(slot: number, entry: string): void {
    this.entries[slot] = storableJson(entry);
    this.running--;
  }

  /** Builds the commit of everything since the last one and resets the deltas. */
  commit(close: ChunkCommit['close'], now: number, extra: Pick<ChunkCommit, 'unused' | 'error' | 'startedBefore'> = {}): ChunkCommit {
    const aggregates = Object.fromEntries([...this.aggregates].map(([name, sum]) => [name, formatDecimal(sum)]));
    const retries: RetryChunk[] = [...this.retries.values()].map(({ payloadList, ...r }) => ({
      ...r,
      payloads: `[${payloadList.join(',')}]`,
    }));
    const commit: ChunkCommit = {
      chunkId: this.lease.chunkId,
      batchId: this.lease.batchId,
      leaseNo: this.lease.leaseNo,
      commitNo: this.commitNo,
      nextCommitNo: ++this.commitNo,
      state: `[${this.entries.map((e) => e ?? 'null').join(',')}]`,
      delta: this.delta,
      aggregates,
      retries,
      close,
      ...extra,
    };
    this.delta = { succeeded: 0, failed: 0, cancelled: 0, moved: 0 };
    this.aggregates = new Map();
    this.retries = new Map();
    this.lastCommitAt = now;
    if (close !== 'checkpoint') this.closed = true;
    return commit;
  }
}

/**
 * The run of a fresh lease, ready to queue; or, when none of its items may start, with the
 * commit that closes it at once (`close`). `startDeadline` is when it must stop starting items.
 */
export function runOfLease(lease: LeasedChunk, registry: Registry, startDeadline: number, now: number): { run: ChunkRun; close: ChunkCommit | null } {
  const run = new ChunkRun(lease, registry.get(lease.type)!, registry.resolve(lease.type, lease.options), startDeadline, now);
  const { maxAttempts } = run.options;
  // The previous lease was lost (or gave up with items stuck), so this lease counted an
  // attempt for every unrecorded item. Where that lease wrote how far it started items,
  // those beyond never ran: they go back with the attempts they really used, which is at
  // most all but the final one (leases past the final attempt start nothing).
  if (lease.startedBefore !== null) run.moveUnstarted(lease.startedBefore, Math.min(lease.attempt - 2, maxAttempts - 1));
  if (run.unstarted === 0) return { run, close: run.commit('done', now) };
  if (lease.attempt > maxAttempts) {
    // The previous holder lost its lease on the last allowed attempt: the items it may have
    // started fail here (at most once is what a final attempt promises).
    const error: ItemError = {
      kind: 'lease_lost',
      message:
        `the worker running its final attempt (${maxAttempts} of ${maxAttempts}) let go of it before recording it ` +
        '(it crashed, stalled, lost the database, or shut down while the handler ignored its abort signal)',
    };
    return { run, close: run.commit('fail', now, { unused: true, error }) };
  }
  // On the final attempt a lost lease fails what it may have started, so items start only
  // below a start mark: the lease's own (the store decides the attempt is final), then ones
  // the worker writes ahead (start-marks.ts).
  if (lease.attempt >= maxAttempts || lease.startLimit !== null) run.startLimit = run.markAsked = lease.startLimit ?? 0;
  return { run, close: null };
}
