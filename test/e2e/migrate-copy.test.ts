/**
 * `pgferry migrate`'s copy path: a database without large objects is loaded by the runner's own
 * COPY sessions straight from pg_dump's stream (core/postgres/copy-stream.ts). The complex
 * database (its large objects removed) with a large table — dealt over both sessions — and
 * thousands of tiny tables migrates to a target whose `pg_dump --schema-only`, data and sequences
 * equal the source's, its rows checked from the COPYs' command tags; the archived backup is
 * unchanged by it (it restores to the same data); and a row the target rejects fails the
 * migration with the server's message and leaves nothing.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { MigrateReport, RestoreReport } from '../../core/contracts';
import { runCli, runMigrate, sourceUrl } from '../support/cli';
import { createComplexDatabase } from '../support/complex-database';
import {
  createDatabase,
  databaseExists,
  dropDatabase,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { createRoles, dataState, dropRoles, schemaDump } from '../support/fidelity';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const TINY_TABLES = 2_000;

/** Every file under `dir` (a local store), relative to it. */
function filesIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('pgferry migrate by COPY sessions of its own (PostgreSQL 15 → 17)', () => {
  const source = env.server(15);
  const target = usePrivateServer(17);
  const database = uniqueName('mig_copy');
  const migrated = uniqueName('mig_copied');
  const restored = uniqueName('mig_copy_restored');
  const roles = [uniqueName('mc_owner'), uniqueName('mc_reader'), `Wrïter "C" ${uniqueName('w')}`];
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-copy-'));
  let report: MigrateReport | undefined;
  const migration = (): MigrateReport => {
    if (!report) throw new Error('the migration did not run');
    return report;
  };

  beforeAll(async () => {
    await createRoles(source, roles);
    await createDatabase(source, database);
    await createComplexDatabase(source, database, roles);
    await withClient(source, database, (c) =>
      c.query(`
        SELECT lo_unlink(oid) FROM pg_largeobject_metadata;
        -- ~13 MB of COPY text: more than a session's share, dealt over both.
        CREATE TABLE public.big (id bigint PRIMARY KEY, note text, at timestamptz);
        INSERT INTO public.big SELECT g,
          CASE WHEN g % 97 = 0 THEN NULL ELSE 'tab' || chr(9) || 'nl' || chr(10) || 'back\\slash ' || repeat('wörd ', g % 25) END,
          timestamptz '2024-01-01' + g * interval '1 second'
        FROM generate_series(1, 150000) g;
        CREATE SEQUENCE public.copy_counter START 7;
        SELECT setval('public.copy_counter', 1234);
        CREATE SCHEMA tiny;
        DO $$ BEGIN FOR i IN 1..${TINY_TABLES} LOOP
          EXECUTE format('CREATE TABLE tiny.t_%s (id int, label text)', i);
          IF i % 2 = 0 THEN EXECUTE format('INSERT INTO tiny.t_%s VALUES (%s, %L)', i, i, 'ü' || i); END IF;
        END LOOP; END $$;`),
    );
    const result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), dir, [
      '--jobs',
      '2',
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as MigrateReport;
  }, 900_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropRoles(source, roles);
    rmSync(dir, { recursive: true, force: true });
  });

  test("pg_dump --schema-only of the migrated database equals the source's", async () => {
    const expected = await schemaDump(source, database, 17, target().major);
    expect(expected).toContain('CREATE TABLE tiny.t_2000');
    expect(await schemaDump(target(), migrated, 17, source.major)).toEqual(expected);
  }, 300_000);

  test("every table's rows and every sequence equal the source's", async () => {
    const state = await dataState(target(), migrated);
    expect(state).toEqual(await dataState(source, database));
    expect(state.largeObjects).toEqual([]);
  }, 300_000);

  test("the rows were checked from the COPYs' command tags, every table's", () => {
    const [db] = migration().databases;
    expect(db.checks.restoredRowsFrom).toBe('copy');
    expect(db.checks.rowCounts.length).toBeGreaterThan(TINY_TABLES);
    expect(db.checks.rowCounts.filter((t) => t.rows !== t.restoredRows)).toEqual([]);
    expect(db.checks.rowCounts).toEqual(
      expect.arrayContaining([
        { schema: 'public', name: 'big', rows: 150000, restoredRows: 150000 },
        { schema: 'tiny', name: 't_2000', rows: 1, restoredRows: 1 },
        { schema: 'tiny', name: 't_1999', rows: 0, restoredRows: 0 },
      ]),
    );
    expect(db.checks.sequences).toEqual(
      expect.arrayContaining([
        { schema: 'public', name: 'copy_counter', source: '1234:true', target: '1234:true' },
      ]),
    );
  });

  test('the archived backup restores (pgferry restore) to the same data', async () => {
    const restore = await runCli([
      'restore',
      '--store',
      dir,
      '--backup',
      migration().databases[0].backupId,
      '--target',
      sourceUrl(target(), restored),
      '--json',
    ]);
    expect(restore.stderr).toBe('');
    expect((JSON.parse(restore.stdout) as RestoreReport).status).toBe('passed');
    expect(await dataState(target(), restored)).toEqual(await dataState(source, database));
  }, 600_000);
});

describe('a row the target rejects', () => {
  // A check that holds in the source database only: the pre-data restores (as a schema test's
  // would: no data), the COPY of the row fails on the target.
  const source = env.server(15);
  const target = env.server(15);
  const database = uniqueName('mig_reject');
  const migrated = uniqueName('mig_rejected');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-reject-'));
  let result: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    await createDatabase(source, database);
    await withClient(source, database, (c) =>
      c.query(`
        CREATE TABLE fine (id int PRIMARY KEY);
        INSERT INTO fine SELECT generate_series(1, 1000);
        CREATE TABLE rejects (v int CHECK (v < 100 OR current_database() = '${database}'));
        INSERT INTO rejects SELECT generate_series(1, 200);`),
    );
    result = await runMigrate(sourceUrl(source, database), sourceUrl(target, migrated), dir);
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target, migrated);
    rmSync(dir, { recursive: true, force: true });
  });

  test("fails the migration with the server's message", () => {
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /loading the data of "public"\."rejects" failed: new row for relation "rejects" violates check constraint/,
    );
    expect(result.stderr).toMatch(/the partially migrated database \S+ was dropped/);
  });

  test('leaves nothing: no target database, no session on it, no pg_dump, no archived backup', async () => {
    expect(await databaseExists(target, migrated)).toBe(false);
    const dumps = await withClient(source, 'postgres', async (c) => {
      const { rows } = await c.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_dump'`,
        [database],
      );
      return rows.length;
    });
    expect(dumps).toBe(0);
    // The failed migration's result is recorded; no backup object.
    expect(filesIn(dir).filter((f) => !f.endsWith('.json'))).toEqual([]);
  });
});

describe('pg_dump failing before its table of contents (a lock it cannot get, no schema test)', () => {
  const source = env.server(15);
  const target = env.server(15);
  const database = uniqueName('mig_copy_locked');
  const migrated = uniqueName('mig_copy_unlocked');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-copy-locked-'));

  beforeAll(async () => {
    await createDatabase(source, database);
    await withClient(source, database, (c) =>
      c.query('CREATE TABLE events (id int); INSERT INTO events VALUES (1)'),
    );
  });

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target, migrated);
    rmSync(dir, { recursive: true, force: true });
  });

  test('fails the migration naming the lock, and drops the target (nothing waits for the tables)', async () => {
    const holder = new Client(source.clientConfig(database));
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const result = await runMigrate(sourceUrl(source, database), sourceUrl(target, migrated), dir, [
        '--no-schema-test',
        '--lock-wait-timeout',
        '1s',
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/could not lock public\.events within 1s/);
    } finally {
      await holder.end();
    }
    expect(await databaseExists(target, migrated)).toBe(false);
  }, 120_000);
});

/**
 * Databases in other encodings than UTF8 (each on another major), with non-ASCII schema, table and
 * column names and two tables whose names differ in one non-ASCII character only: their archive's
 * names are decoded by its encoding, so the COPY sessions name the tables right and load them.
 */
const NON_UTF8 = [
  { encoding: 'LATIN1', major: 14, schema: 'schéma', near: ['tá', 'tà'], column: 'cö', text: 'äÿ' },
  { encoding: 'WIN1252', major: 15, schema: 'sch€ma', near: ['t€', 'tŽ'], column: 'c‰', text: '€Ž‰' },
  {
    encoding: 'EUC_JP',
    major: 17,
    schema: 'スキーマ',
    near: ['表甲', '表乙'],
    column: '列名',
    text: '日本語ｶﾅ',
  },
  {
    encoding: 'KOI8R',
    major: 15,
    schema: 'схема',
    near: ['таблица', 'таблицы'],
    column: 'столбец',
    text: 'ёЁщ',
  },
  // No exact decoder: pg_restore loads its data, as for a database with large objects.
  { encoding: 'SQL_ASCII', major: 15, schema: 'schéma', near: ['tá', 'tà'], column: 'cö', text: 'äÿ' },
] as const;

describe.each(NON_UTF8)('a $encoding database whose names are not ASCII (PostgreSQL $major)', (names) => {
  const pg = env.server(names.major);
  const database = uniqueName(`mig_${names.encoding.toLowerCase()}`);
  const migrated = uniqueName(`mig_${names.encoding.toLowerCase()}_to`);
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-encoding-'));
  const q = (name: string) => `"${name}"`;
  let result: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    await withClient(pg, 'postgres', (c) =>
      c.query(
        `CREATE DATABASE "${database}" TEMPLATE template0 ENCODING '${names.encoding}' LC_COLLATE 'C' LC_CTYPE 'C'`,
      ),
    );
    const [a, b] = names.near.map((t) => `${q(names.schema)}.${q(t)}`);
    await withClient(pg, database, (c) =>
      c.query(`CREATE SCHEMA ${q(names.schema)};
               CREATE TABLE ${a} (id int PRIMARY KEY, ${q(names.column)} text);
               CREATE TABLE ${b} (id int PRIMARY KEY, ${q(names.column)} text);
               INSERT INTO ${a} SELECT g, '${names.text}' || g FROM generate_series(1, 1000) g;
               INSERT INTO ${b} SELECT g, '${names.text}' || g FROM generate_series(1, 7) g;`),
    );
    result = await runMigrate(sourceUrl(pg, database), sourceUrl(pg, migrated), dir, ['--json']);
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(pg, database);
    await dropDatabase(pg, migrated);
    rmSync(dir, { recursive: true, force: true });
  });

  test('migrates by its COPY path (SQL_ASCII: pg_restore), every row and name as the source has them', async () => {
    expect({ code: result.code, stderr: result.stderr }).toMatchObject({ code: 0 });
    const [db] = (JSON.parse(result.stdout) as MigrateReport).databases;
    expect(db.checks.restoredRowsFrom).toBe(names.encoding === 'SQL_ASCII' ? 'target' : 'copy');
    const counted = [
      { schema: names.schema, name: names.near[0], rows: 1000, restoredRows: 1000 },
      { schema: names.schema, name: names.near[1], rows: 7, restoredRows: 7 },
    ];
    expect([...db.checks.rowCounts].sort((x, y) => x.rows - y.rows)).toEqual(counted.reverse());
    const state = await dataState(pg, migrated);
    expect(state).toEqual(await dataState(pg, database));
    expect(state.fingerprint.tables.map((t) => [t.name, t.rows])).toEqual(
      expect.arrayContaining([
        [names.near[0], 1000],
        [names.near[1], 7],
      ]),
    );
    const encodingOf = (name: string) =>
      withClient(pg, name, async (c) => (await c.query('SHOW server_encoding')).rows[0].server_encoding);
    expect(await encodingOf(migrated)).toBe(names.encoding);
  });
});
