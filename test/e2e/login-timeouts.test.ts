/**
 * A login with short timeouts of its own — what platform teams set on the roles apps log in with
 * (`ALTER ROLE … SET statement_timeout`, `idle_in_transaction_session_timeout`, `lock_timeout`,
 * `idle_session_timeout`, and on PostgreSQL 17 `transaction_timeout`) — and a source database with a `statement_timeout` of its
 * own (`ALTER DATABASE … SET`, which a restore and a drill carry to the database they create):
 * backup, restore (create mode), verify and an offline migration each run longer than those
 * timeouts, in every session, and succeed with the source's exact row counts. pgferry's sessions
 * turn the inherited timeouts off (core/postgres/connect.ts, `SESSION_TIMEOUTS_OFF`).
 *
 * The seed is small but slow where it matters: `big` (200,000 rows) makes the dump and the load
 * last seconds; `slow` (2,500 rows) has an expression index whose function sleeps a millisecond per
 * row, so that building it and ANALYZE (which evaluates it on every sampled row) each take seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, MigrateReport, RestoreReport, VerifyReport } from '../../core/contracts';
import { extraPgBinDirs, REPO, runCli, runMigrate } from '../support/cli';
import {
  createLogin,
  createSeededDatabase,
  dropDatabase,
  dropLogin,
  quoteIdent,
  quoteLiteral,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-timeouts-'));
const store = `file://${dir}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SEED = `
  CREATE FUNCTION slow_key(integer) RETURNS integer LANGUAGE sql IMMUTABLE
    AS 'SELECT $1 FROM pg_catalog.pg_sleep(0.001)';
  CREATE TABLE big (id integer PRIMARY KEY, v text);
  INSERT INTO big SELECT g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 200000) g;
  CREATE TABLE slow (id integer);
  INSERT INTO slow SELECT generate_series(1, 2500);
  CREATE INDEX slow_key_idx ON slow (slow_key(id));`;

const ROWS = { 'public.big': 200_000, 'public.slow': 2_500 };

/** The login's own timeouts: every one shorter than the work. */
function timeouts(major: number): string[] {
  return [
    "statement_timeout = '1s'",
    "lock_timeout = '1s'",
    "idle_in_transaction_session_timeout = '1s'",
    "idle_session_timeout = '1s'",
    ...(major >= 17 ? ["transaction_timeout = '2s'"] : []),
  ];
}

/** A login (superuser: the subject here is its timeouts, not its privileges) with short timeouts. */
async function timedLogin(pg: TestPostgres): Promise<{ user: string; password: string }> {
  const login = await createLogin(pg, 'timed', 'SUPERUSER');
  await withClient(pg, 'postgres', async (c) => {
    for (const setting of timeouts(pg.major))
      await c.query(`ALTER ROLE ${quoteIdent(login.user)} SET ${setting}`);
  });
  return login;
}

function url(pg: TestPostgres, login: { user: string; password: string }, database: string): string {
  return `postgres://${encodeURIComponent(login.user)}:${encodeURIComponent(login.password)}@${pg.host}:${pg.port}/${encodeURIComponent(database)}`;
}

async function rowCounts(pg: TestPostgres, database: string): Promise<Record<string, number>> {
  return withClient(pg, database, async (c) => {
    const big = await c.query<{ n: string }>('SELECT count(*) AS n FROM public.big');
    const slow = await c.query<{ n: string }>('SELECT count(*) AS n FROM public.slow');
    return { 'public.big': Number(big.rows[0].n), 'public.slow': Number(slow.rows[0].n) };
  });
}

/** What `pgferry list` shows of the store's backups (ids). */
async function listed(): Promise<string[]> {
  const result = await runCli(['list', '--store', store, '--json']);
  expect(result.stderr).toBe('');
  return (JSON.parse(result.stdout) as { id: string }[]).map((b) => b.id);
}

describe.each([15, 17])('a login with short timeouts, PostgreSQL %i', (major) => {
  const pg = env.server(major);
  const source = uniqueName(`timed_src_${major}`);
  const restored = uniqueName(`timed_restored_${major}`);
  const migrated = uniqueName(`timed_migrated_${major}`);
  let login: { user: string; password: string };
  let manifest: BackupManifest | undefined;

  beforeAll(async () => {
    await createSeededDatabase(pg, source, SEED);
    await withClient(pg, 'postgres', (c) =>
      c.query(`ALTER DATABASE ${quoteIdent(source)} SET statement_timeout = '1s'`),
    );
    login = await timedLogin(pg);
  }, 120_000);

  afterAll(async () => {
    for (const db of [source, restored, migrated]) await dropDatabase(pg, db);
    await dropLogin(pg, login.user);
  });

  test('backup: the whole database, listed', async () => {
    const result = await runCli(['backup', '--source', url(pg, login, source), '--store', store, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    manifest = JSON.parse(result.stdout) as BackupManifest;
    expect(await listed()).toContain(manifest.id);
  }, 300_000);

  test('restore (create mode): every row, the database its settings', async () => {
    if (!manifest) throw new Error('no backup');
    const result = await runCli([
      'restore',
      '--store',
      store,
      '--backup',
      manifest.id,
      '--target',
      url(pg, login, restored),
      '--json',
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as RestoreReport).toMatchObject({ status: 'passed' });
    expect(await rowCounts(pg, restored)).toEqual(ROWS);
    const settings = await withClient(pg, 'postgres', async (c) => {
      const { rows } = await c.query<{ setconfig: string[] }>(
        `SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
          WHERE d.datname = ${quoteLiteral(restored)} AND s.setrole = 0`,
      );
      return rows.flatMap((r) => r.setconfig);
    });
    expect(settings).toContain('statement_timeout=1s');
  }, 300_000);

  test('verify: the drill passes', async () => {
    if (!manifest) throw new Error('no backup');
    const binDirs = [
      ...extraPgBinDirs(),
      '/usr/lib/postgresql/15/bin',
      ...[14, 17].map((m) => path.join(REPO, 'node_modules', `pg${m}`, 'native', 'bin')),
    ].join(':');
    const result = await runCli(['verify', '--store', store, '--backup', manifest.id, '--json'], {
      env: { PGFERRY_PG_BIN_DIRS: binDirs },
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as VerifyReport).toMatchObject({ status: 'passed' });
  }, 300_000);

  test('offline migration: every row, checked', async () => {
    const result = await runMigrate(url(pg, login, source), url(pg, login, migrated), dir, ['--json']);
    // Its one line of size and estimate, nothing else.
    expect(result.stderr).toMatch(/^migrate: [^\n]*\n$/);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as MigrateReport;
    expect(report).toMatchObject({ status: 'passed' });
    expect(report.databases[0].checks.analyzed).toBe(true);
    expect(await rowCounts(pg, migrated)).toEqual(ROWS);
  }, 300_000);
});

describe('a login with short timeouts: an online migration, PostgreSQL 15 → 17', () => {
  const from = usePrivateServer(15, {
    settings: { wal_level: 'logical', max_replication_slots: 3, max_wal_senders: 6 },
  });
  const to = usePrivateServer(17);
  const source = uniqueName('timed_online_src');
  const migrated = uniqueName('timed_online_dst');
  let sourceLogin: { user: string; password: string };
  let targetLogin: { user: string; password: string };

  beforeAll(async () => {
    await createSeededDatabase(from(), source, SEED);
    sourceLogin = await timedLogin(from());
    targetLogin = await timedLogin(to());
  }, 120_000);

  test('every row, nothing of the replication left', async () => {
    const result = await runMigrate(url(from(), sourceLogin, source), url(to(), targetLogin, migrated), dir, [
      '--online',
      '--no-schema-test',
      '--replica-identity-full',
      '--json',
    ]);
    expect(result.stderr).toMatch(/^migrate: [^\n]*\n$/);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout) as MigrateReport).toMatchObject({ status: 'passed' });
    expect(await rowCounts(to(), migrated)).toEqual(ROWS);
    const left = await withClient(from(), source, (c) =>
      c.query('SELECT slot_name FROM pg_replication_slots UNION ALL SELECT pubname FROM pg_publication'),
    );
    expect(left.rows).toEqual([]);
  }, 300_000);
});
