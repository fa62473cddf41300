import { requestedName } from '../../../core/catalog-name';
import { SCHEMA_VERSION, type VerifyPlan, type VerifyRequest } from '../../../core/contracts';
import { currentDeployment } from '../../../core/deployment';
import { checkObjectsPresent, resolveBackup } from '../../../core/resolve-backup';
import type { BackupStore } from '../../../core/store';
import { newBackupId } from '../../../core/store-keys';
import { DRILL_RESTORE, defaultJobs } from '../../../core/strategy';
import { checkRestoreDisk, restoreDiskUse, restoreTaskSize } from '../../../core/task-size';

export interface VerifyPreflightDeps {
  openStore: (url: string) => BackupStore;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

/**
 * Plans a verification: resolves the backup to verify and refuses one whose objects are missing,
 * or whose files and restored database cannot fit the task's disk (`restoreDiskUse`: a streamed
 * drill's files are its definitions alone).
 */
export async function preflightVerify(
  request: VerifyRequest,
  deps: VerifyPreflightDeps,
): Promise<VerifyPlan> {
  const store = deps.openStore(request.store);
  const manifest = await resolveBackup(store, request.backup, requestedName(request));
  await checkObjectsPresent(store, manifest);
  const diskUse = restoreDiskUse(manifest, DRILL_RESTORE);
  await checkRestoreDisk(
    { id: manifest.id, use: diskUse, withLocalServer: true },
    currentDeployment(),
    deps.env,
  );
  const now = deps.now?.() ?? new Date();
  return {
    schemaVersion: SCHEMA_VERSION,
    verifyId: newBackupId(now),
    request,
    manifest,
    jobs: request.jobs ?? defaultJobs(),
    taskSize: restoreTaskSize(diskUse, true),
    startedAt: now.toISOString(),
  };
}
