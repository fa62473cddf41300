/**
 * Pinning a backup: kept by retention whatever its age or origin, until unpinned. The pin is an
 * object in the backup's folder (`pinKey`), which the catalog reads with everything else, so
 * `prune`, `list` and the record step's tier tags all see it at no extra request. On S3 the
 * backup's objects are re-tagged at once with the `pinned` tier, which no lifecycle rule selects:
 * a backup tagged `expired` a moment before is out of the lifecycle's reach as soon as `pin`
 * returns (S3 expires by tag when its lifecycle runs, not when the tag was set).
 */
import { z } from 'zod';
import type { BackupManifest } from './contracts';
import { tagRetentionTiers } from './record-tiers';
import { resolveBackup } from './resolve-backup';
import { PINNED_TIER, type RetentionPolicy, TIER_TAG } from './retention';
import type { BackupStore } from './store';
import { backupPrefix, catalogNameOf, pinKey } from './store-keys';

/** `pin.json`: when the backup was pinned, and why (free text). */
export const PinSchema = z
  .object({ pinnedAt: z.iso.datetime(), reason: z.string().max(500).optional() })
  .strict();
export type Pin = z.infer<typeof PinSchema>;

/** Pins the backup `ref` (an id, or `latest`) filed under `name`; returns its manifest. */
export async function pinBackup(
  store: BackupStore,
  ref: string,
  name: string | undefined,
  options: { now?: Date; reason?: string } = {},
): Promise<BackupManifest> {
  const manifest = await resolveBackup(store, ref, name);
  const catalogName = catalogNameOf(manifest);
  const pin: Pin = {
    pinnedAt: (options.now ?? new Date()).toISOString(),
    ...(options.reason ? { reason: options.reason } : {}),
  };
  await store.putJson(pinKey(catalogName, manifest.id), pin);
  await store.tagObjects?.(backupPrefix(catalogName, manifest.id), { [TIER_TAG]: PINNED_TIER });
  return manifest;
}

/**
 * Unpins the backup `ref` filed under `name`: retention applies to it again from now (on S3 its
 * objects get the tier `policy` gives them at `now`, which is `expired` if no rule keeps it).
 * Returns its manifest and whether it was pinned.
 */
export async function unpinBackup(
  store: BackupStore,
  ref: string,
  name: string | undefined,
  policy: RetentionPolicy,
  now: Date = new Date(),
): Promise<{ manifest: BackupManifest; wasPinned: boolean }> {
  const manifest = await resolveBackup(store, ref, name);
  const catalogName = catalogNameOf(manifest);
  const key = pinKey(catalogName, manifest.id);
  const wasPinned = (await store.getJson(key).catch(() => ({}))) !== undefined;
  if (wasPinned) await store.deleteObject(key);
  await tagRetentionTiers(store, catalogName, policy, now);
  return { manifest, wasPinned };
}
