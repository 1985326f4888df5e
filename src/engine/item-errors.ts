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

/** Describes a thrown value as an ItemError of `kind`. */
export function describeError(error: unknown, kind: ItemError['kind']): ItemError {
  if (error instanceof Error) {
    const described: ItemError = { kind, name: error.name, message: error.message.slice(0, MAX_MESSAGE) };
    const at = firstFrame(error.stack);
    if (at) described.at = at;
    if (error.stack) described.stack = error.stack.slice(0, MAX_STACK);
    return described;
  }
  let message: string;
  try {
    message = typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { kind, message: `non-Error thrown: ${message}`.slice(0, MAX_MESSAGE) };
}
