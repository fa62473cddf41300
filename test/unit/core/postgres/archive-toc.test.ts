/** What a restore reads from an archive's table of contents before it restores it. */
import type { ArchiveTocEntry } from '../../../../core/postgres/archive';
import { schemasNotCreated } from '../../../../core/postgres/archive-toc';

function entry(dumpId: number, desc: string, namespace: string | null, tag: string): ArchiveTocEntry {
  return {
    dumpId,
    hadDumper: false,
    tableoid: 0,
    oid: 0,
    desc,
    namespace,
    tag,
    owner: 'app',
    dependencies: [],
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
