import { describe, expect, it } from 'vitest';
import { resolveDatabase } from './open.js';

describe('resolveDatabase', () => {
  it('takes the schema and pool size from a PostgreSQL URL and keeps them out of the URL', () => {
    const target = resolveDatabase('postgres://app:secret@db.internal:6432/jobs?schema=batch_ops&pool_size=25&sslmode=disable');
    expect(target).toEqual({
      kind: 'postgres',
      url: 'postgres://app:secret@db.internal:6432/jobs?sslmode=disable',
      schema: 'batch_ops',
      display: 'PostgreSQL db.internal:6432/jobs schema batch_ops',
      poolSize: 25,
    });
  });

  it('refuses a pool size that is not a whole number from 1 to 1000', () => {
    for (const bad of ['0', '1001', '2.5', 'ten', '', '0x10']) {
      expect(() => resolveDatabase(`postgres://h/db?pool_size=${bad}`), bad).toThrow(`?pool_size=${bad} in the database URL must be a whole number from 1 to 1000`);
    }
  });

  it('refuses two different schemas, in the URL or in the URL and the option', () => {
    expect(() => resolveDatabase('postgres://h/db?schema=a&schema=b')).toThrow('two schemas given in the database URL: ?schema=a and ?schema=b; give one');
    expect(() => resolveDatabase('postgres://h/db?schema=a', 'b')).toThrow(/two schemas given: \?schema=a in the database URL and b/);
    expect(resolveDatabase('postgres://h/db?schema=a&schema=a')).toMatchObject({ schema: 'a' });
  });

  it('refuses a schema for a SQLite database, which has none', () => {
    expect(() => resolveDatabase('/tmp/db.sqlite', 'ops')).toThrow('a schema (ops) was given, but "/tmp/db.sqlite" is a SQLite database, which has none');
  });

  it('reads file paths and sqlite: URLs as the embedded store', () => {
    expect(resolveDatabase('sqlite::memory:')).toEqual({ kind: 'sqlite', path: ':memory:' });
    expect(resolveDatabase('/var/lib/batchline/db.sqlite')).toEqual({ kind: 'sqlite', path: '/var/lib/batchline/db.sqlite' });
  });
});
