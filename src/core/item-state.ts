/**
 * How one item's outcome is written inside its chunk's `state` array, and how an item's
 * user-facing status follows from that entry and its chunk's status.
 *
 * A chunk's `state` holds one entry per item slot: null until the item is recorded, then one
 * of the shapes below. `moved` means the item was handed to a retry chunk and lives there now;
 * the `items` view skips moved entries, so every item appears exactly once. The SQL of both
 * stores' `items` views mirrors `itemStatusOf` and the conformance suite checks they agree.
 */

import type { ItemStatus } from './statuses.js';
import type { ItemError } from './types.js';

export type ItemStateEntry =
  | { s: 'succeeded'; a: number; r?: unknown }
  | { s: 'failed'; a: number; e: ItemError }
  | { s: 'cancelled'; a: number }
  | { s: 'moved'; a: number };

/**
 * Chunk statuses. `cancelled` and `failed` close a chunk: its unrecorded items take that status
 * (a failed chunk's `error` column says why), so closing a chunk of 500 items rewrites nothing.
 */
export const CHUNK_STATUSES = ['pending', 'leased', 'done', 'cancelled', 'failed'] as const;
export type ChunkStatus = (typeof CHUNK_STATUSES)[number];

/** The status an item shows, from its entry (null when unrecorded) and its chunk's status. */
export function itemStatusOf(entry: ItemStateEntry | null, chunkStatus: ChunkStatus): ItemStatus | 'moved' {
  if (entry) return entry.s;
  switch (chunkStatus) {
    case 'leased':
      return 'running';
    case 'cancelled':
      return 'cancelled';
    case 'failed':
      return 'failed';
    default:
      return 'pending';
  }
}
