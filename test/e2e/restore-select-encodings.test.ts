/**
 * A restore's `--schema`/`--table` selection of a backup of a database not in UTF8 (PostgreSQL 17):
 * pg_restore compares its selection byte for byte with the archive's names, which are in the
 * database's encoding, so pgferry gives it the names in those bytes. Each restore of a LATIN1 and
 * of an EUC_JP backup — non-ASCII schema and table names beside near-identical ones (`tá`, `tà`,
 * `ta`) — restores exactly what the same restore of a UTF8 backup of the same objects does, from
 * one pg_dump's backup and from a `backup --jobs 2` one (an ASCII table's data in a side archive),
 * into a new database and over it (`--mode clean`). A name that cannot be matched exactly (an
 * encoding pgferry has no exact conversion for, a character its decoders leave out) is refused
 * in one line before anything is created; so is one that selects nothing (a view's name, which the
 * manifest does not hold, is looked up in the archive's names, decoded exactly).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { backupOf } from '../support/backed-up-database';
import { runCli, sourceUrl } from '../support/cli';
import { dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';

const env = testEnv();
const pg = env.server(17);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-restore-select-'));
const store = `file://${dir}`;
const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-restore-select-work-'));
const created: string[] = [];
const cliEnv = { env: { PGFERRY_WORK_DIR: workDir } };

/**
 * The names of one encoding's objects: near-identical table names in public (`a`, `b`, `c`; and an
 * ASCII `ta`, whose data a --jobs 2 backup puts in a side archive), a schema and its two tables.
 */
interface Names {
  a: string;
  b: string;
  c: string;
  schema: string;
  inSchema: string;
}

const LATIN1: Names = { a: 'tá', b: 'tà', c: 'tä', schema: 'ésquema', inSchema: 'ítem' };
const EUC_JP: Names = { a: '表ア', b: '表イ', c: '表', schema: 'スキーマ', inSchema: '品目' };

function sourceSql({ a, b, c, schema, inSchema }: Names): string {
  const s = quoteIdent(schema);
  const table = (qualified: string, rows: number) =>
    `CREATE TABLE ${qualified} (id int PRIMARY KEY, label text);
     CREATE INDEX ON ${qualified} (label);
     INSERT INTO ${qualified} SELECT g, ${quoteLiteral(qualified)} || g FROM generate_series(1, ${rows}) g;`;
  return `
    CREATE SCHEMA ${s};
    ${table(`public.${quoteIdent(a)}`, 3)}
    ${table(`public.${quoteIdent(b)}`, 5)}
    ${table(`public.${quoteIdent(c)}`, 7)}
    ${table(`${s}.${quoteIdent(inSchema)}`, 11)}
    ${table(`${s}.item`, 13)}
    CREATE TABLE public.ta (id int PRIMARY KEY, label text);
    INSERT INTO public.ta SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;`;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

async function createDatabase(
  encoding: string,
  sql: string,
  name = uniqueName(`select_${encoding}`),
): Promise<string> {
  created.push(name);
  await withClient(pg, 'postgres', (c) =>
    c.query(
      `CREATE DATABASE ${quoteIdent(name)} ENCODING '${encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`,
    ),
  );
  if (sql) await withClient(pg, name, (c) => c.query(sql));
  return name;
}

function backup(database: string, ...more: string[]): Promise<BackupManifest> {
  return backupOf(pg, database, store, ...more);
}

function restore(manifest: BackupManifest, target: string, ...more: string[]) {
  return runCli(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target), ...more],
    cliEnv,
  );
}

/** What a database holds: its schemas, its tables with their rows and labels, their indexes. */
async function contents(database: string): Promise<string[]> {
  return withClient(pg, database, async (c) => {
    const schemas = await c.query<{ nspname: string }>(
      "SELECT nspname FROM pg_namespace WHERE nspname !~ '^(pg_|information_schema)' ORDER BY 1",
    );
    const tables = await c.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname !~ '^(pg_|information_schema)' ORDER BY 1, 2`,
    );
    const out = schemas.rows.map((r) => `schema ${r.nspname}`);
    for (const t of tables.rows) {
      const q = `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;
      const { rows } = await c
        .query<{ n: number; labels: string }>(
          `SELECT count(*)::int AS n, md5(convert_to(string_agg(coalesce(label, ''), ',' ORDER BY id), 'UTF8')) AS labels FROM ${q}`,
        )
        .catch(() =>
          c.query<{ n: number; labels: string }>(`SELECT count(*)::int AS n, '' AS labels FROM ${q}`),
        );
      out.push(`table ${t.schema}.${t.name}: ${rows[0].n} ${rows[0].labels}`);
    }
    const indexes = await c.query<{ schemaname: string; indexname: string }>(
      "SELECT schemaname, indexname FROM pg_indexes WHERE schemaname !~ '^(pg_|information_schema)' ORDER BY 1, 2",
    );
    for (const i of indexes.rows) out.push(`index ${i.schemaname}.${i.indexname}`);
    // In one order whatever the database's encoding (its names sort by their bytes).
    return out.sort();
  });
}

afterAll(async () => {
  for (const name of created) await dropDatabase(pg, name);
  for (const folder of [dir, workDir]) rmSync(folder, { recursive: true, force: true });
});

describe.each([
  ['LATIN1', LATIN1],
  ['EUC_JP', EUC_JP],
])('a %s backup', (encoding, names) => {
  // The backups of the encoding's database and of its UTF8 twin: one pg_dump's, and --jobs 2's.
  let backups: Record<'encoded' | 'utf8', { one: BackupManifest; jobs: BackupManifest }>;

  beforeAll(async () => {
    const sql = sourceSql(names);
    const [encoded, utf8] = [await createDatabase(encoding, sql), await createDatabase('UTF8', sql)];
    backups = {
      encoded: { one: await backup(encoded), jobs: await backup(encoded, '--jobs', '2') },
      utf8: { one: await backup(utf8), jobs: await backup(utf8, '--jobs', '2') },
    };
    // The ASCII table's data is in a side archive of the --jobs 2 backups.
    for (const b of [backups.encoded, backups.utf8]) {
      expect(b.jobs.objects.filter((o) => o.kind === 'table-data')).toHaveLength(1);
    }
  }, 240_000);

  /**
   * Restores `which` backup of both databases with `selection` and expects the same tables of
   * both, `expected`: into a new database; or, `clean`, twice over a database of the backup's
   * encoding that has the schema (pg_restore's --schema and --table create no schema).
   */
  async function sameAsUtf8(
    which: 'one' | 'jobs',
    selection: string[],
    expected: string[],
    clean = false,
  ): Promise<void> {
    const got: string[][] = [];
    for (const from of ['encoded', 'utf8'] as const) {
      const target = uniqueName(`select_${encoding}_${from}`);
      created.push(target);
      const manifest = backups[from][which];
      if (clean) {
        await createDatabase(
          from === 'utf8' ? 'UTF8' : encoding,
          `CREATE SCHEMA ${quoteIdent(names.schema)}`,
          target,
        );
      }
      const mode = clean ? ['--mode', 'clean', '--force', '--no-safety-backup'] : [];
      const result = await restore(manifest, target, ...mode, ...selection);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const restored = await contents(target);
      if (clean) {
        // Over it again: the same.
        const again = await restore(manifest, target, ...mode, ...selection);
        expect(again.stderr).toBe('');
        expect(again.code).toBe(0);
        expect(await contents(target)).toEqual(restored);
      }
      got.push(restored);
    }
    expect(got[0]).toEqual(got[1]);
    const tables = got[0].filter((line) => line.startsWith('table ')).map((line) => line.split(':')[0]);
    expect(tables).toEqual(expected.map((t) => `table ${t}`));
  }

  test.each(['one', 'jobs'] as const)(
    '--table of a non-ASCII name restores exactly the table of that name (%s)',
    async (which) => {
      await sameAsUtf8(which, ['--table', names.a], [`public.${names.a}`]);
    },
    240_000,
  );

  test.each(['one', 'jobs'] as const)(
    '--table of an ASCII name (its data in a side archive) and a non-ASCII one (%s)',
    async (which) => {
      await sameAsUtf8(
        which,
        ['--table', 'ta', '--table', names.b],
        [`public.${names.b}`, 'public.ta'].sort(),
      );
    },
    240_000,
  );

  test.each(['one', 'jobs'] as const)(
    '--schema of a non-ASCII name restores exactly that schema, in clean mode over it (%s)',
    async (which) => {
      const s = names.schema;
      await sameAsUtf8(which, ['--schema', s], [`${s}.item`, `${s}.${names.inSchema}`].sort(), true);
    },
    240_000,
  );

  test('--table of non-ASCII names in clean mode, from a --jobs 2 backup', async () => {
    await sameAsUtf8(
      'jobs',
      ['--table', names.c, '--table', names.a],
      [`public.${names.a}`, `public.${names.c}`].sort(),
      true,
    );
  }, 240_000);
});

async function refused(manifest: BackupManifest, option: string, value: string, message: string) {
  const target = uniqueName('select_refused');
  created.push(target);
  const result = await restore(manifest, target, option, value);
  expect(result.code).not.toBe(0);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(`${option} ${JSON.stringify(value)} cannot be matched exactly`);
  expect(result.stderr).toContain(message);
  const databases = await withClient(pg, 'postgres', (c) =>
    c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE $1', [
      `%${target}`,
    ]),
  );
  expect(databases.rows[0].n).toBe(0);
}

test('a non-ASCII name of a backup in an encoding pgferry cannot convert to (LATIN10) is refused in one line, nothing created', async () => {
  const database = await createDatabase(
    'LATIN10',
    'CREATE TABLE "șara" (id int); CREATE TABLE plain (id int);',
  );
  const manifest = await backup(database);
  await refused(
    manifest,
    '--table',
    'șara',
    'its database is in LATIN10, and pgferry has no exact conversion',
  );
  // ASCII names are their own bytes in every encoding: passed.
  const target = uniqueName('select_latin10_ascii');
  created.push(target);
  const result = await restore(manifest, target, '--table', 'plain');
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
}, 120_000);

test("a name with a character the EUC_JP decoder leaves out (JIS X 0212's á) is refused in one line, nothing created", async () => {
  const database = await createDatabase('EUC_JP', 'CREATE TABLE "tá" (id int); INSERT INTO "tá" VALUES (1);');
  const manifest = await backup(database);
  await refused(manifest, '--table', 'tá', 'a character of it has no exact equivalent in EUC_JP');
}, 120_000);

test("in a LATIN1 backup a --table of a view's non-ASCII name (looked up in the archive, decoded) restores it; a near miss is refused, naming the table", async () => {
  const database = await createDatabase(
    'LATIN1',
    `CREATE TABLE "pequeño" (id int PRIMARY KEY, label text); INSERT INTO "pequeño" VALUES (1, 'uno');
     CREATE VIEW "vista_año" AS SELECT 1 AS n;`,
  );
  const manifest = await backup(database);
  const target = uniqueName('select_latin1_view');
  created.push(target);
  const result = await restore(manifest, target, '--table', 'vista_año', '--table', 'pequeño');
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  const views = await withClient(pg, target, (c) =>
    c.query<{ viewname: string }>("SELECT viewname FROM pg_views WHERE schemaname = 'public'"),
  );
  expect(views.rows.map((r) => r.viewname)).toEqual(['vista_año']);
  expect((await contents(target)).filter((line) => line.startsWith('table '))).toEqual([
    (await contents(database)).find((line) => line.startsWith('table public.pequeño')),
  ]);
  const missed = uniqueName('select_latin1_missed');
  created.push(missed);
  const refusal = await restore(manifest, missed, '--table', 'pequeno');
  expect(refusal.code).not.toBe(0);
  expect(refusal.stderr).toBe(
    `pgferry: --table "pequeno" matches nothing in backup ${manifest.id}: it has no table, view, materialized view, ` +
      `sequence or foreign table of that exact name (as pg_restore's -t: the name alone, case included); ` +
      'close names: "pequeño" (in "public"); nothing was restored\n',
  );
}, 120_000);

test("a SQL_ASCII backup --jobs 2 dumps a non-ASCII table's data apart (its UTF-8 pattern meets the name), and restores its rows", async () => {
  const database = await createDatabase(
    'SQL_ASCII',
    `CREATE TABLE "grañde" (id int PRIMARY KEY, label text);
     INSERT INTO "grañde" SELECT g, repeat('ñ', 50) || g FROM generate_series(1, 20000) g;
     CREATE TABLE "pequeño" (id int PRIMARY KEY, label text);
     INSERT INTO "pequeño" SELECT g, 'p' || g FROM generate_series(1, 3) g;`,
  );
  const manifest = await backup(database, '--jobs', '2');
  expect(manifest.objects.filter((o) => o.kind === 'table-data')).toHaveLength(1);
  expect(manifest.tables.map((t) => `${t.name}:${t.rows}`)).toEqual(['grañde:20000', 'pequeño:3']);
  const target = uniqueName('select_sql_ascii_jobs');
  created.push(target);
  const result = await restore(manifest, target);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(await contents(target)).toEqual(await contents(database));
  const one = uniqueName('select_sql_ascii_table');
  created.push(one);
  const selected = await restore(manifest, one, '--table', 'grañde');
  expect(selected.stderr).toBe('');
  expect((await contents(one)).filter((line) => line.startsWith('table '))).toEqual([
    (await contents(database)).find((line) => line.startsWith('table public.grañde')),
  ]);
}, 180_000);
