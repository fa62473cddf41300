/**
 * The parallel pg_restore of core/postgres/tools.ts loading its largest table in several COPY
 * sessions (`split`), against a real server: the restored tables are identical to the source's
 * (every row, values with tabs, newlines, backslashes, NULLs and non-ASCII text), their indexes are
 * built, and a session killed during the load fails the restore with every process and session
 * of it gone.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pgRestoreParallel } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';

const pg = testEnv().server(15);
const database = uniqueName('split_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-split-'));
const dump = path.join(dir, 'db.dump');
const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
const psql = { path: pgTool('psql', 15), version: '15', major: 15 };
const env = {
  PATH: process.env.PATH,
  PGHOST: pg.host,
  PGPORT: String(pg.port),
  PGUSER: pg.user,
  PGPASSWORD: pg.password,
};

const SCHEMA = `
  CREATE TABLE big (id bigint PRIMARY KEY, kind text, payload jsonb, note text, at timestamptz);
  INSERT INTO big SELECT g, 'kind_' || (g % 7),
    jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 5), 'text', 'line' || chr(10) || 'two'),
    CASE WHEN g % 50 = 0 THEN NULL ELSE 'tab' || chr(9) || 'back\\slash ' || repeat('wörd ', g % 40) END,
    timestamptz '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, 60000) g;
  CREATE INDEX big_kind ON big (kind, id);
  CREATE TABLE small (id int PRIMARY KEY, big_id bigint REFERENCES big);
  INSERT INTO small SELECT g, g FROM generate_series(1, 100) g;
  CREATE SEQUENCE counter START 42;
`;

/** Every table's rows (in key order) hashed, and the indexes' names: what the copy must match. */
async function contents(db: string) {
  return withClient(pg, db, async (c) => ({
    big: (
      await c.query(`SELECT count(*)::int AS n, md5(string_agg(big::text, '|' ORDER BY id)) AS h FROM big`)
    ).rows[0],
    small: (await c.query(`SELECT md5(string_agg(small::text, '|' ORDER BY id)) AS h FROM small`)).rows[0],
    indexes: (
      await c.query(`SELECT indexrelid::regclass::text AS name FROM pg_index
        WHERE indrelid IN ('big'::regclass, 'small'::regclass) AND indisvalid ORDER BY 1`)
    ).rows.map((r) => r.name),
    foreignKeys: (await c.query(`SELECT 1 FROM pg_constraint WHERE contype = 'f'`)).rowCount,
    counter: (await c.query(`SELECT nextval('counter')::int AS v`)).rows[0].v,
  }));
}

beforeAll(async () => {
  await createDatabase(pg, database);
  await withClient(pg, database, (c) => c.query(SCHEMA));
  // As pgferry stores its archives: custom format, uncompressed (the store compresses).
  const conn = ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', database];
  await runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', dump, ...conn], { PGPASSWORD: pg.password });
}, 300_000);

afterAll(async () => {
  await dropDatabase(pg, database);
  rmSync(dir, { recursive: true, force: true });
});

test('the largest table, loaded in two sessions, is identical to the source', async () => {
  const target = uniqueName('split_ok');
  await createDatabase(pg, target);
  try {
    const children: string[] = [];
    await pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
      jobs: 2,
      dumpFile: dump,
      env,
      onChild: (child) => children.push(child.spawnfile),
      split: { psql, minBytes: 0 },
    });
    // Two COPY sessions of the big table; the small one is pg_restore's.
    expect(children.filter((f) => f === psql.path)).toHaveLength(2);
    expect(await contents(target)).toEqual(await contents(database));
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

test('a scoped restore without the largest table loads nothing of it', async () => {
  const target = uniqueName('split_scoped');
  await createDatabase(pg, target);
  try {
    await withClient(pg, target, (c) => c.query('CREATE TABLE big (id bigint)'));
    await pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`, '--table=small'],
      jobs: 2,
      dumpFile: dump,
      env,
      split: { psql, minBytes: 0 },
    });
    const rows = await withClient(pg, target, async (c) => ({
      big: (await c.query('SELECT count(*)::int AS n FROM big')).rows[0].n,
    }));
    expect(rows).toEqual({ big: 0 });
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);

test('a COPY session killed during the split load fails the restore and leaves no process or session', async () => {
  const target = uniqueName('split_killed');
  await createDatabase(pg, target);
  try {
    const children: ChildProcess[] = [];
    const restoring = pgRestoreParallel(pgRestore, {
      args: ['--exit-on-error', '--no-password', `--dbname=dbname=${target}`],
      jobs: 2,
      dumpFile: dump,
      env,
      onChild: (child) => {
        children.push(child);
        if (child.spawnfile === psql.path) setTimeout(() => child.kill('SIGKILL'), 50);
      },
      split: { psql, minBytes: 0 },
    });
    await expect(restoring).rejects.toMatchObject({ code: 'RestoreFailed' });
    expect(children.filter((c) => c.exitCode === null && c.signalCode === null)).toEqual([]);
    const sessions = await withClient(pg, 'postgres', async (c) => {
      // A backend whose client was killed ends when it next reads from it.
      for (let i = 0; i < 50; i++) {
        const { rowCount } = await c.query('SELECT 1 FROM pg_stat_activity WHERE datname = $1', [target]);
        if (!rowCount) return 0;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      return -1;
    });
    expect(sessions).toBe(0);
  } finally {
    await dropDatabase(pg, target);
  }
}, 300_000);
