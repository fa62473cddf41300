/**
 * ANALYZE of a restored database spread over several sessions (core/postgres/admin.ts), against a
 * real server: every table, partitioned table and materialized view gets its statistics, as a
 * database-wide ANALYZE gives them, in no more sessions than asked for, several at once.
 */
import { analyzeInSessions } from '../../../../core/postgres/admin';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('analyze');

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query(`
      CREATE SCHEMA "odd ""name""";
      CREATE TABLE "odd ""name"""."Big" (id int, v text);
      INSERT INTO "odd ""name"""."Big" SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
      CREATE TABLE small (id int);
      INSERT INTO small SELECT generate_series(1, 10);
      CREATE TABLE parted (id int, k int) PARTITION BY LIST (k);
      CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
      INSERT INTO parted SELECT g, 1 FROM generate_series(1, 100) g;
      CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n FROM small;
    `),
  );
}, 120_000);

afterAll(() => dropDatabase(pg, database));

test('every table, partitioned table and materialized view is analyzed, in at most the sessions asked for', async () => {
  let open = 0;
  let most = 0;
  await analyzeInSessions(async (fn) => {
    open++;
    most = Math.max(most, open);
    try {
      return await withClient(pg, database, fn);
    } finally {
      open--;
    }
  }, 2);
  // One session lists the relations, then two analyze them at once.
  expect(most).toBe(2);
  const analyzed = await withClient(pg, database, async (c) =>
    (
      await c.query(`SELECT DISTINCT starelid::regclass::text AS name FROM pg_statistic s
        JOIN pg_class c ON c.oid = s.starelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
        ORDER BY 1`)
    ).rows.map((r) => r.name),
  );
  expect(analyzed).toEqual(['"odd ""name"""."Big"', 'parted', 'parted_1', 'small', 'totals'].sort());
}, 120_000);
