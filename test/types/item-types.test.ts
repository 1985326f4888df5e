/**
 * Typed items (ItemTypes): compiles test/types/fixtures against the built package, as an
 * application that installed it would. The fixture holds code that must compile and, marked
 * `@ts-expect-error`, code that must not; tsc fails on either kind going wrong.
 */

import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const project = fileURLToPath(new URL('./fixtures/tsconfig.json', import.meta.url));

describe('typed items', () => {
  it('checks payloads and results of declared types, and leaves other types as they were', async () => {
    const result = await promisify(execFile)(process.execPath, [tsc, '-p', project], { timeout: 120_000 }).then(
      () => ({ code: 0, output: '' }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: `${error.stdout}${error.stderr}` }),
    );
    expect(result).toEqual({ code: 0, output: '' });
  }, 130_000);
});
