/**
 * JavaScript values that `JSON.stringify` would store changed without a word: NaN and
 * ±Infinity become null, functions and symbols vanish (or become null in arrays), a Map or a
 * Set becomes `{}`, an array hole or `undefined` in an array becomes null. An item holding one
 * is refused, naming where, rather than run on data its submitter never sent. (An object
 * property that is `undefined` is left out, as JSON always does; reading it back gives
 * `undefined` again. Values with `toJSON`, such as Dates, are stored as that gives.)
 */

/** Where in `value` the first value JSON would change sits, and what it is; null when none. */
export function lossyJsonValue(value: unknown): string | null {
  return walk(value, '', 0);
}

const MAX_DEPTH = 1_000;

function walk(value: unknown, path: string, depth: number): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint': // JSON.stringify throws for these, with its own message
      return null;
    case 'number':
      return Number.isFinite(value) ? null : `${value} at ${path || 'the top'}, which JSON stores as null`;
    case 'function':
    case 'symbol':
      return `a ${typeof value} at ${path || 'the top'}, which JSON cannot hold`;
    case 'undefined':
      return path === '' ? null : `undefined at ${path}, which JSON stores as null`;
  }
  if (value === null || depth > MAX_DEPTH) return null;
  const object = value as object;
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return null;
  if (object instanceof Map || object instanceof Set) {
    return `a ${object instanceof Map ? 'Map' : 'Set'} at ${path || 'the top'}, which JSON stores as {}`;
  }
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) {
      const found = walk(object[i], `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return null;
  }
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const child = (object as Record<string, unknown>)[key];
    // A property that is undefined is dropped, as JSON always does: not a change a reader sees.
    if (child === undefined) continue;
    const found = walk(child, `${path}.${key}`, depth + 1);
    if (found) return found;
  }
  return null;
}
