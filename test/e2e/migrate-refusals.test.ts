/**
 * What `pgferry migrate` refuses before anything changes — a non-empty target database (unless
 * `--force`), a downgrade, an extension the target lacks — and a schema the target cannot take:
 * a plain migration fails in its own schema step and leaves nothing; the schema test (asked for,
 * or run by itself with `--freeze-source`) stops a migration before anything changes.
 */
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { MigrateReport } from '../../core/contracts';
import { type CliResult, runCli, runMigrate, sourceUrl } from '../support/cli';
import {
  createSeededDatabase,
  databaseExists,
  dropDatabase,
  quoteIdent,
  quoteLiteral,
  type TestPostgres,
  testEnv,
  uniqueName,
  withClient,
} from '../support/env';
import { runnerOf, waitFor } from '../support/faults';
import { fingerprint } from '../support/fingerprint';
import { isRoot, osUserIds } from '../support/postgres';
import { usePrivateServer } from '../support/private-server';

const env = testEnv();

/** A small database: one table with rows and a sequence. */
async function createSmallDatabase(pg: TestPostgres, name: string): Promise<void> {
  await createSeededDatabase(
    pg,
    name,
    `CREATE TABLE items (id serial PRIMARY KEY, label text NOT NULL);
             INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 100) g;`,
  );
}

/** The schema test's scratch databases on the server. */
async function scratchDatabases(pg: TestPostgres): Promise<string[]> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE 'pgferry\\_schema\\_test\\_%'",
    );
    return rows.map((r) => r.datname);
  });
}

/** Every file under `dir` (a local store), relative to it. */
function filesIn(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe('a target database that exists and is not empty', () => {
  const source = env.server(14);
  const target = env.server(15);
  const database = uniqueName('mig_src');
  const existing = uniqueName('mig_existing');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-refusals-'));

  beforeAll(async () => {
    await createSmallDatabase(source, database);
    await createSeededDatabase(
      target,
      existing,
      `CREATE TABLE keep_me (v text); INSERT INTO keep_me VALUES ('x')`,
    );
  });

  afterAll(async () => {
    await dropDatabase(source, database);
    await dropDatabase(target, existing);
    rmSync(dir, { recursive: true, force: true });
  });

  test('is refused, and left as it was', async () => {
    const before = await fingerprint(target, existing);
    const result = await runMigrate(sourceUrl(source, database), sourceUrl(target, existing), dir);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/exists and is not empty .*pass --force/);
    expect(await fingerprint(target, existing)).toEqual(before);
    expect(filesIn(dir)).toEqual([]);
  });

  test('is replaced with --force, and then equals the source', async () => {
    const result = await runMigrate(sourceUrl(source, database), sourceUrl(target, existing), dir, [
      '--force',
      '--json',
    ]);
    expect(result.stderr).not.toMatch(/pgferry:/);
    const report = JSON.parse(result.stdout) as MigrateReport;
    expect(report.status).toBe('passed');
    // The database replaced is what the schema test protects: it ran by itself.
    expect(report.schemaTest).toMatchObject({
      status: 'passed',
      reason: expect.stringMatching(new RegExp(`target database ${existing} exists`)),
    });
    expect((await fingerprint(target, existing)).tables).toEqual(
      (await fingerprint(source, database)).tables,
    );
  });

  test('into a new database: no schema test, and the summary says why (--schema-test: run, and why)', async () => {
    const fresh = uniqueName('mig_fresh');
    const tested = uniqueName('mig_tested');
    try {
      const plain = await runMigrate(sourceUrl(source, database), sourceUrl(target, fresh), dir);
      expect(plain.code).toBe(0);
      expect(plain.stdout).toMatch(
        /^no schema test: nothing changes before the migration restores the schema into the database it creates/m,
      );
      const asked = await runMigrate(sourceUrl(source, database), sourceUrl(target, tested), dir, [
        '--schema-test',
      ]);
      expect(asked.code).toBe(0);
      expect(asked.stdout).toMatch(/^schema test passed before any data moved \(run because asked for/m);
    } finally {
      await dropDatabase(target, fresh);
      await dropDatabase(target, tested);
    }
  });
});

describe('refusals before anything changes', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-refusals-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a downgrade (17 → 15) is refused', async () => {
    const source = env.server(17);
    const target = env.server(15);
    const database = uniqueName('mig_down');
    await createSmallDatabase(source, database);
    try {
      const result = await runMigrate(sourceUrl(source, database), sourceUrl(target, database), dir);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/older than the source's 17\.\d+: a migration never downgrades/);
      expect(await databaseExists(target, database)).toBe(false);
    } finally {
      await dropDatabase(source, database);
    }
  });

  test('an extension the target does not offer is refused by name and version', async () => {
    // adminpack ships with PostgreSQL 15 and no longer exists in 17.
    const source = env.server(15);
    const target = env.server(17);
    const database = uniqueName('mig_ext');
    await createSmallDatabase(source, database);
    try {
      await withClient(source, database, (c) => c.query('CREATE EXTENSION adminpack'));
      const result = await runMigrate(sourceUrl(source, database), sourceUrl(target, database), dir);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/does not offer extension the source uses: adminpack 2\.\d/);
      expect(await databaseExists(target, database)).toBe(false);
    } finally {
      await dropDatabase(source, database);
    }
  });
});

describe('a schema the target cannot take', () => {
  // A table in a tablespace that exists only on the source server: preflight does not look at
  // tablespaces; the migration's own pre-data restore fails on it (or, with the schema test, the
  // schema-only restore into the scratch database).
  const source = env.server(15);
  const target = usePrivateServer(17);
  const database = uniqueName('mig_schema');
  const tablespace = uniqueName('mig_ts');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-schema-'));
  const location = mkdtempSync(path.join(tmpdir(), 'pgferry-tablespace-'));
  let result: CliResult;

  beforeAll(async () => {
    if (isRoot()) {
      const { uid, gid } = osUserIds();
      chownSync(location, uid, gid);
    }
    await createSmallDatabase(source, database);
    await withClient(source, 'postgres', (c) =>
      c.query(`CREATE TABLESPACE ${quoteIdent(tablespace)} LOCATION ${quoteLiteral(location)}`),
    );
    await withClient(source, database, (c) =>
      c.query(
        `CREATE TABLE elsewhere (v int) TABLESPACE ${quoteIdent(tablespace)}; INSERT INTO elsewhere VALUES (1)`,
      ),
    );
    result = await runMigrate(sourceUrl(source, database), sourceUrl(target(), database), dir);
  }, 300_000);

  /** The freeze's setting on the source database, if one is left. */
  const frozenSetting = () =>
    withClient(source, 'postgres', async (c) => {
      const { rows } = await c.query(
        `SELECT c FROM pg_db_role_setting s, unnest(s.setconfig) c
         WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = $1) AND c LIKE 'default_transaction_read_only=%'`,
        [database],
      );
      return rows;
    });

  afterAll(async () => {
    await dropDatabase(source, database);
    await withClient(source, 'postgres', (c) =>
      c.query(`DROP TABLESPACE IF EXISTS ${quoteIdent(tablespace)}`),
    );
    rmSync(dir, { recursive: true, force: true });
    rmSync(location, { recursive: true, force: true });
  });

  test('a plain migration runs no schema test: its own schema step fails, says what failed, and leaves nothing', async () => {
    expect(result.code).toBe(1);
    expect(result.stderr).not.toMatch(/schema of|scratch database/);
    expect(result.stderr).toMatch(/pg_restore failed: .*Tablespace "[^"]+" does not exist/);
    expect(result.stderr).toMatch(new RegExp(`the partially migrated database ${database} was dropped`));
    expect(await databaseExists(target(), database)).toBe(false);
    expect(await scratchDatabases(target())).toEqual([]);
    // Nothing is left in the store: no backup, complete or not, and none listed.
    expect(filesIn(dir)).toEqual([]);
    const list = await runCli(['list', '--store', dir, '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
  });

  test('--schema-test stops the migration with the restore error, before any data moves, and drops its scratch database', async () => {
    const tested = await runMigrate(sourceUrl(source, database), sourceUrl(target(), database), dir, [
      '--schema-test',
    ]);
    expect(tested.code).toBe(1);
    expect(tested.stderr).toMatch(
      /schema of .* does not restore on the target .*tablespace.*no data was moved/,
    );
    expect(await databaseExists(target(), database)).toBe(false);
    const scratch = /the scratch database (\S+) was dropped/.exec(tested.stderr)?.[1];
    expect(scratch).toMatch(/^pgferry_schema_test_/);
    expect(await scratchDatabases(target())).toEqual([]);
    expect(filesIn(dir)).toEqual([]);
  });

  test('with --freeze-source the schema test runs by itself, and stops the migration before the freeze', async () => {
    const frozen = await runMigrate(sourceUrl(source, database), sourceUrl(target(), database), dir, [
      '--freeze-source',
    ]);
    expect(frozen.code).toBe(1);
    expect(frozen.stderr).toMatch(/schema of .* does not restore on the target .*no data was moved/);
    expect(await frozenSetting()).toEqual([]);
    expect(await databaseExists(target(), database)).toBe(false);
    expect(filesIn(dir)).toEqual([]);
  });

  test('a failure in the migration task after --freeze-source unfreezes the source', async () => {
    const failed = await runMigrate(sourceUrl(source, database), sourceUrl(target(), database), dir, [
      '--no-schema-test',
      '--freeze-source',
    ]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/tablespace/);
    expect(await frozenSetting()).toEqual([]);
    await withClient(source, database, (c) => c.query('INSERT INTO items (label) VALUES ($1)', ['after']));
  });
});

describe('the runner killed (SIGKILL) during the schema test', () => {
  // 1,500 tables: the scratch database's schema restore runs for seconds, long enough to be seen.
  const source = env.server(15);
  const target = env.server(17);
  const database = uniqueName('mig_kill_schema');
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-kill-schema-'));

  beforeAll(async () => {
    await createSeededDatabase(
      source,
      database,
      `DO $$ BEGIN
         FOR i IN 1..1500 LOOP
           EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text, w jsonb)', i);
         END LOOP;
       END $$`,
    );
  }, 300_000);
  afterAll(async () => {
    await dropDatabase(source, database);
    rmSync(dir, { recursive: true, force: true });
  });

  /** A scratch database of the schema test holding at least `tables` tables, once there is one. */
  const scratchWithTables = async (tables: number) => {
    for (const scratch of await scratchDatabases(target)) {
      const count = await withClient(target, scratch, (c) =>
        c.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_class WHERE relkind = 'r' AND relname LIKE 't%'`,
        ),
      ).catch(() => undefined);
      if ((count?.rows[0].n ?? 0) >= tables) return scratch;
    }
    return undefined;
  };

  test('the cleanup step drops the scratch database it had created; no target, nothing listed', async () => {
    let cli = 0;
    const running = runMigrate(
      sourceUrl(source, database),
      sourceUrl(target, database),
      dir,
      ['--schema-test'],
      {
        onSpawn: (pid) => {
          cli = pid;
        },
      },
    );
    const scratch = await waitFor('the schema test restoring into its scratch database', () =>
      scratchWithTables(50),
    );
    process.kill(await runnerOf(cli), 'SIGKILL');
    const result = await running;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^pgferry: the pg-tools task stopped \(SIGKILL\)/m);
    expect(await databaseExists(target, scratch)).toBe(false);
    expect(await databaseExists(target, database)).toBe(false);
    const list = await runCli(['list', '--store', dir, '--json']);
    expect(JSON.parse(list.stdout)).toEqual([]);
  }, 300_000);
});
