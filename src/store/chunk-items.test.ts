// Pins how items are read out of chunk rows, and that paged listings equal a brute-force sort of every item.
import { describe, expect, it } from 'vitest';
import type { ItemStateEntry } from '../core/item-state.js';
import { ITEM_STATUSES, type ItemStatus } from '../core/statuses.js';
import type { Item, ItemError } from '../core/types.js';
import { chunkItems, countChunkItems, listItemsPaged, selectItems, type ChunkCursor } from './chunk-items.js';
import type { ChunkRow } from './store.js';
import { seededRandom } from '../core/random.js';

const BATCH = '0190f3a2-7b1c-7d2e-8f00-123456789abc';
const boom: ItemError = { kind: 'transient', message: 'boom' };
const lost: ItemError = { kind: 'lease_lost', message: 'worker died' };

/** A contiguous pending chunk of `n` items from `seq0`, payload `{ seq }`; override anything. */
function chunk(overrides: Partial<ChunkRow> & { id: number }): ChunkRow {
  const seq0 = overrides.seqs ? null : (overrides.seq0 ?? 0);
  const n = overrides.n ?? overrides.seqs?.length ?? 1;
  const seqs = overrides.seqs ?? null;
  return {
    batchId: BATCH,
    seq0,
    seqs,
    skip: 0,
    n,
    status: 'pending',
    attempt: 0,
    payloads: Array.from({ length: n }, (_, i) => ({ seq: seqs ? seqs[i] : seq0! + i })),
    state: null,
    error: null,
    ...overrides,
  };
}

const seqsOf = (items: Item[]) => items.map((item) => item.seq);

describe('chunkItems', () => {
  it('numbers contiguous slots from seq0 and drops split-off slots before skip', () => {
    const items = chunkItems(chunk({ id: 1, seq0: 10, n: 5, skip: 2 }));
    expect(seqsOf(items)).toEqual([12, 13, 14]);
    expect(items.map((item) => item.payload)).toEqual([{ seq: 12 }, { seq: 13 }, { seq: 14 }]);
    expect(items.every((item) => item.batchId === BATCH)).toBe(true);
  });

  it('takes explicit seqs in slot order when the chunk has them, even with a seq0', () => {
    const c = chunk({ id: 1, seqs: [7, 3, 9], skip: 1 });
    expect(seqsOf(chunkItems({ ...c, seq0: 100 }))).toEqual([3, 9]);
  });

  it('excludes moved entries', () => {
    const state: (ItemStateEntry | null)[] = [null, { s: 'moved', a: 1 }, { s: 'succeeded', a: 1 }, { s: 'moved', a: 2 }];
    expect(seqsOf(chunkItems(chunk({ id: 1, n: 4, state, status: 'done' })))).toEqual([0, 2]);
  });

  it('shows unrecorded items as pending in a pending chunk and running in a leased one', () => {
    expect(chunkItems(chunk({ id: 1, n: 2 })).map((i) => i.status)).toEqual(['pending', 'pending']);
    expect(chunkItems(chunk({ id: 1, n: 2, status: 'leased' })).map((i) => i.status)).toEqual(['running', 'running']);
  });

  it('keeps results of succeeded entries, falsy ones included, and errors of failed ones', () => {
    const state: ItemStateEntry[] = [
      { s: 'succeeded', a: 1, r: { ok: true } },
      { s: 'succeeded', a: 1, r: 0 },
      { s: 'succeeded', a: 2 },
      { s: 'failed', a: 3, e: boom },
      { s: 'cancelled', a: 1 },
    ];
    const items = chunkItems(chunk({ id: 1, n: 5, state, status: 'done' }));
    expect(items.map(({ status, result, error }) => ({ status, result, error }))).toEqual([
      { status: 'succeeded', result: { ok: true }, error: null },
      { status: 'succeeded', result: 0, error: null },
      { status: 'succeeded', result: null, error: null },
      { status: 'failed', result: null, error: boom },
      { status: 'cancelled', result: null, error: null },
    ]);
  });

  it('gives unrecorded items of a cancelled chunk its status, keeping recorded ones', () => {
    const state = [{ s: 'succeeded', a: 1, r: 'x' }, null, null] as (ItemStateEntry | null)[];
    const items = chunkItems(chunk({ id: 1, n: 3, state, status: 'cancelled', attempt: 1 }));
    expect(items.map(({ status, result, error }) => ({ status, result, error }))).toEqual([
      { status: 'succeeded', result: 'x', error: null },
      { status: 'cancelled', result: null, error: null },
      { status: 'cancelled', result: null, error: null },
    ]);
  });

  it('gives unrecorded items of a failed chunk its status and error; recorded ones keep their own', () => {
    const state: (ItemStateEntry | null)[] = [
      { s: 'failed', a: 1, e: boom },
      null,
      { s: 'succeeded', a: 2, r: 1 },
      { s: 'cancelled', a: 2 },
      { s: 'moved', a: 1 },
      null,
    ];
    const items = chunkItems(chunk({ id: 1, n: 6, state, status: 'failed', attempt: 3, error: lost }));
    expect(items.map(({ seq, status, error }) => ({ seq, status, error }))).toEqual([
      { seq: 0, status: 'failed', error: boom },
      { seq: 1, status: 'failed', error: lost },
      { seq: 2, status: 'succeeded', error: null },
      { seq: 3, status: 'cancelled', error: null },
      { seq: 5, status: 'failed', error: lost },
    ]);
  });

  it('takes attempts from the entry, or from the chunk when unrecorded', () => {
    const state: (ItemStateEntry | null)[] = [{ s: 'succeeded', a: 1 }, null, { s: 'failed', a: 4, e: boom }];
    const items = chunkItems(chunk({ id: 1, n: 3, state, status: 'leased', attempt: 2 }));
    expect(items.map((i) => i.attempts)).toEqual([1, 2, 4]);
  });

  it('treats a short state array as unrecorded beyond its end', () => {
    const items = chunkItems(chunk({ id: 1, n: 3, state: [{ s: 'succeeded', a: 1 }], status: 'leased', attempt: 1 }));
    expect(items.map((i) => i.status)).toEqual(['succeeded', 'running', 'running']);
  });
});

describe('countChunkItems', () => {
  it('counts by status from contents, skipping split-off and moved slots', () => {
    const state: (ItemStateEntry | null)[] = [
      { s: 'succeeded', a: 1 }, // split off (skip 1): not counted
      { s: 'succeeded', a: 1 },
      { s: 'failed', a: 1, e: boom },
      { s: 'moved', a: 1 },
      null,
      null,
    ];
    const { payloads: _, ...row } = chunk({ id: 1, n: 6, skip: 1, state, status: 'failed', error: lost });
    expect(countChunkItems(row)).toEqual({ pending: 0, running: 0, succeeded: 1, failed: 3, cancelled: 0 });
  });

  it('agrees with chunkItems on random chunks', () => {
    const random = seededRandom(7);
    for (let k = 0; k < 200; k++) {
      const c = randomOutcomes(chunk({ id: k, seq0: 0, n: 1 + Math.floor(random() * 20) }), random);
      c.skip = Math.floor(random() * (c.n + 1));
      const expected = Object.fromEntries(ITEM_STATUSES.map((s) => [s, chunkItems(c).filter((i) => i.status === s).length]));
      expect(countChunkItems(c)).toEqual(expected);
    }
  });
});

describe('selectItems', () => {
  const chunks = [
    chunk({ id: 1, seq0: 5, n: 3, status: 'leased' }),
    chunk({ id: 2, seq0: 0, n: 5, state: [null, null, { s: 'moved', a: 1 }, null, null] }),
    chunk({ id: 3, seqs: [2], status: 'done', state: [{ s: 'succeeded', a: 2 }] }),
  ];

  it('sorts items of all chunks by seq', () => {
    expect(seqsOf(selectItems(chunks, { limit: 100 }))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('keeps only seqs after `after`, of `status`, at most `limit`', () => {
    expect(seqsOf(selectItems(chunks, { after: 2, limit: 100 }))).toEqual([3, 4, 5, 6, 7]);
    expect(seqsOf(selectItems(chunks, { after: 2, limit: 3 }))).toEqual([3, 4, 5]);
    expect(seqsOf(selectItems(chunks, { status: 'running', limit: 2 }))).toEqual([5, 6]);
    expect(seqsOf(selectItems(chunks, { status: 'pending', after: 1, limit: 100 }))).toEqual([3, 4]);
    expect(seqsOf(selectItems(chunks, { status: 'succeeded', limit: 100 }))).toEqual([2]);
    expect(selectItems(chunks, { limit: 0 })).toEqual([]);
  });
});

/** Fetchers that answer like the stores' ITEMS_SCATTERED_CHUNKS / ITEMS_CONTIGUOUS_CHUNKS statements. */
function fakeStore(chunks: ChunkRow[], params: { status?: ItemStatus; after?: number }, hint: 'exact' | 'none' = 'exact') {
  const holders = new Set(chunks.filter((c) => chunkItems(c).some((i) => i.status === params.status)));
  const mayHold = (c: ChunkRow) => !params.status || hint === 'none' || holders.has(c);
  const after = params.after ?? -1;
  const calls = { scattered: 0, pages: 0, scatteredChunks: 0 };
  return {
    calls,
    fetchScattered: async (cursor: ChunkCursor, pageSize: number) => {
      calls.scattered++;
      const first = (c: ChunkRow) => Math.min(...c.seqs!);
      return chunks
        .filter((c) => c.seqs !== null && mayHold(c) && Math.max(...c.seqs) > after)
        .filter((c) => first(c) > cursor.seq0 || (first(c) === cursor.seq0 && c.id > cursor.id))
        .sort((a, b) => first(a) - first(b) || a.id - b.id)
        .slice(0, pageSize)
        .map((c) => (calls.scatteredChunks++, c));
    },
    fetchPage: async (cursor: ChunkCursor, pageSize: number) => {
      calls.pages++;
      return chunks
        .filter((c) => c.seqs === null && mayHold(c) && c.seq0! + c.n > after)
        .filter((c) => c.seq0! > cursor.seq0 || (c.seq0 === cursor.seq0 && c.id > cursor.id))
        .sort((a, b) => a.seq0! - b.seq0! || a.id - b.id)
        .slice(0, pageSize);
    },
  };
}

function bruteForce(chunks: ChunkRow[], params: { status?: ItemStatus; after?: number; limit: number }): Item[] {
  return chunks
    .flatMap(chunkItems)
    .filter((i) => (params.after === undefined || i.seq > params.after) && (!params.status || i.status === params.status))
    .sort((a, b) => a.seq - b.seq)
    .slice(0, params.limit);
}

async function list(chunks: ChunkRow[], params: { status?: ItemStatus; after?: number; limit: number }, hint: 'exact' | 'none' = 'exact') {
  const fake = fakeStore(chunks, params, hint);
  const items = await listItemsPaged(params, fake.fetchScattered, fake.fetchPage);
  return { items, calls: fake.calls };
}

describe('listItemsPaged', () => {
  it('lists a plain batch in seq order, reading only the pages it needs', async () => {
    const chunks = Array.from({ length: 1_000 }, (_, k) => chunk({ id: k + 1, seq0: k * 3, n: 3 }));
    const { items, calls } = await list(chunks, { limit: 10 });
    expect(seqsOf(items)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(calls.pages).toBe(1);
    expect(calls.scattered).toBe(1);
    const all = await list(chunks, { limit: 5_000 });
    expect(seqsOf(all.items)).toEqual(Array.from({ length: 3_000 }, (_, i) => i));
  });

  it('does not settle items of a page-ending chunk whose split-off head shares its seq0', async () => {
    // 31 one-item chunks (seqs 0-30), then origin 32 at seq0 31 whose first two slots were split
    // into chunk 33 (also seq0 31): page one ends with the origin, holding seqs 33-34, while
    // seqs 31-32 sit in chunk 33 on the next page.
    const chunks = [
      ...Array.from({ length: 31 }, (_, k) => chunk({ id: k + 1, seq0: k })),
      chunk({ id: 32, seq0: 31, n: 4, skip: 2 }),
      chunk({ id: 33, seq0: 31, n: 2 }),
    ];
    const { items, calls } = await list(chunks, { limit: 32 });
    expect(seqsOf(items)).toEqual(Array.from({ length: 32 }, (_, i) => i));
    expect(calls.pages).toBe(2);
    expect(seqsOf((await list(chunks, { limit: 33 })).items).at(-1)).toBe(32);
    expect(seqsOf((await list(chunks, { after: 30, limit: 3 })).items)).toEqual([31, 32, 33]);
  });

  it('merges scattered retry chunks holding low seqs into their place', async () => {
    const moved: ItemStateEntry = { s: 'moved', a: 1 };
    const chunks = [
      ...Array.from({ length: 100 }, (_, k) =>
        chunk({ id: k + 1, seq0: k * 10, n: 10, status: 'done', state: Array.from({ length: 10 }, () => ({ s: 'succeeded', a: 1 }) as ItemStateEntry) }),
      ),
      chunk({ id: 101, seqs: [3, 2], attempt: 1 }),
    ];
    chunks[0]!.state![2] = moved;
    chunks[0]!.state![3] = moved;
    const { items } = await list(chunks, { limit: 5 });
    expect(items.map(({ seq, status, attempts }) => ({ seq, status, attempts }))).toEqual([
      { seq: 0, status: 'succeeded', attempts: 1 },
      { seq: 1, status: 'succeeded', attempts: 1 },
      { seq: 2, status: 'pending', attempts: 1 },
      { seq: 3, status: 'pending', attempts: 1 },
      { seq: 4, status: 'succeeded', attempts: 1 },
    ]);
    expect(seqsOf((await list(chunks, { status: 'pending', limit: 10 })).items)).toEqual([2, 3]);
  });

  it('reads a page of retry chunks at a time, however many a batch has', async () => {
    // 10,000 items in 1,000 chunks; every item retried once, in 500 retry chunks of 20 items
    // spread over the whole batch (as failures in one commit window are).
    const moved: ItemStateEntry = { s: 'moved', a: 1 };
    const chunks = Array.from({ length: 1_000 }, (_, k) => chunk({ id: k + 1, seq0: k * 10, n: 10, status: 'done', state: Array.from({ length: 10 }, () => moved) }));
    for (let r = 0; r < 500; r++) chunks.push(chunk({ id: 1_001 + r, seqs: Array.from({ length: 20 }, (_, i) => r + i * 500), attempt: 1 }));
    const { items, calls } = await list(chunks, { limit: 10 });
    expect(seqsOf(items)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(calls.scatteredChunks).toBeLessThanOrEqual(32);
    const later = await list(chunks, { after: 5_000, limit: 10 });
    expect(seqsOf(later.items)).toEqual([5_001, 5_002, 5_003, 5_004, 5_005, 5_006, 5_007, 5_008, 5_009, 5_010]);
  });

  it('equals a brute-force sort of all items, for random batches, filters and limits', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const random = seededRandom(seed);
      const chunks = randomBatch(random, 200 + Math.floor(random() * 600));
      const total = chunks.flatMap(chunkItems).length;
      expect(seqsOf(bruteForce(chunks, { limit: Infinity })), `seed ${seed}: each item once`).toEqual(
        Array.from({ length: total }, (_, i) => i),
      );
      for (const status of [undefined, ...ITEM_STATUSES]) {
        for (const after of [undefined, Math.floor(random() * total)]) {
          for (const limit of [1, 7, 40, 100_000]) {
            for (const hint of ['exact', 'none'] as const) {
              const params = { status, after, limit };
              const { items } = await list(chunks, params, hint);
              expect(items, `seed ${seed} ${JSON.stringify(params)} hint ${hint}`).toEqual(bruteForce(chunks, params));
            }
          }
        }
      }
    }
  });
});

/**
 * A batch after some history: contiguous chunks from submit, retry chunks (explicit seqs, in
 * any order) for moved items, split-off heads (sharing a seq0 with their origin when split
 * first), and outcomes of every kind. Every seq in [0, total) is a live item exactly once.
 */
function randomBatch(random: () => number, total: number): ChunkRow[] {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!;
  let nextId = 1;
  const chunks: ChunkRow[] = [];
  for (let seq0 = 0; seq0 < total; ) {
    const n = Math.min(total - seq0, 1 + Math.floor(random() * 12));
    chunks.push(chunk({ id: nextId++, seq0, n }));
    seq0 += n;
  }
  // Retries: move some slots of some chunks into new chunks with explicit seqs.
  for (let r = 0; r < 8; r++) {
    const seqs: number[] = [];
    const payloads: unknown[] = [];
    for (const c of chunks.filter(() => random() < 0.1)) {
      for (let i = c.skip; i < c.n; i++) {
        if ((c.state?.[i] ?? null) !== null || random() < 0.5) continue;
        (c.state ??= Array.from({ length: c.n }, () => null))[i] = { s: 'moved', a: 1 + Math.floor(random() * 3) };
        seqs.push(c.seqs ? c.seqs[i]! : c.seq0! + i);
        payloads.push(c.payloads[i]);
      }
    }
    if (seqs.length === 0) continue;
    if (random() < 0.5) seqs.reverse();
    chunks.push(chunk({ id: nextId++, seqs, payloads: seqs.map((seq) => ({ seq })), attempt: 1 }));
  }
  // Splits: hand the first k live slots of an untouched chunk to a new chunk, as a lease does.
  for (let s = 0; s < 60; s++) {
    const c = pick(chunks.filter((x) => x.state === null && x.n - x.skip >= 2));
    const k = 1 + Math.floor(random() * (c.n - c.skip - 1));
    chunks.push(
      chunk({
        id: nextId++,
        seq0: c.seq0 === null ? null : c.seq0 + c.skip,
        seqs: c.seqs ? c.seqs.slice(c.skip, c.skip + k) : null,
        n: k,
        payloads: c.payloads.slice(c.skip, c.skip + k),
        attempt: c.attempt,
      }),
    );
    c.skip += k;
  }
  return chunks.map((c) => randomOutcomes(c, random));
}

/** Gives a chunk a random status and records random outcomes in its unrecorded slots. */
function randomOutcomes(c: ChunkRow, random: () => number): ChunkRow {
  const status = (['pending', 'leased', 'done', 'cancelled', 'failed'] as const)[Math.floor(random() * 5)]!;
  const state = c.state ? [...c.state] : Array.from({ length: c.n }, () => null as ItemStateEntry | null);
  for (let i = 0; i < c.n; i++) {
    if (state[i] !== null && state[i] !== undefined) continue;
    const roll = random();
    const a = 1 + Math.floor(random() * 3);
    if (status === 'done' || roll < 0.25) state[i] = { s: 'succeeded', a, r: { i } };
    else if (roll < 0.4) state[i] = { s: 'failed', a, e: boom };
    else if (roll < 0.5) state[i] = { s: 'cancelled', a };
  }
  return {
    ...c,
    status,
    attempt: status === 'pending' ? 0 : 1 + Math.floor(random() * 3),
    state: state.every((e) => e === null) && random() < 0.5 ? null : state,
    error: status === 'failed' ? lost : null,
  };
}

