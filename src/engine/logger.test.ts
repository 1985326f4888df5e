import { afterEach, expect, it, vi } from 'vitest';
import { createLogger } from './logger.js';

afterEach(() => vi.restoreAllMocks());

it('writes text lines a person reads: level, message, error and plain values', () => {
  const lines: string[] = [];
  vi.spyOn(process.stderr, 'write').mockImplementation((text) => (lines.push(String(text)), true));
  const logger = createLogger({ level: 'warn', format: 'text' });
  logger.info('not at this level');
  logger.warn({ chunk: 12, batchId: 'b1', nested: { left: 'out' } }, 'worker:lease-lost');
  logger.error({ err: new Error('cannot use PostgreSQL: connection reset', { cause: new Error('connection reset') }) }, 'lease failed; retrying');
  // The cause is not added to a message that already says it.
  expect(lines).toEqual(['batchline: warn: worker:lease-lost (chunk=12 batchId=b1)\n', 'batchline: error: lease failed; retrying: cannot use PostgreSQL: connection reset\n']);
});
