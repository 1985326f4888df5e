/**
 * Reading items out of chunk rows: the one place (besides the stores' `items` SQL views, which
 * mirror it) that knows how slots, `skip`, `seqs`, state entries and closed chunks combine.
 */

import { itemStatusOf } from '../core/item-state.js';
import type { ItemStatus } from '../core/statuses.js';
import type { Item } from '../core/types.js';
import type { ChunkRow } from './store.js';

/** Seq of slot `i` of a chunk. */
export function seqOf(chunk: Pick<ChunkRow, 'seq0' | 'seqs'>, i: number): number {
  return chunk.seqs ? chunk.seqs[i]! : chunk.seq0! + i;
}

/** The chunk's items (moved-out and split-off slots excluded), in slot order. */
export function chunkItems(chunk: ChunkRow): Item[] {
  const items: Item[] = [];
  for (let i = chunk.skip; i < chunk.n; i++) {
    const entry = chunk.state?.[i] ?? null;
    const status = itemStatusOf(entry, chunk.status);
    if (status === 'moved') continue;
    items.push({
      batchId: chunk.batchId,
      seq: seqOf(chunk, i),
      status,
      attempts: entry ? entry.a : chunk.attempt,
      payload: chunk.payloads[i],
      result: entry?.s === 'succeeded' ? (entry.r ?? null) : null,
      error: entry?.s === 'failed' ? entry.e : status === 'failed' ? chunk.error : null,
    });
  }
  return items;
}

/** Counts of a chunk's items by status, derived from its contents rather than its counters. */
export function countChunkItems(chunk: Omit<ChunkRow, 'payloads'>): Record<ItemStatus, number> {
  const counts: Record<ItemStatus, number> = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (let i = chunk.skip; i < chunk.n; i++) {
    const status = itemStatusOf(chunk.state?.[i] ?? null, chunk.status);
    if (status !== 'moved') counts[status]++;
  }
  return counts;
}

/**
 * Picks the items a listing wants from candidate chunks: sorted by seq, after `after`, of
 * `status` when given, at most `limit`.
 */
export function selectItems(chunks: ChunkRow[], params: { status?: ItemStatus; after?: number; limit: number }): Item[] {
  const out: Item[] = [];
  for (const chunk of chunks) {
    for (const item of chunkItems(chunk)) {
      if (params.after !== undefined && item.seq <= params.after) continue;
      if (params.status && item.status !== params.status) continue;
      out.push(item);
    }
  }
  out.sort((a, b) => a.seq - b.seq);
  return out.slice(0, params.limit);
}

/** Where a page of chunks ended, for keyset pagination by (first seq, id). */
export interface ChunkCursor {
  seq0: number;
  id: number;
}

/** A chunk's place in seq order: its first seq (a chunk with explicit seqs: the least). */
function firstSeq(chunk: ChunkRow): number {
  return chunk.seqs ? Math.min(...chunk.seqs) : chunk.seq0!;
}

/**
 * Lists a batch's items in seq order without reading the whole batch. Chunks come from two
 * keyset-ordered streams, contiguous chunks by seq0 and chunks with explicit seqs (retries)
 * by their least seq; each is read a page at a time, the one that is behind first, until
 * `limit` matching items are known to precede every unread chunk of both. Chunks that share a
 * first seq (a split chunk and its origin) may hold items past it, so only items below the
 * last page's first seq count as settled.
 */
export async function listItemsPaged(
  params: { status?: ItemStatus; after?: number; limit: number },
  fetchScattered: (cursor: ChunkCursor, pageSize: number) => Promise<ChunkRow[]>,
  fetchContiguous: (cursor: ChunkCursor, pageSize: number) => Promise<ChunkRow[]>,
): Promise<Item[]> {
  const after = params.after ?? -1;
  const pageSize = 32;
  const streams = [fetchContiguous, fetchScattered].map((fetch) => ({ fetch, cursor: { seq0: -1, id: 0 } as ChunkCursor, frontier: -1 }));
  const found: Item[] = [];
  for (;;) {
    // Every unread chunk of a stream starts at or after its frontier (Infinity once read out).
    const behind = streams.reduce((a, b) => (b.frontier < a.frontier ? b : a));
    if (behind.frontier === Infinity) break;
    if (found.filter((item) => item.seq < behind.frontier).length >= params.limit) break;
    const page = await behind.fetch(behind.cursor, pageSize);
    found.push(...selectItems(page, { ...params, after, limit: Number.MAX_SAFE_INTEGER }));
    // Only the `limit` lowest seqs can be answered: keep memory to that, however far it reads.
    if (found.length > 2 * params.limit + 1_000) {
      found.sort((a, b) => a.seq - b.seq);
      found.length = params.limit;
    }
    if (page.length < pageSize) behind.frontier = Infinity;
    else {
      const last = page[page.length - 1]!;
      behind.cursor = { seq0: firstSeq(last), id: last.id };
      behind.frontier = behind.cursor.seq0;
    }
  }
  found.sort((a, b) => a.seq - b.seq);
  return found.slice(0, params.limit);
}
