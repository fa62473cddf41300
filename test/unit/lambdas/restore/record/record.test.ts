/**
 * RestoreRecord after a failed task (lambdas/restore/record/record.ts): the failure it ends the
 * execution with is the runner's error (here, as when the runner was killed, the caught one: the
 * runner stored no report), followed by what RestoreCleanup did, or by the cleanup's own failure;
 * with nothing from the cleanup, the error is the caught one unchanged.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { RestoreState } from '../../../../../core/contracts';
import { openStore } from '../../../../../core/store';
import { newBackupId } from '../../../../../core/store-keys';
import { recordRestore } from '../../../../../lambdas/restore/record/record';

const store = `file://${mkdtempSync(path.join(tmpdir(), 'pgferry-record-'))}`;
const killed = { Error: 'States.TaskFailed', Cause: 'the pg-tools task stopped (SIGKILL): no output' };

function failedState(extra: Partial<RestoreState> = {}): RestoreState {
  return {
    job: { store, key: 'jobs/none.json' },
    restoreId: newBackupId(),
    backupId: newBackupId(),
    database: 'shop',
    taskSize: { cpu: '1024', memoryMiB: '2048', ephemeralStorageGiB: 21 },
    error: killed,
    ...extra,
  };
}

const failureOf = (state: RestoreState) =>
  recordRestore(state, { openStore }).then(
    () => {
      throw new Error('recorded a failed restore as passed');
    },
    (err: Error) => ({ name: err.name, message: err.message }),
  );

test('the caught error, unchanged, when the cleanup had nothing to do', async () => {
  expect(await failureOf(failedState({ cleanup: { notes: [], left: [] } }))).toEqual({
    name: killed.Error,
    message: killed.Cause,
  });
});

test('the caught error, followed by what the cleanup did', async () => {
  const notes = ['the 2 session(s) the runner left on the target were ended', 'the database x … was dropped'];
  expect(await failureOf(failedState({ cleanup: { notes, left: [] } }))).toEqual({
    name: killed.Error,
    message: `${killed.Cause} (${notes.join('; ')})`,
  });
});

test('the caught error, followed by what the cleanup did, then what it left', async () => {
  const notes = ['the 2 session(s) the runner left on the target were ended'];
  const left = ['the database x … is left in place (…): remove it with DROP DATABASE x;'];
  expect(await failureOf(failedState({ cleanup: { notes, left } }))).toEqual({
    name: killed.Error,
    message: `${killed.Cause} (${[...notes, ...left].join('; ')})`,
  });
});

test("the caught error, followed by the cleanup's own failure (a Lambda error's message out of its JSON cause)", async () => {
  const cleanupError = {
    Error: 'Pgferry.StoreUnavailable',
    Cause: JSON.stringify({
      errorType: 'Pgferry.StoreUnavailable',
      errorMessage: 'the store did not answer',
    }),
  };
  expect(await failureOf(failedState({ cleanupError }))).toEqual({
    name: killed.Error,
    message: `${killed.Cause} (the cleanup after the run failed (the store did not answer): the next restore names what is left)`,
  });
});
