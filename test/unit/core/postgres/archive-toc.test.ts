/** What a restore reads from an archive's table of contents before it restores it. */
import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import {
  schemasNotCreated,
  selectedSchemaEntries,
  unselectedName,
} from '../../../../core/postgres/archive-toc';

function entry(
  dumpId: number,
  desc: string,
  namespace: string | null,
  tag: string,
  dependencies: number[] = [],
): ArchiveTocEntry {
  return {
    dumpId,
    hadDumper: false,
    tableoid: 0,
    oid: 0,
    desc,
    namespace,
    tag,
    owner: 'app',
    dependencies,
    dropped: true,
  };
}

test("a --table archive's schemas are to be created; those it creates and the built-in ones are not", () => {
  const toc = [
    entry(1, 'SCHEMA', null, 'made'),
    entry(2, 'TABLE', 'made', 'a'),
    entry(3, 'TABLE', 'app', 'orders'),
    entry(4, 'SEQUENCE', 'app', 'orders_id_seq'),
    entry(5, 'TABLE', 'public', 'keep'),
    entry(6, 'TABLE DATA', 'Other Schema', 'x'),
    entry(7, 'COMMENT', 'pg_catalog', 'EXTENSION plpgsql'),
  ];
  expect(schemasNotCreated(toc)).toEqual(['app', 'Other Schema']);
  expect(schemasNotCreated([])).toEqual([]);
});

test("a selection's schemas come with their own entries: SCHEMA, its comment, grants and security labels", () => {
  const toc = [
    entry(1, 'SCHEMA', null, 'sales'),
    entry(2, 'SCHEMA', null, 'public'),
    entry(3, 'SCHEMA', null, 'hr'),
    entry(4, 'TABLE', 'sales', 'orders', [1]),
    entry(5, 'TABLE', 'public', 'orders', [2]),
    entry(6, 'TABLE', 'hr', 'staff', [3]),
    entry(7, 'COMMENT', null, 'SCHEMA sales', [1]),
    entry(8, 'ACL', null, 'SCHEMA sales', [1]),
    entry(9, 'SECURITY LABEL', null, 'SCHEMA sales', [1]),
    entry(10, 'COMMENT', 'sales', 'TABLE orders', [4]),
    entry(11, 'ACL', null, 'SCHEMA hr', [3]),
    entry(12, 'DEFAULT ACL', 'sales', 'DEFAULT PRIVILEGES FOR TABLES', [1]),
  ];
  const sales = { schema: 'sales', ids: [1, 7, 8, 9] };
  expect(selectedSchemaEntries(toc, { schemas: ['sales'], tables: [] })).toEqual([sales]);
  expect(selectedSchemaEntries(toc, { schemas: ['sales'], tables: ['staff'] })).toEqual([sales]);
  // --table alone: the schemas of the relations of that name, wherever they are.
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['orders'] })).toEqual([
    sales,
    { schema: 'public', ids: [2] },
  ]);
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['staff'] })).toEqual([
    { schema: 'hr', ids: [3, 11] },
  ]);
  // Qualified: that table's schema alone.
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['sales.orders'] })).toEqual([sales]);
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['hr.staff', 'public.orders'] })).toEqual([
    { schema: 'public', ids: [2] },
    { schema: 'hr', ids: [3, 11] },
  ]);
  // A schema the archive does not create (a --table backup's) or does not hold: none.
  expect(selectedSchemaEntries(toc, { schemas: ['app'], tables: [] })).toEqual([]);
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['missing'] })).toEqual([]);
});

describe("a selection's names each select something of the archive, as pg_restore's -n and -t match them", () => {
  const toc = [
    entry(1, 'SCHEMA', null, 'sales'),
    entry(2, 'SCHEMA', null, 'public'),
    entry(3, 'SCHEMA', null, 'empty'),
    entry(4, 'TABLE', 'sales', 'orders', [1]),
    entry(5, 'TABLE', 'public', 'orders', [2]),
    entry(6, 'TABLE', 'sales', 'items', [1]),
    entry(7, 'VIEW', 'public', 'order_totals', [5]),
    entry(8, 'MATERIALIZED VIEW', 'public', 'daily', [5]),
    entry(9, 'SEQUENCE', 'public', 'tickets', [2]),
    entry(10, 'FOREIGN TABLE', 'public', 'remote', [2]),
    entry(11, 'FUNCTION', 'public', 'total()', [2]),
    entry(12, 'INDEX', 'sales', 'orders_label_idx', [4]),
    entry(13, 'TYPE', 'hr', 'grade'),
    entry(14, 'COMMENT', 'pg_catalog', 'EXTENSION plpgsql'),
  ];
  const backup = { id: '20261204T000000Z-abcdef', store: 'file:///backups' };
  const unselected = (schemas: string[], tables: string[]) =>
    unselectedName(toc, { schemas, tables }, backup);

  test('what pg_restore would restore passes: schemas held, with or without objects; relations of every kind', () => {
    expect(unselected([], [])).toBeUndefined();
    // hr has no SCHEMA entry (a --table backup's) but an object; empty only its SCHEMA entry.
    expect(unselected(['sales', 'public', 'hr', 'empty'], [])).toBeUndefined();
    expect(unselected([], ['orders', 'order_totals', 'daily', 'tickets', 'remote'])).toBeUndefined();
    expect(unselected(['sales'], ['orders', 'items'])).toBeUndefined();
    // orders is in sales; a --schema in which no --table is holds the schema (restored empty).
    expect(unselected(['sales', 'empty'], ['orders'])).toBeUndefined();
  });

  test('a --schema of no schema of the backup: named, with its schemas, closest first', () => {
    expect(unselected(['slaes'], [])).toBe(
      `--schema "slaes" matches nothing in backup ${backup.id}: it has no schema of that exact name (as pg_restore's -n, ` +
        `case included); its schemas: "sales", "empty", "hr", "public"; nothing was restored`,
    );
    // Exact, case included: Sales is not sales.
    expect(unselected(['sales', 'Sales'], [])).toMatch(
      /^--schema "Sales" matches nothing .*its schemas: "sales", /,
    );
  });

  test('a --table of no relation of that exact name: named, with close names and their schemas', () => {
    expect(unselected([], ['ordrs'])).toBe(
      `--table "ordrs" matches nothing in backup ${backup.id}: it has no table, view, materialized view, sequence or ` +
        `foreign table of that exact name (as pg_restore's -t: the name alone, case included); close names: ` +
        `"orders" (in "public", "sales"); nothing was restored`,
    );
    expect(unselected([], ['Orders'])).toContain('close names: "orders" (in "public", "sales")');
    // A function or an index is no relation -t selects.
    expect(unselected([], ['orders_label_idx'])).toMatch(/^--table "orders_label_idx" matches nothing/);
    expect(unselected([], ['total()'])).toMatch(/^--table "total\(\)" matches nothing/);
    // Nothing close: where its tables are listed.
    expect(unselected([], ['zzz'])).toContain(
      `; pgferry show --store file:///backups --backup ${backup.id} --json lists its tables; nothing was restored`,
    );
  });

  test('a --table in none of the --schema schemas: where it is instead', () => {
    expect(unselected(['public'], ['items'])).toBe(
      `--table "items" is in none of the --schema schemas ("public") of backup ${backup.id}: it is in "sales"; ` +
        'add --schema "sales", or leave --schema out to restore it from every schema; nothing was restored',
    );
    expect(unselected(['sales'], ['order_total'])).toMatch(
      /^--table "order_total" matches nothing in --schema "sales" in backup .*lists its tables; nothing was restored$/,
    );
  });

  test('a --table given as schema.name selects that table alone; one that matches nothing: close names, the name in other schemas first', () => {
    expect(unselected([], ['public.order_totals', 'sales.orders', 'public.orders'])).toBeUndefined();
    expect(unselected(['sales'], ['sales.items', 'orders'])).toBeUndefined();
    expect(unselected([], ['public.items'])).toBe(
      `--table "public.items" matches nothing in backup ${backup.id}: it has no table, view, materialized view, sequence ` +
        `or foreign table named "items" in schema "public" (names match exactly, case included); close names: ` +
        `"sales.items"; nothing was restored`,
    );
    expect(unselected([], ['sales.ordrs'])).toContain('; close names: "sales.orders"; nothing');
    expect(unselected([], ['Sales.orders'])).toContain(
      '; close names: "sales.orders", "public.orders"; nothing',
    );
    expect(unselected([], ['hr.zzz'])).toContain(
      `; pgferry show --store file:///backups --backup ${backup.id} --json lists its tables;`,
    );
    // A schema of the --schema schemas' only.
    expect(unselected(['public'], ['sales.orders'])).toBe(
      `--table "sales.orders" names a table of schema "sales", which is none of the --schema schemas ("public"); ` +
        'add --schema "sales", or leave --schema out; nothing was restored',
    );
  });

  test("a relation whose name has a dot: selected by its name double-quoted; unquoted, the dot is the schema's, and the refusal says to quote it", () => {
    const dotted = [
      ...toc,
      entry(20, 'TABLE', 'public', 'sales.orders'),
      entry(21, 'TABLE', 'public', 'a.b'),
    ];
    const of = (tables: string[]) => unselectedName(dotted, { schemas: [], tables }, backup);
    // sales.orders is the table orders of sales (as psql reads it); "sales.orders" the dotted one.
    expect(of(['sales.orders', '"sales.orders"', '"a.b"', 'public."a.b"'])).toBeUndefined();
    expect(of(['a.b'])).toBe(
      `--table "a.b" names table "b" of schema "a", which backup ${backup.id} has not: a dot separates a schema from its ` +
        `table; for the table named "a.b" (in "public"), quote it: --table '"a.b"'; nothing was restored`,
    );
  });

  test('a --table that is no name: an open quote, two dots, an empty part', () => {
    expect(unselected([], ['"orders'])).toBe(
      '--table "\\"orders" is not a table\'s name: a double quote is not closed; nothing was restored',
    );
    expect(unselected([], ['db.public.orders'])).toMatch(
      /^--table "db.public.orders" is not a table's name: it has more than one dot outside double quotes .*quote a name that has a dot in it: "db.public.orders"; nothing was restored$/,
    );
    expect(unselected([], ['public.'])).toBe(
      `--table "public." is not a table's name: a schema or table name in it is empty; nothing was restored`,
    );
  });
});
