/**
 * A parallel backup's restore (`pgRestoreSections` of core/postgres/tools.ts, by its caller
 * `pgRestoreArchive`, which drops first in clean mode) against a real server, with archives made
 * as `backup --jobs 3` makes them (the main archive without the moved tables' data, each side
 * archive `--data-only` of its tables): foreign keys across the archives (main → side, side →
 * main, side → other side), indexes on side tables, a partitioned table whose partitions are in
 * different archives, with its index and key; restored identically, and in clean mode over a
 * changed copy. The main archive's indexes and keys are built while a side archive still loads
 * (`postDataGroups`), not after all data.
 */
import type { ChildProcess } from 'node:child_process';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { readArchiveToc } from '../../../../core/postgres/archive-toc';
import { pgRestoreArchive, postDataGroups } from '../../../../core/postgres/tools';
import { pgTool, runTool } from '../../../support/cli';
import { createDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../../../support/env';
import { fingerprint } from '../../../support/fingerprint';

const pg = testEnv().server(15);
const source = uniqueName('sections_src');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-sections-'));
const main = path.join(dir, 'dump.pgdump');
const sides = [path.join(dir, 'table-data-1.pgdump'), path.join(dir, 'table-data-2.pgdump')];
const pgRestore = { path: pgTool('pg_restore', 15), version: '15', major: 15 };
const psql = { path: pgTool('psql', 15), version: '15', major: 15 };
const env = { PATH: process.env.PATH, ...pg.env() };
const created: string[] = [];

// Side 1: docs (large, so that its load outlasts the main archive's) and measures_b; side 2:
// notes; the rest in the main archive.
const SIDE_TABLES = [['docs', 'measures_b'], ['notes']];
const SCHEMA = `
  CREATE TABLE accounts (id int PRIMARY KEY, name text, fav_doc int);
  INSERT INTO accounts SELECT g, 'account ' || g, g FROM generate_series(1, 2000) g;
  CREATE INDEX accounts_name ON accounts (name);
  CREATE TABLE docs (id int PRIMARY KEY, account_id int REFERENCES accounts, body text);
  INSERT INTO docs SELECT g, 1 + g % 2000, repeat(md5(g::text), 8) FROM generate_series(1, 150000) g;
  CREATE INDEX docs_account ON docs (account_id, id);
  ALTER TABLE accounts ADD FOREIGN KEY (fav_doc) REFERENCES docs;
  CREATE TABLE notes (id int PRIMARY KEY, doc_id int REFERENCES docs, note text);
  INSERT INTO notes SELECT g, 1 + g % 150000, md5(g::text) FROM generate_series(1, 5000) g;
  CREATE INDEX notes_doc ON notes (doc_id);
  CREATE TABLE measures (id int, at date, v numeric, account_id int REFERENCES accounts,
    PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
  CREATE TABLE measures_a PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE TABLE measures_b PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
  CREATE INDEX measures_account ON measures (account_id);
  INSERT INTO measures SELECT g, date '2024-01-01' + g % 700, g / 7.0, 1 + g % 2000
    FROM generate_series(1, 20000) g;
`;

async function schema(db: string) {
  return withClient(pg, db, async (c) => ({
    indexes: (
      await c.query(`SELECT indexrelid::regclass::text AS name, indisvalid FROM pg_index
        WHERE indrelid::regclass::text NOT LIKE 'pg_%' ORDER BY 1`)
    ).rows,
    constraints: (
      await c.query(`SELECT conrelid::regclass::text AS rel, conname, contype, convalidated FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`)
    ).rows,
  }));
}

beforeAll(async () => {
  await createDatabase(pg, source);
  await withClient(pg, source, (c) => c.query(SCHEMA));
  const conn = ['-h', pg.host, '-p', String(pg.port), '-U', pg.user, '-d', source];
  const dump = (file: string, ...args: string[]) =>
    runTool(pgTool('pg_dump', 15), ['-Fc', '-Z0', '-f', file, ...args, ...conn], { PGPASSWORD: pg.password });
  await dump(main, ...SIDE_TABLES.flat().map((t) => `--exclude-table-data=${t}`));
  for (const [i, tables] of SIDE_TABLES.entries()) {
    await dump(sides[i], '--data-only', ...tables.map((t) => `--table=${t}`));
  }
}, 300_000);

afterAll(async () => {
  for (const db of [source, ...created]) await dropDatabase(pg, db);
  rmSync(dir, { recursive: true, force: true });
});

type Run = { args: string[]; start: number; end: number };

async function restore(target: string, clean = false, afterPreData?: (runs: Run[]) => Promise<void>) {
  const runs: Run[] = [];
  const onChild = (child: ChildProcess) => {
    const run = { args: child.spawnargs, start: performance.now(), end: Number.POSITIVE_INFINITY };
    runs.push(run);
    child.once('close', () => {
      run.end = performance.now();
    });
  };
  await pgRestoreArchive(pgRestore, {
    args: [
      `--dbname=${target}`,
      '--exit-on-error',
      '--no-password',
      ...(clean ? ['--clean', '--if-exists'] : []),
    ],
    jobs: 2,
    dumpFile: main,
    tableData: sides,
    env,
    onChild,
    split: {
      minBytes: 1,
      connect: async () => {
        const c = new Client(pg.clientConfig(target));
        await c.connect();
        return c;
      },
    },
    psql,
    afterPreData: afterPreData && (() => afterPreData(runs)),
  });
  return runs;
}

test("each post-data entry waits for the archives whose tables it needs: the main archive's own, a side archive's, or all", async () => {
  const toc = await readArchiveToc(createReadStream(main));
  const dataOf = new Map<number, number>();
  for (const [i, file] of [main, ...sides].entries()) {
    for (const e of await readArchiveToc(createReadStream(file)))
      if (e.desc === 'TABLE DATA') dataOf.set(e.oid, i);
  }
  const post = toc.filter((e) => /INDEX|CONSTRAINT/.test(e.desc ?? ''));
  const groups = postDataGroups(
    post.map((e) => e.dumpId),
    toc,
    dataOf,
  );
  const named = Object.fromEntries(post.map((e) => [`${e.desc} ${e.tag}`, groups.get(e.dumpId)]));
  expect(named).toEqual({
    'CONSTRAINT accounts accounts_pkey': 0,
    'INDEX accounts_name': 0,
    'CONSTRAINT docs docs_pkey': 1,
    'INDEX docs_account': 1,
    'FK CONSTRAINT docs docs_account_id_fkey': 1,
    // accounts → docs: the main archive's table and side 1's.
    'FK CONSTRAINT accounts accounts_fav_doc_fkey': 1,
    'CONSTRAINT notes notes_pkey': 2,
    'INDEX notes_doc': 2,
    // notes (side 2) → docs (side 1).
    'FK CONSTRAINT notes notes_doc_id_fkey': 'last',
    // The partitioned table's, and its partitions' (pg_dump makes them depend on their parent's):
    // its partitions are in two archives.
    'CONSTRAINT measures measures_pkey': 'last',
    'INDEX measures_account': 'last',
    'FK CONSTRAINT measures measures_account_id_fkey': 'last',
    'CONSTRAINT measures_a measures_a_pkey': 'last',
    'CONSTRAINT measures_b measures_b_pkey': 'last',
    'INDEX measures_a_account_id_idx': 'last',
    'INDEX measures_b_account_id_idx': 'last',
    'INDEX ATTACH measures_a_pkey': 'last',
    'INDEX ATTACH measures_b_pkey': 'last',
    'INDEX ATTACH measures_a_account_id_idx': 'last',
    'INDEX ATTACH measures_b_account_id_idx': 'last',
  });
});

test("restores identically, the main archive's indexes built while a side archive still loads", async () => {
  const target = uniqueName('sections_new');
  created.push(target);
  await createDatabase(pg, target);
  const runs = await restore(target);
  expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, source));
  expect(await schema(target)).toEqual(await schema(source));
  const postRuns = runs.filter((r) => r.args.includes('--section=post-data') && !r.args.includes('--list'));
  const sideLoads = runs.filter((r) => r.args.includes(sides[0]) && !r.args.includes('--list'));
  expect(postRuns.length).toBeGreaterThan(0);
  expect(sideLoads.length).toBeGreaterThan(0);
  const firstPost = Math.min(...postRuns.map((r) => r.start));
  const sideLoaded = Math.max(...sideLoads.map((r) => r.end));
  expect(firstPost).toBeLessThan(sideLoaded);
}, 120_000);

test('afterPreData (the autovacuum hold) runs once every table exists, before any is loaded', async () => {
  const target = uniqueName('sections_hold');
  created.push(target);
  await createDatabase(pg, target);
  let seen: { tables: number; rows: number; runs: string[][] } | undefined;
  await restore(target, false, async (runs) => {
    seen = await withClient(pg, target, async (c) => {
      const { rows } = await c.query<{ name: string }>(
        "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = 'public'",
      );
      let total = 0;
      for (const { name } of rows) {
        total += Number((await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${name}`)).rows[0].n);
      }
      return { tables: rows.length, rows: total, runs: runs.map((r) => r.args) };
    });
  });
  const sourceTables = await withClient(pg, source, async (c) =>
    Number((await c.query("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")).rows[0].n),
  );
  expect(seen?.tables).toBe(sourceTables);
  expect(seen?.rows).toBe(0);
  // Only the pre-data (and lists) had run.
  expect(seen?.runs.filter((a) => !a.includes('--section=pre-data') && !a.includes('--list'))).toEqual([]);
  expect(await fingerprint(pg, target)).toEqual(await fingerprint(pg, source));
}, 120_000);

test('restores identically in clean mode over a changed copy', async () => {
  const target = uniqueName('sections_clean');
  created.push(target);
  await createDatabase(pg, target);
  await restore(target);
  await withClient(pg, target, (c) =>
    c.query(`DELETE FROM notes WHERE id < 100; UPDATE docs SET body = 'changed' WHERE id < 50;
      DROP INDEX docs_account; CREATE TABLE kept (id int); INSERT INTO measures VALUES (999999, '2025-06-01', 1, 1)`),
  );
  await restore(target, true);
  const after = await fingerprint(pg, target);
  expect({ ...after, tables: after.tables.filter((t) => t.name !== 'kept') }).toEqual(
    await fingerprint(pg, source),
  );
  expect(after.tables.map((t) => t.name)).toContain('kept');
  expect(await schema(target)).toEqual(await schema(source));
}, 120_000);
