/**
 * Backups of part of a database (`--schema`, `--exclude-schema`, `--table`, `--exclude-table`,
 * `--exclude-table-data`), on every major:
 *
 * - Restored, a partial backup holds exactly its scope: excluded schemas and tables are absent, the
 *   tables of `--exclude-table-data` are there and empty, the rest is identical to the source
 *   (row counts and a digest of every row); the restore says, in its output and its report, that
 *   the backup is partial.
 * - The manifest records the scope; `show` prints it, `list` marks the backup, and its row counts
 *   are those of the tables whose rows are in the backup only.
 * - `verify` passes on a partial backup, and still fails when a table the manifest says carries
 *   rows comes back without them.
 * - An include pattern that matches nothing (a typo) fails the backup, naming the pattern, and
 *   leaves no backup (`--strict-names`), even beside a pattern that does match.
 * - A clean restore of a partial backup drops nothing outside its scope: tables it does not hold
 *   keep their rows; and where dropping a schema of the backup would take objects outside the
 *   scope with it, it is refused before anything is dropped.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { extraPgBinDirs, runCli, sourceUrl } from '../support/cli';
import {
  createDatabase,
  dropDatabase,
  quoteIdent,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { fingerprint } from '../support/fingerprint';

const env = testEnv();

const SOURCE_SQL = `
  CREATE SCHEMA app;
  CREATE TABLE app.orders (id int PRIMARY KEY, note text);
  INSERT INTO app.orders SELECT g, 'order ' || g FROM generate_series(1, 1000) g;
  CREATE TABLE app.audit_log (id bigserial PRIMARY KEY, order_id int REFERENCES app.orders, at timestamptz DEFAULT now());
  INSERT INTO app.audit_log (order_id) SELECT g FROM generate_series(1, 500) g;
  CREATE TABLE app.big_cache (k text PRIMARY KEY, v bytea);
  INSERT INTO app.big_cache SELECT 'k' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 300) g;
  CREATE VIEW app.order_notes AS SELECT id, note FROM app.orders;
  CREATE SCHEMA scratch;
  CREATE TABLE scratch.tmp (x int);
  INSERT INTO scratch.tmp SELECT generate_series(1, 100);
  CREATE TABLE public.keep (id int PRIMARY KEY, label text);
  INSERT INTO public.keep SELECT g, 'keep ' || g FROM generate_series(1, 50) g;`;

/** A table's rows and digest as the fingerprint reads them; undefined when the table does not exist. */
async function tableOf(pg: TestPostgres, database: string, schema: string, name: string) {
  return (await fingerprint(pg, database)).tables.find((t) => t.schema === schema && t.name === name);
}

/** A restore into the source's own server: a PostgreSQL 14 source's archive is written by a newer pg_dump. */
function downgrade(pg: TestPostgres, manifest: BackupManifest): string[] {
  return manifest.tool.pgDumpMajor > pg.major ? ['--allow-downgrade'] : [];
}

function workDirEnv(): Record<string, string> {
  const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-scoped-work-'));
  chmodSync(workDir, 0o711);
  return { PGFERRY_WORK_DIR: workDir };
}

/** `verify` of a backup of `pg`: its drill runs a server of `pg`'s major (embedded 14 and 17). */
function verify(pg: TestPostgres, store: string, backupId: string) {
  return runCli(['verify', '--store', store, '--backup', backupId], {
    env: { ...workDirEnv(), PGFERRY_PG_BIN_DIRS: [...extraPgBinDirs(), pg.binDir].join(':') },
  });
}

test.each([
  ['--table', 'an empty pattern', '', '--table needs a schema or table name (or pattern), not an empty one'],
  [
    '--exclude-table-data',
    'a line break',
    'logs\n',
    '--exclude-table-data may not hold a control character (\\u000a)',
  ],
  [
    '--schema',
    '600 characters',
    'x'.repeat(600),
    '--schema is 600 characters long; a pattern may have at most 512',
  ],
])('%s with %s is refused in one line before anything is touched', async (flag, _what, pattern, message) => {
  const storeDir = mkdtempSync(path.join(tmpdir(), 'pgferry-scoped-refused-'));
  const result = await runCli([
    'backup',
    ...['--source', 'postgres://nobody@127.0.0.1:1/none', '--store', storeDir, flag, pattern],
  ]);
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain(message);
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
});

describe.each(env.postgres.map((pg) => ({ pg, major: pg.major })))('PostgreSQL $major', ({ pg }) => {
  const source = uniqueName('scoped');
  const storeDir = mkdtempSync(path.join(tmpdir(), 'pgferry-scoped-'));
  const store = `file://${storeDir}`;
  const created: string[] = [];
  let partial: BackupManifest;

  const backup = (...scope: string[]) =>
    runCli(['backup', '--source', sourceUrl(pg, source), '--store', store, '--json', ...scope]);

  beforeAll(async () => {
    await createDatabase(pg, source);
    await withClient(pg, source, (c) => c.query(SOURCE_SQL));
    const result = await backup(
      ...['--schema', 'app', '--exclude-table', 'app.big_*'],
      ...['--exclude-table-data', 'app.audit_log'],
    );
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    partial = JSON.parse(result.stdout) as BackupManifest;
  }, 120_000);
  afterAll(async () => {
    for (const name of [source, ...created]) await dropDatabase(pg, name);
  });

  test('the manifest records the scope and counts the rows of the tables whose rows it holds', () => {
    expect(partial.scope).toEqual({
      schemas: ['app'],
      excludeSchemas: [],
      tables: [],
      excludeTables: ['app.big_*'],
      excludeTableData: ['app.audit_log'],
    });
    expect(partial.tables).toMatchObject([{ schema: 'app', name: 'orders', rows: 1000 }]);
  });

  test('show prints the scope and list marks the backup as partial', async () => {
    const shown = await runCli(['show', '--store', store, '--backup', partial.id]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /^scope +partial: --schema=app --exclude-table=app\.big_\* --exclude-table-data=app\.audit_log$/m,
    );
    expect(shown.stdout).toMatch(/^tables with data +1 \(1,000 rows\)$/m);
    const listed = await runCli(['list', '--store', store]);
    expect(listed.stdout).toMatch(new RegExp(`^${partial.id} +${source} \\(partial\\) `, 'm'));
  });

  test('restored, it holds exactly its scope, says it is partial, and the rest is identical', async () => {
    const target = uniqueName('scoped_restore');
    created.push(target);
    const result = await runCli(
      [
        'restore',
        ...['--store', store, '--backup', partial.id, '--target', sourceUrl(pg, target), '--json'],
        ...downgrade(pg, partial),
      ],
      { env: workDirEnv() },
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(
      `partial backup: ${partial.id} holds only --schema=app --exclude-table=app.big_* ` +
        '--exclude-table-data=app.audit_log; nothing outside it was restored',
    );
    const report = JSON.parse(result.stdout) as RestoreReport;
    expect(report.backupScope).toEqual(partial.scope);
    expect(report.checks.rowCounts).toEqual([
      { schema: 'app', name: 'orders', rows: 1000, restoredRows: 1000 },
    ]);

    const restored = await fingerprint(pg, target);
    expect(restored.tables.map((t) => `${t.schema}.${t.name}`)).toEqual(['app.audit_log', 'app.orders']);
    expect(await tableOf(pg, target, 'app', 'orders')).toEqual(await tableOf(pg, source, 'app', 'orders'));
    expect((await tableOf(pg, target, 'app', 'audit_log'))?.rows).toBe(0);
    const view = await withClient(pg, target, (c) =>
      c.query('SELECT count(*)::int AS n FROM app.order_notes'),
    );
    expect(view.rows[0].n).toBe(1000);
  });

  test("a --table backup restores into a new database: the tables' schemas are created", async () => {
    const dumped = await backup('--table', 'app.orders');
    expect(dumped.code).toBe(0);
    const manifest = JSON.parse(dumped.stdout) as BackupManifest;
    const target = uniqueName('scoped_tables');
    created.push(target);
    const result = await runCli(
      [
        'restore',
        ...['--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target)],
        ...downgrade(pg, manifest),
      ],
      { env: workDirEnv() },
    );
    expect(result.stderr).toContain('partial backup:');
    expect(result.code).toBe(0);
    expect((await fingerprint(pg, target)).tables).toEqual([await tableOf(pg, source, 'app', 'orders')]);
  });

  test('verify passes on the partial backup', async () => {
    const result = await verify(pg, store, partial.id);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/1 table row counts match/);
    expect(result.code).toBe(0);
  });

  test('an include pattern that matches nothing fails the backup, naming it, and leaves none', async () => {
    const ids = async () =>
      (JSON.parse((await runCli(['list', '--store', store, '--json'])).stdout) as BackupManifest[]).map(
        (m) => m.id,
      );
    const before = await ids();
    for (const scope of [
      ['--table', 'app.ordres'],
      ['--table', 'app.orders', '--table', 'app.nope'],
      ['--schema', 'nosuch'],
    ]) {
      const result = await backup(...scope);
      expect(result.code).not.toBe(0);
      const pattern = scope[scope.length - 1];
      expect(result.stderr).toContain(`${scope[scope.length - 2]} "${pattern}" matches no `);
      expect(result.stderr).toContain('check its spelling');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await ids()).toEqual(before);
  });

  test('a clean restore of a partial backup drops nothing outside its scope', async () => {
    const target = uniqueName('scoped_clean');
    created.push(target);
    await withClient(pg, 'postgres', (c) =>
      c.query(`CREATE DATABASE ${quoteIdent(target)} TEMPLATE ${quoteIdent(source)}`),
    );
    // Changes the clean restore must undo (in its scope) or keep (outside it).
    await withClient(pg, target, (c) =>
      c.query(`
        DELETE FROM app.orders WHERE id > 900;
        INSERT INTO public.keep VALUES (51, 'new');
        INSERT INTO scratch.tmp VALUES (101);
        INSERT INTO app.big_cache VALUES ('extra', NULL);`),
    );
    const kept = async () => ({
      orders: (await tableOf(pg, target, 'app', 'orders'))?.rows,
      auditLog: (await tableOf(pg, target, 'app', 'audit_log'))?.rows,
      bigCache: (await tableOf(pg, target, 'app', 'big_cache'))?.rows,
    });
    const untouched = { orders: 900, auditLog: 500, bigCache: 301 };
    const clean = async (...scope: string[]) => {
      const dumped = await backup(...scope);
      expect(dumped.code).toBe(0);
      const manifest = JSON.parse(dumped.stdout) as BackupManifest;
      return runCli(
        [
          'restore',
          ...['--store', store, '--backup', manifest.id, '--target', sourceUrl(pg, target)],
          ...['--mode', 'clean', '--force', '--no-safety-backup', ...downgrade(pg, manifest)],
        ],
        { env: workDirEnv() },
      );
    };

    const restored = await clean('--table', 'public.keep', '--table', 'scratch.tmp');
    expect(restored.stderr).toContain('partial backup:');
    expect(restored.code).toBe(0);
    for (const [schema, name] of [
      ['public', 'keep'],
      ['scratch', 'tmp'],
    ]) {
      expect(await tableOf(pg, target, schema, name)).toEqual(await tableOf(pg, source, schema, name));
    }
    expect(await kept()).toEqual(untouched);

    // Dropping app.orders would take a view and a foreign key outside the scope with it.
    const dependents = await clean('--table', 'app.orders');
    expect(dependents.code).not.toBe(0);
    expect(dependents.stderr).toMatch(/view app\.order_notes \(on table app\.orders\)/);
    expect(dependents.stderr).toMatch(/nothing was changed/);
    // Dropping the schema app would take app.big_cache, which the backup leaves out.
    const schema = await clean('--schema', 'app', '--exclude-table', 'app.big_cache');
    expect(schema.code).not.toBe(0);
    expect(schema.stderr).toMatch(/app\.big_cache/);
    expect(schema.stderr).toMatch(/nothing was changed/);
    expect(await kept()).toEqual(untouched);
  });

  test('verify still fails when a table the manifest says carries rows comes back without them', async () => {
    // The manifest claims app.audit_log's 500 rows, which the archive does not hold.
    const file = path.join(storeDir, databaseSegment(source), partial.id, 'manifest.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as BackupManifest;
    manifest.tables.unshift({ schema: 'app', name: 'audit_log', rows: 500 });
    writeFileSync(file, JSON.stringify(manifest));
    const result = await verify(pg, store, partial.id);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/row counts differ from the backup's: app\.audit_log 0 \(expected 500\)/);
  });
});
