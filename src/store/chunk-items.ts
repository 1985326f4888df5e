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

/** Where a page of contiguous chunks ended, for keyset pagination by (seq0, id). */
export interface ChunkCursor {
  seq0: number;
  id: number;
}

/**
 * Lists a batch's items in seq order without reading the whole batch. Chunks with explicit
 * seqs (retries, retry-failed) are few and read at once; contiguous chunks are read in seq0
 * order, page by page, until `limit` matching items are known to precede every unread chunk.
 * Split chunks share a seq0 with their origin, so only items below the last page's seq0 count
 * as settled.
 */
export async function listItemsPaged(
  params: { status?: ItemStatus; after?: number; limit: number },
  fetchScattered: () => Promise<ChunkRow[]>,
  fetchPage: (cursor: ChunkCursor, pageSize: number) => Promise<ChunkRow[]>,
): Promise<Item[]> {
  const after = params.after ?? -1;
  const pick = (chunks: ChunkRow[]) => selectItems(chunks, { ...params, after, limit: Number.MAX_SAFE_INTEGER });
  const found = pick(await fetchScattered());
  let cursor: ChunkCursor = { seq0: -1, id: 0 };
  const pageSize = 32;
  for (;;) {
    const page = await fetchPage(cursor, pageSize);
    found.push(...pick(page));
    if (page.length < pageSize) break;
    const last = page[page.length - 1]!;
    cursor = { seq0: last.seq0!, id: last.id };
    const settled = found.filter((item) => item.seq < last.seq0!).length;
    if (settled >= params.limit) break;
  }
  found.sort((a, b) => a.seq - b.seq);
  return found.slice(0, params.limit);
}
