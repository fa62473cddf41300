/**
 * `pgferry migrate --freeze-source`: from the freeze to the end, new sessions on the source can
 * only read (the `--on-cutover` command, which runs while it is frozen, observes it); sessions
 * still writing are reported; afterwards — after a success and after a failure — the source has
 * its own setting back and takes writes again.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Client } from 'pg';
import type { BackupManifest, MigrateReport } from '../../core/contracts';
import { pgTool, runCli, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  dropDatabase,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();
const source = env.server(15);
const target = usePrivateServer(17);

async function createSmallDatabase(pg: TestPostgres, name: string): Promise<void> {
  await createSeededDatabase(
    pg,
    name,
    `CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL);
             INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 50) g;`,
  );
}

/** The database-wide `default_transaction_read_only` setting of `name`, or null. */
async function readOnlySetting(pg: TestPostgres, name: string): Promise<string | null> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ setting: string }>(
      `SELECT c AS setting FROM pg_db_role_setting s, unnest(s.setconfig) c
       WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) AND s.setrole = 0
         AND c LIKE 'default_transaction_read_only=%'`,
      [name],
    );
    return rows[0]?.setting ?? null;
  });
}

/** Whether a new session on `name` can insert a row. */
async function acceptsWrites(pg: TestPostgres, name: string): Promise<boolean> {
  return withClient(pg, name, (c) =>
    c.query(`INSERT INTO items (label) VALUES ('after')`).then(
      () => true,
      () => false,
    ),
  );
}

/**
 * An `--on-cutover` command that records, from a new session on the source, the setting it sees
 * and whether an INSERT succeeds.
 */
function observingHook(out: string): string {
  const psql = pgTool('psql', 15);
  return (
    `PGPASSWORD="$TEST_SOURCE_PASSWORD" ${psql} -At -c 'SHOW default_transaction_read_only' "$PGFERRY_SOURCE_URL" > ${out}/setting; ` +
    `PGPASSWORD="$TEST_SOURCE_PASSWORD" ${psql} -c "INSERT INTO items (label) VALUES ('during')" "$PGFERRY_SOURCE_URL" 2> ${out}/insert; ` +
    `echo "$PGFERRY_TARGET_URL" > ${out}/target-url; true`
  );
}

describe('a frozen migration that succeeds', () => {
  const database = uniqueName('mig_freeze');
  const migrated = uniqueName('mig_frozen');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-freeze-'));
  const out = mkdtempSync(path.join(tmpdir(), 'pgferry-hook-'));
  let report: MigrateReport | undefined;
  let writerPid = 0;

  beforeAll(async () => {
    await createSmallDatabase(source, database);
    await withClient(source, 'postgres', (c) =>
      c.query(`ALTER DATABASE "${database}" SET default_transaction_read_only = off`),
    );
    // A session in the middle of a write transaction when the freeze comes.
    const { Client: PgClient } = await import('pg');
    const writer: Client = new PgClient(source.clientConfig(database));
    await writer.connect();
    try {
      writerPid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await writer.query(`BEGIN; INSERT INTO items (label) VALUES ('in flight')`);
      const result = await runCli(
        [
          'migrate',
          '--source',
          sourceUrl(source, database),
          '--target',
          sourceUrl(target(), migrated),
          '--store',
          dir,
          '--freeze-source',
          '--on-cutover',
          observingHook(out),
          '--json',
        ],
        { env: { TEST_SOURCE_PASSWORD: source.password } },
      );
      if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
      report = JSON.parse(result.stdout) as MigrateReport;
      await writer.query('COMMIT');
    } finally {
      await writer.end();
    }
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target(), migrated);
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  test('new sessions on the source could only read while it was frozen', () => {
    expect(readFileSync(path.join(out, 'setting'), 'utf8').trim()).toBe('on');
    expect(readFileSync(path.join(out, 'insert'), 'utf8')).toMatch(/read-only transaction/);
  });

  test('the cutover command got the target URL without a password', () => {
    const url = readFileSync(path.join(out, 'target-url'), 'utf8').trim();
    expect(url).toBe(`postgres://${target().user}@${target().host}:${target().port}/${migrated}`);
  });

  test('the session that was writing at the freeze is reported', () => {
    expect(report?.freeze?.databases[0].writingSessions.map((s) => s.pid)).toEqual([writerPid]);
  });

  test('the report gives the write-downtime window', () => {
    expect(report?.writeDowntimeSeconds).toBeGreaterThan(0);
    expect(report?.writeDowntimeSeconds).toBeLessThan(report?.timings.total ?? 0);
  });

  test('afterwards the source has its own setting back and takes writes', async () => {
    expect(await readOnlySetting(source, database)).toBe('default_transaction_read_only=off');
    expect(await acceptsWrites(source, database)).toBe(true);
  });

  test("the target gets the source's own setting, not the freeze", async () => {
    expect(await readOnlySetting(target(), migrated)).toBe('default_transaction_read_only=off');
  });
});

describe('a frozen migration that fails after the freeze', () => {
  const database = uniqueName('mig_freeze_fail');
  const migrated = uniqueName('mig_frozen_fail');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-freeze-'));
  let result: Awaited<ReturnType<typeof runCli>>;

  beforeAll(async () => {
    await createSmallDatabase(source, database);
    result = await runCli([
      'migrate',
      '--source',
      sourceUrl(source, database),
      '--target',
      sourceUrl(target(), migrated),
      '--store',
      dir,
      '--freeze-source',
      '--on-cutover',
      'exit 3',
    ]);
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target(), migrated);
    rmSync(dir, { recursive: true, force: true });
  });

  test('fails with the cutover command’s error', () => {
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/the cutover command failed \(exit status 3\)/);
  });

  test('unfreezes the source: no setting left, writes accepted', async () => {
    expect(await readOnlySetting(source, database)).toBeNull();
    expect(await acceptsWrites(source, database)).toBe(true);
  });

  test('keeps the backup it completed before the failure', async () => {
    const list = await runCli(['list', '--store', dir, '--json']);
    const manifests = JSON.parse(list.stdout) as BackupManifest[];
    expect(manifests.map((m) => m.database)).toEqual([database]);
  });
});
