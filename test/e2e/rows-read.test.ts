/**
 * A backup reads each table once (issue 20): the rows the server reads for `pgferry backup` — the
 * cumulative statistics' `seq_tup_read` of every table plus `idx_tup_read` of every index — are at
 * most 1.05 times what a plain `pg_dump -Fc` of the same database reads. Counting rows with
 * `count(*)` beside pg_dump, as backups used to, read every table twice.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pgTool, runCli, sourceUrl } from '../support/cli';
import {
  createDatabase,
  dropDatabase,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';

const env = testEnv();
const servers = env.postgres.filter((pg) => pg.major >= 15);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rows read from the database's tables and indexes so far, by every session. */
async function rowsRead(pg: TestPostgres, database: string): Promise<number> {
  return withClient(pg, database, async (c) => {
    const { rows } = await c.query<{ n: string }>(`
      SELECT (SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables)
           + (SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes) AS n`);
    return Number(rows[0].n);
  });
}

/**
 * The counter once every session that read has reported: a backend hands its counts to the shared
 * statistics when it exits (or within a second while it lives), so poll until three reads agree
 * and the count has moved past `previous`.
 */
async function settledRowsRead(pg: TestPostgres, database: string, previous: number): Promise<number> {
  const readings: number[] = [];
  for (let i = 0; i < 100; i++) {
    readings.push(await rowsRead(pg, database));
    const last = readings.slice(-3);
    if (last.length === 3 && last[0] > previous && last.every((n) => n === last[0])) return last[0];
    await sleep(300);
  }
  throw new Error(`the statistics never settled: ${readings.slice(-5).join(', ')}`);
}

function plainPgDump(pg: TestPostgres, database: string, major: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(pgTool('pg_dump', major), ['-Fc', database], {
      env: { PATH: process.env.PATH, ...pg.env(database) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_dump failed: ${err}`))));
  });
}

describe.each(servers.map((pg) => ({ pg, major: pg.major })))('PostgreSQL $major', ({ pg }) => {
  const database = uniqueName('rows_read');
  beforeAll(async () => {
    await createDatabase(pg, database);
    // Autovacuum off: its reads would count against whichever run it happened to overlap.
    await withClient(pg, database, (c) =>
      c.query(`
        CREATE TABLE events (id int PRIMARY KEY, kind text, payload jsonb) WITH (autovacuum_enabled = off);
        INSERT INTO events SELECT g, 'k' || g % 10, jsonb_build_object('n', g) FROM generate_series(1, 60000) g;
        CREATE INDEX ON events (kind);
        CREATE TABLE notes (body text) WITH (autovacuum_enabled = off);
        INSERT INTO notes SELECT repeat(E'line\\n', g % 5) FROM generate_series(1, 20000) g;
        CREATE TABLE empty_one (id int) WITH (autovacuum_enabled = off);`),
    );
  });
  afterAll(() => dropDatabase(pg, database));

  test('a backup reads at most 1.05 times the rows pg_dump -Fc reads', async () => {
    const before = await settledRowsRead(pg, database, -1);
    const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-rows-read-'))}`;
    const result = await runCli(['backup', '--source', sourceUrl(pg, database), '--store', store]);
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    const afterBackup = await settledRowsRead(pg, database, before);
    await plainPgDump(pg, database, pg.major);
    const afterPgDump = await settledRowsRead(pg, database, afterBackup);

    const byPgferry = afterBackup - before;
    const byPgDump = afterPgDump - afterBackup;
    expect(byPgDump).toBeGreaterThanOrEqual(80_000); // every row, once
    expect(byPgferry / byPgDump).toBeLessThanOrEqual(1.05);
  });
});
