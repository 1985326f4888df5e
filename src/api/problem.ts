/**
 * Errors as `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, a
 * stable upper-case `code`, and for validation the failing field paths. Every error a route
 * can meet is mapped here, so no request can turn into a 500 by its content: a 500 means a
 * bug or a broken database, and says so without leaking internals.
 */

import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { BatchlineError, ConflictError, InputError } from '../core/errors.js';

/** The stable codes clients can switch on. */
export const PROBLEM_CODES = [
  'VALIDATION_ERROR',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'REQUEST_TIMEOUT',
  'HEADERS_TOO_LARGE',
  'CONFLICT',
  'IDEMPOTENCY_CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'TIMEOUT',
  'INTERNAL',
] as const;
export type ProblemCode = (typeof PROBLEM_CODES)[number];

/** One invalid field: a dotted path (`items.3.amount`, `query.limit`) and what was wrong. */
export interface FieldError {
  path: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  errors?: FieldError[];
}

export const problemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.enum(PROBLEM_CODES),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

const TITLES: Record<ProblemCode, [number, string]> = {
  VALIDATION_ERROR: [400, 'Invalid request'],
  UNAUTHORIZED: [401, 'Missing or invalid API key'],
  FORBIDDEN: [403, 'Forbidden'],
  NOT_FOUND: [404, 'Not found'],
  METHOD_NOT_ALLOWED: [405, 'Method not allowed'],
  REQUEST_TIMEOUT: [408, 'The request body stopped arriving'],
  HEADERS_TOO_LARGE: [431, 'Request headers too large'],
  CONFLICT: [409, 'Conflict with the current state'],
  IDEMPOTENCY_CONFLICT: [409, 'Idempotency key reused with a different request'],
  PAYLOAD_TOO_LARGE: [413, 'Payload too large'],
  UNSUPPORTED_MEDIA_TYPE: [415, 'Unsupported media type'],
  RATE_LIMITED: [429, 'Too many requests'],
  UNAVAILABLE: [503, 'Service unavailable'],
  TIMEOUT: [504, 'Timed out'],
  INTERNAL: [500, 'Internal error'],
};

/** A problem of `code` with its standard status and title. */
export function problem(code: ProblemCode, detail: string, errors?: FieldError[]): Problem {
  const [status, title] = TITLES[code];
  return { type: `https://batchline.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`, title, status, detail, code, ...(errors ? { errors } : {}) };
}

/**
 * The raw HTTP response to a request Node's parser refused before any route saw it (a header
 * with control characters, headers too large, a request that never finished arriving), as a
 * problem like every other error. Written straight to the socket, which then closes.
 */
export function clientErrorResponse(error: NodeJS.ErrnoException): string {
  const found =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? problem('HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problem('REQUEST_TIMEOUT', 'the request did not arrive in time')
        : problem('VALIDATION_ERROR', `malformed HTTP request: ${(error as { reason?: string }).reason ?? error.message}`);
  const body = JSON.stringify(found);
  return (
    `HTTP/1.1 ${found.status} ${found.title}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** An error a route throws on purpose, carrying its problem. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

/** Field errors of a zod failure, paths prefixed by where the value came from (`body`, `query`). */
export function fieldErrors(error: z.ZodError, prefix: string): FieldError[] {
  return error.issues.map((issue) => ({ path: [prefix, ...issue.path.map(String)].join('.'), message: explain(issue) }));
}

/**
 * An issue's message; for a value that matches none of a union's forms (`?status=` takes one
 * status or several) zod says only "Invalid input", so the first form's reason is given, and
 * for a record key that fails, what is wrong with the key.
 */
function explain(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_union') {
    const first = issue.errors[0]?.[0];
    if (first) return first.message;
  }
  // A record key that fails its schema: zod says "Invalid key in record"; say why.
  if (issue.code === 'invalid_key') {
    const first = issue.issues[0];
    if (first) return `key ${JSON.stringify(issue.path.at(-1) ?? '')}: ${first.message}`;
  }
  return issue.message;
}

/** Maps anything a route may throw to a problem. */
export function toProblem(error: unknown): Problem {
  if (error instanceof ProblemError) return error.problem;
  if (error instanceof z.ZodError) return problem('VALIDATION_ERROR', 'the request has invalid fields', fieldErrors(error, 'body'));
  if (error instanceof ConflictError) return problem(error.code === 'idempotency_conflict' ? 'IDEMPOTENCY_CONFLICT' : 'CONFLICT', error.message);
  if (error instanceof InputError) {
    if (error.code === 'body_idle') return problem('REQUEST_TIMEOUT', error.message);
    if (error.code === 'shutting_down') return problem('UNAVAILABLE', error.message);
    return problem(error.code === 'payload_too_large' ? 'PAYLOAD_TOO_LARGE' : 'VALIDATION_ERROR', error.message);
  }
  if (error instanceof BatchlineError) {
    switch (error.code) {
      case 'not_found':
        return problem('NOT_FOUND', error.message);
      case 'payload_too_large':
        return problem('PAYLOAD_TOO_LARGE', error.message);
      case 'store_unavailable':
        return problem('UNAVAILABLE', error.message);
      case 'timeout':
        return problem('TIMEOUT', error.message);
      default:
        if (error.code.startsWith('invalid_') || error.code.startsWith('malformed_') || error.code === 'empty_submission') {
          return problem('VALIDATION_ERROR', error.message);
        }
    }
  }
  // Fastify's own errors: body parsing, size limits, content types.
  const fastify = error as { statusCode?: number; code?: string; message?: string };
  if (typeof fastify.statusCode === 'number' && fastify.statusCode < 500) {
    if (fastify.statusCode === 413) {
      return problem('PAYLOAD_TOO_LARGE', `${fastify.message ?? 'the request body is too large'}: JSON bodies are limited (16 MiB by default); send large batches as a streamed NDJSON or CSV body`);
    }
    if (fastify.statusCode === 415) return problem('UNSUPPORTED_MEDIA_TYPE', fastify.message ?? 'unsupported content type');
    if (fastify.statusCode === 404) return problem('NOT_FOUND', fastify.message ?? 'not found');
    return problem('VALIDATION_ERROR', fastify.message ?? 'the request is malformed');
  }
  return problem('INTERNAL', 'the server failed to handle this request; see its log');
}

/** Sends a problem with the right status and content type. */
export function sendProblem(reply: FastifyReply, p: Problem, headers: Record<string, string> = {}): FastifyReply {
  return reply.code(p.status).headers(headers).type('application/problem+json').send(p);
}
