/**
 * docs/api.md's curl examples, run in order by bash against a real server, so the document
 * cannot drift from the API. Needs curl and jq, as the examples do.
 */

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey } from '../../src/api/keys.js';
import { createServer } from '../../src/api/server.js';
import { Batchline } from '../../src/index.js';
import { freshDatabase } from '../helpers/stores.js';

const run = promisify(execFile);
const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
const examples = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('docs/api.md examples', () => {
  let bl: Batchline;
  let app: FastifyInstance;
  let cleanup: () => Promise<void>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const db = await freshDatabase('sqlite');
    cleanup = db.cleanup;
    bl = await Batchline.open({ database: db.database, logLevel: 'silent' });
    app = await createServer({ batchline: bl });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { token } = await createKey(bl.store, { tenant: 'acme', admin: false });
    env = { ...process.env, BASE: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, KEY: token };
  });
  afterAll(async () => {
    await app?.close();
    await bl?.close();
    await cleanup?.();
  });

  it('has examples to run', () => {
    expect(examples.length).toBeGreaterThanOrEqual(8);
  });

  it('runs every example without an error, with the outputs the text describes', async () => {
    const script = `set -euo pipefail\n${examples.join('\n')}`;
    const { stdout } = await run('bash', ['-c', script], { env, timeout: 60_000 }).catch((error: { stdout: string; stderr: string }) => {
      throw new Error(`docs/api.md examples failed:\n${error.stderr}\n--- stdout ---\n${error.stdout}`);
    });
    expect(stdout).toContain('"status": "queued"');
    expect(stdout).toContain('"source": "upload"');
    expect(stdout).toContain('seq,status,attempts,result,error');
    expect(stdout).toMatch(/"paused"\n0\n"queued"\n"cancelled"\n204\n/);
    expect(stdout).toContain('"code": "VALIDATION_ERROR"');
    expect(stdout).toContain('"workersActive":0');
    expect(stdout).toContain('{"batches":0,"dryRun":true,"more":false}');
    expect(stdout.match(/"FORBIDDEN"/g)).toHaveLength(3); // ?tenant=globex, /metrics and a worker release with a tenant key
    const batches = await bl.listBatches({ tenant: 'acme' });
    expect(batches.map((b) => b.total).sort()).toEqual([2, 2]);
  });
});
