/**
 * Interrupted runs clean up after themselves, and the next run finds what a run killed too hard
 * to clean up left behind.
 *
 * - Ctrl-C (SIGINT to the CLI's process group, as a terminal sends it) of a restore (of one archive,
 *   and of a parallel backup's two streaming at once) and of a verify in the middle of loading a
 *   table: nothing is left — no database, no work folder, no process (verify's throwaway server
 *   stopped) — the failed report is stored, and the CLI prints one line and exits 130. A backup stopped the same way leaves nothing listed (the workflow's Cleanup runs).
 * - SIGTERM of the task alone (ECS stopping it) and the CLI's death (SIGKILL of the CLI alone): the
 *   task cleans up the same way.
 * - SIGKILL of a restore's runner alone (a Fargate task's OOM kill, a lost host): the workflow's
 *   RestoreCleanup ends the run's sessions and drops the database it created and marked.
 * - kill -9 of everything: the next restore names the leftover database (marked incomplete) with the
 *   command that removes it, and the next run removes the dead run's work folder and stops the
 *   server still running in it, saying so in one line.
 *
 * Each fault lands where the runs are observed to be (a session copying a table that takes
 * seconds to load: each row is checked by a function that sleeps 2 ms), never after a guessed delay.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import type { RestoreReport, VerifyReport } from '../../core/contracts';
import { currentLease } from '../../core/lease';
import { restoringName } from '../../core/postgres/incomplete-database';
import { LocalStore } from '../../core/store';
import { databaseSegment } from '../../core/store-keys';
import { useBackedUpDatabase } from '../support/backed-up-database';
import { type CliResult, runCli, sourceUrl } from '../support/cli';
import { dropDatabase, testEnv, uniqueName, withClient } from '../support/env';
import { commandLine, descendants, gatedPgDump, isRunning, waitFor } from '../support/faults';

const env = testEnv();
const pg = env.server(15);
const backedUp = useBackedUpDatabase(pg, {
  prefix: 'interrupts',
  seed: `
    CREATE TABLE quick AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g;
    -- Restoring its rows takes seconds (2 ms each, checked on insert): a window to act in.
    CREATE FUNCTION slow_ok(integer) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.002)';
    CREATE TABLE slow (id integer CHECK (slow_ok(id)));
    INSERT INTO slow SELECT generate_series(1, 3000);`,
});
const { name: source, dir: storeDir, store } = backedUp;
// For a backup of two archives (`backup --jobs 2`): the slow table, padded past 1 MiB, is the one
// moved to the side archive; the quick one stays in the main archive.
const parallel = useBackedUpDatabase(pg, {
  prefix: 'interrupts_par',
  seed: `
    CREATE TABLE quick AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g;
    CREATE FUNCTION slow_ok(integer) RETURNS boolean LANGUAGE sql AS 'SELECT true FROM pg_sleep(0.002)';
    CREATE TABLE slow (id integer CHECK (slow_ok(id)), pad text);
    INSERT INTO slow SELECT g, repeat('x', 400) FROM generate_series(1, 3000) g;`,
});

/** A CLI run in a process group of its own, with its pid and its stderr so far. */
interface Run {
  pid: number;
  stderr: () => string;
  done: Promise<CliResult>;
}

function start(args: string[], workDir: string, extraEnv: Record<string, string> = {}): Run {
  let pid = 0;
  let stderr = '';
  const done = runCli([...args, '--verbose'], {
    env: { PGFERRY_WORK_DIR: workDir, ...extraEnv },
    processGroup: true,
    onSpawn: (p) => {
      pid = p;
    },
    onStderr: (text) => {
      stderr += text;
    },
  });
  return { pid, stderr: () => stderr, done };
}

const restoreArgs = (target: string) => [
  'restore',
  ...['--store', store, '--backup', backedUp.manifest.id, '--target', sourceUrl(pg, target)],
];
const verifyArgs = () => ['verify', '--store', store, '--backup', backedUp.manifest.id, '--database', source];

/** Waits until the run's task says it is in its load phase, and a session of it copies the slow table. */
async function midRestore(run: Run, target: string): Promise<void> {
  await waitFor('the load phase', () => (run.stderr().includes('"phase":"load"') ? true : undefined));
  await waitFor(
    'the slow table to be loading',
    () =>
      withClient(pg, 'postgres', async (c) => {
        const { rows } = await c.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY public.slow %'",
          [restoringName(target)],
        );
        return rows.length ? true : undefined;
      }),
    60_000,
  );
}

/**
 * Waits until the verify's task is in its load phase (the archive streams into its throwaway
 * server), and a session of it copies the slow table. Returns the server's socket folder: in its
 * folder within the run's work folder, or a folder of its own in the temporary folder when that is
 * too deep for a socket's path (as under the test run's temporary folder).
 */
async function midVerify(run: Run, workDir: string): Promise<string> {
  await waitFor('the load phase', () => (run.stderr().includes('"phase":"load"') ? true : undefined));
  let found: string | undefined;
  await waitFor(
    'the slow table to be loading',
    async () => {
      // The throwaway server's pid file (in its data folder, within the run's work folder) names
      // its socket's folder (its fifth line).
      const socketDir = readdirSync(workDir)
        .flatMap((folder) =>
          readdirSync(path.join(workDir, folder)).map((f) =>
            path.join(workDir, folder, f, 'data', 'postmaster.pid'),
          ),
        )
        .filter((file) => existsSync(file))
        .map((file) => readFileSync(file, 'utf8').split('\n')[4])
        .find((dir) => dir && existsSync(path.join(dir, '.s.PGSQL.5432')));
      if (!socketDir) return undefined;
      const c = new Client({ host: socketDir, port: 5432, user: 'postgres', database: 'postgres' });
      try {
        await c.connect();
        const { rows } = await c.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'COPY public.slow %'",
          [restoringName(source)],
        );
        found = socketDir;
        return rows.length ? true : undefined;
      } catch {
        return undefined; // the server is starting
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    60_000,
  );
  return found as string;
}

/** The lines the CLI itself wrote (the task's JSON logs aside). */
function cliLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('pgferry:'));
}

/** Processes (of anyone) whose command line names `dir`: pg_restore of its dump, a server in it. */
function processesIn(dir: string): string[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n) && isRunning(Number(n)))
    .map((n) => commandLine(Number(n)))
    .filter((cmd) => cmd.includes(dir));
}

async function databaseExists(name: string): Promise<boolean> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return rows.length > 0;
  });
}

function storedReports<T>(prefix: string): T[] {
  const folder = path.join(storeDir, databaseSegment(source), backedUp.manifest.id);
  return readdirSync(folder)
    .filter((f) => f.startsWith(prefix))
    .map((f) => JSON.parse(readFileSync(path.join(folder, f), 'utf8')) as T);
}

/** A work folder of a test's own; verify's server (run as the postgres user) must pass through it. */
function newWorkDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-interrupts-work-'));
  chmodSync(dir, 0o711);
  return dir;
}

/**
 * Ctrl-C of a restore (`args`, into `target`) while a session copies the slow table: one line,
 * exit 130, and nothing left — no database under either name, no session, no work folder, no process.
 */
async function interruptedMidLoad(args: string[], target: string): Promise<void> {
  const workDir = newWorkDir();
  const run = start(args, workDir);
  await midRestore(run, target);
  // The restore loads a database of another name, renamed into place only once complete.
  const loading = restoringName(target);
  expect(await databaseExists(loading)).toBe(true);
  expect(await databaseExists(target)).toBe(false);
  process.kill(-run.pid, 'SIGINT');
  const result = await run.done;

  expect(result.code).toBe(130);
  expect(cliLines(result.stderr)).toEqual([
    `pgferry: restore interrupted by SIGINT (the database ${loading}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target})`,
  ]);
  expect(await databaseExists(loading)).toBe(false);
  expect(await databaseExists(target)).toBe(false);
  expect(readdirSync(workDir)).toEqual([]);
  expect(processesIn(workDir)).toEqual([]);
  const sessions = await withClient(pg, 'postgres', (c) =>
    c.query('SELECT 1 FROM pg_stat_activity WHERE datname = ANY($1)', [[target, loading]]),
  );
  expect(sessions.rowCount).toBe(0);
}

describe('restore', () => {
  test('Ctrl-C mid-load: the database is dropped, the work folder removed, the report stored; one line, exit 130', async () => {
    const target = uniqueName('rint');
    await interruptedMidLoad(restoreArgs(target), target);
    expect(
      storedReports<RestoreReport>('restore-report-').find((r) => r.target.database === target),
    ).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^interrupted by SIGINT/),
    });
  });

  test("Ctrl-C while a parallel backup's archives stream in: every stream stops, the database is dropped, nothing is left; one line, exit 130", async () => {
    const manifest = await parallel.backup('--jobs', '2');
    expect(manifest.objects.map((o) => o.kind)).toEqual(['dump', 'table-data', 'globals']);
    const target = uniqueName('rpar');
    await interruptedMidLoad(
      ['restore', '--store', parallel.store, '--backup', manifest.id, '--target', sourceUrl(pg, target)],
      target,
    );
  });

  test('SIGTERM of the task alone (as ECS stops it), SIGHUP (a closed terminal) and the death of the CLI clean up the same way', async () => {
    for (const fault of ['task SIGTERM', 'task SIGHUP', 'CLI SIGKILL'] as const) {
      const target = uniqueName('rterm');
      const workDir = newWorkDir();
      const run = start(restoreArgs(target), workDir);
      await midRestore(run, target);
      const runner = descendants(run.pid).find((p) => commandLine(p).includes('pg-tools/src/main.js'));
      if (!runner) throw new Error('no runner');
      if (fault !== 'CLI SIGKILL') {
        const signal = fault === 'task SIGTERM' ? 'SIGTERM' : 'SIGHUP';
        process.kill(runner, signal);
        const result = await run.done;
        expect(result.code).toBe(1);
        expect(cliLines(result.stderr)).toEqual([
          `pgferry: interrupted by ${signal} (the database ${restoringName(target)}, which the restore loads before renaming it ${target}, was dropped; nothing was written to ${target})`,
        ]);
      } else {
        process.kill(run.pid, 'SIGKILL');
        await run.done;
        await waitFor(
          'the orphaned task to clean up and stop',
          () => (isRunning(runner) ? undefined : true),
          30_000,
        );
      }
      expect(await databaseExists(target)).toBe(false);
      expect(await databaseExists(restoringName(target))).toBe(false);
      expect(readdirSync(workDir)).toEqual([]);
      expect(processesIn(workDir)).toEqual([]);
    }
  });

  test("the runner alone killed (SIGKILL, as an OOM kill or a lost Fargate host) mid-load: RestoreCleanup ends the run's sessions and drops the database it created; the next restore succeeds", async () => {
    const target = uniqueName('rrkill');
    const loading = restoringName(target);
    const run = start(restoreArgs(target), newWorkDir());
    await midRestore(run, target);
    const runner = descendants(run.pid).find((p) => commandLine(p).includes('pg-tools/src/main.js'));
    if (!runner) throw new Error('no runner');
    const restoreId = /"restoreId":"([^"]+)"/.exec(run.stderr())?.[1];
    expect(restoreId).toBeDefined();
    process.kill(runner, 'SIGKILL');
    const result = await run.done;

    expect(result.code).toBe(1);
    // The runner's error, then what the cleanup step did: the runner could say nothing.
    expect(cliLines(result.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^pgferry: the pg-tools task stopped \\(SIGKILL\\).* \\((.*; )?the database ${loading}, which the restore loads before renaming it ${target}, was dropped\\)$`,
        ),
      ),
    ]);
    expect(await databaseExists(loading)).toBe(false);
    expect(await databaseExists(target)).toBe(false);
    const sessions = await withClient(pg, 'postgres', (c) =>
      c.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1 OR datname = ANY($2)', [
        `pgferry ${restoreId}`,
        [target, loading],
      ]),
    );
    expect(sessions.rows).toEqual([]);

    const next = await runCli(restoreArgs(target), { env: { PGFERRY_WORK_DIR: newWorkDir() } });
    expect(next).toMatchObject({ code: 0, stderr: '' });
    await dropDatabase(pg, target);
  });

  test('kill -9 of everything: the next run names the leftover database and how to drop it, and removes the dead run’s folder', async () => {
    const target = uniqueName('rkill');
    const workDir = newWorkDir();
    const run = start(restoreArgs(target), workDir);
    await midRestore(run, target);
    const runner = descendants(run.pid).find((p) => commandLine(p).includes('pg-tools/src/main.js'));
    process.kill(-run.pid, 'SIGKILL');
    await run.done;
    // What a run killed too hard to clean up leaves behind: the database it loads, under its own name.
    const loading = restoringName(target);
    expect(await databaseExists(loading)).toBe(true);
    expect(await databaseExists(target)).toBe(false);
    const [leftover] = readdirSync(workDir);
    expect(leftover).toMatch(/^pgferry-restore-/);

    const next = await runCli(restoreArgs(target), { env: { PGFERRY_WORK_DIR: workDir } });
    expect(next.code).toBe(1);
    const lines = next.stderr.trimEnd().split('\n');
    expect(lines).toEqual([
      `pgferry: removed the work folder of runs that died: ${path.join(workDir, leftover)} (a restore run, pid ${runner})`,
      expect.stringMatching(
        new RegExp(
          `^pgferry: the database "${loading}", which a restore into "${target}" loads before renaming it into place, ` +
            `is an incomplete copy left by pgferry restore \\S+ ` +
            `\\(started \\S+ by pid ${runner} on host .*\\): once that run is gone, remove it on the target server ` +
            `with DROP DATABASE "${loading}" WITH \\(FORCE\\); and run again$`,
        ),
      ),
    ]);
    expect(readdirSync(workDir)).toEqual([]);

    // Following that advice, the restore succeeds.
    const drop = /with (DROP DATABASE .*;) and run again$/.exec(lines[1])?.[1] ?? '';
    await withClient(pg, 'postgres', (c) => c.query(drop));
    const retried = await runCli(restoreArgs(target), { env: { PGFERRY_WORK_DIR: workDir } });
    expect(retried).toMatchObject({ code: 0, stderr: '' });
    const comment = await withClient(pg, 'postgres', (c) =>
      c.query("SELECT shobj_description(oid, 'pg_database') AS c FROM pg_database WHERE datname = $1", [
        target,
      ]),
    );
    expect(comment.rows).toEqual([{ c: null }]); // the incomplete mark is gone once complete
    await dropDatabase(pg, target);
  });
});

describe('verify', () => {
  test('Ctrl-C mid-load: its server is stopped, its folder removed, the report stored; one line, exit 130', async () => {
    const workDir = newWorkDir();
    const run = start(verifyArgs(), workDir);
    const sockets = await midVerify(run, workDir);
    expect(processesIn(workDir).some((cmd) => /postgres/.test(cmd) && cmd.includes(' -D '))).toBe(true);
    process.kill(-run.pid, 'SIGINT');
    const result = await run.done;

    expect(result.code).toBe(130);
    expect(cliLines(result.stderr)).toEqual([
      "pgferry: verify interrupted by SIGINT (the drill's server was stopped and its folder removed)",
    ]);
    expect(processesIn(workDir)).toEqual([]);
    expect(readdirSync(workDir)).toEqual([]);
    expect(existsSync(sockets)).toBe(false);
    const reports = storedReports<VerifyReport>('verify-report-');
    expect(reports.some((r) => r.status === 'failed' && /^interrupted by SIGINT/.test(r.error ?? ''))).toBe(
      true,
    );
  });

  test('kill -9 of everything leaves its server running; the next run stops it, removes the folder, says so, and passes', async () => {
    const workDir = newWorkDir();
    const run = start(verifyArgs(), workDir);
    const sockets = await midVerify(run, workDir);
    const runner = descendants(run.pid).find((p) => commandLine(p).includes('pg-tools/src/main.js'));
    process.kill(-run.pid, 'SIGKILL');
    await run.done;
    // pg_ctl starts the server in a session of its own: the kill does not reach it.
    expect(processesIn(workDir).some((cmd) => /postgres/.test(cmd))).toBe(true);
    const [leftover] = readdirSync(workDir);

    const next = await runCli(verifyArgs(), { env: { PGFERRY_WORK_DIR: workDir } });
    expect(next.code).toBe(0);
    expect(next.stderr.trimEnd().split('\n')).toEqual([
      `pgferry: removed the work folder of runs that died: ${path.join(workDir, leftover)} (a verify run, pid ${runner}), ` +
        'and stopped the PostgreSQL server still running in it',
    ]);
    expect(processesIn(workDir)).toEqual([]);
    expect(readdirSync(workDir)).toEqual([]);
    expect(existsSync(sockets)).toBe(false);
  });
});

test('a backup stopped by Ctrl-C leaves nothing listed (its Cleanup runs) and releases its lease', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-interrupts-backup-'));
  const gate = gatedPgDump(64 * 1024);
  const run = start(
    ['backup', '--source', sourceUrl(pg, source), '--store', `file://${dir}`, '--compress', 'none'],
    newWorkDir(),
    { PGFERRY_PG_BIN_DIRS: gate.binDirs },
  );
  try {
    await waitFor('part of the dump to be stored', () => {
      const dbDir = path.join(dir, databaseSegment(source));
      try {
        return readdirSync(dbDir).some(
          (f) => f !== '.lease' && readdirSync(path.join(dbDir, f)).includes('dump.pgdump'),
        )
          ? true
          : undefined;
      } catch {
        return undefined;
      }
    });
    process.kill(-run.pid, 'SIGINT');
  } finally {
    gate.open();
  }
  const result = await run.done;
  expect(result.code).toBe(130);
  expect(cliLines(result.stderr)).toEqual([expect.stringMatching(/^pgferry: backup interrupted by SIGINT/)]);
  const listed = await runCli(['list', '--store', `file://${dir}`, '--json']);
  expect(JSON.parse(listed.stdout)).toEqual([]);
  expect(readdirSync(path.join(dir, databaseSegment(source)))).toEqual([]);
  expect(await currentLease(new LocalStore(dir), source)).toBeUndefined();
});

test('a migration stopped by Ctrl-C mid-copy drops its target and removes its work folder; one line, exit 130', async () => {
  const target = uniqueName('mint');
  const workDir = newWorkDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'pgferry-interrupts-migrate-'));
  const run = start(
    ['migrate', '--source', sourceUrl(pg, source), '--target', sourceUrl(pg, target), '--store', dir],
    workDir,
  );
  await waitFor('the data phase', () => (run.stderr().includes('"phase":"data ') ? true : undefined));
  // The runner's own COPY sessions load the target (no pg_restore on a migration's data path).
  await waitFor('a COPY into the target', () =>
    withClient(pg, 'postgres', async (c) => {
      const { rows } = await c.query(
        "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND query ILIKE 'COPY %FROM stdin%'",
        [target],
      );
      return rows.length ? true : undefined;
    }),
  );
  expect(await databaseExists(target)).toBe(true);
  process.kill(-run.pid, 'SIGINT');
  const result = await run.done;

  expect(result.code).toBe(130);
  expect(cliLines(result.stderr)).toEqual([
    expect.stringMatching(
      new RegExp(
        `^pgferry: migrate interrupted by SIGINT.*the partially migrated database ${target} was dropped`,
      ),
    ),
  ]);
  expect(await databaseExists(target)).toBe(false);
  expect(readdirSync(workDir)).toEqual([]);
  expect(processesIn(workDir)).toEqual([]);
});
