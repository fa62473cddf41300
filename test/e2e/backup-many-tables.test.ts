/**
 * A database of 5,000 tables, each with a primary key and a unique column, backs up on a server
 * with default settings (max_locks_per_transaction = 64, max_connections = 100: the lock table
 * holds about 12,900 locked objects on PostgreSQL 15, once grown into the spare shared memory).
 * pg_dump takes one lock per table; the row counts that used to be taken in a second session
 * locked every table and both its indexes (the planner opens them), 15,000 objects, and the backup
 * failed with "out of shared memory".
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { backupOf } from '../support/backed-up-database';
import { createDatabase, withClient } from '../support/env';
import { usePrivateServer } from '../support/private-server';

const server = usePrivateServer(15);
const database = 'many_tables';
const TABLES = 5000;
/** Table `t_<i>` holds `i % 4` rows. */
const rowsOf = (i: number) => i % 4;

beforeAll(async () => {
  const pg = server();
  await createDatabase(pg, database);
  await withClient(pg, database, async (c) => {
    // Built in a few transactions: one creating all 5,000 would itself need a lock per table.
    for (let from = 1; from <= TABLES; from += 1000) {
      await c.query(`DO $$ BEGIN
        FOR i IN ${from}..${from + 999} LOOP
          EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, code int UNIQUE)', i);
          EXECUTE format('INSERT INTO t_%s SELECT g, g FROM generate_series(1, %s) g', i, i % 4);
        END LOOP;
      END $$`);
    }
  });
}, 300_000);

test('5,000 tables back up at default server settings, every row counted', async () => {
  const pg = server();
  const settings = await withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ name: string; setting: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('max_locks_per_transaction', 'max_connections', 'max_prepared_transactions') ORDER BY name",
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  });
  expect(settings).toEqual({
    max_connections: '100',
    max_locks_per_transaction: '64',
    max_prepared_transactions: '0',
  });

  const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-many-tables-'))}`;
  const manifest = await backupOf(pg, database, store);
  expect(manifest.tables).toHaveLength(TABLES);
  const expected = Array.from({ length: TABLES }, (_, k) => ({
    schema: 'public',
    name: `t_${k + 1}`,
    rows: rowsOf(k + 1),
  })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  expect(manifest.tables).toMatchObject(expected);
}, 300_000);
