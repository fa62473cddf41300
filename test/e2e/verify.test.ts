/**
 * `pgferry verify`: a restore drill into a throwaway server of the backup's major (or of the
 * pg_dump that wrote it, if newer), started by the runner itself — no standing database — with a
 * stored report; its roles are created first, so owners and grants restore while the archive
 * streams into COPY sessions (one with large objects is restored from files); a damaged backup
 * fails it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, VerifyReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { backupOf } from '../support/backed-up-database';
import { extraPgBinDirs, REPO, runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  quoteIdent,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';

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

/** A new seeded database on the server of `major` (`more` added to its seed), and its backup. */
async function seededBackup(major: number, database: string, more = ''): Promise<BackupManifest> {
  const pg = env.server(major);
  await createSeededDatabase(
    pg,
    database,
    `CREATE TABLE items AS SELECT g AS id, repeat('x', g % 100) AS body FROM generate_series(1, 5000) g;
     CREATE INDEX ON items (id);${more}`,
  );
  return backupOf(pg, database, store);
}

/** Roles of the server (`owner` owns the table, `reader` may read it), which a drill must create. */
function withRoles(owner: string, reader: string): string {
  return `
     CREATE ROLE ${quoteIdent(owner)}; CREATE ROLE ${quoteIdent(reader)};
     ALTER TABLE items OWNER TO ${quoteIdent(owner)};
     GRANT SELECT ON items TO ${quoteIdent(reader)};`;
}

async function dropRoles(major: number, ...roles: string[]): Promise<void> {
  await withClient(env.server(major), 'postgres', async (c) => {
    for (const role of roles) await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
  });
}

describe.each(env.postgres.map((pg) => pg.major))('a backup of PostgreSQL %i', (major) => {
  const database = uniqueName(`verify${major}`);
  const [owner, reader] = [uniqueName('verify_owner'), uniqueName('verify_reader')];
  let manifest: BackupManifest;
  let report: VerifyReport;

  beforeAll(async () => {
    manifest = await seededBackup(major, database, withRoles(owner, reader));
    const result = await verify('latest', '--database', database);
    if (result.code !== 0) throw new Error(`verify failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as VerifyReport;
  });
  afterAll(async () => {
    await dropDatabase(env.server(major), database);
    await dropRoles(major, owner, reader);
  });

  test("restores into a throwaway server of its own major (its pg_dump's, if newer) and passes", () => {
    expect(report).toMatchObject({ kind: 'verify', status: 'passed', backupId: manifest.id, database });
    // No pg_dump 14 here: a 14 backup is written by pg_dump 15 and needs a 15 server to restore.
    expect(report.server?.major).toBe(Math.max(major, manifest.tool.pgDumpMajor));
    expect(report.restoreSeconds).toBeGreaterThan(0);
  });

  test("checks every checksum and every table's row count", () => {
    expect(report.checks.checksums).toHaveLength(manifest.objects.length);
    expect(report.checks.checksums.map((c) => c.key).sort()).toEqual(
      manifest.objects.map((o) => o.key).sort(),
    );
    expect(report.checks.rowCounts).toEqual([
      { schema: 'public', name: 'items', rows: 5000, restoredRows: 5000 },
    ]);
  });

  test('creates the roles first, so that the table restores with its owner and grant while the archive streams', () => {
    // pg_restore stops at an ALTER TABLE … OWNER TO or a GRANT naming a role the server lacks.
    expect(report.checks.globals?.created).toEqual(expect.arrayContaining([owner, reader]));
    expect(Object.keys(report.timings)).toEqual(
      expect.arrayContaining(['globals', 'load', 'preData', 'postData']),
    );
    expect(report.timings.download).toBeUndefined();
    expect(report.timings.pgRestore).toBeUndefined();
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

test('a backup with large objects is verified from files, its roles created first all the same', async () => {
  const database = uniqueName('verifylo');
  const [owner, reader] = [uniqueName('verify_owner'), uniqueName('verify_reader')];
  try {
    const manifest = await seededBackup(
      15,
      database,
      `${withRoles(owner, reader)}
       SELECT lo_from_bytea(0, 'a large object');`,
    );
    const result = await verify(manifest.id);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as VerifyReport;
    expect(report.status).toBe('passed');
    expect(report.checks.globals?.created).toEqual(expect.arrayContaining([owner, reader]));
    // Each object downloaded and checked once: the globals before the load, the rest from files.
    expect(report.checks.checksums.map((c) => c.key).sort()).toEqual(
      manifest.objects.map((o) => o.key).sort(),
    );
    expect(report.timings.pgRestore).toBeGreaterThan(0);
    expect(report.timings.load).toBeUndefined();
  } finally {
    await dropDatabase(env.server(15), database);
    await dropRoles(15, owner, reader);
  }
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
