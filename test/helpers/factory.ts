/**
 * Small fixtures for store-level tests: submit items, lease, and build commits the way a
 * worker would, so conformance tests read as sequences of store operations.
 */

import type { Batch } from '../../src/core/types.js';
import { newBatch, Submission, type SubmissionLimits, type SubmitOptions } from '../../src/engine/submission.js';
import { DEFAULT_LIMITS } from '../../src/engine/submission.js';
import type { ChunkCommit, LeasedChunk, Store } from '../../src/store/store.js';

/** Submits `items` as one batch of `type` (default `t`). */
export async function submit(
  store: Store,
  items: Iterable<unknown> | AsyncIterable<unknown>,
  options: SubmitOptions & { type?: string; limits?: Partial<SubmissionLimits> } = {},
): Promise<Batch & { created: boolean }> {
  const { type = 't', limits, ...rest } = options;
  const spec = newBatch(type, rest, 'default');
  const submission = new Submission([spec], null, { ...DEFAULT_LIMITS, ...limits });
  const result = await store.batchesSubmit({ batches: [spec], chunks: submission.chunks(items), digests: () => submission.digests() });
  return { ...result.batches[0]!, created: result.created };
}

/** `n` payloads `{ i, amount }` with two-decimal amounts. */
export function rows(n: number): { i: number; amount: string }[] {
  return Array.from({ length: n }, (_, i) => ({ i, amount: (((i * 7919) % 100_000) / 100).toFixed(2) }));
}

/** A value nesting `levels` arrays and objects in one another (objects and arrays in turn), around a string. */
export function nested(levels: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { v: value };
  return value;
}

/** Leases with generous defaults. */
export function lease(store: Store, overrides: Partial<Parameters<Store['chunksLease']>[0]> = {}): Promise<LeasedChunk[]> {
  return store.chunksLease({ workerId: 'w1', types: ['t'], maxItems: 10_000, leaseMs: 30_000, ...overrides });
}

export type Outcome = 'succeeded' | 'failed' | 'cancelled' | 'moved' | null;

/**
 * The commit a worker would make for `chunk` after the given outcomes per live slot (null:
 * still unrecorded). Succeeded items contribute `aggregate(payload)` to aggregate `sum`. The
 * second commit of one lease passes `commitNo: chunk.commitNo + 1`.
 */
export function commitFor(
  chunk: LeasedChunk,
  outcomes: Outcome[] | ((slot: number) => Outcome),
  options: { close?: ChunkCommit['close']; aggregate?: (payload: any) => string; retryDelayMs?: number; unused?: boolean; commitNo?: number } = {},
): ChunkCommit {
  const state: (string | null)[] = new Array(chunk.n).fill(null);
  chunk.state?.forEach((entry, i) => (state[i] = entry ? JSON.stringify(entry) : null));
  const delta = { succeeded: 0, failed: 0, cancelled: 0, moved: 0 };
  let sum = 0n;
  const retrySeqs: number[] = [];
  const retryPayloads: string[] = [];
  for (let slot = chunk.skip; slot < chunk.n; slot++) {
    if (state[slot] !== null) continue;
    const outcome = typeof outcomes === 'function' ? outcomes(slot) : outcomes[slot - chunk.skip] ?? null;
    if (!outcome) continue;
    const a = chunk.attempt;
    if (outcome === 'succeeded') {
      state[slot] = JSON.stringify({ s: 'succeeded', a, r: { slot } });
      if (options.aggregate) sum += BigInt(options.aggregate(chunk.payloads[slot]).replace('.', ''));
    } else if (outcome === 'failed') {
      state[slot] = JSON.stringify({ s: 'failed', a, e: { kind: 'permanent', message: `slot ${slot} failed` } });
    } else if (outcome === 'cancelled') {
      state[slot] = JSON.stringify({ s: 'cancelled', a });
    } else {
      state[slot] = JSON.stringify({ s: 'moved', a });
      retrySeqs.push(chunk.seqs ? chunk.seqs[slot]! : chunk.seq0! + slot);
      retryPayloads.push(JSON.stringify(chunk.payloads[slot]));
    }
    delta[outcome]++;
  }
  const unrecorded = state.slice(chunk.skip).some((e) => e === null);
  const cents = sum.toString().padStart(3, '0');
  return {
    chunkId: chunk.chunkId,
    batchId: chunk.batchId,
    leaseNo: chunk.leaseNo,
    commitNo: options.commitNo ?? chunk.commitNo,
    nextCommitNo: (options.commitNo ?? chunk.commitNo) + 1,
    state: `[${state.map((e) => e ?? 'null').join(',')}]`,
    delta,
    aggregates: options.aggregate && delta.succeeded > 0 ? { sum: `${cents.slice(0, -2)}.${cents.slice(-2)}` } : {},
    retries: retrySeqs.length
      ? [{ attempt: chunk.attempt, delayMs: options.retryDelayMs ?? 0, seqs: retrySeqs, payloads: `[${retryPayloads.join(',')}]` }]
      : [],
    close: options.close ?? (unrecorded ? 'checkpoint' : 'done'),
    ...(options.unused !== undefined ? { unused: options.unused } : {}),
  };
}

/** Counts of a batch's items by status, through the store's item listing. */
export async function itemCounts(store: Store, batchId: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let after = -1;
  for (;;) {
    const items = await store.itemsList({ batchId, after, limit: 5_000 });
    for (const item of items) counts[item.status] = (counts[item.status] ?? 0) + 1;
    if (items.length < 5_000) return counts;
    after = items.at(-1)!.seq;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A promise to hold handlers on (`passed`) until the test calls `open()`. */
export function gate(): { passed: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const passed = new Promise<void>((resolve) => (open = resolve));
  return { passed, open };
}

/** Polls `condition` every 20 ms until it holds; throws after `timeoutMs`. */
export async function until(condition: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition did not hold within ${timeoutMs} ms`);
    await sleep(20);
  }
}
