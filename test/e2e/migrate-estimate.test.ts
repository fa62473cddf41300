/**
 * A migration's size estimate (every table's `pg_table_size`, for the progress's total) is read
 * beside pg_dump, not before it: pg_dump does not wait for it. Another session's temporary table,
 * locked in a transaction it keeps open, holds the estimate's read for its lock timeout (1 s) —
 * pg_dump never locks another session's temporary table — and the source's sessions are watched
 * meanwhile: pg_dump must hold its lock on the table it dumps while the estimate's read still waits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'pg';
import { runCli, sourceUrl } from '../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';

const env = testEnv();
const pg = env.server(15);
const database = uniqueName('mig_estimate');
const migrated = uniqueName('mig_estimated');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-estimate-'));

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) =>
    c.query(`CREATE TABLE items (id int PRIMARY KEY, label text);
      INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1000) g`),
  );
}, 120_000);

afterAll(async () => {
  await dropDatabase(pg, database);
  await dropDatabase(pg, migrated);
  rmSync(dir, { recursive: true, force: true });
});

test('pg_dump starts while the size estimate still waits for a lock', async () => {
  const { Client: PgClient } = await import('pg');
  const holder: Client = new PgClient(pg.clientConfig(database));
  const watcher: Client = new PgClient(pg.clientConfig('postgres'));
  await holder.connect();
  await watcher.connect();
  try {
    const items = (await holder.query<{ oid: number }>(`SELECT 'items'::regclass::oid AS oid`)).rows[0].oid;
    await holder.query('CREATE TEMPORARY TABLE held (id int)');
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE held IN ACCESS EXCLUSIVE MODE');
    let finished = false;
    const migration = runCli([
      'migrate',
      '--source',
      sourceUrl(pg, database),
      '--target',
      sourceUrl(pg, migrated),
      '--store',
      dir,
      '--json',
    ]).finally(() => {
      finished = true;
    });
    let estimateWaited = false;
    let dumpBesideEstimate = false;
    while (!finished) {
      // pg_dump: it locks every table it dumps (ACCESS SHARE) until it ends; nothing else of the
      // run holds a lock on a table then.
      const { rows } = await watcher.query<{ estimate: boolean; dump: boolean }>(
        `WITH estimate AS (
           SELECT pid FROM pg_stat_activity
           WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_table_size%')
         SELECT EXISTS (SELECT FROM estimate) AS estimate,
                EXISTS (SELECT FROM pg_locks l, estimate e
                        WHERE l.relation = $2 AND l.granted AND l.pid <> e.pid) AS dump`,
        [database, items],
      );
      estimateWaited ||= rows[0].estimate;
      dumpBesideEstimate ||= rows[0].estimate && rows[0].dump;
      await sleep(20);
    }
    const result = await migration;
    expect(result.code).toBe(0);
    expect(estimateWaited).toBe(true);
    expect(dumpBesideEstimate).toBe(true);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
    await watcher.end();
  }
}, 300_000);
