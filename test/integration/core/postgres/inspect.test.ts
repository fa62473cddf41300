/**
 * `dumpSizeAsRead` (core/postgres/inspect.ts), the estimate a backup's progress is shown against,
 * on a real server: it returns at once, before the tables' sizes are read — the dump does not wait
 * for a read that takes seconds where the tables are many — and gives what `tableDataSize` reads
 * once the read has ended.
 */
import { dumpSizeAsRead, tableDataSize } from '../../../../core/postgres/inspect';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

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
  const connection = { host: pg.host, port: pg.port, user: pg.user, database, sslmode: 'disable' as const };
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
