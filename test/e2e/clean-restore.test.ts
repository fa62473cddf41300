/**
 * `restore --mode clean` never waits on other sessions, refuses what pg_restore could not drop,
 * and when it fails anyway says how to put the target back.
 *
 * - A session idle in a transaction on the target: the restore fails at once naming it, nothing
 *   dropped; with --terminate-connections the session is ended and the restore succeeds.
 * - A view on a table of the backup, and a foreign key to it from a table not in the backup: refused
 *   before the safety backup and the download, naming both, nothing changed.
 * - pg_restore failing midway (its connection terminated while it loads a table): the error names
 *   the safety backup and the command that restores it — which puts the target back as it was —
 *   and the stored report carries the safety backup's id.
 * - psql missing beside pg_restore (it runs the drops): refused in one line naming it and what to
 *   do, before anything of the target is changed.
 * - No false refusals: the complex database (test/support/complex-database.ts) restored in clean
 *   mode over a copy of itself.
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { localTargetName } from '../../core/catalog-name';
import type { BackupManifest, RestoreReport } from '../../core/contracts';
import { databaseSegment } from '../../core/store-keys';
import { useBackedUpDatabase } from '../support/backed-up-database';
import { pgTool, runCli, sourceUrl } from '../support/cli';
import { createComplexDatabase } from '../support/complex-database';
import { createDatabase, dropDatabase, quoteIdent, testEnv, uniqueName, withClient } from '../support/env';
import { waitFor } from '../support/faults';
import { createRoles, dataState, dropRoles, schemaDump } from '../support/fidelity';
import { fingerprint } from '../support/fingerprint';

const env = testEnv();
const pg = env.server(15);
const backedUp = useBackedUpDatabase(pg, {
  prefix: 'cleansrc',
  seed: `
    CREATE TABLE accounts (id integer PRIMARY KEY, v text);
    INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 1000) g;
    -- Restoring its rows takes seconds (2 ms each, checked on insert): a window to act in.
    CREATE FUNCTION slow_ok(integer) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.002)';
    CREATE TABLE slow (id integer CHECK (slow_ok(id)));
    INSERT INTO slow SELECT generate_series(1, 1500);`,
});
const { name: source, dir: storeDir, store } = backedUp;

/** A copy of the source (the backup's contents) to restore over. */
async function copyOfSource(name: string, extra = ''): Promise<void> {
  await withClient(pg, 'postgres', (c) =>
    c.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(source)}`),
  );
  if (extra) await withClient(pg, name, (c) => c.query(extra));
}

function cleanRestore(target: string, args: string[] = [], env: Record<string, string> = {}) {
  const workDir = mkdtempSync(path.join(tmpdir(), 'pgferry-clean-work-'));
  chmodSync(workDir, 0o711);
  const result = runCli(
    [
      'restore',
      ...['--store', store, '--backup', backedUp.manifest.id, '--target', sourceUrl(pg, target)],
      ...['--mode', 'clean', '--force', ...args],
    ],
    { env: { PGFERRY_WORK_DIR: workDir, ...env } },
  );
  return { result, workDir };
}

function restoreReportOf(target: string): RestoreReport | undefined {
  const folder = path.join(storeDir, databaseSegment(source), backedUp.manifest.id);
  return readdirSync(folder)
    .filter((f) => f.startsWith('restore-report-'))
    .map((f) => JSON.parse(readFileSync(path.join(folder, f), 'utf8')) as RestoreReport)
    .find((r) => r.target.database === target);
}

/** The safety backups of `target`: filed under the target's own catalog name (database@host:port). */
async function safetyBackupsOf(target: string): Promise<string[]> {
  const name = localTargetName({
    host: pg.host,
    port: pg.port,
    database: target,
    user: pg.user,
    sslmode: 'prefer',
  });
  const listed = await runCli(['list', '--store', store, '--name', name, '--json']);
  return (JSON.parse(listed.stdout) as BackupManifest[]).map((m) => m.id);
}

describe('a session idle in a transaction on the target', () => {
  const target = uniqueName('cleanidle');
  let idle: Client;

  beforeAll(async () => {
    await copyOfSource(target);
    idle = new Client({ ...pg.clientConfig(target), application_name: 'idle reporting job' });
    idle.on('error', () => undefined); // it is terminated, on purpose
    await idle.connect();
    // Holds a lock on accounts until it ends: a DROP TABLE of it would wait as long.
    await idle.query('BEGIN');
    await idle.query('SELECT count(*) FROM accounts');
  });
  afterAll(async () => {
    await idle.end().catch(() => undefined);
    await dropDatabase(pg, target);
  });

  test('fails at once naming it, with nothing dropped; --terminate-connections ends it and restores', async () => {
    const before = await fingerprint(pg, target);
    const pid = ((await idle.query('SELECT pg_backend_pid() AS pid')).rows[0] as { pid: number }).pid;
    const { result: refused } = cleanRestore(target, ['--no-safety-backup']);
    const failed = await refused;
    expect(failed.code).toBe(1);
    expect(failed.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^pgferry: other sessions are connected to the target database "${target}", and a clean restore would wait ` +
            `on their locks: pid ${pid} \\(user postgres, application "idle reporting job", idle in transaction since ` +
            '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); nothing was changed or downloaded\\. End them, or pass --terminate-connections',
        ),
      ),
    ]);
    expect(await fingerprint(pg, target)).toEqual(before);
    expect((await idle.query('SELECT count(*)::int AS n FROM accounts')).rows).toEqual([{ n: 1000 }]);

    const { result: terminating } = cleanRestore(target, [
      '--no-safety-backup',
      '--terminate-connections',
      '--json',
    ]);
    const done = await terminating;
    expect(done.code).toBe(0);
    const report = JSON.parse(done.stdout) as RestoreReport;
    expect(report.checks.terminatedSessions).toEqual([
      { pid, user: 'postgres', application: 'idle reporting job' },
    ]);
    await expect(idle.query('SELECT 1')).rejects.toThrow();
    expect(await fingerprint(pg, target)).toEqual(before);
  });
});

test('a view and a foreign key outside the backup that depend on its table: refused before anything is dropped or downloaded', async () => {
  const target = uniqueName('cleandeps');
  await copyOfSource(
    target,
    `CREATE VIEW account_names AS SELECT v FROM accounts;
     CREATE TABLE notes (account integer REFERENCES accounts (id), note text);
     INSERT INTO notes VALUES (1, 'keep me');`,
  );
  try {
    const before = await fingerprint(pg, target);
    const { result, workDir } = cleanRestore(target);
    const failed = await result;
    expect(failed.code).toBe(1);
    expect(failed.stderr.trimEnd().split('\n')).toEqual([
      `pgferry: a clean restore of "${target}" would have to drop what objects of it that are not in the backup depend on: ` +
        'constraint notes_account_fkey on table public.notes (on index public.accounts_pkey, table public.accounts); ' +
        'view public.account_names (on table public.accounts); nothing was changed or downloaded. ' +
        'Drop or change those objects first, or restore into a new database (--mode create)',
    ]);
    expect(await fingerprint(pg, target)).toEqual(before);
    expect(await safetyBackupsOf(target)).toEqual([]); // no safety backup was taken
    expect(restoreReportOf(target)).toBeUndefined(); // the task never ran: nothing downloaded
    expect(readdirSync(workDir)).toEqual([]);
  } finally {
    await dropDatabase(pg, target);
  }
});

test('a clean restore that fails midway names its safety backup and how to restore it; that command puts the target back', async () => {
  const target = uniqueName('cleanfail');
  await copyOfSource(target, "UPDATE accounts SET v = 'changed before the restore' WHERE id = 1");
  try {
    const before = await fingerprint(pg, target);
    const { result } = cleanRestore(target, ['--jobs', '1']);
    await waitFor('pg_restore to be loading the slow table', async () => {
      const { rows } = await withClient(pg, 'postgres', (c) =>
        c.query(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
            WHERE datname = $1 AND state = 'active' AND query LIKE 'COPY public.slow % FROM stdin%'`,
          [target],
        ),
      );
      return rows.length > 0 ? true : undefined;
    });
    const failed = await result;
    expect(failed.code).toBe(1);
    const lines = failed.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const [, safetyId] =
      /; the target's previous state is in the safety backup (\S+), taken before the restore began; put it back with: pgferry restore /.exec(
        lines[0],
      ) ?? [];
    expect(lines[0]).toMatch(
      new RegExp(
        `^pgferry: pg_restore failed \\(1\\): .* \\(the database ${target} is left partly replaced: pg_restore had begun ` +
          'dropping and recreating its objects\\); ',
      ),
    );
    expect(lines[0]).not.toMatch(/run the restore again/);
    expect(await safetyBackupsOf(target)).toEqual([safetyId]);
    expect(restoreReportOf(target)).toMatchObject({ status: 'failed', safetyBackupId: safetyId });
    expect((await fingerprint(pg, target)).tables).not.toEqual(before.tables);

    const command = lines[0].slice(lines[0].indexOf('put it back with: ') + 'put it back with: '.length);
    const [bin, ...args] = command.split(' ');
    expect(bin).toBe('pgferry');
    const putBack = await runCli(args, { env: { PGPASSWORD: pg.password } });
    expect(putBack).toMatchObject({ code: 0 });
    expect(await fingerprint(pg, target)).toEqual(before);
  } finally {
    await dropDatabase(pg, target);
  }
});

test('a clean restore whose psql is missing is refused in one line saying what to do, the target untouched', async () => {
  const target = uniqueName('cleannopsql');
  await copyOfSource(target, "UPDATE accounts SET v = 'changed before the restore' WHERE id = 1");
  // pg_restore alone in a folder: psql, which runs a clean restore's drops, is not beside it.
  const tools = mkdtempSync(path.join(tmpdir(), 'pgferry-clean-no-psql-'));
  const pgRestore = path.join(tools, 'pg_restore');
  symlinkSync(pgTool('pg_restore', backedUp.manifest.tool.pgDumpMajor), pgRestore);
  try {
    const before = await fingerprint(pg, target);
    const { result } = cleanRestore(target, [], { PGFERRY_PG_BIN_DIRS: tools });
    const failed = await result;
    expect(failed.code).toBe(1);
    expect(failed.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^pgferry: a clean restore runs its drops with psql, and psql is missing beside ${pgRestore}: ` +
            'install psql there \\(one PostgreSQL package holds both\\), or put a folder holding both first in ' +
            'PGFERRY_PG_BIN_DIRS; the target was not changed \\(its safety backup \\S+ was taken before\\)$',
        ),
      ),
    ]);
    expect(await fingerprint(pg, target)).toEqual(before);
  } finally {
    rmSync(tools, { recursive: true, force: true });
    await dropDatabase(pg, target);
  }
});

describe('no false refusals', () => {
  const complex = uniqueName('cleancomplex');
  const copy = uniqueName('cleancomplex_copy');
  const roles = [uniqueName('clean_owner'), uniqueName('clean_reader'), `Wrïter ${uniqueName('w')}`];
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-clean-complex-'));

  beforeAll(async () => {
    await createRoles(pg, roles);
    await createDatabase(pg, complex);
    await createComplexDatabase(pg, complex, roles);
  }, 120_000);
  afterAll(async () => {
    await dropDatabase(pg, complex);
    await dropDatabase(pg, copy);
    await dropRoles(pg, roles);
  });

  test('the complex database restores in clean mode over a copy of itself', async () => {
    const backup = await runCli(['backup', '--source', sourceUrl(pg, complex), '--store', dir, '--json']);
    expect(backup.code).toBe(0);
    const { id } = JSON.parse(backup.stdout) as BackupManifest;
    await withClient(pg, 'postgres', (c) =>
      c.query(`CREATE DATABASE ${quoteIdent(copy)} TEMPLATE ${quoteIdent(complex)}`),
    );
    const restored = await runCli([
      'restore',
      ...['--store', dir, '--backup', id, '--target', sourceUrl(pg, copy)],
      ...['--mode', 'clean', '--force', '--no-safety-backup'],
    ]);
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(await schemaDump(pg, copy, 15, 15)).toEqual(await schemaDump(pg, complex, 15, 15));
    expect(await dataState(pg, copy)).toEqual(await dataState(pg, complex));
  });
});
