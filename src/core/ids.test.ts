// Pins batch ids: RFC 9562 UUIDv7 shape, millisecond timestamp, uniqueness and creation-order sorting.
import { describe, expect, it } from 'vitest';
import { isBatchId, newBatchId } from './ids.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit unix-millisecond timestamp at the front of a UUIDv7. */
const timestampOf = (id: string) => Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16);

function isSortedStrictly(ids: string[]): boolean {
  return ids.every((id, i) => i === 0 || ids[i - 1]! < id);
}

describe('newBatchId', () => {
  // First in the file: later tests may push the generator's clock a few ms ahead.
  it('starts with the current unix time in milliseconds', () => {
    const before = Date.now();
    const id = newBatchId();
    const after = Date.now();
    expect(timestampOf(id)).toBeGreaterThanOrEqual(before);
    expect(timestampOf(id)).toBeLessThanOrEqual(after);
  });

  it('has version nibble 7 and variant bits 10', () => {
    for (let i = 0; i < 1_000; i++) {
      const id = newBatchId();
      expect(id).toMatch(V7);
      const hex = id.replace(/-/g, '');
      expect(Number.parseInt(hex[12]!, 16)).toBe(7);
      expect(Number.parseInt(hex[16]!, 16) >> 2).toBe(0b10);
    }
  });

  it('makes 10,000 unique ids in a tight loop, sorting in creation order', () => {
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i++) ids.push(newBatchId());
    expect(new Set(ids).size).toBe(10_000);
    expect(isSortedStrictly(ids)).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });

  it('keeps order when one millisecond holds more ids than its counter', () => {
    // 10,000 ids stamped with the same time overflow the 12-bit counter at least twice.
    const now = Date.now();
    const ids = Array.from({ length: 10_000 }, () => newBatchId(now));
    expect(new Set(ids).size).toBe(10_000);
    expect(isSortedStrictly(ids)).toBe(true);
    expect(ids.filter((id) => !V7.test(id))).toEqual([]);
  });

  it('does not go back in time when the clock does', () => {
    const first = newBatchId(Date.now() + 50);
    const second = newBatchId(Date.now() - 60_000);
    expect(second > first).toBe(true);
  });
});

describe('isBatchId', () => {
  it('accepts generated ids and any UUID in either case', () => {
    for (let i = 0; i < 100; i++) expect(isBatchId(newBatchId())).toBe(true);
    expect(isBatchId('0190F3A2-7B1C-7D2E-8F00-123456789ABC')).toBe(true);
    expect(isBatchId('550e8400-e29b-41d4-a716-446655440000')).toBe(true);
  });

  it.each([
    '',
    'abc',
    '0190f3a27b1c7d2e8f00123456789abc',
    '0190f3a2-7b1c-7d2e-8f00-123456789ab',
    '0190f3a2-7b1c-7d2e-8f00-123456789abcd',
    '0190f3a2-7b1c-7d2e-8f00-123456789abg',
    '0190f3a2_7b1c_7d2e_8f00_123456789abc',
    ' 0190f3a2-7b1c-7d2e-8f00-123456789abc',
    '0190f3a2-7b1c-7d2e-8f00-123456789abc\n',
    '{0190f3a2-7b1c-7d2e-8f00-123456789abc}',
    "1' OR '1'='1",
  ])('rejects %j', (junk) => {
    expect(isBatchId(junk)).toBe(false);
  });
});
