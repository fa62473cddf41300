import { type CompleteDeps, completeBackup } from '../../../core/complete-backup';
import type { MigratePlan } from '../../../core/contracts';

export interface RecordMigrationDeps extends CompleteDeps {
  /** Told what went wrong after a backup's manifest was written (it does not undo the backup). */
  onWarning: (backupId: string, warning: string) => void;
}

/**
 * The migrate workflow's record step: completes each database's archived backup as the backup
 * workflow's record step does (the manifest written last, retention tiers tagged, the lease
 * released).
 */
export async function recordMigration(
  plan: MigratePlan,
  deps: RecordMigrationDeps,
): Promise<{ backupIds: string[]; recordedAt: string }> {
  const backupIds: string[] = [];
  for (const db of plan.databases) {
    const { manifest, warnings } = await completeBackup(db.backup, deps);
    for (const warning of warnings) deps.onWarning(manifest.id, warning);
    backupIds.push(manifest.id);
  }
  return { backupIds, recordedAt: new Date().toISOString() };
}
