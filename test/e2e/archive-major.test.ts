/**
 * Drills that match restores: a migration's archive is written by the target's pg_dump (17 for a
 * 15 → 17 migration), so restoring it needs a server of at least that major. Verify starts one;
 * a restore into an older server is refused by preflight — or, with --allow-downgrade, tried with
 * a warning of what will fail — and every message names the pg_dump and the server apart.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, MigrateReport, VerifyReport } from '../../core/contracts';
import { databaseSegment, manifestKey } from '../../core/store-keys';
import { extraPgBinDirs, REPO, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const pg15 = env.server(15);
const target17 = usePrivateServer(17);
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-archive-major-'));
const store = `file://${dir}`;
const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-archive-major-work-'));
const source = uniqueName('crossmajor');
let manifest: BackupManifest;

/** Server binaries of every test major: Debian's 15 and the embedded 14 and 17. */
const allServers = [
  ...extraPgBinDirs(),
  '/usr/lib/postgresql/15/bin',
  ...[14, 17].map((m) => path.join(REPO, 'node_modules', `pg${m}`, 'native', 'bin')),
].join(':');

beforeAll(async () => {
  await createSeededDatabase(
    pg15,
    source,
    'CREATE TABLE items AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 1000) g',
  );
  const result = await runCli([
    'migrate',
    '--source',
    sourceUrl(pg15, source),
    '--target',
    sourceUrl(target17(), source),
    '--store',
    store,
    '--json',
  ]);
  if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
  const report = JSON.parse(result.stdout) as MigrateReport;
  manifest = JSON.parse(
    readFileSync(path.join(dir, manifestKey(source, report.databases[0].backupId)), 'utf8'),
  ) as BackupManifest;
});

afterAll(async () => {
  await dropDatabase(pg15, source);
  for (const folder of [dir, workDir]) rmSync(folder, { recursive: true, force: true });
});

function restoreInto15(name: string, ...args: string[]) {
  return runCli(
    ['restore', '--store', store, '--backup', manifest.id, '--target', sourceUrl(pg15, name), ...args],
    { env: { PGFERRY_WORK_DIR: workDir } },
  );
}

function reportsOf(prefix: string): string[] {
  return readdirSync(path.join(dir, databaseSegment(source), manifest.id)).filter((f) =>
    f.startsWith(prefix),
  );
}

async function exists(name: string): Promise<boolean> {
  const { rows } = await withClient(pg15, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]),
  );
  return rows.length > 0;
}

test("the migration's archive is recorded as pg_dump 17's, of a PostgreSQL 15 source", () => {
  expect(manifest.server.major).toBe(15);
  expect(manifest.tool.pgDumpMajor).toBe(17);
});

test('verify restores it into a PostgreSQL 17 server, and passes', async () => {
  const result = await runCli(['verify', '--store', store, '--backup', manifest.id, '--json'], {
    env: { PGFERRY_PG_BIN_DIRS: allServers },
  });
  expect(result.stderr).toBe('');
  const report = JSON.parse(result.stdout) as VerifyReport;
  expect(report.status).toBe('passed');
  expect(report.server?.major).toBe(17);
  expect(report.checks.rowCounts).toEqual([
    { schema: 'public', name: 'items', rows: 1000, restoredRows: 1000 },
  ]);
});

test('verify without a PostgreSQL 17 server says which server it needs, and why', async () => {
  const result = await runCli(['verify', '--store', store, '--backup', manifest.id], {
    env: { PGFERRY_PG_BIN_DIRS: [...extraPgBinDirs(), '/usr/lib/postgresql/15/bin'].join(':') },
  });
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(
    new RegExp(
      `^pgferry: verifying backup ${manifest.id}, whose archive was written by pg_dump 17\\.\\d+ \\(of a PostgreSQL 15\\.\\d+ source\\): ` +
        'it needs a PostgreSQL 17 or newer server \\(initdb, pg_ctl, postgres\\); found only PostgreSQL 15\\.\\d+\\. ' +
        'Install the PostgreSQL 17 server package or add its bin directory to PGFERRY_PG_BIN_DIRS\n$',
    ),
  );
});

test('a restore into PostgreSQL 15 is refused before anything is downloaded, naming pg_dump 17 and server 15', async () => {
  const name = uniqueName('into15');
  const result = await restoreInto15(name);
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(
    /^pgferry: the target runs PostgreSQL 15\.\d+ \(major 15\), older than this backup needs \(17\): its archive was written by pg_dump 17\.\d+ \(of a PostgreSQL 15\.\d+ source\); pg_restore 17 starts with SET transaction_timeout, which PostgreSQL 15 does not know: the restore will fail at once\. Restore into a PostgreSQL 17 or newer server, or pass --allow-downgrade to try anyway\n$/,
  );
  expect(await exists(name)).toBe(false);
  expect(readdirSync(workDir)).toEqual([]);
  expect(reportsOf('restore-report-')).toEqual([]);
});

test('with --allow-downgrade it is tried, and its failure says what preflight warned of', async () => {
  const name = uniqueName('downgraded');
  const result = await restoreInto15(name, '--allow-downgrade');
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(/unrecognized configuration parameter "transaction_timeout"/);
  expect(result.stderr).toMatch(
    /\(preflight warned: restoring into PostgreSQL 15\.\d+, older than this backup needs \(17; its archive was written by pg_dump 17\.\d+ \(of a PostgreSQL 15\.\d+ source\)\): pg_restore 17 starts with SET transaction_timeout/,
  );
  expect(await exists(name)).toBe(false);
  const [report] = reportsOf('restore-report-');
  const stored = JSON.parse(
    readFileSync(path.join(dir, databaseSegment(source), manifest.id, report), 'utf8'),
  ) as { warnings?: string[] };
  expect(stored.warnings).toEqual([expect.stringMatching(/^restoring into PostgreSQL 15/)]);
});
