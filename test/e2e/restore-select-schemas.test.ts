/**
 * A restore's `--schema`/`--table` of a whole-database backup, for a schema other than public:
 * pg_restore's `-n`/`-t` never select the schema's own `CREATE SCHEMA` (nor its comment and
 * grants), so into a database without the schema it failed (`schema "sales" does not exist`).
 * The restore gives the schema as the backup has it (owner, comment, grant) and the selected
 * tables' rows, nothing else of the backup: into a new database, from one pg_dump's backup and from
 * a `backup --jobs 2` one (the large table's data in a side archive), and in clean mode into an
 * existing database without the schema.
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
  INSERT INTO public.other VALUES (1);`;

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
    await createSeededDatabase(
      pg,
      target,
      'CREATE TABLE public.kept (id int); INSERT INTO public.kept VALUES (1)',
    );
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
});

test('--table sales.orders (a schema-qualified name, which pg_restore -t does not take) is refused in one line, nothing created', async () => {
  const target = uniqueName('select_schemas_q');
  created.push(target);
  const result = await restore(backups.one, target, '--table', 'sales.orders');
  expect(result.code).not.toBe(0);
  expect(result.stderr).toBe(
    `pgferry: --table "sales.orders" names no table of the backup: --table takes a table's name without its schema, as pg_restore's -t does; restore sales.orders with --schema "sales" --table "orders"; nothing was restored\n`,
  );
  const databases = await withClient(pg, 'postgres', (c) =>
    c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE $1', [
      `%${target}`,
    ]),
  );
  expect(databases.rows[0].n).toBe(0);
}, 120_000);
