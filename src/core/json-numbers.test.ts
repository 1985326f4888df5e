import { describe, expect, it } from 'vitest';
import { inexactNumber } from './json-numbers.js';

describe('inexactNumber', () => {
  it('passes numbers a double holds exactly, however they are written', () => {
    for (const line of [
      '{"amount":12.34,"id":42}',
      '{"id":9007199254740991}',
      '{"id":-9007199254740991}',
      '[1e21, 1E+2, 0.1, 1.50, 100000000000000000000, 5e-324, 0.0, -0]',
      '{"big":1e308,"small":1e-300}',
      '{"pi":3.141592653589793}',
    ]) {
      expect([line, inexactNumber(line)]).toEqual([line, null]);
    }
  });

  it('names the first number reading would change', () => {
    expect(inexactNumber('{"account":9007199254740993,"amount":"1.00"}')).toBe('9007199254740993');
    expect(inexactNumber('{"id":12345678901234567890}')).toBe('12345678901234567890');
    expect(inexactNumber('{"fee":0.1000000000000000055511151231257827}')).toBe('0.1000000000000000055511151231257827');
    expect(inexactNumber('{"a":1,"amount":1e400}')).toBe('1e400');
    expect(inexactNumber('{"tiny":1e-400}')).toBe('1e-400');
    expect(inexactNumber('[-9007199254740993]')).toBe('-9007199254740993');
  });

  it('ignores digits inside strings, escaped quotes included', () => {
    expect(inexactNumber('{"id":"9007199254740993","note":"say \\"12345678901234567890\\" twice"}')).toBeNull();
    expect(inexactNumber('{"k\\"":"\\\\","n":9007199254740993}')).toBe('9007199254740993');
  });
});
