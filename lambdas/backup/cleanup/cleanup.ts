import { type BackupPlan, type CaughtError, DumpResultSchema } from '../../../core/contracts';
import { releaseLease } from '../../../core/lease';
import type { BackupStore } from '../../../core/store';
import { backupPrefix, dumpResultKey } from '../../../core/store-keys';

export interface CleanupDeps {
  openStore: (url: string) => BackupStore;
}

export interface CleanupResult {
  deletedObjects: number;
  /** Whether the attempt's lease on its database was released (false: it held none any more). */
  leaseReleased: boolean;
  /** The failure to report: the runner's own error when it left one, else the caught one. */
  error: string;
  cause: string;
}

/**
 * After a failed dump or record: removes everything the attempt wrote (and aborts unfinished
 * multipart uploads) — its job included — so that nothing of it can ever be listed or mistaken
 * for a backup, and releases the database's lease — even when the removal fails, so the next run
 * can start. It needs only the attempt's ids, not its job: it works whatever became of that.
 */
export async function cleanupBackup(
  plan: Pick<BackupPlan, 'store' | 'database' | 'backupId'>,
  caught: CaughtError,
  deps: CleanupDeps,
): Promise<CleanupResult> {
  const store = deps.openStore(plan.store);
  // On AWS a failed task's Cause is ECS's task description; the runner's report says why.
  const report = DumpResultSchema.safeParse(
    await store.getJson(dumpResultKey(plan.database, plan.backupId)).catch(() => undefined),
  );
  const runnerError = report.success && report.data.status === 'failed' ? report.data.error : undefined;
  let deletedObjects = 0;
  let leaseReleased = false;
  try {
    deletedObjects = await store.deletePrefix(backupPrefix(plan.database, plan.backupId));
  } finally {
    leaseReleased = await releaseLease(store, plan.database, plan.backupId);
  }
  return {
    deletedObjects,
    leaseReleased,
    error: runnerError?.name ?? caught.Error,
    cause: runnerError?.message ?? caught.Cause ?? caught.Error,
  };
}
