/**
 * A restore's `--schema`/`--table` of a whole-database backup, for a schema other than public:
 * pg_restore's `-n`/`-t` never select the schema's own `CREATE SCHEMA` (nor its comment and
 * grants), so into a database without the schema it failed (`schema "sales" does not exist`).
 * The restore gives the schema as the backup has it (owner, comment, grant) and the selected
 * tables' rows, nothing else of the backup: into a new database, from one pg_dump's backup and from
 * a `backup --jobs 2` one (the large table's data in a side archive), and in clean mode into an
 * existing database without the schema. A `--schema` or `--table` that selects nothing of the
 * backup (pg_restore's `-n`/`-t` would restore nothing, and succeed) is refused in one line by the
 * preflight, before anything is created or backed up; one that selects a view, a materialized view
 * or a sequence (not among the manifest's tables: looked up in the archive) restores it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest } from '../../core/contracts';
import { backupOf } from '../support/backed-up-database';
import { runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';

const env = testEnv();
const pg = env.server(15);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-select-schemas-'));
const store = `file://${dir}`;
const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-select-schemas-work-'));
const created: string[] = [];
const owner = uniqueName('sales_owner');
const reader = uniqueName('sales_reader');
let backups: { one: BackupManifest; jobs: BackupManifest };

const SEED = `
  CREATE SCHEMA sales AUTHORIZATION ${quoteIdent(owner)};
  COMMENT ON SCHEMA sales IS 'the sales';
  GRANT USAGE ON SCHEMA sales TO ${quoteIdent(reader)};
  CREATE TABLE sales.orders (id int PRIMARY KEY, label text);
  INSERT INTO sales.orders SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
  CREATE TABLE sales.items (id int PRIMARY KEY);
  INSERT INTO sales.items SELECT generate_series(1, 7);
  CREATE TABLE public.orders (id int PRIMARY KEY);
  INSERT INTO public.orders SELECT generate_series(1, 3);
  CREATE TABLE public.other (id int);
  INSERT INTO public.other VALUES (1);
  CREATE VIEW public.answer AS SELECT 42 AS n;
  CREATE MATERIALIZED VIEW public.answers AS SELECT generate_series(1, 3) AS n;
  CREATE SEQUENCE public.tickets START 100;`;

beforeAll(async () => {
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE ROLE ${quoteIdent(owner)} NOLOGIN; CREATE ROLE ${quoteIdent(reader)} NOLOGIN`),
  );
  const source = uniqueName('select_schemas_src');
  created.push(source);
  await createSeededDatabase(pg, source, SEED);
  backups = {
    one: await backupOf(pg, source, store),
    jobs: await backupOf(pg, source, store, '--jobs', '2'),
  };
  // sales.orders's data is in a side archive of the --jobs 2 backup.
  expect(backups.jobs.objects.filter((o) => o.kind === 'table-data')).toHaveLength(1);
}, 180_000);

afterAll(async () => {
  for (const name of created) await dropDatabase(pg, name);
  await withClient(pg, 'postgres', (c) =>
    c.query(`DROP ROLE IF EXISTS ${quoteIdent(owner)}; DROP ROLE IF EXISTS ${quoteIdent(reader)}`),
  );
  for (const folder of [dir, workDir]) rmSync(folder, { recursive: true, force: true });
});

function restore(manifest: BackupManifest, target: string, ...more: string[]) {
  return runCli(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target), ...more],
    { env: { PGFERRY_WORK_DIR: workDir } },
  );
}

/** The sales schema's owner, comment and grants, and every table (but public's) with its rows. */
async function contents(database: string): Promise<string[]> {
  return withClient(pg, database, async (c) => {
    const schemas = await c.query<{ line: string }>(
      `SELECT format('schema %s owner %s comment %s acl %s', nspname, nspowner::regrole,
                     obj_description(oid, 'pg_namespace'), nspacl) AS line
         FROM pg_namespace WHERE nspname = 'sales'`,
    );
    const tables = await c.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname IN ('sales', 'public') ORDER BY 1, 2`,
    );
    const out = schemas.rows.map((r) => r.line);
    for (const t of tables.rows) {
      const { rows } = await c.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
      );
      out.push(`table ${t.schema}.${t.name}: ${rows[0].n}`);
    }
    return out;
  });
}

/** A target database's own table, which a clean restore of sales leaves. */
const KEPT = 'CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (1)';

const SCHEMA = () =>
  `schema sales owner ${owner} comment the sales acl {${owner}=UC/${owner},${reader}=U/${owner}}`;

describe.each(['one', 'jobs'] as const)('a whole-database backup (%s)', (which) => {
  test('--schema sales into a new database: the schema (owner, comment, grant) and its tables, nothing else', async () => {
    const target = uniqueName('select_schemas_s');
    created.push(target);
    const result = await restore(backups[which], target, '--schema', 'sales');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('2 table row counts match');
    expect(await contents(target)).toEqual([SCHEMA(), 'table sales.items: 7', 'table sales.orders: 20000']);
  }, 120_000);

  test('--schema sales --table orders (sales.orders) into a new database: the schema and that table', async () => {
    const target = uniqueName('select_schemas_t');
    created.push(target);
    const result = await restore(backups[which], target, '--schema', 'sales', '--table', 'orders');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('1 table row counts match');
    expect(await contents(target)).toEqual([SCHEMA(), 'table sales.orders: 20000']);
  }, 120_000);

  test("--table orders (as pg_restore -t: every schema's) into a new database: both tables, sales as the backup has it", async () => {
    const target = uniqueName('select_schemas_tt');
    created.push(target);
    const result = await restore(backups[which], target, '--table', 'orders');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(await contents(target)).toEqual([SCHEMA(), 'table public.orders: 3', 'table sales.orders: 20000']);
  }, 120_000);

  test('--schema sales in clean mode into an existing database without it; again over it', async () => {
    const target = uniqueName('select_schemas_c');
    created.push(target);
    await createSeededDatabase(pg, target, KEPT);
    const mode = ['--mode', 'clean', '--force', '--no-safety-backup'];
    const result = await restore(backups[which], target, ...mode, '--schema', 'sales');
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const expected = [SCHEMA(), 'table public.kept: 1', 'table sales.items: 7', 'table sales.orders: 20000'];
    expect(await contents(target)).toEqual(expected);
    const again = await restore(backups[which], target, ...mode, '--schema', 'sales');
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(await contents(target)).toEqual(expected);
  }, 120_000);

  test('--table of a view, a materialized view and a sequence (no table of the manifest) restores them', async () => {
    const target = uniqueName('select_schemas_v');
    created.push(target);
    const result = await restore(
      backups[which],
      target,
      '--table',
      'answer',
      '--table',
      'answers',
      '--table',
      'tickets',
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const relations = await withClient(pg, target, (c) =>
      c.query<{ line: string }>(
        `SELECT format('%s %s', c.relkind, c.relname) AS line FROM pg_class c
          WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S') ORDER BY c.relname`,
      ),
    );
    expect(relations.rows.map((r) => r.line)).toEqual(['v answer', 'm answers', 'S tickets']);
  }, 120_000);

  test('a --table or --schema that selects nothing is refused in one line, naming it and close names; nothing created', async () => {
    const manifest = backups[which];
    const target = uniqueName('select_schemas_none');
    created.push(target);
    const cases: [string[], string][] = [
      [
        ['--table', 'ordrs'],
        `--table "ordrs" matches nothing in backup ${manifest.id}: it has no table, view, materialized view, sequence or ` +
          `foreign table of that exact name (as pg_restore's -t: the name alone, case included); close names: ` +
          `"orders" (in "public", "sales")`,
      ],
      [
        ['--table', 'orders', '--table', 'Items'],
        `--table "Items" matches nothing in backup ${manifest.id}: it has no table, view, materialized view, sequence or ` +
          `foreign table of that exact name (as pg_restore's -t: the name alone, case included); close names: "items" (in "sales")`,
      ],
      [
        ['--schema', 'public', '--table', 'items'],
        `--table "items" is in none of the --schema schemas ("public") of backup ${manifest.id}: it is in "sales"; ` +
          'add --schema "sales", or leave --schema out to restore it from every schema',
      ],
      [
        ['--table', 'nothing_like_it'],
        `--table "nothing_like_it" matches nothing in backup ${manifest.id}: it has no table, view, materialized view, ` +
          `sequence or foreign table of that exact name (as pg_restore's -t: the name alone, case included); ` +
          `pgferry show --store ${store} --backup ${manifest.id} --json lists its tables`,
      ],
    ];
    for (const [selection, message] of cases) {
      const result = await restore(manifest, target, ...selection);
      expect(result.stderr).toBe(`pgferry: ${message}; nothing was restored\n`);
      expect(result.code).not.toBe(0);
    }
    const schema = await restore(manifest, target, '--schema', 'Sales');
    expect(schema.code).not.toBe(0);
    expect(schema.stderr).toMatch(
      new RegExp(
        `^pgferry: --schema "Sales" matches nothing in backup ${manifest.id}: it has no schema of that exact name ` +
          `\\(as pg_restore's -n, case included\\); its schemas: "sales", .*"public".*; nothing was restored\n$`,
      ),
    );
    expect(await databasesLike(target)).toBe(0);
  }, 120_000);
});

/** How many databases have names ending in `name` (the target, or the one a restore loads first). */
async function databasesLike(name: string): Promise<number> {
  const { rows } = await withClient(pg, 'postgres', (c) =>
    c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE $1', [`%${name}`]),
  );
  return rows[0].n;
}

test('in clean mode a --table that selects nothing is refused before the safety backup: nothing dropped or backed up', async () => {
  const target = uniqueName('select_schemas_cn');
  created.push(target);
  await createSeededDatabase(pg, target, KEPT);
  const result = await restore(backups.one, target, '--mode', 'clean', '--force', '--table', 'ordrs');
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(
    /^pgferry: --table "ordrs" matches nothing in backup .*; nothing was restored\n$/,
  );
  expect(await contents(target)).toEqual(['table public.kept: 1']);
  // No safety backup of the target was taken (it would be filed under the target's name).
  const listed = await runCli(['list', '--store', store, '--json']);
  expect(listed.code).toBe(0);
  expect(listed.stdout).not.toContain(target);
}, 120_000);

test('--table sales.orders (schema-qualified, as backup --table takes it) restores that table and its schema, not public.orders', async () => {
  const target = uniqueName('select_schemas_q');
  created.push(target);
  const result = await restore(backups.one, target, '--table', 'sales.orders');
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain('1 table row counts match');
  expect(await contents(target)).toEqual([SCHEMA(), 'table sales.orders: 20000']);
}, 120_000);

/**
 * `--table schema.table`, as `backup --table` and psql take a name: that table alone, where
 * pg_restore's `-t` takes a name alone (in every `-n` schema given), so that `-n a -n b -t orders -t
 * customers` would restore a.customers and b.orders too. Three schemas with the same tables; a.orders's
 * data in a side archive of the `--jobs 2` backup; a grant on each table.
 */
describe('schema-qualified --table names', () => {
  const QUALIFIED_SEED = ['a', 'b', 'c']
    .map(
      (s, i) => `
      CREATE SCHEMA ${s};
      CREATE TABLE ${s}.orders (id int PRIMARY KEY, label text);
      INSERT INTO ${s}.orders SELECT g, repeat('x', 100) FROM generate_series(1, ${i === 0 ? 20000 : 10 + i}) g;
      CREATE TABLE ${s}.customers (id int PRIMARY KEY);
      INSERT INTO ${s}.customers SELECT generate_series(1, ${20 + i});
      GRANT SELECT ON ${s}.orders, ${s}.customers TO ${quoteIdent(reader)};`,
    )
    .join('\n');
  let qualified: { one: BackupManifest; jobs: BackupManifest };

  beforeAll(async () => {
    const source = uniqueName('select_qualified_src');
    created.push(source);
    await createSeededDatabase(pg, source, QUALIFIED_SEED);
    qualified = {
      one: await backupOf(pg, source, store),
      jobs: await backupOf(pg, source, store, '--jobs', '2'),
    };
    expect(qualified.jobs.objects.filter((o) => o.kind === 'table-data')).toHaveLength(1);
  }, 180_000);

  /** The tables of schemas a, b and c with their rows, and whether the reader keeps its grant. */
  async function tablesOf(database: string): Promise<string[]> {
    return withClient(pg, database, async (c) => {
      const { rows: tables } = await c.query<{ schema: string; name: string; granted: boolean }>(
        `SELECT n.nspname AS schema, c.relname AS name,
                coalesce(has_table_privilege($1, c.oid, 'SELECT'), false) AS granted
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind = 'r' AND n.nspname IN ('a', 'b', 'c', 'public') ORDER BY 1, 2`,
        [reader],
      );
      const out: string[] = [];
      for (const t of tables) {
        const { rows } = await c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
        );
        out.push(`${t.schema}.${t.name}: ${rows[0].n}${t.granted ? ' (granted)' : ''}`);
      }
      return out;
    });
  }

  describe.each(['one', 'jobs'] as const)('of a whole-database backup (%s)', (which) => {
    test('--table a.orders into a new database: that table alone, with its rows and grant', async () => {
      const target = uniqueName('select_q1');
      created.push(target);
      const result = await restore(qualified[which], target, '--table', 'a.orders');
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('1 table row counts match');
      expect(await tablesOf(target)).toEqual(['a.orders: 20000 (granted)']);
    }, 120_000);

    test("--schema a --table orders (a name alone, pg_restore's -n/-t) keeps the table's grant too", async () => {
      const target = uniqueName('select_qg');
      created.push(target);
      const result = await restore(qualified[which], target, '--schema', 'a', '--table', 'orders');
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(await tablesOf(target)).toEqual(['a.orders: 20000 (granted)']);
    }, 120_000);

    test("--table a.orders --table b.customers: exactly those two (not a.customers, b.orders, nor c's)", async () => {
      const target = uniqueName('select_q2');
      created.push(target);
      const result = await restore(qualified[which], target, '--table', 'a.orders', '--table', 'b.customers');
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('2 table row counts match');
      expect(await tablesOf(target)).toEqual(['a.orders: 20000 (granted)', 'b.customers: 21 (granted)']);
    }, 120_000);

    test('--mode clean --table a.orders over a database with every table changed: that table dropped and replaced, nothing else touched', async () => {
      const target = uniqueName('select_qc');
      created.push(target);
      await createSeededDatabase(pg, target, QUALIFIED_SEED);
      await withClient(pg, target, (c) =>
        c.query(
          `DELETE FROM a.orders WHERE id > 5; DELETE FROM b.orders WHERE id > 5; DELETE FROM a.customers WHERE id > 5;
           REVOKE SELECT ON a.orders FROM ${quoteIdent(reader)}`,
        ),
      );
      const result = await restore(
        qualified[which],
        target,
        '--mode',
        'clean',
        '--force',
        '--no-safety-backup',
        '--table',
        'a.orders',
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(await tablesOf(target)).toEqual([
        'a.customers: 5 (granted)',
        'a.orders: 20000 (granted)',
        'b.customers: 21 (granted)',
        'b.orders: 5 (granted)',
        'c.customers: 22 (granted)',
        'c.orders: 12 (granted)',
      ]);
    }, 120_000);
  });

  test('a qualified --table that matches nothing is refused in one line naming close names; nothing created', async () => {
    const target = uniqueName('select_qn');
    created.push(target);
    const manifest = qualified.one;
    const kinds = 'table, view, materialized view, sequence or foreign table';
    const cases: [string[], string][] = [
      [
        ['--table', 'a.ordrs'],
        `--table "a.ordrs" matches nothing in backup ${manifest.id}: it has no ${kinds} named "ordrs" in schema "a" ` +
          '(names match exactly, case included); close names: "a.orders", "b.orders", "c.orders"',
      ],
      [
        ['--table', 'public.orders'],
        `--table "public.orders" matches nothing in backup ${manifest.id}: it has no ${kinds} named "orders" in schema ` +
          '"public" (names match exactly, case included); close names: "a.orders", "b.orders", "c.orders"',
      ],
      [
        ['--schema', 'b', '--table', 'a.orders'],
        '--table "a.orders" names a table of schema "a", which is none of the --schema schemas ("b"); ' +
          'add --schema "a", or leave --schema out',
      ],
    ];
    for (const [selection, message] of cases) {
      const result = await restore(manifest, target, ...selection);
      expect(result.stderr).toBe(`pgferry: ${message}; nothing was restored\n`);
      expect(result.code).not.toBe(0);
    }
    expect(await databasesLike(target)).toBe(0);
  }, 120_000);
});
