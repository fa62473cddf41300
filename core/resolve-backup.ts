import { checkManifest, folderUrl, isDatedAfter, scanStore, unreadableBackups } from './catalog';
import type { BackupManifest } from './contracts';
import { PgferryError } from './errors';
import type { BackupStore } from './store';
import { assertBackupId, backupPrefix, catalogNameOf, databaseFromSegment, manifestKey } from './store-keys';

/**
 * Finds a complete backup by id (filed under the catalog name `database`, or any name) or `latest`
 * (the newest complete backup filed under `database`). Missing, incomplete and unreadable backups
 * are told apart.
 *
 * `latest` never passes over a backup silently: when the newest backup of the database has a
 * manifest that cannot be read, or is dated after `now` (a wrong clock, so which backup is the
 * newest is unknown), it is refused, naming that backup and the newest usable one to name instead.
 * (It is decided in a preflight — on AWS a Lambda function — which has no terminal to warn on, and
 * a restore that quietly took an older backup than the user meant is worse than one more command.)
 */
export async function resolveBackup(
  store: BackupStore,
  ref: string,
  database?: string,
  now: Date = new Date(),
): Promise<BackupManifest> {
  if (ref === 'latest') {
    const databases = database === undefined ? await databasesIn(store) : [database];
    if (databases.length > 1) {
      throw new PgferryError(
        'InvalidInput',
        `the store holds the backups of several databases: name one with --name to use latest`,
      );
    }
    return databases.length ? latest(store, databases[0], now) : noCompleteBackup(store, database);
  }
  assertBackupId(ref);
  for (const db of database === undefined ? await databasesIn(store) : [database]) {
    let raw: unknown;
    try {
      raw = await store.getJson(manifestKey(db, ref));
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      throw unreadable(store, db, ref, 'its manifest is not valid JSON');
    }
    if (raw !== undefined) {
      const checked = checkManifest(raw, db, ref);
      if ('problem' in checked) throw unreadable(store, db, ref, checked.problem);
      return checked.manifest;
    }
    for await (const _ of store.list(backupPrefix(db, ref))) {
      throw new PgferryError(
        'BackupNotFound',
        `backup ${ref} is incomplete (it has no manifest) and cannot be restored`,
      );
    }
  }
  throw new PgferryError('BackupNotFound', `backup ${ref} not found in ${store.url}`);
}

/** The newest complete backup of `database`, unless a newer folder makes "newest" doubtful. */
async function latest(store: BackupStore, database: string, now: Date): Promise<BackupManifest> {
  const scan = await scanStore(store, database);
  const newest = scan.entries.find((e) => !isDatedAfter(e.manifest, now))?.manifest;
  const instead = newest
    ? `name a backup with --backup (the newest usable one is ${newest.id})`
    : 'name a backup with --backup';
  const [broken] = unreadableBackups(scan).filter((f) => !newest || f.backupId > newest.id);
  if (broken) {
    throw new PgferryError(
      'BackupCorrupt',
      `latest refused: the newest backup of ${JSON.stringify(database)}, ${broken.backupId}, is unreadable: ` +
        `${broken.problem} (${folderUrl(store, broken.folder)}); ${instead}, or repair or remove that folder`,
    );
  }
  const [future] = scan.entries.filter((e) => isDatedAfter(e.manifest, now));
  if (future) {
    throw new PgferryError(
      'BackupCorrupt',
      `latest refused: backup ${future.manifest.id} of ${JSON.stringify(database)} is dated ${future.manifest.startedAt}, ` +
        `after now (${now.toISOString()}): a clock was wrong, so which backup is the newest is unknown; ${instead}`,
    );
  }
  return newest ?? noCompleteBackup(store, database);
}

function noCompleteBackup(store: BackupStore, database: string | undefined): never {
  throw new PgferryError(
    'BackupNotFound',
    `no complete backup${database ? ` of ${database}` : ''} in ${store.url}`,
  );
}

function unreadable(store: BackupStore, database: string, backupId: string, problem: string): PgferryError {
  return new PgferryError(
    'BackupCorrupt',
    `backup ${backupId} is unreadable: ${problem} (${folderUrl(store, backupPrefix(database, backupId))})`,
  );
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
  const prefix = backupPrefix(catalogNameOf(manifest), manifest.id);
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
