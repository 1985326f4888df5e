/**
 * Reading the parts of a request that are not its body: path, query and headers, each checked
 * with a zod schema of schemas.ts, a failure a 400 that names the field (`query.label`,
 * `header.Idempotency-Key`).
 */

import { isUtf8 } from 'node:buffer';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { fieldErrors, problem, ProblemError } from './problem.js';
import { idempotencyHeader } from './schemas.js';

/** Parses one part of a request with a zod schema; a failure is a 400 naming `part.field`. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, part: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ProblemError(problem('VALIDATION_ERROR', `invalid ${part}`, fieldErrors(result.error, part)));
  return result.data;
}

/** `label=k:v` query values as a labels object; a value without `:` is a 400. */
export function parseLabels(label: string | string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const l of [label ?? []].flat()) {
    const at = l.indexOf(':');
    const bad = (message: string) => new ProblemError(problem('VALIDATION_ERROR', 'invalid query', [{ path: 'query.label', message }]));
    if (at < 1) throw bad(`expected key:value, got ${JSON.stringify(l)}`);
    const key = l.slice(0, at);
    // A batch has one value per label: two values for one key would silently drop one.
    if (Object.hasOwn(labels, key)) throw bad(`label ${JSON.stringify(key)} is given twice; give each label once`);
    labels[key] = l.slice(at + 1);
  }
  return labels;
}

/**
 * The `Idempotency-Key` header, checked as the body's key is; a header that disagrees with a
 * key given in the body or query is a 400, not a silent choice between them. Node hands header
 * bytes over as Latin-1; the key is read as the UTF-8 they are (what curl and the client send),
 * so `café` means the same in the header as in the body. An empty, repeated or non-UTF-8 header
 * is a 400: dropping or joining it would quietly make a retry create a second batch.
 */
export function idempotencyKeyOf(request: FastifyRequest, other: string | undefined, otherPath: string): string | undefined {
  const header = request.headers['idempotency-key'];
  if (header === undefined) return other;
  const bad = (message: string) => new ProblemError(problem('VALIDATION_ERROR', 'invalid header', [{ path: 'header.Idempotency-Key', message }]));
  const given = request.raw.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'idempotency-key').length;
  if (given > 1) throw bad(`given ${given} times; give the key once`);
  const text = [header].flat().join(', ');
  if (text.trim() === '') throw bad('is empty; give a key or leave the header out');
  const bytes = Buffer.from(text, 'latin1');
  if (!isUtf8(bytes)) throw bad('is not UTF-8; send the key as UTF-8 bytes');
  const key = parse(z.object({ 'Idempotency-Key': idempotencyHeader }), { 'Idempotency-Key': bytes.toString('utf8') }, 'header')['Idempotency-Key'];
  if (other !== undefined && other !== key) {
    throw new ProblemError(
      problem('VALIDATION_ERROR', 'two different idempotency keys', [{ path: otherPath, message: 'differs from the Idempotency-Key header; give the key once' }]),
    );
  }
  return key;
}

/**
 * JSON.parse keeps a `"__proto__"` key as data, which items may hold; a label of that name
 * would be dropped by zod without a word (assigning it sets a prototype), so it is refused.
 */
export function refuseProtoLabel(body: unknown): void {
  const labels = (body as { labels?: unknown } | null)?.labels;
  if (labels !== null && typeof labels === 'object' && Object.hasOwn(labels, '__proto__')) {
    throw new ProblemError(problem('VALIDATION_ERROR', 'invalid body', [{ path: 'body.labels.__proto__', message: 'a label cannot be named __proto__' }]));
  }
}
