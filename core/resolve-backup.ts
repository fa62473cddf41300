import { listBackups } from './catalog';
import { type BackupManifest, BackupManifestSchema } from './contracts';
import { PgferryError } from './errors';
import type { BackupStore } from './store';
import { assertBackupId, backupPrefix, databaseFromSegment, manifestKey } from './store-keys';

/**
 * Finds a complete backup by id (in `database`'s folder, or any database's) or `latest` (the
 * newest complete backup of `database`). Missing and incomplete backups are told apart.
 */
export async function resolveBackup(
  store: BackupStore,
  ref: string,
  database?: string,
): Promise<BackupManifest> {
  if (ref === 'latest') {
    const databases = database === undefined ? await databasesIn(store) : [database];
    if (databases.length > 1) {
      throw new PgferryError(
        'InvalidInput',
        `the store holds several databases: name one with --database to use latest`,
      );
    }
    const [newest] = databases.length ? await listBackups(store, databases[0]) : [];
    if (!newest) {
      throw new PgferryError(
        'BackupNotFound',
        `no complete backup${database ? ` of ${database}` : ''} in ${store.url}`,
      );
    }
    return newest;
  }
  assertBackupId(ref);
  for (const db of database === undefined ? await databasesIn(store) : [database]) {
    const raw = await store.getJson(manifestKey(db, ref));
    if (raw !== undefined) {
      const parsed = BackupManifestSchema.safeParse(raw);
      if (!parsed.success)
        throw new PgferryError('BackupCorrupt', `the manifest of backup ${ref} is not valid`);
      return parsed.data;
    }
    for await (const _ of store.list(manifestKey(db, ref).replace(/manifest\.json$/, ''))) {
      throw new PgferryError(
        'BackupNotFound',
        `backup ${ref} is incomplete (it has no manifest) and cannot be restored`,
      );
    }
  }
  throw new PgferryError('BackupNotFound', `backup ${ref} not found in ${store.url}`);
}

async function databasesIn(store: BackupStore): Promise<string[]> {
  const names: string[] = [];
  for (const segment of await store.listFolders('')) {
    try {
      names.push(databaseFromSegment(segment));
    } catch {
      // not a database folder
    }
  }
  return names;
}

/** Refuses a backup one of whose objects is missing or has the wrong size. */
export async function checkObjectsPresent(store: BackupStore, manifest: BackupManifest): Promise<void> {
  const prefix = backupPrefix(manifest.database, manifest.id);
  const sizes = new Map<string, number>();
  for await (const entry of store.list(prefix)) sizes.set(entry.key.slice(prefix.length), entry.bytes);
  for (const object of manifest.objects) {
    const bytes = sizes.get(object.key);
    if (bytes === undefined) {
      throw new PgferryError('BackupCorrupt', `backup ${manifest.id} is missing its object ${object.key}`);
    }
    if (bytes !== object.bytes) {
      throw new PgferryError(
        'BackupCorrupt',
        `backup ${manifest.id}: object ${object.key} is ${bytes} bytes, the manifest says ${object.bytes}`,
      );
    }
  }
}
