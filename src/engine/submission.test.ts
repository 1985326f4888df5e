// Pins how submissions become batches and chunks: validation, packing, per-batch seqs, errors and digests.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InputError } from '../core/errors.js';
import type { NewBatch, NewChunk } from '../store/store.js';
import { checkItemSource, DEFAULT_LIMITS, MAX_LABELS, newBatch, splitSizes, Submission, type ItemSource, type SubmissionLimits, type SubmitOptions } from './submission.js';

const spec = (options: SubmitOptions = {}, type = 'email.send') => newBatch(type, options, 'default');
const limits = (overrides: Partial<SubmissionLimits>): SubmissionLimits => ({ ...DEFAULT_LIMITS, ...overrides });

async function collect(submission: Submission, source: ItemSource): Promise<NewChunk[]> {
  const chunks: NewChunk[] = [];
  for await (const chunk of submission.chunks(source)) chunks.push(chunk);
  return chunks;
}

/** Streams `items` through a fresh submission; returns chunks and digests. */
async function run(items: ItemSource, options: { batches?: NewBatch[]; sizes?: number[] | null; limits?: Partial<SubmissionLimits> } = {}) {
  const submission = new Submission(options.batches ?? [spec()], options.sizes ?? null, limits(options.limits ?? {}));
  const chunks = await collect(submission, items);
  return { chunks, digests: submission.digests() };
}

/** The InputError `promise` rejects with (fails the test when it resolves or rejects otherwise). */
async function inputError(promise: Promise<unknown>): Promise<InputError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(InputError);
  return error as InputError;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));
const shape = (chunks: NewChunk[]) => chunks.map(({ batchIndex, seq0, n }) => [batchIndex, seq0, n]);

describe('Submission.chunks', () => {
  it('packs items into chunks of at most chunkItems, with payloads as one JSON array', async () => {
    const { chunks } = await run(range(7), { limits: { chunkItems: 3 } });
    expect(shape(chunks)).toEqual([
      [0, 0, 3],
      [0, 3, 3],
      [0, 6, 1],
    ]);
    expect(chunks.flatMap((c) => JSON.parse(c.payloads))).toEqual(range(7));
    expect(chunks.every((c) => (JSON.parse(c.payloads) as unknown[]).length === c.n)).toBe(true);
  });

  it('closes a chunk once its payloads reach chunkBytes', async () => {
    const items = ['aaaaaaaa', 'bbbbbbbb', 'cccccccc', 'dddddddd', 'eeeeeeee']; // 10 bytes each as JSON
    expect(shape((await run(items, { limits: { chunkBytes: 20 } })).chunks)).toEqual([
      [0, 0, 2],
      [0, 2, 2],
      [0, 4, 1],
    ]);
    expect(shape((await run(items, { limits: { chunkBytes: 21 } })).chunks)).toEqual([
      [0, 0, 3],
      [0, 3, 2],
    ]);
  });

  // BUG (minor): below maxPayloadBytes/3 characters an item's size is taken as its UTF-16 length,
  // so chunkBytes counts characters, not bytes: multi-byte text packs up to 3x chunkBytes per chunk.
  it('counts chunkBytes in UTF-8 bytes for multi-byte payloads', async () => {
    const items = Array.from({ length: 6 }, () => '€€€€€€€€'); // 10 characters, 26 bytes as JSON
    const { chunks } = await run(items, { limits: { chunkBytes: 50 } });
    expect(chunks.map((c) => c.n)).toEqual([2, 2, 2]);
  });

  it('accepts any JSON value as an item, from sync and async sources', async () => {
    const values = [null, 0, 'x', true, [1, [2]], { a: { b: null } }];
    expect((await run(values)).chunks.flatMap((c) => JSON.parse(c.payloads))).toEqual(values);
    async function* gen() {
      yield* values;
    }
    expect((await run(gen())).chunks.flatMap((c) => JSON.parse(c.payloads))).toEqual(values);
  });

  it('restarts seqs at 0 for each batch given by sizes, never mixing batches in a chunk', async () => {
    const batches = [spec(), spec(), spec()];
    const { chunks, digests } = await run(range(9), { batches, sizes: [4, 2, 3], limits: { chunkItems: 3 } });
    expect(shape(chunks)).toEqual([
      [0, 0, 3],
      [0, 3, 1],
      [1, 0, 2],
      [2, 0, 3],
    ]);
    expect(chunks.filter((c) => c.batchIndex === 1).flatMap((c) => JSON.parse(c.payloads))).toEqual([{ i: 4 }, { i: 5 }]);
    expect(digests).toHaveLength(3);
  });

  it('yields both chunks, in order, when an item that starts a batch also fills its chunk alone', async () => {
    const { chunks } = await run([1, 2, 'x'.repeat(20), 4], { batches: [spec(), spec()], sizes: [2, 2], limits: { chunkItems: 3, chunkBytes: 10 } });
    expect(chunks.map(({ batchIndex, seq0, payloads }) => [batchIndex, seq0, payloads])).toEqual([
      [0, 0, '[1,2]'],
      [1, 0, `["${'x'.repeat(20)}"]`],
      [1, 1, '[4]'],
    ]);
  });

  it('rejects more items than sizes, naming the first extra item', async () => {
    const error = await inputError(run(range(5), { batches: [spec(), spec()], sizes: [2, 2] }));
    expect(error.where).toBe('item 5 (seq 4)');
    expect(error.message).toMatch(/^item 5 \(seq 4\): more items than the 4 counted/);
  });

  it('rejects fewer items than sizes', async () => {
    const error = await inputError(run(range(3), { batches: [spec(), spec()], sizes: [2, 2] }));
    expect(error.message).toMatch(/fewer items than the 4 counted/);
    const short = await inputError(run(range(2), { batches: [spec(), spec()], sizes: [2, 2] }));
    expect(short.message).toMatch(/fewer items/);
  });

  it('rejects an empty submission', async () => {
    expect((await inputError(run([]))).code).toBe('empty_submission');
    expect((await inputError(run([], { batches: [spec(), spec()], sizes: [1, 1] }))).code).toBe('empty_submission');
  });

  it.each([
    ['a bigint', 10n],
    ['undefined', undefined],
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['a bigint inside an object', { amount: 1n }],
  ])('rejects %s with code invalid_item and where it was', async (_label, bad) => {
    const error = await inputError(run([{ ok: 1 }, { ok: 2 }, bad]));
    expect(error.code).toBe('invalid_item');
    expect(error.where).toBe('item 3 (seq 2)');
    expect(error.message.startsWith('item 3 (seq 2): ')).toBe(true);
  });

  it.each([
    ['NaN', { amount: NaN }, 'item 3 (seq 2): item has NaN at .amount, which JSON stores as null'],
    ['Infinity deep inside', { legs: [{ rate: 1 }, { rate: -Infinity }] }, 'item 3 (seq 2): item has -Infinity at .legs[1].rate, which JSON stores as null'],
    ['a function property', { ok: 3, f: () => 1 }, 'item 3 (seq 2): item has a function at .f, which JSON cannot hold'],
    ['a Map', { tags: new Map([['a', 1]]) }, 'item 3 (seq 2): item has a Map at .tags, which JSON stores as {}'],
    ['undefined in an array', { xs: [1, undefined] }, 'item 3 (seq 2): item has undefined at .xs[1], which JSON stores as null'],
    ['an Error', { e: new Error('x') }, 'item 3 (seq 2): item has an Error at .e, which JSON stores as {}'],
    ['a RegExp', { r: /x/ }, 'item 3 (seq 2): item has a RegExp at .r, which JSON stores as {}'],
    ['binary data', { b: new Uint8Array([1, 2]) }, 'item 3 (seq 2): item has a typed array (Uint8Array) at .b, which JSON stores as an object of indexes'],
    ['an instance without own properties', { p: new (class Point { #x = 1; get x() { return this.#x; } })() }, 'item 3 (seq 2): item has a Point with no own enumerable properties at .p, which JSON stores as {}'],
    ['a symbol-keyed property', { n: 1, [Symbol('k')]: 2 }, 'item 3 (seq 2): item has a symbol-keyed property at the top, which JSON leaves out'],
  ])('rejects an item JSON would store changed (%s), naming where', async (_label, bad, message) => {
    const error = await inputError(run([{ ok: 1 }, { ok: 2 }, bad]));
    expect(error.code).toBe('invalid_item');
    expect(error.message).toBe(`${message}; send it as a value JSON keeps (a string, a number or null)`);
  });

  it('keeps what JSON keeps as it is read back: undefined properties left out, Dates as their text', async () => {
    const { chunks } = await run([{ a: 1, gone: undefined, at: new Date('2026-12-03T00:00:00Z') }]);
    expect(JSON.parse(chunks[0]!.payloads)).toEqual([{ a: 1, at: '2026-12-03T00:00:00.000Z' }]);
  });

  it('takes instances whose own properties are their data, boxed primitives, and objects without a prototype', async () => {
    class Row {
      constructor(readonly id: number, readonly amount: string) {}
    }
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { k: 'v' });
    const { chunks } = await run([new Row(1, '2.50'), { s: new String('x'), n: new Number(2) }, bare]);
    expect(JSON.parse(chunks[0]!.payloads)).toEqual([{ id: 1, amount: '2.50' }, { s: 'x', n: 2 }, { k: 'v' }]);
  });

  it.each([
    ['a string', 'abc', 'items is a string; pass an array (or iterable) of items, or submitFile() for a file'],
    ['a number', 42, 'items is a number; pass an array, an iterable or an async iterable of items'],
    ['null', null, 'items is null; pass an array, an iterable or an async iterable of items'],
    ['a plain object', { a: 1 }, 'items is an object that is not iterable; pass an array, an iterable or an async iterable of items'],
  ])('refuses items that are %s, saying what they are', (_label, items, message) => {
    expect(() => checkItemSource(items)).toThrow(expect.objectContaining({ code: 'invalid_items', message }));
  });

  it('rejects a circular item', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect((await inputError(run([circular]))).code).toBe('invalid_item');
  });

  it("reports the source's own position when it has one", async () => {
    let line = 1;
    const source = Object.assign(
      (function* () {
        for (const item of [{ a: 1 }, { a: 2 }, undefined]) {
          line++;
          yield item;
        }
      })(),
      { where: () => `rows.csv:${line}` },
    );
    const error = await inputError(run(source));
    expect(error.where).toBe('rows.csv:4');
    expect(error.message).toMatch(/^rows\.csv:4: /);
  });

  it('rejects a payload over maxPayloadBytes, with its byte count', async () => {
    const error = await inputError(run([{ ok: true }, 'x'.repeat(20)], { limits: { maxPayloadBytes: 12 } }));
    expect(error.code).toBe('payload_too_large');
    expect(error.where).toBe('item 2 (seq 1)');
    expect(error.message).toContain('22 bytes');
    expect(error.message).toContain('limit is 12');
  });

  it('measures multi-byte payloads in UTF-8 bytes against maxPayloadBytes', async () => {
    // '"€€€€"' is 6 characters but 14 bytes.
    const error = await inputError(run(['€€€€'], { limits: { maxPayloadBytes: 10 } }));
    expect(error.message).toContain('14 bytes');
    await expect(run(['€€€€'], { limits: { maxPayloadBytes: 14 } })).resolves.toBeDefined();
  });

  it('accepts a payload exactly at maxPayloadBytes', async () => {
    const { chunks } = await run(['x'.repeat(8)], { limits: { maxPayloadBytes: 10 } });
    expect(chunks).toHaveLength(1);
  });

  it('refuses digests() before the stream is read to its end', async () => {
    const submission = new Submission([spec()], null, limits({ chunkItems: 1 }));
    const iterator = submission.chunks(range(3));
    await iterator.next();
    expect(() => submission.digests()).toThrow();
  });
});

describe('Submission digests', () => {
  const digest = async (items: unknown[], options: SubmitOptions = {}, type = 'email.send', chunkItems = 500) =>
    (await run(items, { batches: [spec(options, type)], limits: { chunkItems } })).digests[0];

  it('are equal for identical input, however it is chunked', async () => {
    const first = await digest(range(10), { priority: 3, labels: { a: 'b' } });
    expect(await digest(range(10), { priority: 3, labels: { a: 'b' } })).toBe(first);
    expect(await digest(range(10), { priority: 3, labels: { a: 'b' } }, 'email.send', 3)).toBe(first);
    expect(first).toMatch(/^[0-9a-f]{64}$/);
  });

  it("hash the options, then each item's JSON and a newline: a digest stored by an earlier version still matches", async () => {
    const items = [{ a: 1 }, { b: 'two' }, [3]];
    const expected = createHash('sha256')
      .update(JSON.stringify(['default', 'email.send', 5, [], {}]))
      .update('{"a":1}\n{"b":"two"}\n[3]\n')
      .digest('hex');
    expect(await digest(items)).toBe(expected);
    expect(await digest(items, {}, 'email.send', 2)).toBe(expected);
  });

  it('are the same for an array, a generator, an async iterable and items that are promises', async () => {
    const items = range(1_200);
    const base = await digest(items);
    function* sync() {
      yield* items;
    }
    async function* later() {
      yield* items;
    }
    const { chunks: promised, digests } = await run(items.map((item) => Promise.resolve(item)));
    expect(await digest([...sync()])).toBe(base);
    expect((await run(sync())).digests[0]).toBe(base);
    expect((await run(later())).digests[0]).toBe(base);
    expect(digests[0]).toBe(base);
    expect(promised.map((c) => c.payloads)).toEqual((await run(items)).chunks.map((c) => c.payloads));
  });

  it('differ when any payload, the item order or the item count differs', async () => {
    const base = await digest([{ a: 1 }, { a: 2 }]);
    expect(await digest([{ a: 1 }, { a: 3 }])).not.toBe(base);
    expect(await digest([{ a: 2 }, { a: 1 }])).not.toBe(base);
    expect(await digest([{ a: 1 }, { a: 2 }, { a: 2 }])).not.toBe(base);
    expect(await digest([{ a: 1 }])).not.toBe(base);
    expect(await digest([{ a: '1' }, { a: 2 }])).not.toBe(base);
  });

  it('differ when any option differs', async () => {
    const items = range(3);
    const base = await digest(items);
    const variants: [SubmitOptions, string?][] = [
      [{}, 'other.type'],
      [{ tenant: 'acme' }],
      [{ priority: 6 }],
      [{ labels: { source: 'x' } }],
      [{ maxAttempts: 2 }],
      [{ timeoutMs: 1_000 }],
      [{ backoff: { baseMs: 10, maxMs: 100 } }],
      [{ concurrency: 4 }],
    ];
    const digests = await Promise.all(variants.map(([options, type]) => digest(items, options, type)));
    for (const d of digests) expect(d).not.toBe(base);
    expect(new Set(digests).size).toBe(variants.length);
  });

  it('are per batch: changing an item changes only its own batch', async () => {
    const batches = [spec(), spec()];
    const a = await run(range(4), { batches, sizes: [2, 2] });
    const changed = range(4);
    changed[3] = { i: 99 };
    const b = await run(changed, { batches, sizes: [2, 2] });
    expect(b.digests[0]).toBe(a.digests[0]);
    expect(b.digests[1]).not.toBe(a.digests[1]);
  });
});

describe('newBatch', () => {
  it('refuses label names with ":", which no filter could ask for, and more than MAX_LABELS labels', () => {
    expect(() => newBatch('email.send', { labels: { 'a:b': 'c' } }, 'acme')).toThrow('submit options: labels.a:b: a label name cannot contain ":" (filters are name:value)');
    const many = Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`l${i}`, 'v']));
    expect(() => newBatch('email.send', { labels: many }, 'acme')).toThrow(`at most ${MAX_LABELS} labels`);
    delete many[`l${MAX_LABELS}`];
    expect(newBatch('email.send', { labels: many }, 'acme').labels).toEqual(many);
  });

  it('applies defaults: the given tenant, priority 5, no labels, no key, no run options', () => {
    expect(newBatch('email.send', {}, 'acme')).toEqual({
      tenant: 'acme',
      type: 'email.send',
      priority: 5,
      labels: {},
      idempotencyKey: null,
      options: {},
    });
  });

  it('keeps given options, putting run options under `options`', () => {
    const batch = newBatch(
      'a:b-c_d.e',
      {
        tenant: 't1',
        priority: 0,
        idempotencyKey: 'k',
        labels: { file: 'x.csv' },
        maxAttempts: 1,
        timeoutMs: 50,
        backoff: { baseMs: 0, maxMs: 10 },
        concurrency: 2,
      },
      'default',
    );
    expect(batch).toEqual({
      tenant: 't1',
      type: 'a:b-c_d.e',
      priority: 0,
      labels: { file: 'x.csv' },
      idempotencyKey: 'k',
      options: { maxAttempts: 1, timeoutMs: 50, backoff: { baseMs: 0, maxMs: 10 }, concurrency: 2 },
    });
    expect(newBatch('t', { priority: 10 }, 'd').priority).toBe(10);
  });

  it.each(['', 'has space', 'a/b', 'émail', 'x'.repeat(201)])('rejects type name %j with code invalid_type', (type) => {
    let error: unknown;
    try {
      newBatch(type, {}, 'default');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('invalid_type');
  });

  it.each([
    ['priority -1', { priority: -1 }],
    ['priority 11', { priority: 11 }],
    ['priority 2.5', { priority: 2.5 }],
    ['maxAttempts 0', { maxAttempts: 0 }],
    ['maxAttempts 1001', { maxAttempts: 1001 }],
    ['timeoutMs 0', { timeoutMs: 0 }],
    ['negative backoff', { backoff: { baseMs: -1, maxMs: 10 } }],
    ['backoff with an unknown key', { backoff: { baseMs: 1, maxMs: 10, factor: 2 } }],
    ['concurrency 0', { concurrency: 0 }],
    ['tenant with a space', { tenant: 'a b' }],
    ['empty tenant', { tenant: '' }],
    ['empty idempotency key', { idempotencyKey: '' }],
    ['a label that is not a string', { labels: { a: 1 } }],
    ['an unknown option', { prority: 3 }],
  ])('rejects %s with code invalid_options', (_label, options) => {
    let error: unknown;
    try {
      newBatch('t', options as SubmitOptions, 'default');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).code).toBe('invalid_options');
  });
});

describe('splitSizes', () => {
  it('splits as evenly as it can, larger parts first', () => {
    expect(splitSizes(10, 3)).toEqual([4, 3, 3]);
    expect(splitSizes(9, 3)).toEqual([3, 3, 3]);
    expect(splitSizes(5, 1)).toEqual([5]);
    expect(splitSizes(3, 3)).toEqual([1, 1, 1]);
  });

  it('always sums to the count with parts differing by at most one', () => {
    for (let count = 1; count <= 60; count++) {
      for (let parts = 1; parts <= count; parts++) {
        const sizes = splitSizes(count, parts);
        expect(sizes).toHaveLength(parts);
        expect(sizes.reduce((a, b) => a + b, 0)).toBe(count);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }
    }
  });
});
