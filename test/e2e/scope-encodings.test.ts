/**
 * Scope patterns and names of a database not in UTF8 (PostgreSQL 17):
 *
 * - A LATIN1 database's non-ASCII schema and table names given to `--schema`, `--table`,
 *   `--exclude-schema`, `--exclude-table`: pg_dump matches its (UTF-8) arguments in the database's
 *   encoding, so pgferry passes the non-ASCII characters as `?` wildcards, after checking in the
 *   snapshot's catalog that each such pattern matches exactly what the user's pattern does. Where
 *   it would match more (`tá` and `tä`), the backup is refused in one line, and nothing is stored;
 *   an include pattern matching nothing is named as the user gave it.
 * - (A restore's `--schema`/`--table` selection of such a name: test/e2e/restore-select-encodings.test.ts.)
 * - A WIN1252 table name holding byte 0x81 (no character in WIN1252, no UTF-8 equivalent) fails
 *   the backup in one line naming the database and what to do, and nothing is listed; a migration
 *   of it too, creating nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { pgTool, runCli, sourceUrl } from '../support/cli';
import { dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';

const env = testEnv();
const pg = env.server(17);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-scope-enc-'));
const store = `file://${dir}`;
const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-scope-enc-work-'));
const latin1 = uniqueName('scope_latin1');
const win1252 = uniqueName('scope_win1252');
const sqlAscii = uniqueName('scope_sql_ascii');
const created: string[] = [latin1, win1252, sqlAscii];

const SOURCE_SQL = `
  CREATE TABLE public."tá" (id int PRIMARY KEY);
  INSERT INTO public."tá" SELECT generate_series(1, 3);
  CREATE TABLE public."tä" (id int PRIMARY KEY);
  INSERT INTO public."tä" SELECT generate_series(1, 5);
  CREATE TABLE public.plain (id int PRIMARY KEY);
  INSERT INTO public.plain SELECT generate_series(1, 2);
  CREATE SCHEMA "ésquema";
  CREATE TABLE "ésquema"."ítem" (id int PRIMARY KEY, label text);
  INSERT INTO "ésquema"."ítem" SELECT g, 'ñ' || g FROM generate_series(1, 4) g;`;

async function createEncoded(name: string, encoding: string): Promise<void> {
  await withClient(pg, 'postgres', (c) =>
    c.query(
      `CREATE DATABASE ${quoteIdent(name)} ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
    ),
  );
}

beforeAll(async () => {
  await createEncoded(latin1, 'LATIN1');
  await withClient(pg, latin1, (c) => c.query(SOURCE_SQL));
  await createEncoded(sqlAscii, 'SQL_ASCII');
  await withClient(pg, sqlAscii, (c) => c.query(SOURCE_SQL));
  // A table name with byte 0x81, which WIN1252 leaves undefined: sent as raw bytes by psql with
  // the client encoding WIN1252 (no conversion, and any byte is valid in a single-byte encoding).
  await createEncoded(win1252, 'WIN1252');
  // The connection in the environment: a password in psql's arguments is what secrets.test.ts,
  // running beside this file, looks for in every process's command line.
  execFileSync(pgTool('psql', 15), ['-X', '-v', 'ON_ERROR_STOP=1'], {
    input: Buffer.concat([
      Buffer.from('CREATE TABLE public."t'),
      Buffer.of(0x81),
      Buffer.from('" (id int); CREATE TABLE public.fine (id int); INSERT INTO public.fine VALUES (1);\n'),
    ]),
    env: { ...process.env, ...pg.env(win1252), PGCLIENTENCODING: 'WIN1252' },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
}, 60_000);

afterAll(async () => {
  for (const name of created) await dropDatabase(pg, name);
  for (const folder of [dir, workDir]) rmSync(folder, { recursive: true, force: true });
});

function backup(database: string, ...scope: string[]) {
  return runCli(['backup', '--source', sourceUrl(pg, database), '--store', store, '--json', ...scope]);
}

async function backedUp(...scope: string[]): Promise<BackupManifest> {
  const result = await backup(latin1, ...scope);
  if (result.code !== 0) throw new Error(`backup ${scope.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as BackupManifest;
}

async function listed(database: string): Promise<string> {
  const result = await runCli(['list', '--store', store, '--database', database]);
  return result.stdout;
}

const tablesOf = (m: BackupManifest) => m.tables.map((t) => `${t.schema}.${t.name}:${t.rows}`);

test('--schema with a non-ASCII name backs up that schema', async () => {
  const manifest = await backedUp('--schema', 'ésquema');
  expect(tablesOf(manifest)).toEqual(['ésquema.ítem:4']);
  expect(manifest.scope?.schemas).toEqual(['ésquema']);
});

test('--table with a non-ASCII schema-qualified name backs up that table', async () => {
  const manifest = await backedUp('--table', 'ésquema.ítem');
  expect(tablesOf(manifest)).toEqual(['ésquema.ítem:4']);
});

test('--exclude-schema with a non-ASCII name leaves that schema out', async () => {
  const manifest = await backedUp('--exclude-schema', 'ésquema');
  expect(tablesOf(manifest)).toEqual(['public.plain:2', 'public.tá:3', 'public.tä:5']);
});

test.each([
  ['--table', 'tá'],
  ['--exclude-table', 'tá'],
  ['--exclude-table-data', 'public.tá'],
])('%s %s, which pg_dump cannot be given exactly (tä), is refused in one line', async (option, pattern) => {
  const before = await listed(latin1);
  const result = await backup(latin1, option, pattern);
  expect(result.code).not.toBe(0);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(
    `${option} "${pattern}" cannot be passed to pg_dump exactly: the database "${latin1}" is in LATIN1`,
  );
  expect(result.stderr).toContain('public.tä');
  expect(await listed(latin1)).toBe(before);
});

test('in a SQL_ASCII database (no conversion) the patterns and restore selections are passed as they are', async () => {
  const result = await backup(sqlAscii, '--table', 'tá', '--table', 'ésquema.ítem');
  expect(result.stderr).toBe('');
  const manifest = JSON.parse(result.stdout) as BackupManifest;
  expect(tablesOf(manifest)).toEqual(['public.tá:3', 'ésquema.ítem:4']);
  const target = uniqueName('scope_sql_ascii_restore');
  created.push(target);
  const restored = await runCli(
    [
      'restore',
      '--store',
      store,
      '--backup',
      manifest.id,
      '--target',
      sourceUrl(pg, target),
      '--table',
      'tá',
    ],
    { env: { PGFERRY_WORK_DIR: workDir } },
  );
  expect(restored.code).toBe(0);
  const rows = await withClient(pg, target, (c) =>
    c.query<{ n: number }>('SELECT count(*)::int AS n FROM public."tá"'),
  );
  expect(rows.rows[0].n).toBe(3);
}, 120_000);

test('an include pattern with a non-ASCII name that matches nothing is named as given', async () => {
  const result = await backup(latin1, '--table', 'tú');
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain(`--table "tú" matches no table of the database "${latin1}"`);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
});

test.each([
  ['one pg_dump', []],
  ['--jobs 2', ['--jobs', '2']],
])(
  'a table name with no UTF-8 equivalent fails the backup (%s) in one line, nothing listed',
  async (_, jobs) => {
    const result = await backup(win1252, ...jobs);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(
      `the database "${win1252}" (WIN1252) holds a name with no UTF-8 equivalent`,
    );
    expect(result.stderr).toContain('rename');
    expect(await listed(win1252)).not.toContain(win1252);
  },
);

test('a migration of a database with a name with no UTF-8 equivalent fails in one line, nothing created', async () => {
  const target = uniqueName('scope_win1252_migrated');
  created.push(target);
  const result = await runCli([
    'migrate',
    ...['--source', sourceUrl(pg, win1252), '--target', sourceUrl(pg, target), '--store', dir],
  ]);
  expect(result.code).not.toBe(0);
  // The migration's plan, then the failure.
  const failure = result.stderr.trim().split('\n').slice(1);
  expect(failure).toHaveLength(1);
  expect(failure[0]).toContain(`the database "${win1252}" (WIN1252) holds a name with no UTF-8 equivalent`);
  expect(failure[0]).toContain('rename');
  const databases = await withClient(pg, 'postgres', (c) =>
    c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE $1', [
      `%${target}`,
    ]),
  );
  expect(databases.rows[0].n).toBe(0);
}, 120_000);
