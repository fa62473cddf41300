/**
 * The store is the catalog: a backup exists when its manifest does. Listing reads manifests
 * only — objects without a manifest (an interrupted or failed run) are never shown.
 */
import { type BackupManifest, BackupManifestSchema } from './contracts';
import type { BackupStore } from './store';
import { databaseSegment, MANIFEST_FILE } from './store-keys';

const MANIFEST_PATH = new RegExp(`^[^/]+/[^/]+/${MANIFEST_FILE.replace('.', '\\.')}$`);
const READ_CONCURRENCY = 32;

/** Complete backups, newest first; only of `database` when given. */
export async function listBackups(store: BackupStore, database?: string): Promise<BackupManifest[]> {
  const prefix = database === undefined ? '' : `${databaseSegment(database)}/`;
  const keys: string[] = [];
  for await (const entry of store.list(prefix)) if (MANIFEST_PATH.test(entry.key)) keys.push(entry.key);

  const manifests: BackupManifest[] = [];
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
    const batch = await Promise.all(keys.slice(i, i + READ_CONCURRENCY).map((key) => store.getJson(key)));
    for (const raw of batch) {
      const parsed = BackupManifestSchema.safeParse(raw);
      if (parsed.success && (database === undefined || parsed.data.database === database)) {
        manifests.push(parsed.data);
      }
    }
  }
  return manifests.sort((a, b) => b.finishedAt.localeCompare(a.finishedAt) || b.id.localeCompare(a.id));
}
