/**
 * The restore drill: restores a backup into a throwaway server of the major a restore needs (the
 * source's, or the newer one of the pg_dump that wrote the archive), creating the database with the
 * source's encoding and locale as a restore does, its roles created first so that the archives
 * stream into it as a create restore's do; checks every checksum and every table's row count, and
 * stores a verification report with the measured time to restore.
 */
import { chmod, rm } from 'node:fs/promises';
import {
  type BackupManifest,
  type Connection,
  SCHEMA_VERSION,
  type ToastCompression,
  type VerifyPlan,
  type VerifyReport,
} from '../../../core/contracts';
import { errorMessage, PgferryError } from '../../../core/errors';
import { dropDatabase } from '../../../core/postgres/admin';
import { withClient } from '../../../core/postgres/connect';
import { serverInfo } from '../../../core/postgres/inspect';
import { describeArchive, missingForBackup, restoreMajor } from '../../../core/postgres/requirements';
import { chooseToastCompression } from '../../../core/postgres/restore-session';
import { catalogNameOf, verifyReportKey } from '../../../core/store-keys';
import { DRILL_RESTORE } from '../../../core/strategy';
import { createWorkFolder, workRoot } from '../../../core/work-folders';
import { type RestoreDeps, type RestoreTarget, restoreBackup, restoreGlobalsFirst } from './restore-backup';
import { interruption, RestoreProgress, stopIfInterrupted } from './run';
import { startThrowawayServer, type ThrowawayServer } from './throwaway-server';

/**
 * The drill: stores a report whatever the outcome. Interrupted (`deps.signal`), it stops the
 * restore, stops and removes the throwaway server and its folder, stores the failed report, and
 * fails with the interruption.
 */
export async function runVerify(plan: VerifyPlan, deps: RestoreDeps): Promise<VerifyReport> {
  const started = Date.now();
  const progress = new RestoreProgress(deps.onPhase);
  const { manifest } = plan;
  const workDir = await createWorkFolder('verify', workRoot(deps.env));
  // The server runs as another user when we are root: it must reach its own folder inside.
  await chmod(workDir, 0o711);
  let server: ThrowawayServer | undefined;
  let restoreSeconds: number | undefined;
  const report = (status: 'passed' | 'failed', error?: string): VerifyReport => ({
    schemaVersion: SCHEMA_VERSION,
    kind: 'verify',
    verifyId: plan.verifyId,
    backupId: manifest.id,
    database: catalogNameOf(manifest),
    status,
    ...(error === undefined ? {} : { error }),
    ...(server ? { server: { version: server.version, major: server.major } } : {}),
    ...(restoreSeconds === undefined ? {} : { restoreSeconds }),
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date().toISOString(),
    timings: { ...progress.timings, total: (Date.now() - started) / 1000 },
    checks: progress.checks,
  });
  const key = verifyReportKey(catalogNameOf(manifest), manifest.id, plan.verifyId);
  let cleanedUp = false;
  const cleanUp = async () => {
    if (cleanedUp) return;
    cleanedUp = true;
    await server?.stop();
    await rm(workDir, { recursive: true, force: true });
  };
  try {
    const why = `verifying backup ${manifest.id}, whose archive was written by ${describeArchive(manifest)}`;
    stopIfInterrupted(deps.signal);
    server = await progress.timed('startServer', () =>
      startThrowawayServer(restoreMajor(manifest), why, workDir, deps.env),
    );
    stopIfInterrupted(deps.signal);
    const restoreStarted = Date.now();
    const target = targetOf(plan, server);
    const toastCompression = await progress.timed('checkServer', () => checkServer(target, manifest));
    await makeRoomFor(target);
    const drill = drillTarget(plan, target, toastCompression);
    const drillDeps = { ...deps, env: { ...deps.env, PGFERRY_WORK_DIR: workDir } };
    await restoreGlobalsFirst(manifest, drill, progress, drillDeps);
    await restoreBackup(manifest, drill, progress, drillDeps);
    restoreSeconds = (Date.now() - restoreStarted) / 1000;
    const passed = report('passed');
    await deps.store.putJson(key, passed);
    return passed;
  } catch (caught) {
    let err = caught;
    if (deps.signal?.aborted) {
      // Cleaned up now, so that the report and the error can say so.
      await cleanUp();
      err = new PgferryError(
        'Interrupted',
        `${interruption(deps.signal).message} (the drill's server was stopped and its folder removed)`,
      );
    }
    await deps.store.putJson(key, report('failed', errorMessage(err))).catch(() => undefined);
    throw err;
  } finally {
    await cleanUp();
  }
}

/**
 * A restore of the whole backup into the throwaway server's new database, whose roles
 * `restoreGlobalsFirst` created: owners and grants restore.
 */
function drillTarget(
  plan: VerifyPlan,
  target: Connection,
  toastCompression: ToastCompression,
): RestoreTarget {
  return {
    runId: plan.verifyId,
    target,
    password: undefined,
    ...DRILL_RESTORE,
    noOwner: false,
    noAcl: false,
    terminateConnections: false,
    withLocalServer: true,
    jobs: plan.jobs,
    toastCompression,
  };
}

/**
 * initdb creates `postgres`: a backup of a server's own `postgres` database (a member of every
 * backup set) is restored, as into a fresh server, in place of that empty database — dropped here,
 * from `template1`, so that the drill creates it as the source's was.
 */
async function makeRoomFor(target: Connection): Promise<void> {
  if (target.database !== 'postgres') return;
  await withClient(target, undefined, (admin) => dropDatabase(admin, 'postgres'), 'template1');
}

/** The throwaway server's database of the backup's name, over its unix socket. */
function targetOf(plan: VerifyPlan, server: ThrowawayServer): Connection {
  return {
    host: server.socketDir,
    port: server.port,
    database: plan.manifest.database,
    user: 'postgres',
    sslmode: 'disable',
  };
}

/**
 * What a restore's preflight checks of its target, checked of the throwaway server before
 * anything is downloaded: that it can create the database as the source's was and hold what its
 * objects need — a drill fails where a restore would. Returns the TOAST compression to load with:
 * lz4 where the server offers it, as a restore would choose.
 */
async function checkServer(target: Connection, manifest: BackupManifest): Promise<ToastCompression> {
  return withClient(
    target,
    undefined,
    async (client) => {
      const missing = await missingForBackup(client, manifest, { createsDatabase: true });
      if (missing.length) {
        const { version } = await serverInfo(client);
        throw new PgferryError(
          'RestoreFailed',
          `backup ${manifest.id} cannot be restored into the verification's PostgreSQL ${version} server, ` +
            `as into any server like it: it lacks ${missing.join('; ')}; nothing was downloaded`,
        );
      }
      return chooseToastCompression(client, 'lz4');
    },
    'postgres',
  );
}
