/**
 * Applying the retention policy on stores without lifecycle rules (local folders, most
 * S3-compatible servers): `pgferry prune`. What to keep is decided by `decideRetention`, over
 * each database's complete backups, exactly as the record step decides S3 tiers.
 */
import { type IncompleteBackup, retentionByBackup, scanStore } from './catalog';
import { type BackupOrigin, originOf } from './contracts';
import type { RetentionPolicy, RetentionReason, RetentionTier } from './retention';
import type { BackupStore } from './store';
import { backupPrefix, catalogNameOf, manifestKey } from './store-keys';

/** Incomplete folders younger than this may belong to a running backup: not even reported. */
export const INCOMPLETE_REPORT_AFTER_MS = 24 * 60 * 60 * 1000;

export interface PruneAction {
  /** The catalog name. */
  database: string;
  id: string;
  startedAt: string;
  action: 'keep' | 'delete';
  tier?: RetentionTier;
  reasons: readonly RetentionReason[];
  /** Newer than `now`: kept, counted by no rule. */
  afterNow: boolean;
  /** Where it came from (`originOf`): `safety` and `migration` are kept by days. */
  origin: BackupOrigin;
  /** Pinned (`pgferry pin`): kept. */
  pinned: boolean;
}

export interface PrunePlan {
  now: string;
  policy: RetentionPolicy;
  /** Every complete backup, per database, newest first. */
  backups: PruneAction[];
  /**
   * Folders without a manifest older than a day, and every folder with an unreadable one (a
   * manifest is written last, in one write: an unreadable one is never a run in progress):
   * reported, left alone.
   */
  incomplete: IncompleteBackup[];
}

/** What pruning `store` (or one database of it) with `policy` at `now` keeps and deletes. */
export async function planPrune(
  store: BackupStore,
  policy: RetentionPolicy,
  now: Date,
  database?: string,
): Promise<PrunePlan> {
  const { entries, incomplete } = await scanStore(store, database);
  const decisions = retentionByBackup(entries, policy, now);
  const backups = entries
    .map((entry): PruneAction => {
      const { manifest } = entry;
      const decision = decisions.get(entry);
      if (!decision) throw new Error(`no retention decision for ${manifest.id}`);
      return {
        database: catalogNameOf(manifest),
        id: manifest.id,
        startedAt: manifest.startedAt,
        action: decision.keep ? 'keep' : 'delete',
        tier: decision.tier,
        reasons: decision.reasons,
        afterNow: decision.afterNow,
        origin: originOf(manifest),
        pinned: decision.pinned,
      };
    })
    .sort((a, b) => a.database.localeCompare(b.database));
  return {
    now: now.toISOString(),
    policy,
    backups,
    incomplete: incomplete.filter(
      (folder) =>
        folder.reason === 'invalid manifest' ||
        now.getTime() - Date.parse(folder.startedAt) > INCOMPLETE_REPORT_AFTER_MS,
    ),
  };
}

/**
 * Deletes one complete backup: its manifest first, so that from the first deletion on it is no
 * longer listed (an interrupted deletion leaves an incomplete folder, never a listed backup
 * missing objects), then the rest of its folder. Returns how many objects were removed.
 */
export async function deleteBackup(store: BackupStore, database: string, backupId: string): Promise<number> {
  await store.deleteObject(manifestKey(database, backupId));
  return 1 + (await store.deletePrefix(backupPrefix(database, backupId)));
}

/** Backups deleted at once: each one's deletions stay in order (manifest first). */
const DELETE_CONCURRENCY = 8;

/** Deletes what `plan` does not keep; returns how many backups were deleted. */
export async function executePrune(
  store: BackupStore,
  plan: PrunePlan,
  onDeleted: (action: PruneAction) => void = () => undefined,
): Promise<number> {
  const doomed = plan.backups.filter((action) => action.action === 'delete');
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < doomed.length) {
      const action = doomed[next++];
      try {
        await deleteBackup(store, action.database, action.id);
      } catch (err) {
        failed = true; // the others finish the backup they are on and stop
        throw err;
      }
      onDeleted(action);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, doomed.length) }, worker));
  return doomed.length;
}
