/**
 * A migration's size estimate (every table's `pg_table_size`, for the progress's total) is read
 * beside pg_dump, not before it: pg_dump does not wait for it. Another session's temporary table,
 * locked in a transaction it keeps open, holds the estimate's read for its lock timeout (1 s) —
 * pg_dump never locks another session's temporary table — and the source's sessions are watched
 * meanwhile: pg_dump's session (the one that locks the table it dumps) must have connected before
 * the estimate's read gave up. Awaited first, the estimate would end before pg_dump even started.
 * (Not whether pg_dump has locked its table within that second: on a loaded machine its catalog
 * reads alone may take longer.) Only the run's own sessions count (its `application_name`): a
 * reader's open transaction holds the table too, as autovacuum's ANALYZE of it may.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'pg';
import { runMigrate, sourceUrl } from '../support/cli';
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
      INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 100000) g`),
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
  const reader: Client = new PgClient(pg.clientConfig(database));
  await holder.connect();
  await watcher.connect();
  await reader.connect();
  try {
    // Another session's reader, in a transaction it keeps open: it blocks neither the estimate
    // nor pg_dump, and is none of theirs.
    await reader.query('BEGIN');
    await reader.query('SELECT count(*) FROM items');
    const items = (await holder.query<{ oid: number }>(`SELECT 'items'::regclass::oid AS oid`)).rows[0].oid;
    await holder.query('CREATE TEMPORARY TABLE held (id int)');
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE held IN ACCESS EXCLUSIVE MODE');
    let finished = false;
    const migration = runMigrate(sourceUrl(pg, database), sourceUrl(pg, migrated), dir, ['--json']).finally(
      () => {
        finished = true;
      },
    );
    // The estimate while it waits (its query's start), and pg_dump: it locks every table it dumps
    // (ACCESS SHARE) until it ends; no other session of the run locks a source table meanwhile.
    // Every session of the run seen holding a lock on the table is kept, whether or not the
    // estimate was seen yet (pg_dump may lock it first), and the estimate's own (pg_table_size
    // locks each table it reads) left out once known.
    let estimate: { pid: number; queryStart: number } | undefined;
    const lockers = new Map<number, number>();
    while (!finished) {
      const waiting = await watcher.query<{ pid: number; query_start: number }>(
        `SELECT pid, extract(epoch FROM query_start)::float8 AS query_start FROM pg_stat_activity
         WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_table_size%'`,
        [database],
      );
      if (!estimate && waiting.rows.length) {
        estimate = { pid: waiting.rows[0].pid, queryStart: waiting.rows[0].query_start };
      }
      const locking = await watcher.query<{ pid: number; backend_start: number }>(
        `SELECT a.pid, extract(epoch FROM a.backend_start)::float8 AS backend_start
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.database = (SELECT oid FROM pg_database WHERE datname = $1)
           AND l.relation = $2 AND l.granted AND a.application_name LIKE 'pgferry %'`,
        [database, items],
      );
      for (const row of locking.rows) lockers.set(row.pid, row.backend_start);
      await sleep(20);
    }
    const result = await migration;
    expect(result.code).toBe(0);
    expect(estimate).toBeDefined();
    const { pid: estimatePid, queryStart } = estimate as { pid: number; queryStart: number };
    const dumps = [...lockers].filter(([pid]) => pid !== estimatePid);
    expect(dumps).toHaveLength(1);
    const [[, backendStart]] = dumps;
    // The estimate's read gave up at the earliest its lock timeout after it began waiting.
    expect(backendStart).toBeLessThan(queryStart + 1);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await reader.query('ROLLBACK').catch(() => undefined);
    await holder.end();
    await reader.end();
    await watcher.end();
  }
}, 300_000);
