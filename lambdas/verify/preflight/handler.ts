import { requestedName } from '../../../core/catalog-name';
import {
  parseExecutionInput,
  SCHEMA_VERSION,
  VerifyRequestSchema,
  type VerifyState,
} from '../../../core/contracts';
import { currentDeployment } from '../../../core/deployment';
import { storeJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { checkObjectsPresent, resolveBackup } from '../../../core/resolve-backup';
import { openStore } from '../../../core/store';
import { catalogNameOf, jobKey, newBackupId } from '../../../core/store-keys';
import { defaultJobs } from '../../../core/strategy';
import { checkRestoreDisk, restoreDiskUse, restoreTaskSize } from '../../../core/task-size';

const logger = createLogger('pgferry-verify-preflight');

/**
 * Step Functions task: validates the input, resolves the backup to verify, refuses one whose
 * download, dump and restored database cannot fit the task's disk, and stores the plan as the
 * verification's job beside the backup; the state carries the job's reference.
 */
export async function handler(event: unknown): Promise<VerifyState> {
  const request = parseExecutionInput(VerifyRequestSchema, event, 'verify request');
  const store = openStore(request.store);
  const manifest = await resolveBackup(store, request.backup, requestedName(request));
  await checkObjectsPresent(store, manifest);
  const diskUse = restoreDiskUse(manifest);
  await checkRestoreDisk(
    { id: manifest.id, use: diskUse, withLocalServer: true },
    currentDeployment(),
    process.env,
  );
  const now = new Date();
  const plan = {
    schemaVersion: SCHEMA_VERSION,
    verifyId: newBackupId(now),
    request,
    manifest,
    jobs: request.jobs ?? defaultJobs(),
    taskSize: restoreTaskSize(diskUse, true),
    startedAt: now.toISOString(),
  } as const;
  const job = await storeJob(
    store,
    jobKey('verify', catalogNameOf(manifest), manifest.id, plan.verifyId),
    'verify',
    plan,
  );
  logger.info('planned', { verifyId: plan.verifyId, backupId: manifest.id });
  return {
    job,
    verifyId: plan.verifyId,
    backupId: manifest.id,
    database: catalogNameOf(manifest),
    taskSize: plan.taskSize,
  };
}
