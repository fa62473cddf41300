/**
 * `createMarkedDatabase` (core/postgres/admin.ts) on a real server: the database a run creates is
 * marked incomplete from the first instant it has its own name — created under the run's
 * `creatingName`, marked, then renamed — and a failure on the way leaves nothing under either
 * name. What a run killed between its `CREATE DATABASE` and the mark leaves, and its cleanup:
 * test/integration/lambdas/restore/cleanup/cleanup.test.ts, test/e2e/migrate-online-paths.test.ts.
 */
import { hostname } from 'node:os';
import { createMarkedDatabase } from '../../../../core/postgres/admin';
import { creatingName, readIncompleteMark } from '../../../../core/postgres/incomplete-database';
import { newBackupId } from '../../../../core/store-keys';
import {
  createDatabase,
  databaseExists,
  dropDatabase,
  testEnv,
  uniqueName,
  withClient,
} from '../../../support/env';

const pg = testEnv().server(15);

const runOf = (id: string) => ({
  kind: 'restore' as const,
  id,
  pid: process.pid,
  host: hostname(),
  startedAt: new Date().toISOString(),
});

test('the database takes its name already marked; nothing is left under the name it was created by', async () => {
  const name = uniqueName('marked_new');
  const run = runOf(newBackupId());
  try {
    await withClient(pg, 'postgres', (c) => createMarkedDatabase(c, name, { encoding: 'UTF8' }, run, 15));
    const mark = await withClient(pg, 'postgres', (c) => readIncompleteMark(c, name));
    expect(mark).toEqual(run);
    expect(await databaseExists(pg, creatingName(run.id, name))).toBe(false);
  } finally {
    await dropDatabase(pg, name);
  }
});

test('a name taken already: the server refuses the rename, and the database it created is dropped', async () => {
  const name = uniqueName('marked_taken');
  const run = runOf(newBackupId());
  await createDatabase(pg, name);
  try {
    await expect(
      withClient(pg, 'postgres', (c) => createMarkedDatabase(c, name, { encoding: 'UTF8' }, run, 15)),
    ).rejects.toThrow(`database "${name}" already exists`);
    expect(await databaseExists(pg, creatingName(run.id, name))).toBe(false);
    // The one that was there is untouched, unmarked.
    expect(await withClient(pg, 'postgres', (c) => readIncompleteMark(c, name))).toBeUndefined();
  } finally {
    await dropDatabase(pg, name);
  }
});
