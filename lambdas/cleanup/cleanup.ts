import { type BackupPlan, DumpResultSchema } from '../../core/contracts';
import type { BackupStore } from '../../core/store';
import { backupPrefix, dumpResultKey } from '../../core/store-keys';

export interface CleanupDeps {
  openStore: (url: string) => BackupStore;
}

/** The error Step Functions caught: `{Error, Cause}`. */
export interface CaughtError {
  Error: string;
  Cause?: string;
}

export interface CleanupResult {
  deletedObjects: number;
  /** The failure to report: the runner's own error when it left one, else the caught one. */
  error: string;
  cause: string;
}

/**
 * After a failed dump or record: removes everything the attempt wrote (and aborts unfinished
 * multipart uploads), so that nothing of it can ever be listed or mistaken for a backup.
 */
export async function cleanupBackup(
  plan: BackupPlan,
  caught: CaughtError,
  deps: CleanupDeps,
): Promise<CleanupResult> {
  const store = deps.openStore(plan.store);
  // On AWS a failed task's Cause is ECS's task description; the runner's report says why.
  const report = DumpResultSchema.safeParse(
    await store.getJson(dumpResultKey(plan.database, plan.backupId)).catch(() => undefined),
  );
  const runnerError = report.success && report.data.status === 'failed' ? report.data.error : undefined;
  const deletedObjects = await store.deletePrefix(backupPrefix(plan.database, plan.backupId));
  return {
    deletedObjects,
    error: runnerError?.name ?? caught.Error,
    cause: runnerError?.message ?? caught.Cause ?? caught.Error,
  };
}
