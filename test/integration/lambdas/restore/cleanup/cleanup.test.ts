/**
 * RestoreCleanup's work on a real server (lambdas/restore/cleanup/cleanup.ts `cleanupRestoreTarget`):
 * after a restore's runner was killed hard, it ends the sessions named after the restore and drops
 * the database it loads into — only when that database carries this restore's own incomplete
 * mark. A restoring database another run marked (that run may still be going), or an unmarked one,
 * is left alone; in clean mode nothing is dropped. One it cannot drop is named in `left`, with the
 * command that removes it (what makes the announcer of a stopped restore fail: lib/run-events.ts)
 * — and the sessions that keep it, when its login may not end them (a superuser's, to a login
 * shaped like RDS's master user). The runner killed for real: test/e2e/interrupts.test.ts.
 */
import { Client } from 'pg';
import {
  creatingName,
  readIncompleteMark,
  restoringName,
} from '../../../../../core/postgres/incomplete-database';
import { runSessionName } from '../../../../../core/postgres/run-sessions';
import { newBackupId } from '../../../../../core/store-keys';
import { cleanupRestoreTarget } from '../../../../../lambdas/restore/cleanup/cleanup';
import {
  blockDrop,
  createDatabase,
  createLogin,
  createMarkedDatabase,
  databaseExists,
  dropDatabase,
  dropLogin,
  giveDatabase,
  superuserSession,
  testEnv,
  uniqueName,
  withClient,
} from '../../../../support/env';

const pg = testEnv().server(15);
const newRunId = () => newBackupId();

/** The restoring database of a restore into `target`, marked by run `runId` (none: unmarked). */
async function leftRestoring(target: string, runId: string | undefined): Promise<string> {
  const name = restoringName(target);
  if (runId) await createMarkedDatabase(pg, name, runId);
  else await createDatabase(pg, name);
  return name;
}

/** A session named after run `runId`, connected to `database`, as a killed runner's COPY would be. */
async function runSession(runId: string, database: string): Promise<Client> {
  const c = new Client({ ...pg.clientConfig(database), application_name: runSessionName(runId) });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function sessionsOf(runId: string): Promise<number> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [
      runSessionName(runId),
    ]);
    return rows.length;
  });
}

test("create mode: the run's sessions are ended and the restoring database it marked is dropped", async () => {
  const target = uniqueName('rclean_own');
  const runId = newRunId();
  const loading = await leftRestoring(target, runId);
  const session = await runSession(runId, loading);
  try {
    const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
      restoreId: runId,
      mode: 'create',
      serverMajor: 15,
    });
    expect(result.notes).toEqual([
      'the 1 session(s) the runner left on the target were ended',
      `the database ${loading}, which the restore loads before renaming it ${target}, was dropped`,
    ]);
    expect(result.left).toEqual([]);
  } finally {
    await session.end().catch(() => undefined);
  }
  expect(await databaseExists(pg, loading)).toBe(false);
  expect(await sessionsOf(runId)).toBe(0);
});

test('create mode: the target itself, renamed into place but still marked by the run, is dropped', async () => {
  const target = uniqueName('rclean_renamed');
  const runId = newRunId();
  await createMarkedDatabase(pg, target, runId);
  const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
    restoreId: runId,
    mode: 'create',
    serverMajor: 15,
  });
  expect(result.notes).toEqual([`the database ${target}, renamed into place but not complete, was dropped`]);
  expect(await databaseExists(pg, target)).toBe(false);
});

test('create mode: the database the run was creating, killed before its mark, is dropped by its name alone', async () => {
  const target = uniqueName('rclean_creating');
  const runId = newRunId();
  // What a runner killed between its CREATE DATABASE and the mark leaves: the run's own name, unmarked.
  const creating = creatingName(runId, restoringName(target));
  await createDatabase(pg, creating);
  // Another run's, of the same target: left alone.
  const others = creatingName(newRunId(), restoringName(target));
  await createDatabase(pg, others);
  try {
    const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
      restoreId: runId,
      mode: 'create',
      serverMajor: 15,
    });
    expect(result.notes).toEqual([
      `the database ${creating}, which the restore was creating as ${restoringName(target)}, was dropped`,
    ]);
    expect(result.left).toEqual([]);
    expect(await databaseExists(pg, creating)).toBe(false);
    expect(await databaseExists(pg, others)).toBe(true);
  } finally {
    await dropDatabase(pg, others);
  }
});

test('create mode: a marked database the server will not drop is left, saying how to remove it', async () => {
  const target = uniqueName('rclean_stuck');
  const runId = newRunId();
  const loading = await leftRestoring(target, runId);
  const unblock = await blockDrop(pg, loading);
  try {
    const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
      restoreId: runId,
      mode: 'create',
      serverMajor: 15,
    });
    expect(result.notes).toEqual([]);
    expect(result.left).toEqual([
      `the database ${loading}, which the restore loads before renaming it ${target}, is left in place ` +
        `(database "${loading}" is being used by logical replication subscription): ` +
        `remove it with DROP DATABASE "${loading}" WITH (FORCE);`,
    ]);
    expect(await databaseExists(pg, loading)).toBe(true);
  } finally {
    await unblock();
    await dropDatabase(pg, loading);
  }
});

test.each(testEnv().postgres.map((server) => [server.major, server] as const))(
  "create mode on PostgreSQL %i: a session the login may not end (a superuser's) keeps the marked database: `left` names it, the session and what to do",
  async (major, server) => {
    // The target's login as on RDS: its master user owns what it created, and may end any session
    // but a superuser's (rdsadmin's).
    const login = await createLogin(server, 'rclean_login');
    const target = uniqueName('rclean_held');
    const runId = newRunId();
    const loading = restoringName(target);
    await createMarkedDatabase(server, loading, runId);
    await giveDatabase(server, loading, login.user);
    const held = await superuserSession(server, loading, 'rdsadmin monitor');
    try {
      const started = Date.now();
      const result = await cleanupRestoreTarget(
        { ...server.connection(target), user: login.user },
        login.password,
        { restoreId: runId, mode: 'create', serverMajor: major },
      );
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(result.notes).toEqual([]);
      const refused =
        major >= 16
          ? 'permission denied to terminate process'
          : 'must be a superuser to terminate superuser process';
      expect(result.left).toEqual([
        `the database ${loading}, which the restore loads before renaming it ${target}, is left in place (${refused}): ` +
          `still connected to it: pid ${held.pid} (user postgres, application "rdsadmin monitor", state hidden from this role); ` +
          `those sessions must end first (a superuser, or their own role, may end them: ` +
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${loading}';), ` +
          `then remove it with DROP DATABASE "${loading}" WITH (FORCE);`,
      ]);
      expect(await databaseExists(server, loading)).toBe(true);
    } finally {
      await held.client.end().catch(() => undefined);
      await dropDatabase(server, loading);
      await dropLogin(server, login.user);
    }
  },
);

test('a restoring database marked by ANOTHER run, and an unmarked one, are left alone; nothing to say', async () => {
  for (const markedBy of [newRunId(), undefined]) {
    const target = uniqueName('rclean_other');
    const loading = await leftRestoring(target, markedBy);
    try {
      const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
        restoreId: newRunId(),
        mode: 'create',
        serverMajor: 15,
      });
      expect(result).toEqual({ notes: [], left: [] });
      expect(await databaseExists(pg, loading)).toBe(true);
      const mark = await withClient(pg, 'postgres', (c) => readIncompleteMark(c, loading));
      expect(mark?.id).toBe(markedBy);
    } finally {
      await dropDatabase(pg, loading);
    }
  }
});

test('clean mode: the sessions only; a database is never dropped', async () => {
  const target = uniqueName('rclean_clean');
  const runId = newRunId();
  const loading = await leftRestoring(target, runId);
  const session = await runSession(runId, 'postgres');
  try {
    const result = await cleanupRestoreTarget(pg.connection(target), pg.password, {
      restoreId: runId,
      mode: 'clean',
      serverMajor: 15,
    });
    expect(result.notes).toEqual(['the 1 session(s) the runner left on the target were ended']);
    expect(await databaseExists(pg, loading)).toBe(true);
    expect(await sessionsOf(runId)).toBe(0);
  } finally {
    await session.end().catch(() => undefined);
    await dropDatabase(pg, loading);
  }
});

test('an unreachable target is skipped, saying so', async () => {
  const result = await cleanupRestoreTarget({ ...pg.connection('nowhere'), port: 1 }, pg.password, {
    restoreId: newRunId(),
    mode: 'create',
    serverMajor: 15,
  });
  expect(result.notes).toEqual([
    expect.stringMatching(
      /^the target server could not be reached to clean up after the run \(.*\): the next restore names what it left$/,
    ),
  ]);
});
