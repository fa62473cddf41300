/**
 * The online cutover's sentinel (core/postgres/logical-replication.ts) on a real server: created in
 * a schema of its own and added to the publication, written and read by token, dropped — and never
 * a schema that was there before it: creating over one fails and leaves it, dropping leaves a schema
 * that holds anything else. (That its row proves the target applied everything before it is
 * test/e2e/migrate-online-paths.test.ts's.)
 */
import {
  createSentinel,
  dropSentinel,
  replicationName,
  sentinelArrived,
  sentinelTable,
  writeSentinel,
} from '../../../../core/postgres/logical-replication';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('sentinel');
const name = replicationName('20261202T120000Z-a1b2c3');

beforeAll(() => createDatabase(pg, database));
afterAll(() => dropDatabase(pg, database));

const schemas = () =>
  withClient(pg, database, (c) =>
    c.query<{ n: string }>(`SELECT nspname AS n FROM pg_namespace WHERE nspname LIKE 'pgferry%' ORDER BY 1`),
  ).then((r) => r.rows.map((row) => row.n));

test('is named after the migration, quoted', () => {
  expect(name).toBe('pgferry_20261202t120000z_a1b2c3');
  expect(sentinelTable(name)).toBe('"pgferry_20261202t120000z_a1b2c3".sentinel');
});

test('created in a schema of its own and published; a row is found by its token; dropped with its schema', async () => {
  await withClient(pg, database, async (c) => {
    await c.query(`CREATE PUBLICATION ${name}`);
    try {
      await createSentinel(c, name, true);
      const { rows } = await c.query<{ t: string }>(
        `SELECT schemaname || '.' || tablename AS t FROM pg_publication_tables WHERE pubname = $1`,
        [name],
      );
      expect(rows.map((r) => r.t)).toEqual([`${name}.sentinel`]);
      expect(await sentinelArrived(c, name, 'one')).toBe(false);
      await writeSentinel(c, name, 'one');
      expect(await sentinelArrived(c, name, 'one')).toBe(true);
      expect(await sentinelArrived(c, name, 'two')).toBe(false);
      await dropSentinel(c, name);
      const published = await c.query('SELECT 1 FROM pg_publication_rel');
      expect(published.rows).toEqual([]);
    } finally {
      await c.query(`DROP PUBLICATION ${name}`);
    }
  });
  expect(await schemas()).toEqual([]);
  // Nothing to drop is no error.
  await withClient(pg, database, (c) => dropSentinel(c, name));
});

test('a schema of that name already there: creating fails and leaves it; dropping leaves what is not the sentinel', async () => {
  await withClient(pg, database, async (c) => {
    await c.query(
      `CREATE SCHEMA ${name}; CREATE TABLE ${name}.kept (id int); CREATE TABLE ${name}.sentinel (id int)`,
    );
    await expect(createSentinel(c, name, false)).rejects.toThrow(/already exists/);
    const tables = await c.query<{ t: string }>(
      'SELECT relname AS t FROM pg_class WHERE relnamespace = $1::regnamespace ORDER BY 1',
      [name],
    );
    expect(tables.rows.map((r) => r.t)).toEqual(['kept', 'sentinel']);
    await dropSentinel(c, name);
    expect(await schemas()).toEqual([name]);
    await c.query(`DROP SCHEMA ${name} CASCADE`);
  });
});
