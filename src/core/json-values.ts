/**
 * JavaScript values that `JSON.stringify` would store changed without a word: NaN and
 * ±Infinity become null, functions and symbols vanish (or become null in arrays), a Map or a
 * Set becomes `{}`, an array hole or `undefined` in an array becomes null, an Error, a RegExp,
 * binary data or a class instance without own properties loses what it holds, and
 * symbol-keyed properties vanish. An item holding one is refused, naming where, rather than run on data its submitter never sent. (An object
 * property that is `undefined` is left out, as JSON always does; reading it back gives
 * `undefined` again. Values with `toJSON`, such as Dates, are stored as that gives.) Values
 * nested deeper than the stores' JSON functions read are refused too (MAX_JSON_DEPTH).
 */

/**
 * How deep a payload or a result may nest arrays and objects in one another (`[]` is one
 * level, `[{}]` two). The stores' JSON functions have limits of their own: SQLite refuses a
 * whole document nested past 1,000 levels (JSON_MAX_DEPTH), so one deep result would make
 * every statement reading its chunk's state fail, and PostgreSQL's parser runs out of stack
 * ("stack depth limit exceeded") past about 10,000 with the default max_stack_depth. A stored
 * value sits up to two levels inside its chunk's arrays; 512 leaves room on both stores.
 */
export const MAX_JSON_DEPTH = 512;

/** Whether JSON text (valid, as JSON.stringify writes it) nests arrays and objects deeper than `max`. */
export function nestedDeeperThan(json: string, max: number = MAX_JSON_DEPTH): boolean {
  // Every level takes two characters: shorter text cannot be too deep, and most values are shorter.
  if (json.length <= 2 * max) return false;
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      // A string: on to its closing quote, one not escaped (preceded by an even run of backslashes).
      for (;;) {
        i = json.indexOf('"', i + 1);
        if (i < 0) return false;
        let backslashes = 0;
        while (json.charCodeAt(i - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Why `item` cannot be submitted as it is (a value JSON would change), or null: one wording for `submit` and the client. */
export function lossyItem(item: unknown): string | null {
  const lossy = lossyJsonValue(item);
  return lossy === null ? null : `item has ${lossy}; send it as a value JSON keeps (a string, a number or null)`;
}

/** Where in `value` the first value JSON would change sits, and what it is; null when none. */
export function lossyJsonValue(value: unknown): string | null {
  // Every submitted item passes through here: a first walk only answers whether anything is
  // lost, building no paths; the walk that names where runs only for a value that is refused.
  return kept(value, 0) ? null : walk(value, '', 0);
}

const MAX_DEPTH = 1_000;

/** True when JSON keeps `value` as it is: `walk` finding nothing, without its messages. */
function kept(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'function':
    case 'symbol':
      return false;
    case 'undefined':
      return depth === 0;
  }
  if (value === null || depth > MAX_DEPTH) return true;
  const object = value as object;
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return true;
  if (Array.isArray(object)) {
    for (let i = 0; i < object.length; i++) if (!kept(object[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(object) as object | null;
  if (proto !== Object.prototype && proto !== null) return false; // walk() tells which instances pass
  if (Object.getOwnPropertySymbols(object).length > 0) return false;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const child = (object as Record<string, unknown>)[key];
    if (child !== undefined && !kept(child, depth + 1)) return false;
  }
  return true;
}

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
  const proto = Object.getPrototypeOf(object) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    const lost = lossyInstance(object);
    if (lost) return `${lost} at ${path || 'the top'}, which JSON stores as ${lost.startsWith('a typed array') ? 'an object of indexes' : '{}'}`;
  }
  if (Object.getOwnPropertySymbols(object).some((symbol) => Object.prototype.propertyIsEnumerable.call(object, symbol))) {
    return `a symbol-keyed property at ${path || 'the top'}, which JSON leaves out`;
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

/**
 * What JSON would lose of an object that is not a plain one: an Error, a RegExp, binary data,
 * a weak collection or a promise (JSON keeps none of what they hold), or an instance with no
 * own enumerable properties (its getters and private fields vanish). Instances with own
 * properties keep them, so they pass; boxed primitives become their value. Null when nothing.
 */
function lossyInstance(object: object): string | null {
  if (object instanceof Number || object instanceof String || object instanceof Boolean) return null;
  const name = object.constructor?.name || 'object';
  if (ArrayBuffer.isView(object)) return object instanceof DataView ? 'a DataView' : `a typed array (${name})`;
  if (object instanceof ArrayBuffer || object instanceof Error || object instanceof RegExp || object instanceof WeakMap || object instanceof WeakSet || object instanceof Promise) {
    return `a${/^[AEIOU]/.test(name) ? 'n' : ''} ${name}`;
  }
  if (Object.keys(object).length === 0) return `a${/^[AEIOU]/.test(name) ? 'n' : ''} ${name} with no own enumerable properties`;
  return null;
}
