// Pins retry spacing: exponential from baseMs, capped at maxMs, with equal jitter in [ceiling/2, ceiling].
import { describe, expect, it } from 'vitest';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';

const options = { baseMs: 1_000, maxMs: 60_000 };
const lowest = () => 0;
const highest = () => 1 - Number.EPSILON;

describe('backoffDelay', () => {
  it('uses baseMs as the ceiling of attempt 1', () => {
    expect(backoffDelay(1, options, highest)).toBe(1_000);
    expect(backoffDelay(1, options, lowest)).toBe(500);
  });

  it('doubles the ceiling with each attempt', () => {
    const ceilings = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options, highest));
    expect(ceilings).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000]);
    const floors = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, options, lowest));
    expect(floors).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it('never exceeds maxMs, however many attempts', () => {
    expect(backoffDelay(7, options, highest)).toBe(60_000);
    expect(backoffDelay(7, options, lowest)).toBe(30_000);
    for (const attempt of [8, 20, 31, 64, 1_000, 1_000_000]) {
      expect(backoffDelay(attempt, options, highest)).toBe(60_000);
      expect(backoffDelay(attempt, options, lowest)).toBe(30_000);
    }
  });

  it('stays within [ceiling/2, ceiling] for any random value', () => {
    const randoms = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999, 1 - Number.EPSILON];
    for (const { baseMs, maxMs } of [options, DEFAULT_BACKOFF, { baseMs: 3, maxMs: 1_000 }, { baseMs: 7, maxMs: 5 }]) {
      for (let attempt = 1; attempt <= 40; attempt++) {
        const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
        for (const r of randoms) {
          const delay = backoffDelay(attempt, { baseMs, maxMs }, () => r);
          expect(Number.isInteger(delay)).toBe(true);
          expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
          expect(delay).toBeLessThanOrEqual(ceiling);
        }
      }
    }
  });

  it('moves with the random value: a larger draw never gives a shorter delay', () => {
    const delays = [0, 0.2, 0.4, 0.6, 0.8, 0.99].map((r) => backoffDelay(4, options, () => r));
    expect(delays).toEqual([...delays].sort((a, b) => a - b));
    expect(new Set(delays).size).toBe(delays.length);
  });

  it('treats attempts below 1 like attempt 1', () => {
    expect(backoffDelay(0, options, highest)).toBe(1_000);
    expect(backoffDelay(-3, options, highest)).toBe(1_000);
  });

  it('uses Math.random by default and stays in range', () => {
    for (let i = 0; i < 1_000; i++) {
      const delay = backoffDelay(3, options);
      expect(delay).toBeGreaterThanOrEqual(2_000);
      expect(delay).toBeLessThanOrEqual(4_000);
    }
  });
});
