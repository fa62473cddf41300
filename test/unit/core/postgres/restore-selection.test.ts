/** A restore's `--table` names, read as psql reads names, and the pg_restore runs that select them. */
import {
  pgRestoreRuns,
  readTableName,
  selectsRelation,
  writtenTableName,
} from '../../../../core/postgres/restore-selection';

test('a name alone, or schema.name; double quotes keep dots and quotes; case and patterns as written', () => {
  expect(readTableName('orders')).toEqual({ name: 'orders' });
  expect(readTableName('public.orders')).toEqual({ schema: 'public', name: 'orders' });
  expect(readTableName('"a.b"')).toEqual({ name: 'a.b' });
  expect(readTableName('"My Schema".Orders')).toEqual({ schema: 'My Schema', name: 'Orders' });
  expect(readTableName('"say ""hi""".t')).toEqual({ schema: 'say "hi"', name: 't' });
  expect(readTableName('ab"c.d"e')).toEqual({ name: 'abc.de' });
  expect(readTableName('public.*')).toEqual({ schema: 'public', name: '*' });
  expect(readTableName('"a.b"."c.d"')).toEqual({ schema: 'a.b', name: 'c.d' });
});

test('what is no name: an open quote, more than one dot outside quotes, an empty part', () => {
  expect(readTableName('"orders')).toEqual({ problem: 'a double quote is not closed' });
  expect(readTableName('a.b.c')).toMatchObject({
    problem: expect.stringMatching(/more than one dot.*"a\.b\.c"$/),
  });
  for (const empty of ['.orders', 'public.', '""', '"".t']) {
    expect(readTableName(empty)).toEqual({ problem: 'a schema or table name in it is empty' });
  }
});

test('written back: quoted where a part has a dot or a quote; read again, the same', () => {
  for (const table of [
    { name: 'orders' },
    { schema: 'public', name: 'orders' },
    { name: 'a.b' },
    { schema: 'say "hi"', name: 'x.y' },
    { schema: 'My Schema', name: 'Orders' },
  ]) {
    expect(readTableName(writtenTableName(table))).toEqual(table);
  }
  expect(writtenTableName({ schema: 'public', name: 'a.b' })).toBe('public."a.b"');
});

test('selects a relation by its name in any (or a --schema) schema, or by its schema and name', () => {
  const sel = (schemas: string[], tables: string[]) => ({ schemas, tables });
  expect(selectsRelation(sel([], []), 'sales', 'orders')).toBe(true);
  expect(selectsRelation(sel(['sales'], []), 'public', 'orders')).toBe(false);
  expect(selectsRelation(sel([], ['orders']), 'sales', 'orders')).toBe(true);
  expect(selectsRelation(sel([], ['sales.orders']), 'sales', 'orders')).toBe(true);
  expect(selectsRelation(sel([], ['sales.orders']), 'public', 'orders')).toBe(false);
  expect(selectsRelation(sel(['public'], ['sales.orders']), 'sales', 'orders')).toBe(false);
  expect(selectsRelation(sel([], ['Sales.orders']), 'sales', 'orders')).toBe(false);
  expect(selectsRelation(sel([], ['a.b']), 'public', 'a.b')).toBe(false);
  expect(selectsRelation(sel([], ['"a.b"']), 'public', 'a.b')).toBe(true);
  expect(selectsRelation(sel([], ['"orders']), 'public', 'orders')).toBe(false);
});

test("pg_restore's runs: the unqualified names with the --schemas, then each schema's qualified names", () => {
  expect(pgRestoreRuns({ schemas: ['s'], tables: [] })).toEqual([{ schemas: ['s'], tables: [] }]);
  expect(pgRestoreRuns({ schemas: [], tables: ['orders', '"a.b"'] })).toEqual([
    { schemas: [], tables: ['orders', 'a.b'] },
  ]);
  expect(pgRestoreRuns({ schemas: [], tables: ['a.orders', 'b.customers', 'a.items', 'plain'] })).toEqual([
    { schemas: [], tables: ['plain'] },
    { schemas: ['a'], tables: ['orders', 'items'] },
    { schemas: ['b'], tables: ['customers'] },
  ]);
  // A qualified name outside the --schema schemas selects nothing (the preflight refuses it).
  expect(pgRestoreRuns({ schemas: ['a', 'x'], tables: ['a.orders', 'b.customers', 'plain'] })).toEqual([
    { schemas: ['a', 'x'], tables: ['plain'] },
    { schemas: ['a'], tables: ['orders'] },
  ]);
});
