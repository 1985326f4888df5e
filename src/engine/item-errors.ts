/**
 * Turning what a handler threw into the `ItemError` kept with a failed item: its kind, its
 * message, and where it was thrown (the first stack frame), trimmed to a size worth storing.
 */

import type { ItemError } from '../core/types.js';

const MAX_MESSAGE = 2_000;
const MAX_STACK = 4_000;

/** The first `at ...` frame of a stack: where the error was thrown. */
export function firstFrame(stack: string | undefined): string | undefined {
  if (!stack) return undefined;
  for (const line of stack.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('at ')) return trimmed.slice(3);
  }
  return undefined;
}

/** Any value as text, for a message: strings as they are, others as JSON where they can be. */
function text(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    try {
      return String(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
}

/**
 * Describes a thrown value as an ItemError of `kind`. Whatever was thrown — an Error whose
 * message is an object (as some RPC clients build), one whose stack getter throws, a string —
 * gives a description; this never throws itself.
 */
export function describeError(error: unknown, kind: ItemError['kind']): ItemError {
  if (error instanceof Error) {
    let name: unknown, message: unknown, stack: unknown;
    try {
      ({ name, message, stack } = error);
    } catch {
      // A getter that throws: keep what could be read.
    }
    const described: ItemError = { kind, name: text(name ?? 'Error'), message: text(message ?? '').slice(0, MAX_MESSAGE) };
    if (typeof stack === 'string') {
      const at = firstFrame(stack);
      if (at) described.at = at;
      described.stack = stack.slice(0, MAX_STACK);
    }
    return described;
  }
  return { kind, message: `non-Error thrown: ${text(error)}`.slice(0, MAX_MESSAGE) };
}
