/** What a restore reads from an archive's table of contents before it restores it. */
import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import { schemasNotCreated, selectedSchemaEntries } from '../../../../core/postgres/archive-toc';

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
  // A schema the archive does not create (a --table backup's) or does not hold: none.
  expect(selectedSchemaEntries(toc, { schemas: ['app'], tables: [] })).toEqual([]);
  expect(selectedSchemaEntries(toc, { schemas: [], tables: ['missing'] })).toEqual([]);
});
