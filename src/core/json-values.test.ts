import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestedDeeperThan } from './json-values.js';

/** `levels` arrays and objects in one another, in turn, around `leaf`. */
const nested = (levels: number, leaf: unknown = 'x'): unknown => {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? [value] : { k: value };
  return value;
};

describe('nestedDeeperThan', () => {
  it('counts arrays and objects in one another, up to the limit and past it', () => {
    expect(MAX_JSON_DEPTH).toBe(512);
    expect(nestedDeeperThan(JSON.stringify(nested(MAX_JSON_DEPTH)))).toBe(false);
    expect(nestedDeeperThan(JSON.stringify(nested(MAX_JSON_DEPTH + 1)))).toBe(true);
    expect(nestedDeeperThan('[[[]]]', 2)).toBe(true);
    expect(nestedDeeperThan('[[],[],{"a":[1]}]', 2)).toBe(true);
    expect(nestedDeeperThan('[[],[],{"a":1}]', 2)).toBe(false);
  });

  it('does not count brackets inside strings, past escaped quotes and backslashes', () => {
    const brackets = '['.repeat(2_000);
    expect(nestedDeeperThan(JSON.stringify({ text: brackets }))).toBe(false);
    expect(nestedDeeperThan(JSON.stringify([`say \"${brackets}\" \\`, `\\\\"${brackets}`]))).toBe(false);
    // A string ending in a backslash closes; what follows it counts again.
    expect(nestedDeeperThan(JSON.stringify(['\\', nested(MAX_JSON_DEPTH + 1, `\\"${brackets}`)]))).toBe(true);
  });
});
