/**
 * Exact decimal numbers for aggregates: a bigint of units and a scale (value = units / 10^scale).
 *
 * Aggregates are money more often than not, and 100,000 amounts with two decimals must sum to
 * the cent, so nothing here ever goes through a float. A JavaScript number is read through its
 * shortest round-trip text (`String(12.34)` is "12.34"), which is the value the user wrote.
 * The scale of a sum is the largest scale of its terms, as PostgreSQL's `numeric` does, so both
 * stores print the same text for the same total.
 */

import { InputError } from './errors.js';

/** An exact decimal value: `units / 10^scale`. */
export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

/** What `ctx.aggregate()` accepts as a delta. */
export type DecimalInput = number | bigint | string;

const DECIMAL_RE = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** Longest plain decimal text kept: stored values and sums. */
const MAX_DIGITS = 1000;
/**
 * Longest plain decimal text a delta may take (`ctx.aggregate`): half of MAX_DIGITS, so no
 * sum of such deltas, however many, outgrows what the stores keep.
 */
export const MAX_DELTA_CHARS = 500;

/** The decimal zero at scale 0. */
export const ZERO: Decimal = { units: 0n, scale: 0 };

/**
 * Parses a number, bigint or decimal string ("12.34", "-5", "1e-3") into an exact decimal.
 * Throws `InputError` for NaN, infinities, text that is not a decimal number, and a value
 * whose plain text (formatDecimal's: "1e-3" is "0.001") would be longer than `maxChars`.
 */
export function parseDecimal(input: DecimalInput, maxChars = MAX_DIGITS): Decimal {
  if (typeof input === 'bigint') return withinLength({ units: input, scale: 0 }, String(input), maxChars);
  let text: string;
  if (typeof input === 'number') {
    if (!Number.isFinite(input)) throw new InputError(`${input} is not a finite number`);
    text = String(input);
  } else if (typeof input === 'string') {
    text = input.trim();
  } else {
    throw new InputError(`expected a number, bigint or decimal string, got ${input === null ? 'null' : typeof input}`);
  }
  const m = DECIMAL_RE.exec(text);
  const intPart = m?.[2] ?? '';
  const fracPart = m?.[3] ?? '';
  if (!m || (intPart === '' && fracPart === '') || text.length > maxChars) {
    throw new InputError(`${JSON.stringify(typeof input === 'string' ? input : text)} is not a decimal number`);
  }
  const exponent = m[4] ? Number(m[4]) : 0;
  if (Math.abs(exponent) > MAX_DIGITS) throw new InputError(`${JSON.stringify(text)} is out of range`);
  let units = BigInt((intPart || '0') + fracPart);
  if (m[1] === '-') units = -units;
  let scale = fracPart.length - exponent;
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  // Only an exponent can make the plain text much longer than the text given.
  return intPart.length + fracPart.length + Math.abs(exponent) + 2 > maxChars ? withinLength({ units, scale }, text, maxChars) : { units, scale };
}

function withinLength(d: Decimal, given: string, maxChars: number): Decimal {
  const length = formatDecimal(d).length;
  if (length > maxChars) throw new InputError(`${JSON.stringify(given)} is ${length} characters as plain decimal text; the limit is ${maxChars}`);
  return d;
}

function rescale(d: Decimal, scale: number): bigint {
  return scale === d.scale ? d.units : d.units * 10n ** BigInt(scale - d.scale);
}

/** Exact sum of two decimals; the result's scale is the larger of the two. */
export function addDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

/** Plain decimal text without exponent, keeping the scale: `{units: 1050n, scale: 2}` → "10.50". */
export function formatDecimal(d: Decimal): string {
  const negative = d.units < 0n;
  const digits = (negative ? -d.units : d.units).toString();
  if (d.scale === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(d.scale + 1, '0');
  const text = `${padded.slice(0, -d.scale)}.${padded.slice(-d.scale)}`;
  return negative ? `-${text}` : text;
}

/** Integer cents as decimal text: `-123n` → "-1.23". */
export function formatCents(cents: bigint): string {
  return formatDecimal({ units: cents, scale: 2 });
}

/** Adds two decimal texts exactly: `addDecimalText("0.10", "0.2")` → "0.30". */
export function addDecimalText(a: string, b: string): string {
  return formatDecimal(addDecimal(parseDecimal(a), parseDecimal(b)));
}

/** Compares two decimal values exactly: negative, zero or positive like a sort comparator. */
export function compareDecimal(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const diff = rescale(a, scale) - rescale(b, scale);
  return diff < 0n ? -1 : diff > 0n ? 1 : 0;
}

/**
 * Adds `deltas` into `into`, name by name: the aggregate merge both stores and the worker use.
 * Values are decimal texts; names missing from `into` start at zero.
 */
export function mergeAggregates(into: Record<string, string>, deltas: Record<string, string>): Record<string, string> {
  // A Map, then fromEntries: names like "constructor" or "__proto__" stay plain keys.
  const out = new Map(Object.entries(into));
  for (const [name, delta] of Object.entries(deltas)) {
    const current = out.get(name);
    out.set(name, current === undefined ? formatDecimal(parseDecimal(delta)) : addDecimalText(current, delta));
  }
  return Object.fromEntries(out);
}
