/**
 * core/postgres/inspect.ts on a real server. `dumpSizeAsRead`, the estimate a backup's progress is
 * shown against: it returns at once, before the tables' sizes are read — the dump does not wait
 * for a read that takes seconds where the tables are many — and gives what `tableDataSize` reads
 * once the read has ended. `countRows`, a restore's and a migration's check: each table's own rows
 * (not its partitions' or children's), names that need quoting, more tables than one statement
 * counts, in fewer statements than tables.
 */
import {
  countRows,
  dumpSizeAsRead,
  TABLES_PER_COUNT,
  tableDataSize,
} from '../../../../core/postgres/inspect';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';
import { countingStatements } from '../../../support/statement-count';

const pg = testEnv().server(15);
const database = uniqueName('estimate');

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query(`CREATE TABLE t (id integer, v text);
      INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g`),
  );
}, 120_000);

afterAll(async () => {
  await dropDatabase(pg, database);
});

test('the estimate is read beside the caller: nothing until it is read, then the tables’ size', async () => {
  const connection = pg.connection(database);
  const expected = await withClient(pg, database, (c) => tableDataSize(c));
  // A table held locked: the read waits for it (up to its lock timeout, 1 s), the caller does not.
  await withClient(pg, database, async (holder) => {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
    const t0 = Date.now();
    const estimate = dumpSizeAsRead(connection, pg.password);
    expect(Date.now() - t0).toBeLessThan(100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(estimate()).toBeUndefined();
    await holder.query('COMMIT');
    const deadline = Date.now() + 10_000;
    while (estimate() === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(estimate()).toBe(expected);
  });
}, 60_000);

test('countRows counts each table itself, many to a statement', async () => {
  const tables = Array.from({ length: 2 * TABLES_PER_COUNT + 7 }, (_, i) => ({
    schema: i % 2 ? 'Sché "ma"' : 'public',
    name: `t ${i} "q"`,
    rows: i % 5,
  }));
  await withClient(pg, database, async (c) => {
    await c.query(`CREATE SCHEMA "Sché ""ma"""`);
    for (const t of tables) {
      const name = `"${t.schema.replaceAll('"', '""')}"."${t.name.replaceAll('"', '""')}"`;
      await c.query(
        `CREATE TABLE ${name} (id int); INSERT INTO ${name} SELECT generate_series(1, ${t.rows})`,
      );
    }
    // A parent's own rows, not its child's.
    await c.query(`CREATE TABLE parent (id int); INSERT INTO parent VALUES (1);
      CREATE TABLE child () INHERITS (parent); INSERT INTO child VALUES (2), (3)`);
    const { counted: counting, statements } = countingStatements(c);
    const all = [
      ...tables,
      { schema: 'public', name: 'parent', rows: 1 },
      { schema: 'public', name: 'child', rows: 2 },
    ];
    const counted = await countRows(counting, all);
    expect(counted.map((t) => t.restoredRows)).toEqual(all.map((t) => t.rows));
    expect(counted.map((t) => t.name)).toEqual(all.map((t) => t.name));
    expect(statements()).toBe(Math.ceil(all.length / TABLES_PER_COUNT));
  });
}, 120_000);
