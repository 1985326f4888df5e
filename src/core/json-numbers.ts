/**
 * JSON numbers that would not survive being read: JavaScript reads every JSON number as a
 * 64-bit float, so an int64 id past 2^53, a decimal with more digits than a double holds, or a
 * number out of range would be stored changed (or as null) without a word. Submitted items are
 * checked for them and refused, naming the number, rather than changed.
 */

/** Lines that may hold such a number: 16 or more digits in a row, or a 3-digit exponent. */
const SUSPECT = /\d{16,}|[eE][+-]?\d{3,}/;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * The first number literal in `json` (valid JSON text) that reading it would change, or null.
 * Cheap for ordinary lines: only those with a suspect digit run are scanned.
 */
export function inexactNumber(json: string): string | null {
  if (!SUSPECT.test(json)) return null;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote, past escapes.
      for (i++; i < json.length && json.charCodeAt(i) !== 0x22; i++) if (json.charCodeAt(i) === 0x5c) i++;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i;
      const literal = NUMBER.exec(json)![0];
      if (!keptExactly(literal)) return literal;
      i += literal.length - 1;
    }
  }
  return null;
}

/** Whether writing the float a literal reads as gives back the literal's value. */
function keptExactly(literal: string): boolean {
  const value = Number(literal);
  if (!Number.isFinite(value)) return false;
  const [mantissa] = literal.replace('-', '').split(/[eE]/) as [string];
  const significant = mantissa.replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  if (value === 0) return significant === '';
  // Any decimal of up to 15 significant digits reads back the same from a double.
  if (significant.length <= 15) return true;
  // Otherwise compare with the shortest digits that read back as the same double.
  const shortest = Math.abs(value).toExponential().split('e')[0]!.replace('.', '');
  return shortest === significant;
}
