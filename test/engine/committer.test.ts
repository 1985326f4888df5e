/**
 * The committer against a real store with faults injected at its boundary: a commit whose
 * reply was lost after the chunk was leased again, a commit that keeps failing among others,
 * and a commit landing after the committer was abandoned.
 */

import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Committer } from '../../src/engine/committer.js';
import type { ChunkCommit, Store } from '../../src/store/store.js';
import { commitFor, lease, rows, sleep, submit, until } from '../helpers/factory.js';
import { freshStore, storeKinds } from '../helpers/stores.js';

const logger = pino({ level: 'silent' });

describe.each(storeKinds)('committer: %s', (kind) => {
  let store: Awaited<ReturnType<typeof freshStore>>;
  afterEach(async () => store.dispose());

  const track = () => {
    const seen = { lost: [] as string[], committed: [] as string[], finished: 0 };
    const label = (c: ChunkCommit) => `${c.chunkId}/${c.leaseNo}/${c.close}`;
    return {
      seen,
      hooks: {
        onLost: (cs: ChunkCommit[]) => seen.lost.push(...cs.map(label)),
        onCommitted: (cs: ChunkCommit[]) => seen.committed.push(...cs.map(label)),
        onFinished: (bs: unknown[]) => (seen.finished += bs.length),
      },
    };
  };

  it('voids only the stale lease when a lost-reply commit is retried after the chunk was leased again', async () => {
    store = await freshStore(kind);
    const batch = await submit(store, rows(2));
    const [first] = await lease(store);
    let loseReply = true;
    const faulty: Store = Object.create(store);
    faulty.chunksCommit = async (params) => {
      const result = await store.chunksCommit(params);
      if (loseReply) {
        loseReply = false;
        throw new Error('injected: connection lost after COMMIT');
      }
      return result;
    };
    const { seen, hooks } = track();
    const committer = new Committer({ store: faulty, logger, ...hooks });
    committer.enqueue(commitFor(first!, () => null, { close: 'release', unused: true }));
    await until(() => !loseReply); // the release committed (its reply is lost next)
    const [second] = await lease(store);
    expect(second!.chunkId).toBe(first!.chunkId);
    committer.enqueue(commitFor(second!, () => 'succeeded'));
    await committer.drain();
    expect(seen.lost).toEqual([`${first!.chunkId}/${first!.leaseNo}/release`]);
    expect(seen.committed).toContain(`${second!.chunkId}/${second!.leaseNo}/done`);
    expect(await store.batchGet({ id: batch.id })).toMatchObject({ status: 'completed', succeeded: 2 });
  });

  it('keeps the highest start mark when it merges waiting commits', async () => {
    store = await freshStore(kind);
    await submit(store, rows(20));
    const [chunk] = await lease(store, { leaseMs: 200 });
    const { seen, hooks } = track();
    const committer = new Committer({ store, logger, ...hooks });
    committer.enqueue({ ...commitFor(chunk!, () => null), startedBefore: 8 });
    committer.enqueue({ ...commitFor(chunk!, (slot) => (slot < 2 ? 'succeeded' : null), { commitNo: 1 }), startedBefore: 5 });
    // A third with no mark and nothing new (a plain checkpoint).
    const nothingNew = { succeeded: 0, failed: 0, cancelled: 0, moved: 0 };
    committer.enqueue({ ...commitFor(chunk!, (slot) => (slot < 2 ? 'succeeded' : null), { commitNo: 2 }), delta: nothingNew, aggregates: {} });
    await committer.drain();
    expect(seen.committed).toHaveLength(1);
    await sleep(300);
    await store.chunksReclaim({ limit: 10 });
    const [again] = await lease(store);
    expect(again).toMatchObject({ attempt: 2, startedBefore: 8 });
    expect(again!.state!.filter((entry) => entry?.s === 'succeeded')).toHaveLength(2);
  });

  it('writes the others while one commit keeps failing', async () => {
    store = await freshStore(kind);
    await submit(store, rows(30), { limits: { chunkItems: 10 } });
    const chunks = await lease(store);
    expect(chunks).toHaveLength(3);
    const bad = chunks[0]!.chunkId;
    const faulty: Store = Object.create(store);
    faulty.chunksCommit = async (params) => {
      if (params.commits.some((c) => c.chunkId === bad)) throw new Error('injected: this commit always fails');
      return store.chunksCommit(params);
    };
    const { seen, hooks } = track();
    const committer = new Committer({ store: faulty, logger, ...hooks });
    for (const chunk of chunks) committer.enqueue(commitFor(chunk, () => 'succeeded'));
    const deadline = Date.now() + 5_000;
    while (seen.committed.length < 2 && Date.now() < deadline) await sleep(20);
    expect(seen.committed.sort()).toEqual(chunks.slice(1).map((c) => `${c.chunkId}/${c.leaseNo}/done`).sort());
    expect(committer.abandon()).toBe(1);
    await committer.drain();
  });

  it('still reports a commit that lands after the committer was abandoned', async () => {
    store = await freshStore(kind);
    const batch = await submit(store, rows(3));
    const [chunk] = await lease(store);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: Store = Object.create(store);
    slow.chunksCommit = async (params) => {
      await gate;
      return store.chunksCommit(params);
    };
    const { seen, hooks } = track();
    const committer = new Committer({ store: slow, logger, ...hooks });
    committer.enqueue(commitFor(chunk!, () => 'succeeded'));
    await sleep(20);
    expect(committer.abandon()).toBe(1);
    release();
    await committer.drain();
    expect(seen.committed).toEqual([`${chunk!.chunkId}/${chunk!.leaseNo}/done`]);
    expect(seen.finished).toBe(1);
    expect((await store.batchGet({ id: batch.id })).status).toBe('completed');
  });

  it('ends quietly when a commit in flight fails after the committer was abandoned', async () => {
    store = await freshStore(kind);
    await submit(store, rows(3));
    const [chunk] = await lease(store);
    let fail!: () => void;
    const gate = new Promise<void>((resolve) => (fail = resolve));
    let calls = 0;
    const closing: Store = Object.create(store);
    closing.chunksCommit = async () => {
      calls++;
      await gate;
      throw new Error('injected: the store was closed under the commit');
    };
    const warnings: string[] = [];
    const watched = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
    const committer = new Committer({ store: closing, logger: watched, ...track().hooks });
    committer.enqueue(commitFor(chunk!, () => 'succeeded'));
    await sleep(20);
    expect(committer.abandon()).toBe(1);
    fail();
    await committer.drain();
    // No "retrying" warning for a commit nobody will retry, and no second try.
    expect(calls).toBe(1);
    expect(warnings).toEqual([]);
  });
});
