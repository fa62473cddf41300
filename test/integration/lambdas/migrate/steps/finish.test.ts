/**
 * MigrateCleanup on a real server (lambdas/migrate/steps/finish.ts `cleanupMigration`): after a
 * migration's runner was killed hard (or its execution stopped), the target database it marked is
 * dropped and the failure names it (and its `notes`, which a stopped run's event carries); one the server will not drop is named in `left` too, with the
 * command that removes it — what makes the announcer of a stopped migration fail
 * (lib/run-events.ts) — and so is one a superuser's session keeps, which the target login (shaped
 * like RDS's master user) may not end, naming it. An online migration's replication slot that a
 * superuser's consumer streams from (pg_recvlogical), which the source login may not end, is left
 * at once, `left` naming the slot, the server, the consumer and the commands that remove it. The
 * whole failure path on a killed runner: test/e2e/migrate-online-paths.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { passwordEnvVar } from '../../../../../core/connection';
import type { Connection, MigratePlan } from '../../../../../core/contracts';
import { replicationName } from '../../../../../core/postgres/logical-replication';
import { LocalStore } from '../../../../../core/store';
import { newBackupId } from '../../../../../core/store-keys';
import { cleanupMigration, type MigrateRun } from '../../../../../lambdas/migrate/steps/finish';
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
} from '../../../../support/env';
import {
  dropLeftSlot,
  leftReplication,
  slotConsumerPid,
  superuserSlotConsumer,
} from '../../../../support/faults';
import { usePrivateServer } from '../../../../support/private-server';

const pg = testEnv().server(15);
const stopped = { Error: 'pgferry.Cancelled', Cause: 'the execution was stopped' };
let dir: string;
let store: LocalStore;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-cleanup-'));
  store = new LocalStore(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The parts of a plan the cleanup reads: one database, from `postgres` into `target`, on one server
 * — or, as `online` says, an online migration of its `source` (the source server) into `target`.
 */
function runOf(migrateId: string, target: Connection, online?: { source: Connection }): MigrateRun {
  const source = online?.source ?? pg.connection('postgres');
  const plan = {
    migrateId,
    request: { store: store.url, source, target, online: online !== undefined },
    targetServer: { version: '15', major: 15 },
    databases: [
      { source, target, readOnlySetting: null, backup: { database: 'shop', backupId: newBackupId() } },
    ],
  } as unknown as MigratePlan;
  return { plan } as unknown as MigrateRun;
}

const env = { [passwordEnvVar('source')]: pg.password, [passwordEnvVar('target')]: pg.password };

test('the target database the migration marked is dropped: nothing is left', async () => {
  const migrateId = newBackupId();
  const target = uniqueName('mclean_own');
  await createMarkedDatabase(pg, target, migrateId, 'migration');
  const failure = await cleanupMigration(runOf(migrateId, pg.connection(target)), stopped, {
    openStore: () => store,
    env,
  });
  expect(failure).toEqual({
    error: 'pgferry.Cancelled',
    cause: `the execution was stopped (the database ${target} it left incomplete was dropped)`,
    unfrozen: false,
    deletedObjects: 0,
    notes: [`the database ${target} it left incomplete was dropped`],
    left: [],
  });
  expect(await databaseExists(pg, target)).toBe(false);
});

test('a marked target database the server will not drop is left: the failure and `left` name it and its removal', async () => {
  const migrateId = newBackupId();
  const target = uniqueName('mclean_stuck');
  await createMarkedDatabase(pg, target, migrateId, 'migration');
  const unblock = await blockDrop(pg, target);
  try {
    const failure = await cleanupMigration(runOf(migrateId, pg.connection(target)), stopped, {
      openStore: () => store,
      env,
    });
    const line =
      `the database ${target} it left incomplete could not be dropped ` +
      `(database "${target}" is being used by logical replication subscription): ` +
      `remove it with DROP DATABASE "${target}" WITH (FORCE);`;
    expect(failure.left).toEqual([line]);
    expect(failure.notes).toEqual([]);
    expect(failure.cause).toBe(`the execution was stopped (${line})`);
    expect(await databaseExists(pg, target)).toBe(true);
  } finally {
    await unblock();
    await dropDatabase(pg, target);
  }
});

test("a session the target login may not end (a superuser's) keeps the marked database: `left` names it, the session and what to do", async () => {
  // The target login as on RDS: its master user owns what it created, and may end any session but
  // a superuser's (rdsadmin's).
  const login = await createLogin(pg, 'mclean_login');
  const migrateId = newBackupId();
  const target = uniqueName('mclean_held');
  await createMarkedDatabase(pg, target, migrateId, 'migration');
  await giveDatabase(pg, target, login.user);
  const held = await superuserSession(pg, target, 'rdsadmin monitor');
  try {
    const started = Date.now();
    const failure = await cleanupMigration(
      runOf(migrateId, { ...pg.connection(target), user: login.user }),
      stopped,
      { openStore: () => store, env: { ...env, [passwordEnvVar('target')]: login.password } },
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    const line =
      `the database ${target} it left incomplete could not be dropped ` +
      `(must be a superuser to terminate superuser process): ` +
      `still connected to it: pid ${held.pid} (user postgres, application "rdsadmin monitor", state hidden from this role); ` +
      `those sessions must end first (a superuser, or their own role, may end them: ` +
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${target}';), ` +
      `then remove it with DROP DATABASE "${target}" WITH (FORCE);`;
    expect(failure.left).toEqual([line]);
    expect(failure.cause).toBe(`the execution was stopped (${line})`);
    expect(await databaseExists(pg, target)).toBe(true);
  } finally {
    await held.client.end().catch(() => undefined);
    await dropDatabase(pg, target);
    await dropLogin(pg, login.user);
  }
});

describe('online: a replication slot another consumer holds', () => {
  const source = usePrivateServer(15, { settings: { wal_level: 'logical' } });

  test("a slot streamed to a superuser's pg_recvlogical is left: `left` names the slot, the server, its consumer and what to do; the cleanup does not wait on it", async () => {
    const server = source();
    // The source login as pgferry asks for on RDS: REPLICATION (rds_replication), the database's
    // owner (its publication), pg_signal_backend (the freeze's).
    const login = await createLogin(server, 'mclean_repl', 'REPLICATION');
    const database = uniqueName('mclean_src');
    await createDatabase(server, database);
    await giveDatabase(server, database, login.user);
    const migrateId = newBackupId();
    const name = replicationName(migrateId);
    await leftReplication(server, database, name, login);
    const consumer = await superuserSlotConsumer(server, database, name);
    try {
      const started = Date.now();
      const failure = await cleanupMigration(
        runOf(migrateId, pg.connection(uniqueName('mclean_none')), {
          source: { ...server.connection(database), user: login.user },
        }),
        stopped,
        {
          openStore: () => store,
          env: { [passwordEnvVar('source')]: login.password, [passwordEnvVar('target')]: pg.password },
        },
      );
      expect(Date.now() - started).toBeLessThan(30_000);
      const line =
        `THE REPLICATION SLOT ${name} MAY BE LEFT ON THE SOURCE SERVER ${server.host}:${server.port}: ` +
        `the slot is in use by pid ${consumer.pid} (user postgres, application "pg_recvlogical", state hidden from this role), ` +
        `a session this login could not end (must be a superuser to terminate superuser process): ` +
        `end that session first (a superuser, or its own role, may: SELECT pg_terminate_backend(${consumer.pid});); ` +
        `remove it, in database ${database}, with ` +
        `SELECT pg_drop_replication_slot('${name}'); DROP PUBLICATION IF EXISTS ${name};`;
      expect({ left: failure.left, unfrozen: failure.unfrozen, stderr: consumer.stderr() }).toEqual({
        left: [line],
        unfrozen: true,
        stderr: '',
      });
      expect(await slotConsumerPid(server, name)).toBe(consumer.pid);
    } finally {
      await consumer.stop();
      await dropLeftSlot(server, name);
      await dropDatabase(server, database);
      await dropLogin(server, login.user);
    }
  }, 60_000);
});
