import type { Client } from 'pg';
import { resolvePassword } from '../../../core/connection';
import {
  type Connection,
  type RestoreCleanup,
  RestorePlanSchema,
  type RestoreState,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { loadJob } from '../../../core/jobs';
import { dropOwnIncompleteDatabase } from '../../../core/postgres/admin';
import { withMaintenance } from '../../../core/postgres/connect';
import { removeLeftDatabase, restoringName } from '../../../core/postgres/incomplete-database';
import { endRunSessions, runSessionName, waitForRunSessions } from '../../../core/postgres/run-sessions';
import type { BackupStore } from '../../../core/store';

export interface RestoreCleanupDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
}

/** How long the cleanup waits for the sessions it ended to be gone. */
const RUN_SESSIONS_END_MS = 10_000;

/**
 * After a failed restore task: what its runner left on the target when it could not clean up
 * itself (killed hard: SIGKILL, an OOM kill, a lost host), removed — its sessions ended and, in
 * create mode, the database it created dropped when it carries this restore's own mark. A runner
 * that failed on its own has cleaned up already: then there is nothing to do, and nothing to say.
 */
export async function cleanupRestore(state: RestoreState, deps: RestoreCleanupDeps): Promise<RestoreCleanup> {
  const plan = await loadJob(deps.openStore, state.job, 'restore', RestorePlanSchema);
  const { target, mode } = plan.request;
  const password = await resolvePassword(target, 'target', deps.env);
  return cleanupRestoreTarget(target, password, {
    restoreId: plan.restoreId,
    mode,
    serverMajor: plan.targetServer.major,
  });
}

/**
 * {@link cleanupRestore} on the target server: ends the sessions named after restore `restoreId`
 * (waiting up to 10 s for them to go), then in `create` mode drops the database it loads into
 * (`restoringName`) and the target's own name (which it carries, still marked, between the rename
 * and the end of the restore) — each only when it carries this restore's incomplete mark. A
 * database another run marked, or an unmarked one, is left alone: the next preflight names it.
 * In `clean` mode only the sessions are ended (the database is partly replaced; its safety backup
 * puts it back). An unreachable target is skipped (a note: the next restore's preflight names what
 * is there). Returns what it did (`notes`) and what it could not remove (`left`).
 */
export async function cleanupRestoreTarget(
  target: Connection,
  password: string | undefined,
  run: { restoreId: string; mode: 'create' | 'clean'; serverMajor: number },
): Promise<RestoreCleanup> {
  const result: RestoreCleanup = { notes: [], left: [] };
  try {
    await withMaintenance(target, password, async (admin) => {
      await endSessions(admin, runSessionName(run.restoreId), result);
      if (run.mode === 'create') await dropOwnDatabases(admin, target.database, run, result);
    });
  } catch (err) {
    if (err instanceof PgferryError && err.code === 'SourceUnreachable') {
      result.notes.push(
        `the target server could not be reached to clean up after the run (${errorMessage(err)}): the next restore names what it left`,
      );
    } else {
      result.left.push(`could not clean up after the run on the target server: ${errorMessage(err)}`);
    }
  }
  return result;
}

/**
 * How long sessions of the run are given to end on their own first: a runner that failed and
 * closed its connections a moment ago leaves backends that are still exiting, which are no news.
 */
const OWN_END_MS = 2_000;

async function endSessions(admin: Client, name: string, result: RestoreCleanup): Promise<void> {
  const found = await waitForRunSessions(admin, name, OWN_END_MS);
  if (found === 0) return;
  const remaining = await endRunSessions(admin, name, RUN_SESSIONS_END_MS);
  if (remaining === 0) {
    result.notes.push(`the ${found} session(s) the runner left on the target were ended`);
  } else {
    result.left.push(
      `${remaining} session(s) of the run (application_name '${name}') are still on the target server`,
    );
  }
}

async function dropOwnDatabases(
  admin: Client,
  name: string,
  run: { restoreId: string; serverMajor: number },
  result: RestoreCleanup,
) {
  const loading = restoringName(name);
  for (const database of [loading, name]) {
    const left = await dropOwnIncompleteDatabase(admin, database, run.restoreId);
    const what =
      left.database !== database
        ? `the database ${left.database}, which the restore was creating as ${database},`
        : database === loading
          ? `the database ${loading}, which the restore loads before renaming it ${name},`
          : `the database ${name}, renamed into place but not complete,`;
    if (left.fate === 'dropped') result.notes.push(`${what} was dropped`);
    if (left.fate === 'not dropped') {
      result.left.push(
        `${what} is left in place (${left.error}): ${removeLeftDatabase(left.database, run.serverMajor, left.sessions)}`,
      );
    }
  }
}
