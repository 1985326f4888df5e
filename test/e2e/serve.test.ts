/**
 * `batchline serve` and `batchline keys` as real processes: a key created on the command line
 * opens the API, the server's workers run what is submitted over HTTP, a revoked key is
 * refused, SIGTERM drains and exits 0, and a non-loopback address without keys or a port in
 * use is refused with exit 2.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest } from 'node:http';
import { BatchlineClient } from '../../src/client/index.js';
import { Batchline } from '../../src/index.js';
import { batchline, exited, FIXTURE_PROCESSORS, serveAddress, spawnBatchline } from '../helpers/cli.js';
import { freshDatabase, storeKinds } from '../helpers/stores.js';

describe.each(storeKinds)('serve and keys: %s', (kind) => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let dbArgs: string[];

  beforeAll(async () => {
    db = await freshDatabase(kind);
    dbArgs = ['--database', db.database, ...(db.schema ? ['--schema', db.schema] : [])];
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('lets a worker that serves no API be scraped: worker --metrics-port', async () => {
    const worker = spawnBatchline(['worker', '--processors', FIXTURE_PROCESSORS, '--metrics-port', '0', '--log-level', 'info', ...dbArgs]);
    try {
      while (!/metrics on http:\/\/[^"\s]+/.test(worker.output())) {
        if (worker.exitCode !== null) throw new Error(`worker exited:\n${worker.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const url = /metrics on (http:\/\/[^"\s]+)/.exec(worker.output())![1]!;
      const dir = mkdtempSync(join(tmpdir(), 'batchline-metrics-'));
      writeFileSync(join(dir, 'rows.csv'), 'id,amount\n1,1.00\n2,-2.00\n3,3.00\n');
      const sent = await batchline(['submit', '--type', 'txn.validate', '--file', join(dir, 'rows.csv'), '--json', ...dbArgs]);
      const id = JSON.parse(sent.stdout).batches[0].id as string;
      expect((await batchline(['status', id, '--wait', '--timeout-ms', '20000', ...dbArgs])).code).toBe(1); // one row fails
      rmSync(dir, { recursive: true, force: true });
      const text = await (await fetch(url)).text();
      expect(text).toContain('batchline_items_total{type="txn.validate",outcome="succeeded"} 2');
      expect(text).toContain('batchline_items_total{type="txn.validate",outcome="failed"} 1');
      expect(text).toContain('batchline_lease_losses_total 0');
      expect(text).toMatch(/batchline_batches\{status="completed"\} [1-9]/);
    } finally {
      worker.kill('SIGTERM');
      expect((await exited(worker)).code).toBe(0);
    }
  });

  it('refuses to listen beyond loopback without keys (exit 2)', async () => {
    const refused = await batchline(['serve', '--host', '0.0.0.0', '--port', '0', ...dbArgs]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to serve on 0.0.0.0 without API keys');
  });

  it('says why it cannot listen on a port in use (exit 2)', async () => {
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((taken.address() as AddressInfo).port);
      const refused = await batchline(['serve', '--port', port, ...dbArgs]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`);
    } finally {
      taken.close();
    }
  });

  it('on SIGTERM, cuts off an upload still arriving after --shutdown-ms, creates nothing and exits 0', async () => {
    const server = spawnBatchline(['serve', '--port', '0', '--no-workers', '--shutdown-ms', '1000', ...dbArgs]);
    const address = await serveAddress(server);
    const bl = await Batchline.open({ database: db.database, schema: db.schema, logLevel: 'silent', migrate: false });
    try {
      const before = await bl.countBatches({});
      // An upload that sends two lines, then nothing more (a slow client, or a stuck pipe).
      const answered = new Promise<{ status: number; body: { code: string; detail: string } }>((resolve, reject) => {
        const url = new URL(`${address}/api/v1/batches?type=txn.validate`);
        const req = httpRequest({ host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: 'POST', headers: { 'content-type': 'application/x-ndjson' } }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.write('{"id":1,"amount":"1.00"}\n{"id":2,"amount":"2.00"}\n');
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const signalledAt = Date.now();
      server.kill('SIGTERM');
      const answer = await answered;
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe('UNAVAILABLE');
      expect(answer.body.detail).toContain('the server is shutting down');
      expect((await exited(server)).code, server.output()).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(6_000);
      expect(await bl.countBatches({})).toBe(before);
    } finally {
      server.kill('SIGKILL');
      await bl.close();
    }
  });

  it('serves with keys and workers, refuses a revoked key, and drains on SIGTERM', async () => {
    const created = await batchline(['keys', 'create', '--tenant', 'acme', '--name', 'ci', '--json', ...dbArgs]);
    expect(created.code).toBe(0);
    const { key, token } = JSON.parse(created.stdout) as { key: { id: string; tenant: string }; token: string };
    expect(key.tenant).toBe('acme');
    expect(token).toMatch(/^bl_[0-9a-f]{12}_/);
    // An admin key needs no tenant: it sees every one (what it submits goes to `default`).
    const admin = await batchline(['keys', 'create', '--admin', '--json', ...dbArgs]);
    expect([admin.code, JSON.parse(admin.stdout).key]).toEqual([0, expect.objectContaining({ tenant: 'default', admin: true })]);
    const tenantless = await batchline(['keys', 'create', ...dbArgs]);
    expect([tenantless.code, tenantless.stderr]).toEqual([2, expect.stringContaining("required option '--tenant <name>' not specified (or give --admin")]);
    const listed = await batchline(['keys', 'list', ...dbArgs]);
    expect(listed.stdout).toContain(key.id);
    expect(listed.stdout).not.toContain(token);

    const server = spawnBatchline(['serve', '--port', '0', '--processors', FIXTURE_PROCESSORS, ...dbArgs]);
    try {
      const address = await serveAddress(server);
      const client = new BatchlineClient({ baseUrl: address, apiKey: token });
      const batch = await client.createBatch({ type: 'txn.validate', items: [{ id: 1, amount: '1.25' }, { id: 2, amount: '2.50' }, { id: 3, amount: '-1.00' }] });
      let got = await client.getBatch(batch.id);
      for (let i = 0; i < 200 && got.status !== 'completed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        got = await client.getBatch(batch.id);
      }
      expect(got).toMatchObject({ tenant: 'acme', status: 'completed', succeeded: 2, failed: 1, aggregates: { amount: '3.75' } });
      await expect(new BatchlineClient({ baseUrl: address }).listBatches()).rejects.toMatchObject({ status: 401 });

      // submit --server streams a file through the API, as the key's tenant.
      const dir = mkdtempSync(join(tmpdir(), 'batchline-serve-'));
      try {
        writeFileSync(join(dir, 'ok.csv'), 'id,amount\n1,1.00\n2,2.00\n');
        writeFileSync(join(dir, 'bad.jsonl'), '{"id":1,"amount":"1.00"}\n{oops\n');
        const sent = await batchline(['submit', '--server', address, '--api-key', token, '--type', 'txn.validate', '--file', join(dir, 'ok.csv'), '--json']);
        expect(sent.code, sent.stderr).toBe(0);
        expect(JSON.parse(sent.stdout)).toMatchObject({ created: true, batches: [{ tenant: 'acme', total: 2 }] });
        const sentId = JSON.parse(sent.stdout).batches[0].id as string;
        const waited = await batchline(['status', sentId, '--wait', '--timeout-ms', '20000', '--json', '--server', address, '--api-key', token]);
        expect(waited.code, waited.stderr).toBe(0);
        expect(JSON.parse(waited.stdout)).toMatchObject({ batches: [{ id: sentId, status: 'completed', succeeded: 2, aggregates: { amount: '3.00' } }] });
        const bad = await batchline(['submit', '--type', 'txn.validate', '--file', join(dir, 'bad.jsonl')], { env: { BATCHLINE_URL: address, BATCHLINE_API_KEY: token } });
        expect(bad.code).toBe(2);
        // The server names a line of its request body; the CLI names it as the file's.
        expect(bad.stderr).toContain(`${join(dir, 'bad.jsonl')}:2: malformed JSON`);
        expect(bad.stderr).toContain('(400 VALIDATION_ERROR)');
        // Waiting through the API shows progress on stderr (in a log: every 5 s, so from 5 s on), then gives up.
        const stuck = await batchline(['submit', '--server', address, '--api-key', token, '--type', 'nobody.runs.this', '--file', join(dir, 'ok.csv'), '--json']);
        expect(stuck.stderr).toMatch(/^batchline: note: no live worker runs type nobody\.runs\.this \(live workers run [^)]*\btxn\.validate\b[^)]*\); its items wait until a worker whose processors define it starts\n$/);
        const stuckId = JSON.parse(stuck.stdout).batches[0].id as string;
        const waiting = await batchline(['status', stuckId, '--wait', '--timeout-ms', '8000', '--server', address, '--api-key', token]);
        expect(waiting.code).toBe(1);
        expect(waiting.stderr).toContain('waiting: 0/2 items (0%), 0 failed');
        expect(waiting.stderr).toContain(`batch ${stuckId} is still queued after 8000 ms`);
        // Steering through the API: a finished batch cannot be paused (409, exit 2); delete works.
        const paused = await batchline(['pause', sentId, '--server', address, '--api-key', token]);
        expect(paused.code).toBe(2);
        expect(paused.stderr).toContain('409 CONFLICT');
        const deleted = await batchline(['delete', sentId, '--json', '--server', address, '--api-key', token]);
        expect(JSON.parse(deleted.stdout)).toEqual({ batches: [{ id: sentId, status: 'deleted' }] });
        // The key decides the tenant: asking for another one is a usage error, not ignored.
        const tenant = await batchline(['submit', '--server', address, '--api-key', token, '--type', 'txn.validate', '--file', join(dir, 'ok.csv'), '--tenant', 'globex']);
        expect(tenant.code).toBe(2);
        expect(tenant.stderr).toContain("with --server the API key's tenant owns the batch");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }

      // Workers through the API: listed for any key; releasing one takes an admin key, and
      // the server's own (alive, in its process) is refused.
      const adminToken = JSON.parse(admin.stdout).token as string;
      const viaServer = (args: string[], apiKey: string) => batchline(['workers', ...args, '--server', address, '--api-key', apiKey]);
      const workers = await viaServer(['list', '--json'], adminToken);
      expect(workers.code, workers.stderr).toBe(0);
      const own = (JSON.parse(workers.stdout).workers as { id: string; pid: number }[]).find((w) => w.pid === server.pid);
      expect(own).toBeDefined();
      expect((await viaServer([], token)).stdout).toContain(own!.id);
      const byTenant = await viaServer(['release', own!.id], token);
      expect([byTenant.code, byTenant.stderr]).toEqual([2, expect.stringContaining('403 FORBIDDEN')]);
      const itself = await viaServer(['release', own!.id], adminToken);
      expect([itself.code, itself.stderr]).toEqual([2, expect.stringContaining('409 CONFLICT')]);
      const nobody = await viaServer(['release', 'no-such-host:1:x'], adminToken);
      expect([nobody.code, nobody.stderr]).toEqual([2, expect.stringContaining('no worker no-such-host:1:x')]);

      const revoked = await batchline(['keys', 'revoke', key.id, ...dbArgs]);
      expect(revoked.code).toBe(0);
      await expect(client.listBatches()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
      const again = await batchline(['keys', 'revoke', key.id, ...dbArgs]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`key ${key.id} (tenant acme) was already revoked at`);
      const unknown = await batchline(['keys', 'revoke', 'nope', ...dbArgs]);
      expect(unknown.code).toBe(2);
    } finally {
      server.kill('SIGTERM');
      expect((await exited(server)).code).toBe(0);
    }
  });
});
