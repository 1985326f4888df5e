/**
 * Batch ids are UUIDv7 (RFC 9562): created by any process on any machine without a round
 * trip, unique across stores, sortable by creation time (so "newest first" is `ORDER BY id
 * DESC`), and not a counter that tells one tenant how many batches the others submit.
 */

import { randomBytes } from 'node:crypto';

let lastMs = 0;
let counter = 0;

/** A new UUIDv7; ids made in one process in the same millisecond still sort in creation order. */
export function newBatchId(now = Date.now()): string {
  const bytes = randomBytes(16);
  if (now <= lastMs) {
    now = lastMs;
    counter = (counter + 1) & 0xfff;
    if (counter === 0) now = ++lastMs;
  } else {
    lastMs = now;
    counter = bytes.readUInt16BE(6) & 0x7ff;
  }
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `id` has the shape of a batch id (any UUID), so lookups can reject junk early. */
export function isBatchId(id: string): boolean {
  return UUID_RE.test(id);
}
