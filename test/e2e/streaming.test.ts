/**
 * A 1,000,000-row file is submitted without holding it in memory: the submit runs with a
 * 48 MB heap, which the file's rows alone do not fit in (the control below shows that).
 */

import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

const ROWS = 1_000_000;
const HEAP = '--max-old-space-size=48';
let dir: string;
let file: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'batchline-stream-'));
  file = join(dir, 'million.jsonl');
  const out = createWriteStream(file);
  for (let i = 0; i < ROWS; i++) {
    const line = `${JSON.stringify({ id: i, account: `ACC-${i % 1000}`, amount: (((i * 7919) % 100_000) / 100).toFixed(2) })}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('streamed submission', () => {
  it('cannot hold the file in a 48 MB heap (the control)', () => {
    const naive = `const rows = require('fs').readFileSync(${JSON.stringify(file)}, 'utf8').split('\\n').filter(Boolean).map((l) => JSON.parse(l)); console.log(rows.length);`;
    const result = spawnSync(process.execPath, [HEAP, '-e', naive], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/heap out of memory/i);
  });

  it.each(storeKinds)('submits 1,000,000 rows within a 48 MB heap (%s)', async (kind) => {
    const location = await freshDatabase(kind);
    try {
      const result = spawnSync(process.execPath, [HEAP, CLI, 'submit', '--type', 't', '--file', file, '--batches', '2', '--json', '--database', location.database], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(result.stderr).toBe('batchline: note: no live worker runs type t (no worker is live); its items wait until a worker whose processors define it starts\n');
      expect(result.status).toBe(0);
      const { batches } = JSON.parse(result.stdout);
      expect(batches.map((b: { total: number }) => b.total)).toEqual([500_000, 500_000]);
    } finally {
      await location.cleanup();
    }
  }, 180_000);
});
