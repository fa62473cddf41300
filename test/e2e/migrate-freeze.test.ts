/**
 * `pgferry migrate --freeze-source`: from the freeze to the end, new sessions on the source can
 * only read (the `--on-cutover` command, which runs while it is frozen, observes it); the sessions
 * connected before it — a pool's, idle or in the middle of a transaction — are ended, so that no
 * write the source acknowledges misses the target; afterwards — after a success and after a
 * failure — the source has its own setting back and takes writes again. A login that may not end
 * them is refused before anything changes.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'pg';
import type { BackupManifest, MigrateReport } from '../../core/contracts';
import { pgTool, runCli, runMigrate, sourceUrl } from '../support/cli';
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
  /** The labels of the rows whose INSERT (or its transaction's COMMIT) the source acknowledged. */
  const acknowledged: string[] = [];
  /** What the session in the middle of a transaction got for its COMMIT, during the freeze. */
  let commitError = '';
  /** What the pool's idle session got for its INSERT, during the freeze. */
  let pooledError = '';

  beforeAll(async () => {
    await createSmallDatabase(source, database);
    await withClient(source, 'postgres', (c) =>
      c.query(`ALTER DATABASE "${database}" SET default_transaction_read_only = off`),
    );
    // Two sessions of an application's pool, connected before the migration: one in the middle
    // of a write transaction when the freeze comes, one idle that writes again during the freeze.
    const { Client: PgClient } = await import('pg');
    const writer: Client = new PgClient(source.clientConfig(database));
    const pooled: Client = new PgClient(source.clientConfig(database));
    for (const c of [writer, pooled]) {
      c.on('error', () => undefined); // an ended session's client reports it here
      await c.connect();
    }
    const insert = async (c: Client, label: string) => {
      await c.query('INSERT INTO items (label) VALUES ($1)', [label]);
      acknowledged.push(label);
    };
    try {
      writerPid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await insert(pooled, 'pooled before');
      await writer.query('BEGIN');
      await writer.query(`INSERT INTO items (label) VALUES ('in flight')`);
      // The cutover command runs while the source is frozen, after the copy: it waits there
      // until the two sessions have tried to write.
      const migration = runMigrate(
        sourceUrl(source, database),
        sourceUrl(target(), migrated),
        dir,
        [
          '--freeze-source',
          '--on-cutover',
          `touch ${out}/waiting; while [ ! -e ${out}/go ]; do sleep 0.1; done; ${observingHook(out)}`,
          '--json',
        ],
        { env: { TEST_SOURCE_PASSWORD: source.password } },
      );
      let finished = false;
      void migration.finally(() => {
        finished = true;
      });
      while (!finished && !existsSync(path.join(out, 'waiting'))) await sleep(100);
      await writer.query('COMMIT').then(
        () => acknowledged.push('in flight'),
        (err: Error) => {
          commitError = err.message;
        },
      );
      await insert(pooled, 'pooled during').catch((err: Error) => {
        pooledError = err.message;
      });
      writeFileSync(path.join(out, 'go'), '');
      const result = await migration;
      if (result.code !== 0) throw new Error(`migrate failed: ${result.stderr}`);
      report = JSON.parse(result.stdout) as MigrateReport;
    } finally {
      await writer.end().catch(() => undefined);
      await pooled.end().catch(() => undefined);
    }
  }, 300_000);

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target(), migrated);
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  test('a transaction open at the freeze cannot commit: its session was ended', () => {
    expect(commitError).toMatch(/terminat|Connection terminated|not queryable/i);
  });

  test("a pool's idle session connected before the freeze cannot write during it", () => {
    expect(pooledError).toMatch(/terminat|Connection terminated|not queryable/i);
  });

  test('every row the source acknowledged is on the target', async () => {
    const labels = await withClient(target(), migrated, async (c) =>
      (await c.query<{ label: string }>('SELECT label FROM items')).rows.map((r) => r.label),
    );
    expect(acknowledged).toContain('pooled before');
    expect(acknowledged.filter((label) => !labels.includes(label))).toEqual([]);
  });

  test('new sessions on the source could only read while it was frozen', () => {
    expect(readFileSync(path.join(out, 'setting'), 'utf8').trim()).toBe('on');
    expect(readFileSync(path.join(out, 'insert'), 'utf8')).toMatch(/read-only transaction/);
  });

  test('the cutover command got the target URL without a password', () => {
    const url = readFileSync(path.join(out, 'target-url'), 'utf8').trim();
    expect(url).toBe(`postgres://${target().user}@${target().host}:${target().port}/${migrated}`);
  });

  test('the session that was writing at the freeze is reported, and the sessions ended', () => {
    expect(report?.freeze?.databases[0].writingSessions.map((s) => s.pid)).toEqual([writerPid]);
    expect(report?.freeze?.databases[0].sessionsEnded).toBeGreaterThanOrEqual(2);
  });

  test('the schema test ran before the freeze (auto: the freeze is what it protects), and the report says why', () => {
    expect(report?.schemaTest).toMatchObject({
      status: 'passed',
      reason: expect.stringMatching(/freezeSource/),
      databases: [expect.objectContaining({ dropped: true })],
    });
    expect(report?.timings.schemaTest).toBeGreaterThan(0);
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
    result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), migrated), dir, [
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

describe('a source login that may not end the sessions the freeze must end', () => {
  const database = uniqueName('mig_freeze_login');
  const migrated = uniqueName('mig_frozen_login');
  const login = uniqueName('freezer');
  const password = 'freezer pw';
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-freeze-'));
  const loginUrl = `postgres://${login}:${encodeURIComponent(password)}@${source.host}:${source.port}/${database}`;
  const migrate = () =>
    runMigrate(loginUrl, sourceUrl(target(), migrated), dir, ['--freeze-source', '--no-schema-test']);

  beforeAll(async () => {
    await createSmallDatabase(source, database);
    await withClient(source, database, async (c) => {
      await c.query(`CREATE ROLE ${login} LOGIN PASSWORD '${password}'`);
      await c.query(`ALTER DATABASE ${database} OWNER TO ${login}; ALTER TABLE items OWNER TO ${login}`);
    });
  });

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target(), migrated);
    await withClient(source, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${login}`));
    rmSync(dir, { recursive: true, force: true });
  });

  test('without pg_signal_backend: refused in preflight, in one line naming the grant, nothing changed', async () => {
    const refused = await migrate();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `may not end other sessions.*GRANT pg_signal_backend TO "?${login}"? \\(on RDS and Aurora.*rds_superuser\\)`,
      ),
    );
    expect(await readOnlySetting(source, database)).toBeNull();
    expect(
      await withClient(target(), 'postgres', (c) =>
        c.query('SELECT 1 FROM pg_database WHERE datname = $1', [migrated]),
      ),
    ).toMatchObject({ rowCount: 0 });
  });

  test("with it, a superuser's session it may not end stops the migration at the freeze, which is undone", async () => {
    await withClient(source, 'postgres', (c) => c.query(`GRANT pg_signal_backend TO ${login}`));
    const { Client: PgClient } = await import('pg');
    const superuser: Client = new PgClient(source.clientConfig(database));
    superuser.on('error', () => undefined);
    await superuser.connect();
    try {
      const failed = await migrate();
      expect(failed.code).not.toBe(0);
      expect(failed.stderr).toMatch(/cannot end session \d+ \(.*\) on .*a superuser's session/);
      expect(await superuser.query('SELECT 1')).toMatchObject({ rowCount: 1 });
    } finally {
      await superuser.end().catch(() => undefined);
    }
    expect(await readOnlySetting(source, database)).toBeNull();
    expect(await acceptsWrites(source, database)).toBe(true);
  });
});
