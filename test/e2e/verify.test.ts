/**
 * `pgferry verify`: a restore drill into a throwaway server of the backup's major (or of the
 * pg_dump that wrote it, if newer), started by the runner itself — no standing database — with a
 * stored report; a damaged backup fails it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, VerifyReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { backupOf } from '../support/backed-up-database';
import { extraPgBinDirs, REPO, runCli, sourceUrl } from '../support/cli';
import { createSeededDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';

const env = testEnv();
const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-verify-'));
const store = `file://${dir}`;
/** Server binaries of every test major: Debian's 15 and the embedded 14 and 17. */
const binDirs = [
  ...extraPgBinDirs(),
  '/usr/lib/postgresql/15/bin',
  ...[14, 17].map((m) => path.join(REPO, 'node_modules', `pg${m}`, 'native', 'bin')),
].join(':');

function verify(backup: string, ...args: string[]) {
  return runCli(['verify', '--store', store, '--backup', backup, '--json', ...args], {
    env: { PGFERRY_PG_BIN_DIRS: binDirs },
  });
}

/** A new seeded database on the server of `major`, and its backup. */
async function seededBackup(major: number, database: string): Promise<BackupManifest> {
  const pg = env.server(major);
  await createSeededDatabase(
    pg,
    database,
    `CREATE TABLE items AS SELECT g AS id, repeat('x', g % 100) AS body FROM generate_series(1, 5000) g;
     CREATE INDEX ON items (id);`,
  );
  return backupOf(pg, database, store);
}

describe.each(env.postgres.map((pg) => pg.major))('a backup of PostgreSQL %i', (major) => {
  const database = uniqueName(`verify${major}`);
  let manifest: BackupManifest;
  let report: VerifyReport;

  beforeAll(async () => {
    manifest = await seededBackup(major, database);
    const result = await verify('latest', '--database', database);
    if (result.code !== 0) throw new Error(`verify failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as VerifyReport;
  });
  afterAll(() => dropDatabase(env.server(major), database));

  test("restores into a throwaway server of its own major (its pg_dump's, if newer) and passes", () => {
    expect(report).toMatchObject({ kind: 'verify', status: 'passed', backupId: manifest.id, database });
    // No pg_dump 14 here: a 14 backup is written by pg_dump 15 and needs a 15 server to restore.
    expect(report.server?.major).toBe(Math.max(major, manifest.tool.pgDumpMajor));
    expect(report.restoreSeconds).toBeGreaterThan(0);
  });

  test("checks every checksum and every table's row count", () => {
    expect(report.checks.checksums).toHaveLength(manifest.objects.length);
    expect(report.checks.rowCounts).toEqual([
      { schema: 'public', name: 'items', rows: 5000, restoredRows: 5000 },
    ]);
  });

  test('stores the report beside the backup', () => {
    const file = path.join(
      dir,
      databaseSegment(database),
      manifest.id,
      `verify-report-${report.verifyId}.json`,
    );
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(report);
  });
});

describe('a damaged backup fails verification', () => {
  const database = uniqueName('damaged');
  afterAll(() => dropDatabase(env.server(15), database));

  test('one flipped byte: failed, with a stored failed report', async () => {
    const manifest = await seededBackup(15, database);
    const file = path.join(dir, databaseSegment(database), manifest.id, 'dump.pgdump.zst');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0x80;
    writeFileSync(file, bytes);
    const result = await verify(manifest.id);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /object dump\.pgdump\.zst of backup \S+ (failed its checksum|cannot be read)/,
    );
    const folder = path.join(dir, databaseSegment(database), manifest.id);
    const reports = readdirSync(folder).filter((f) => f.startsWith('verify-report-'));
    expect(reports).toHaveLength(1);
    const stored = JSON.parse(readFileSync(path.join(folder, reports[0]), 'utf8')) as VerifyReport;
    expect(stored).toMatchObject({ status: 'failed', backupId: manifest.id });
    expect(stored.error).toMatch(/dump\.pgdump\.zst/);
  });

  test('a missing object: refused before any server starts', async () => {
    const result = await runCli([
      'backup',
      '--source',
      sourceUrl(env.server(15), database),
      '--store',
      store,
      '--json',
    ]);
    const manifest = JSON.parse(result.stdout) as BackupManifest;
    rmSync(path.join(dir, databaseSegment(database), manifest.id, 'dump.pgdump.zst'));
    const verified = await verify(manifest.id);
    expect(verified.code).toBe(1);
    expect(verified.stderr).toMatch(/backup \S+ is missing its object dump\.pgdump\.zst/);
  });
});
