/**
 * `pgferry restore` end to end on real servers: a restore reproduces the backup value by value
 * and reports what it checked; every refusal happens before the target is touched.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { ArchiveScanner } from '../../core/postgres/archive';
import { restoringName } from '../../core/postgres/incomplete-database';
import { databaseSegment } from '../../core/store-keys';
import { backupOf } from '../support/backed-up-database';
import { runCli, sourceUrl } from '../support/cli';
import {
  createDatabase,
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { fingerprint } from '../support/fingerprint';

const env = testEnv();
const pg15 = env.server(15);
const source = uniqueName('rsource');
const owner = uniqueName('rowner');
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-restore-'));
const store = `file://${dir}`;
let manifest: BackupManifest;

/** A new backup of the source (tests that damage or edit a backup use their own, not the shared one). */
function backupSource(): Promise<BackupManifest> {
  return backupOf(pg15, source, store);
}

function restore(target: string, ...args: string[]) {
  return runCli([
    'restore',
    '--store',
    store,
    '--backup',
    manifest.id,
    '--target',
    target,
    '--json',
    ...args,
  ]);
}

/** The database's own comment, settings and grants (pg_dump keeps them only for --create). */
async function databaseProperties(pg: TestPostgres, name: string) {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query(
      `SELECT shobj_description(d.oid, 'pg_database') AS comment,
              (SELECT array_agg(coalesce(r.rolname, '') || ':' || x ORDER BY coalesce(r.rolname, '') || ':' || x)
                 FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) x
                WHERE s.setdatabase = d.oid) AS settings,
              (SELECT array_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
                                || ':' || a.privilege_type || ':' || a.is_grantable
                                ORDER BY a.grantee, a.privilege_type)
                 FROM aclexplode(d.datacl) a) AS grants
       FROM pg_database d WHERE d.datname = $1`,
      [name],
    );
    return rows[0];
  });
}

/**
 * The state of the target server that a refused restore must leave as it was: its databases and
 * roles — those of this test file (other files run at the same time on the same servers).
 */
async function serverState(pg: TestPostgres): Promise<string> {
  const ours = `%\\_${process.pid}\\_%`;
  return withClient(pg, 'postgres', async (c) => {
    const dbs = await c.query('SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1', [ours]);
    const roles = await c.query('SELECT rolname FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1', [ours]);
    return JSON.stringify([dbs.rows, roles.rows]);
  });
}

beforeAll(async () => {
  await createDatabase(pg15, source);
  await withClient(pg15, 'postgres', (c) => c.query(`CREATE ROLE ${quoteIdent(owner)} NOLOGIN`));
  await withClient(pg15, source, (c) =>
    c.query(`
      CREATE SCHEMA app;
      CREATE TABLE app.accounts (id serial PRIMARY KEY, email text UNIQUE, balance numeric(12,2), note text);
      INSERT INTO app.accounts (email, balance, note)
        SELECT 'user' || g || '@example.com', g * 3.5, CASE WHEN g % 2 = 0 THEN NULL ELSE '' END
        FROM generate_series(1, 3000) g;
      CREATE TABLE app.events (id bigint GENERATED ALWAYS AS IDENTITY, account int REFERENCES app.accounts, payload jsonb);
      INSERT INTO app.events (account, payload) SELECT 1 + g % 3000, jsonb_build_object('g', g) FROM generate_series(1, 10000) g;
      CREATE TABLE public.audit (at timestamptz DEFAULT now(), what text);
      INSERT INTO public.audit (what) VALUES ('created');
      ALTER TABLE app.accounts OWNER TO ${quoteIdent(owner)};
      GRANT SELECT ON app.events TO ${quoteIdent(owner)};
      SELECT lo_from_bytea(0, '\\xdeadbeef'::bytea);`),
  );
  await withClient(pg15, 'postgres', (c) =>
    c.query(`
      COMMENT ON DATABASE ${quoteIdent(source)} IS 'the shop''s database';
      ALTER DATABASE ${quoteIdent(source)} SET work_mem TO '7MB';
      ALTER DATABASE ${quoteIdent(source)} SET search_path TO app, public;
      ALTER ROLE ${quoteIdent(owner)} IN DATABASE ${quoteIdent(source)} SET statement_timeout TO '5min';
      REVOKE CONNECT, TEMPORARY ON DATABASE ${quoteIdent(source)} FROM PUBLIC;
      GRANT CONNECT ON DATABASE ${quoteIdent(source)} TO ${quoteIdent(owner)} WITH GRANT OPTION;`),
  );
  manifest = await backupSource();
});

afterAll(async () => {
  await dropDatabase(pg15, source);
  await withClient(pg15, 'postgres', (c) =>
    c.query(`DROP OWNED BY ${quoteIdent(owner)}; DROP ROLE ${quoteIdent(owner)}`),
  ).catch(() => undefined);
});

test('the manifest records what a target must offer: encoding and locale, extensions, roles', () => {
  expect(manifest.requires).toEqual({
    encoding: 'UTF8',
    extensions: [],
    roles: expect.arrayContaining([owner, 'postgres']),
    locale: { collate: 'C', ctype: 'C', provider: 'libc' },
    collations: [],
    lz4Columns: [],
  });
});

describe('a restore into a new database', () => {
  const target = uniqueName('restored');
  let report: RestoreReport;

  beforeAll(async () => {
    const result = await restore(sourceUrl(pg15, target), '--jobs', '2');
    if (result.code !== 0) throw new Error(`restore failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as RestoreReport;
  });
  afterAll(() => dropDatabase(pg15, target));

  test('reproduces every table, sequence and large object of the source', async () => {
    const expected = await fingerprint(pg15, source);
    expect(expected.tables.map((t) => t.digest)).toEqual([
      expect.stringMatching(/^[0-9a-f]{32}$/),
      expect.stringMatching(/^[0-9a-f]{32}$/),
      expect.stringMatching(/^[0-9a-f]{32}$/),
    ]);
    expect(expected.largeObjects).toHaveLength(1);
    expect(await fingerprint(pg15, target)).toEqual(expected);
  });

  test("keeps the database's own comment, settings and grants under its new name", async () => {
    const expected = await databaseProperties(pg15, source);
    expect(expected.comment).toBe("the shop's database");
    expect(expected.settings).toHaveLength(3);
    expect(expected.grants).toContain(`${owner}:CONNECT:true`);
    expect(await databaseProperties(pg15, target)).toEqual(expected);
  });

  test('keeps owners and privileges', async () => {
    const owners = await withClient(pg15, target, (c) =>
      c.query("SELECT tableowner FROM pg_tables WHERE schemaname = 'app' AND tablename = 'accounts'"),
    );
    expect(owners.rows).toEqual([{ tableowner: owner }]);
  });

  test('reports verified checksums, matching row counts and ANALYZE', () => {
    expect(report).toMatchObject({
      kind: 'restore',
      status: 'passed',
      backupId: manifest.id,
      jobs: 2,
      mode: 'create',
    });
    expect(report.checks.checksums.map((c) => c.key).sort()).toEqual(
      manifest.objects.map((o) => o.key).sort(),
    );
    expect(report.checks.rowCounts.every((t) => t.rows === t.restoredRows)).toBe(true);
    expect(report.checks.rowCounts).toHaveLength(manifest.tables.length);
    expect(report.checks.analyzed).toBe(true);
    expect(report.timings.pgRestore).toBeGreaterThan(0);
  });

  test('stores the report beside the backup', () => {
    const file = path.join(
      dir,
      databaseSegment(source),
      manifest.id,
      `restore-report-${report.restoreId}.json`,
    );
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(report);
  });

  test('analyzed the restored tables', async () => {
    const analyzed = await withClient(pg15, target, (c) =>
      c.query(
        "SELECT count(*)::int AS n FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND schemaname = 'app'",
      ),
    );
    expect(analyzed.rows[0].n).toBe(2);
  });
});

test('latest resolves to the newest complete backup of the database', async () => {
  const target = uniqueName('latest');
  const result = await runCli([
    'restore',
    '--store',
    store,
    '--backup',
    'latest',
    '--database',
    source,
    '--target',
    sourceUrl(pg15, target),
    '--json',
  ]);
  expect(result.code).toBe(0);
  expect((JSON.parse(result.stdout) as RestoreReport).backupId).toBe(manifest.id);
  await dropDatabase(pg15, target);
});

test('--table restores only that table', async () => {
  const target = uniqueName('onetable');
  const result = await restore(sourceUrl(pg15, target), '--table', 'audit', '--no-owner', '--no-acl');
  expect(result.code).toBe(0);
  const tables = await withClient(pg15, target, (c) =>
    c.query(
      "SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    ),
  );
  expect(tables.rows).toEqual([{ t: 'public.audit' }]);
  expect((JSON.parse(result.stdout) as RestoreReport).checks.rowCounts.map((t) => t.name)).toEqual(['audit']);
  await dropDatabase(pg15, target);
});

describe('--mode clean', () => {
  const target = uniqueName('clean');
  beforeAll(async () => {
    await createSeededDatabase(pg15, target, 'CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)');
  });
  afterAll(() => dropDatabase(pg15, target));

  test('refuses a database with user tables without --force, leaving it unchanged', async () => {
    const result = await restore(sourceUrl(pg15, target), '--mode', 'clean');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/has 1 user tables; pass --force/);
    const rows = await withClient(pg15, target, (c) => c.query('SELECT x FROM keep_me'));
    expect(rows.rows).toEqual([{ x: 42 }]);
  });

  test('with --force replaces the contents with the backup', async () => {
    const result = await restore(sourceUrl(pg15, target), '--mode', 'clean', '--force');
    expect(result.code).toBe(0);
    const fp = await fingerprint(pg15, target);
    expect(fp.tables.map((t) => t.name)).toEqual(expect.arrayContaining(['accounts', 'events', 'audit']));
  });
});

describe('refusals leave the target untouched', () => {
  test('a backup id that does not exist', async () => {
    const before = await serverState(pg15);
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      '20200101T000000Z-000000',
      '--target',
      sourceUrl(pg15, uniqueName('x')),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: backup 20200101T000000Z-000000 not found in file:\/\//);
    expect(await serverState(pg15)).toBe(before);
  });

  test('an incomplete backup (no manifest)', async () => {
    const id = '20200101T000000Z-abcdef';
    const folder = path.join(dir, databaseSegment(source), id);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'dump.pgdump.zst'), 'partial');
    const before = await serverState(pg15);
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      id,
      '--database',
      source,
      '--target',
      sourceUrl(pg15, uniqueName('x')),
    ]);
    expect(result.stderr).toMatch(/backup 20200101T000000Z-abcdef is incomplete \(it has no manifest\)/);
    expect(await serverState(pg15)).toBe(before);
  });

  test('an existing database in create mode', async () => {
    const target = uniqueName('exists');
    await createDatabase(pg15, target);
    const result = await restore(sourceUrl(pg15, target));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /the target database .* already exists; choose another name, or use --mode clean/,
    );
    expect((await fingerprint(pg15, target)).tables).toEqual([]);
    await dropDatabase(pg15, target);
  });

  test("the backup's own source database", async () => {
    const before = await fingerprint(pg15, source);
    const result = await restore(sourceUrl(pg15, source), '--mode', 'clean');
    expect(result.stderr).toMatch(/is the database this backup was taken from; pass --force/);
    expect(await fingerprint(pg15, source)).toEqual(before);
  });

  test('an unreachable target', async () => {
    const result = await restore(`postgres://postgres:x@127.0.0.1:1/${uniqueName('x')}`);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: cannot reach PostgreSQL at postgres@127\.0\.0\.1:1\//);
  });

  test('a target older than the source without --allow-downgrade', async () => {
    const pg14 = env.server(14);
    const before = await serverState(pg14);
    const result = await restore(sourceUrl(pg14, uniqueName('older')));
    expect(result.stderr).toMatch(
      /the target runs PostgreSQL 14\.\d+ \(major 14\), older than this backup needs \(15\): its archive was written by pg_dump 15\.\d+ \(of a PostgreSQL 15\.\d+ source\);.* pass --allow-downgrade/,
    );
    expect(await serverState(pg14)).toBe(before);
  });

  test('extensions the backup needs that the target does not offer, listed by name', async () => {
    // A backup of a database using an extension this server lacks: its manifest says what it needs.
    const needy = await backupSource();
    const file = path.join(dir, databaseSegment(source), needy.id, 'manifest.json');
    const edited = JSON.parse(readFileSync(file, 'utf8')) as BackupManifest;
    edited.requires?.extensions.push(
      { name: 'postgis', version: '3.5.0' },
      { name: 'timescaledb', version: '2.17.0' },
    );
    writeFileSync(file, JSON.stringify(edited));
    const before = await serverState(pg15);
    const refused = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      needy.id,
      '--target',
      sourceUrl(pg15, uniqueName('noext')),
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'the target server does not offer extensions the backup needs: postgis 3.5.0, timescaledb 2.17.0',
    );
    expect(await serverState(pg15)).toBe(before);
  });

  test('roles the dump needs that the target lacks, listed by name', async () => {
    const pg17 = env.server(17);
    const before = await serverState(pg17);
    const result = await restore(sourceUrl(pg17, uniqueName('noroles')));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `roles that own or are granted objects in the backup do not exist on the target: ${owner}`,
    );
    expect(await serverState(pg17)).toBe(before);
  });
});

describe('a damaged backup is refused before anything of it is written to the target', () => {
  /** A create restore of the damaged backup fails: the database it created meanwhile is dropped. */
  async function refusedAsDamaged(backup: string, target: string): Promise<void> {
    const before = await serverState(pg15);
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      backup,
      '--target',
      sourceUrl(pg15, target),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^pgferry: object dump\.pgdump\.zst of backup \S+ (failed its checksum|cannot be read).*nothing of the backup was written to the target/,
    );
    expect(result.stderr).toContain(
      `(the database ${restoringName(target)}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target})`,
    );
    expect(await serverState(pg15)).toBe(before);
  }

  test('one flipped byte in the dump fails the checksum; the database created meanwhile is dropped, still empty', async () => {
    const damaged = await backupSource();
    const file = path.join(dir, databaseSegment(source), damaged.id, 'dump.pgdump.zst');
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(file, bytes);
    await refusedAsDamaged(damaged.id, uniqueName('corrupt'));
  });

  test("a byte damaged right after the archive's TOC fails the restore (the definitions are not waited for forever); the database created meanwhile is dropped", async () => {
    // A database without large objects: its archive is loaded as it streams in.
    const plain = uniqueName('rplain');
    await createSeededDatabase(
      pg15,
      plain,
      'CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 5000) g;',
    );
    const damaged = await backupOf(pg15, plain, store);
    await dropDatabase(pg15, plain);
    const file = path.join(dir, databaseSegment(plain), damaged.id, 'dump.pgdump.zst');
    const archive = execFileSync('zstd', ['-d', '-q', '-c', file], { maxBuffer: 1 << 30 });
    const scanner = new ArchiveScanner();
    scanner.write(archive);
    // The first data block's type, read in the same piece as the TOC's end.
    archive[scanner.tocEnd as number] = 9;
    // Compressed anew, then padded to the size the manifest records with a skippable frame.
    const compressed = execFileSync('zstd', ['-q', '-c', '-19'], { input: archive, maxBuffer: 1 << 30 });
    const padding = Buffer.alloc(readFileSync(file).length - compressed.length);
    padding.writeUInt32LE(0x184d2a50, 0);
    padding.writeUInt32LE(padding.length - 8, 4);
    writeFileSync(file, Buffer.concat([compressed, padding]));
    await refusedAsDamaged(damaged.id, uniqueName('corrupt_toc'));
  });

  test('a missing object is refused by preflight', async () => {
    const damaged = await backupSource();
    rmSync(path.join(dir, databaseSegment(source), damaged.id, 'globals.sql'));
    const before = await serverState(pg15);
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      damaged.id,
      '--target',
      sourceUrl(pg15, uniqueName('missing')),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/backup \S+ is missing its object globals\.sql/);
    expect(await serverState(pg15)).toBe(before);
  });
});

test('--with-globals creates the missing roles on a newer server, leaving existing ones alone', async () => {
  const pg17 = env.server(17);
  const target = uniqueName('globals');
  const result = await restore(sourceUrl(pg17, target), '--with-globals');
  expect(result.code).toBe(0);
  const report = JSON.parse(result.stdout) as RestoreReport;
  expect(report.checks.globals?.created).toContain(owner);
  expect(report.checks.globals?.skippedExisting).toContain('postgres');
  expect(await fingerprint(pg17, target)).toEqual(await fingerprint(pg15, source));
  await dropDatabase(pg17, target);
  await withClient(pg17, 'postgres', (c) => c.query(`DROP ROLE ${quoteIdent(owner)}`));
});

describe('--mode clean takes a safety backup of the target first', () => {
  const target = uniqueName('safety');
  beforeAll(async () => {
    await createSeededDatabase(
      pg15,
      target,
      'CREATE TABLE precious (x int); INSERT INTO precious VALUES (7)',
    );
  });
  afterAll(() => dropDatabase(pg15, target));

  test('whose id the report gives and which holds the replaced contents', async () => {
    const result = await restore(sourceUrl(pg15, target), '--mode', 'clean', '--force');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as RestoreReport;
    expect(report.safetyBackupId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    // Filed under the target with its server, never the source's name: it is not the source's latest.
    const name = `${target}@localhost:${pg15.port}`;
    expect(result.stderr).toContain(
      `safety backup of the target before it was replaced: ${report.safetyBackupId} (filed under ${name})`,
    );
    const listed = await runCli(['list', '--store', store, '--name', name, '--json']);
    const [safety] = JSON.parse(listed.stdout) as BackupManifest[];
    expect(safety.id).toBe(report.safetyBackupId);
    expect(safety.tables).toMatchObject([{ schema: 'public', name: 'precious', rows: 1 }]);
  });

  test('unless --no-safety-backup', async () => {
    const result = await restore(sourceUrl(pg15, target), '--mode', 'clean', '--force', '--no-safety-backup');
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as RestoreReport).safetyBackupId).toBeUndefined();
  });
});

describe('TOAST compression of the restored values', () => {
  const toastSource = uniqueName('rtoast');
  let toastBackup: BackupManifest;
  const compressionOf = (database: string) =>
    withClient(pg15, database, async (c) => {
      const { rows } = await c.query(`
        SELECT (SELECT array_agg(DISTINCT pg_column_compression(body)) FROM docs) AS body,
               (SELECT array_agg(DISTINCT pg_column_compression(kept)) FROM docs) AS kept,
               (SELECT md5(string_agg(body || kept, ',' ORDER BY id)) FROM docs) AS digest`);
      return rows[0] as { body: string[]; kept: string[]; digest: string };
    });
  const restoreToast = (target: string, ...args: string[]) =>
    runCli([
      'restore',
      ...['--store', store, '--backup', toastBackup.id, '--target', sourceUrl(pg15, target), '--json'],
      ...args,
    ]);

  beforeAll(async () => {
    await createSeededDatabase(
      pg15,
      toastSource,
      `
        CREATE TABLE docs (id int PRIMARY KEY, body text, kept text COMPRESSION pglz);
        INSERT INTO docs SELECT g, repeat('body ' || g, 4000), repeat('kept ' || g, 4000) FROM generate_series(1, 20) g;`,
    );
    const result = await runCli([
      'backup',
      '--source',
      sourceUrl(pg15, toastSource),
      '--store',
      store,
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`backup failed: ${result.stderr}`);
    toastBackup = JSON.parse(result.stdout) as BackupManifest;
  });
  afterAll(() => dropDatabase(pg15, toastSource));

  test('is lz4 by default, the same values, and columns with a method of their own keep it', async () => {
    const target = uniqueName('rtoastlz4');
    const result = await restoreToast(target);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as RestoreReport).toastCompression).toBe('lz4');
    const source = await compressionOf(toastSource);
    expect(source).toMatchObject({ body: ['pglz'], kept: ['pglz'] });
    expect(await compressionOf(target)).toEqual({ body: ['lz4'], kept: ['pglz'], digest: source.digest });
    await dropDatabase(pg15, target);
  });

  test("is the target server's default with --toast-compression server-default", async () => {
    const target = uniqueName('rtoastdefault');
    const result = await restoreToast(target, '--toast-compression', 'server-default');
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as RestoreReport).toastCompression).toBe('server-default');
    expect(await compressionOf(target)).toEqual(await compressionOf(toastSource));
    await dropDatabase(pg15, target);
  });

  test('an unknown method is refused in one line', async () => {
    const target = uniqueName('rtoastbad');
    const result = await restoreToast(target, '--toast-compression', 'zstd');
    expect(result.code).not.toBe(0);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/--toast-compression .*'zstd'.* Allowed choices are lz4, server-default/);
  });
});
