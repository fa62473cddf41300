import { retentionByBackup, scanStore } from './catalog';
import { type RetentionPolicy, TIER_TAG, type TierTagValue, tierTagFor } from './retention';
import type { BackupStore } from './store';
import { backupPrefix, manifestKey } from './store-keys';

export interface TierChange {
  backupId: string;
  from?: string;
  to: TierTagValue;
}

/**
 * On stores whose objects carry tags (S3), tags every complete backup of `database` with the tier
 * the retention policy gives it at `now` — `expired` when it keeps it no longer — so that the
 * bucket's lifecycle rules (`lifecycleRulesFor`) transition and expire it. A backup's manifest
 * carries its current tag (it is tagged last), so only backups whose tier changed are re-tagged.
 */
export async function tagRetentionTiers(
  store: BackupStore,
  database: string,
  policy: RetentionPolicy,
  now: Date,
): Promise<TierChange[]> {
  if (!store.tagObjects || !store.objectTags) return [];
  const { entries } = await scanStore(store, database);
  const changes: TierChange[] = [];
  for (const [entry, decision] of retentionByBackup(entries, policy, now)) {
    const backupId = entry.manifest.id;
    const to = tierTagFor(decision);
    if (to === undefined) continue;
    const from = (await store.objectTags(manifestKey(database, backupId)))?.[TIER_TAG];
    if (from === to) continue;
    await store.tagObjects(backupPrefix(database, backupId), { [TIER_TAG]: to });
    changes.push({ backupId, ...(from ? { from } : {}), to });
  }
  return changes;
}
