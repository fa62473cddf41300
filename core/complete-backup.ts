import type { BackupManifest, BackupPlan } from './contracts';
import { errorMessage } from './errors';
import { releaseLease } from './lease';
import { type RecordDeps, recordBackup } from './record-backup';
import { type TierChange, tagRetentionTiers } from './record-tiers';
import type { RetentionPolicy } from './retention';

export interface CompleteDeps extends RecordDeps {
  retention: RetentionPolicy;
}

export interface CompletedBackup {
  manifest: BackupManifest;
  /** Backups re-tagged with a new retention tier (S3). */
  tiers: TierChange[];
  leaseReleased: boolean;
  /** What went wrong after the manifest was written: reported, never undoing the backup. */
  warnings: string[];
}

/**
 * The record step: writes the manifest (`recordBackup`; its failure fails the backup), then
 * tags retention tiers and releases the database's lease. Those two come after the backup is
 * complete, so their failures are warnings: the next backup's record step re-tags whatever is
 * out of date, and a lease left behind expires.
 */
export async function completeBackup(plan: BackupPlan, deps: CompleteDeps): Promise<CompletedBackup> {
  const manifest = await recordBackup(plan, deps);
  const store = deps.openStore(plan.store);
  const warnings: string[] = [];
  let tiers: TierChange[] = [];
  try {
    tiers = await tagRetentionTiers(store, plan.database, deps.retention, new Date(manifest.finishedAt));
  } catch (err) {
    warnings.push(`could not tag retention tiers: ${errorMessage(err)}`);
  }
  let leaseReleased = false;
  try {
    leaseReleased = await releaseLease(store, plan.database, plan.backupId);
  } catch (err) {
    warnings.push(`could not release the lease of ${plan.database}: ${errorMessage(err)}`);
  }
  return { manifest, tiers, leaseReleased, warnings };
}
