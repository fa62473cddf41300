/**
 * MigrateCleanup on a real server (lambdas/migrate/steps/finish.ts `cleanupMigration`): after a
 * migration's runner was killed hard (or its execution stopped), the target database it marked is
 * dropped and the failure names it (and its `notes`, which a stopped run's event carries); one the server will not drop is named in `left` too, with the
 * command that removes it — what makes the announcer of a stopped migration fail
 * (lib/run-events.ts). The whole failure path on a killed runner: test/e2e/migrate-online-paths.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { passwordEnvVar } from '../../../../../core/connection';
import type { MigratePlan } from '../../../../../core/contracts';
import { LocalStore } from '../../../../../core/store';
import { newBackupId } from '../../../../../core/store-keys';
import { cleanupMigration, type MigrateRun } from '../../../../../lambdas/migrate/steps/finish';
import {
  blockDrop,
  createMarkedDatabase,
  databaseExists,
  dropDatabase,
  testEnv,
  uniqueName,
} from '../../../../support/env';

const pg = testEnv().server(15);
const stopped = { Error: 'pgferry.Cancelled', Cause: 'the execution was stopped' };
let dir: string;
let store: LocalStore;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'pgferry-migrate-cleanup-'));
  store = new LocalStore(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The parts of a plan the cleanup reads: one database, from `postgres` into `target`, on one server. */
function runOf(migrateId: string, target: string): MigrateRun {
  const plan = {
    migrateId,
    request: { store: store.url, source: pg.connection('postgres'), target: pg.connection(target) },
    targetServer: { version: '15', major: 15 },
    databases: [
      {
        source: pg.connection('postgres'),
        target: pg.connection(target),
        backup: { database: 'shop', backupId: newBackupId() },
      },
    ],
  } as unknown as MigratePlan;
  return { plan } as unknown as MigrateRun;
}

const env = { [passwordEnvVar('source')]: pg.password, [passwordEnvVar('target')]: pg.password };

test('the target database the migration marked is dropped: nothing is left', async () => {
  const migrateId = newBackupId();
  const target = uniqueName('mclean_own');
  await createMarkedDatabase(pg, target, migrateId, 'migration');
  const failure = await cleanupMigration(runOf(migrateId, target), stopped, { openStore: () => store, env });
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
    const failure = await cleanupMigration(runOf(migrateId, target), stopped, {
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
