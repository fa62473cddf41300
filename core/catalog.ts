/**
 * The store is the catalog: a backup exists when its manifest does. Listing is one paginated
 * listing of the store (or of one database's folder) and one read per manifest — no other
 * request per backup — so thousands of backups list quickly. Objects without a manifest (an
 * interrupted or failed run), the lease and anything else are never shown as backups.
 *
 * Nothing is skipped quietly: a folder whose manifest exists but cannot be used (not JSON, not a
 * pgferry manifest, or one describing another backup) is returned as an unreadable backup with
 * the reason, for `list`, `status` and `latest` to name; a store that cannot be read (a bucket
 * gone, access denied, a folder that does not exist) fails the scan instead of shortening it.
 */
import { type BackupManifest, BackupManifestSchema, originOf, SCHEMA_VERSION } from './contracts';
import { PgferryError } from './errors';
import { type BackupReport, BackupReportSchema, type StoredReport } from './reports';
import {
  decideRetention,
  type RetentionDecision,
  type RetentionPolicy,
  SHORT_LIVED_ORIGINS,
} from './retention';
import type { BackupStore } from './store';
import {
  BACKUP_ID_PATTERN,
  catalogNameOf,
  databaseFromSegment,
  databaseSegment,
  MANIFEST_FILE,
  PIN_FILE,
  parseReportName,
  type ReportKind,
} from './store-keys';

const READ_CONCURRENCY = 32;

/** A complete backup, as the catalog knows it. */
export interface CatalogEntry {
  manifest: BackupManifest;
  /** Bytes stored for it (its objects, compressed), per the manifest. */
  storedBytes: number;
  /** Keys of the reports stored beside it, per kind, newest first. */
  reportKeys: Record<ReportKind, string[]>;
  /** Pinned (`pgferry pin`): retention keeps it. */
  pinned: boolean;
}

/**
 * A backup folder without a usable manifest: without one, a run that is going on, failed or was
 * interrupted; with an invalid one, a backup that cannot be restored as it is (an unreadable
 * backup), which is never a run in progress — a manifest is written last, in one atomic write.
 */
export interface IncompleteBackup {
  database: string;
  backupId: string;
  /** When the run started, from the backup id. */
  startedAt: string;
  /** The folder, relative to the store's root (`<database segment>/<backupId>/`). */
  folder: string;
  objects: number;
  bytes: number;
  reason: 'no manifest' | 'invalid manifest';
  /** Why the manifest cannot be used (`invalid manifest` only), e.g. `not valid JSON`. */
  problem?: string;
}

export interface StoreScan {
  /** Complete backups, newest first. */
  entries: CatalogEntry[];
  /** Folders without a usable manifest, newest first; see `unreadableBackups`. */
  incomplete: IncompleteBackup[];
  /** Every database with a folder in the store, sorted. */
  databases: string[];
}

/** The folders of `scan` whose manifest exists but cannot be used, newest first. */
export function unreadableBackups(scan: Pick<StoreScan, 'incomplete'>): IncompleteBackup[] {
  return scan.incomplete.filter((folder) => folder.reason === 'invalid manifest');
}

/** A folder as a URL a user can open: `file:///backups/shop/20261121T233200Z-3d6d1f/`. */
export function folderUrl(store: Pick<BackupStore, 'url'>, folder: string): string {
  return `${store.url.replace(/\/+$/, '')}/${folder}`;
}

interface Folder {
  database: string;
  backupId: string;
  folder: string;
  manifestKey?: string;
  reportKeys: Record<ReportKind, string[]>;
  pinned: boolean;
  objects: number;
  bytes: number;
}

/** Newest first: by `startedAt` (when the snapshot was taken), then by id. */
export function newestFirst(a: BackupManifest, b: BackupManifest): number {
  return b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id);
}

/** Reads the catalog of the whole store, or of one database. */
export async function scanStore(store: BackupStore, database?: string): Promise<StoreScan> {
  const prefix = database === undefined ? '' : `${databaseSegment(database)}/`;
  const folders = new Map<string, Folder>();
  const segments = new Map<string, string | undefined>();
  for await (const entry of store.list(prefix)) {
    const parts = entry.key.split('/');
    const name = segments.has(parts[0]) ? segments.get(parts[0]) : decodeSegment(parts[0]);
    segments.set(parts[0], name);
    if (name === undefined || parts.length !== 3 || !BACKUP_ID_PATTERN.test(parts[1])) continue;
    const folderKey = `${parts[0]}/${parts[1]}`;
    let folder = folders.get(folderKey);
    if (!folder) {
      folder = {
        database: name,
        backupId: parts[1],
        folder: `${folderKey}/`,
        reportKeys: { restore: [], verify: [] },
        pinned: false,
        objects: 0,
        bytes: 0,
      };
      folders.set(folderKey, folder);
    }
    folder.objects++;
    folder.bytes += entry.bytes;
    const report = parseReportName(parts[2]);
    if (parts[2] === MANIFEST_FILE) folder.manifestKey = entry.key;
    else if (parts[2] === PIN_FILE) folder.pinned = true;
    else if (report) folder.reportKeys[report.kind].push(entry.key);
  }

  const entries: CatalogEntry[] = [];
  const incomplete: IncompleteBackup[] = [];
  const all = [...folders.values()];
  for (let i = 0; i < all.length; i += READ_CONCURRENCY) {
    const batch = all.slice(i, i + READ_CONCURRENCY);
    const manifests = await Promise.all(batch.map((folder) => readManifest(store, folder)));
    batch.forEach((folder, j) => {
      const read = manifests[j];
      if (read && 'manifest' in read) {
        const { manifest } = read;
        entries.push({
          manifest,
          storedBytes: manifest.objects.reduce((sum, o) => sum + o.bytes, 0),
          reportKeys: {
            restore: folder.reportKeys.restore.sort().reverse(),
            verify: folder.reportKeys.verify.sort().reverse(),
          },
          pinned: folder.pinned,
        });
      } else {
        incomplete.push({
          database: folder.database,
          backupId: folder.backupId,
          startedAt: backupIdTime(folder.backupId),
          folder: folder.folder,
          objects: folder.objects,
          bytes: folder.bytes,
          ...(read ? { reason: 'invalid manifest', problem: read.problem } : { reason: 'no manifest' }),
        });
      }
    });
  }
  entries.sort((a, b) => newestFirst(a.manifest, b.manifest));
  incomplete.sort((a, b) => b.backupId.localeCompare(a.backupId));
  const databases = [...segments.values()].filter((d): d is string => d !== undefined).sort();
  return { entries, incomplete, databases };
}

/**
 * The folder's manifest, or why it cannot be used; `undefined` when there is none (or it was
 * removed since the listing). Errors of the store itself are thrown.
 */
async function readManifest(
  store: BackupStore,
  folder: Folder,
): Promise<{ manifest: BackupManifest } | { problem: string } | undefined> {
  if (!folder.manifestKey) return undefined;
  let raw: unknown;
  try {
    raw = await store.getJson(folder.manifestKey);
  } catch (err) {
    if (err instanceof SyntaxError) return { problem: 'its manifest is not valid JSON' };
    throw err;
  }
  if (raw === undefined) return undefined;
  return checkManifest(raw, folder.database, folder.backupId);
}

/**
 * `raw` as the manifest of backup `backupId` filed under `database` (a catalog name), or one line
 * saying why it is not: not a manifest of this schema (the first problem, by field), written by a
 * newer pgferry, or the manifest of another backup (a folder copied or renamed by hand).
 */
export function checkManifest(
  raw: unknown,
  database: string,
  backupId: string,
): { manifest: BackupManifest } | { problem: string } {
  const parsed = BackupManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const version = (raw as { schemaVersion?: unknown } | null)?.schemaVersion;
    if (typeof version === 'number' && version > SCHEMA_VERSION) {
      return {
        problem: `its manifest has schema version ${version}, written by a newer pgferry than this one (which reads ${SCHEMA_VERSION})`,
      };
    }
    const [issue] = parsed.error.issues;
    const field = issue.path.length ? issue.path.join('.') : '(root)';
    return { problem: `its manifest is not a pgferry manifest (${field}: ${issue.message})` };
  }
  const manifest = parsed.data;
  if (manifest.id !== backupId || catalogNameOf(manifest) !== database) {
    return {
      problem: `its manifest describes another backup (${manifest.id} of ${JSON.stringify(catalogNameOf(manifest))})`,
    };
  }
  return { manifest };
}

function decodeSegment(segment: string): string | undefined {
  try {
    return databaseFromSegment(segment);
  } catch {
    return undefined;
  }
}

/** `20261121T233200Z-3d6d1f` → `2026-11-21T23:32:00.000Z`. */
export function backupIdTime(backupId: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(backupId);
  if (!m) throw new PgferryError('InvalidInput', `not a backup id: ${backupId}`);
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.000Z`;
}

export interface CatalogFilter {
  /** Only backups filed under this catalog name. */
  database?: string;
  /** Only backups taken at or after this time. */
  since?: Date;
  /** Only backups taken at or before this time. */
  until?: Date;
}

/** Complete backups matching `filter`, newest first. */
export async function listCatalog(store: BackupStore, filter: CatalogFilter = {}): Promise<CatalogEntry[]> {
  const { entries } = await scanStore(store, filter.database);
  return filterEntries(entries, filter);
}

/** The entries taken within `filter`'s times (and of its database, when given). */
export function filterEntries(entries: readonly CatalogEntry[], filter: CatalogFilter): CatalogEntry[] {
  return entries.filter(({ manifest }) => {
    const time = Date.parse(manifest.startedAt);
    if (filter.database !== undefined && catalogNameOf(manifest) !== filter.database) return false;
    if (filter.since && time < filter.since.getTime()) return false;
    if (filter.until && time > filter.until.getTime()) return false;
    return true;
  });
}

/** Complete backups (manifests), newest first; only of `database` when given. */
export async function listBackups(
  store: BackupStore,
  database?: string,
  filter: Omit<CatalogFilter, 'database'> = {},
): Promise<BackupManifest[]> {
  return (await listCatalog(store, { ...filter, database })).map((entry) => entry.manifest);
}

/**
 * The retention decision for each entry, each catalog name's backups decided together — as prune
 * and the record step decide them.
 */
export function retentionByBackup(
  entries: readonly CatalogEntry[],
  policy: RetentionPolicy,
  now: Date,
): Map<CatalogEntry, RetentionDecision> {
  const byDatabase = new Map<string, CatalogEntry[]>();
  for (const entry of entries) {
    const name = catalogNameOf(entry.manifest);
    const list = byDatabase.get(name) ?? [];
    list.push(entry);
    byDatabase.set(name, list);
  }
  const decisions = new Map<CatalogEntry, RetentionDecision>();
  for (const list of byDatabase.values()) {
    const byId = new Map(list.map((entry) => [entry.manifest.id, entry]));
    const candidates = list.map(({ manifest, pinned }) => ({
      id: manifest.id,
      time: manifest.startedAt,
      origin: originOf(manifest),
      pinned,
    }));
    for (const decision of decideRetention(candidates, policy, now)) {
      const entry = byId.get(decision.id);
      if (entry) decisions.set(entry, decision);
    }
  }
  return decisions;
}

// --- reports ----------------------------------------------------------------------------------

async function readReport(store: BackupStore, key: string): Promise<StoredReport | undefined> {
  const raw = await store.getJson(key).catch((err: unknown) => {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  });
  const parsed = BackupReportSchema.safeParse(raw);
  return parsed.success ? { key, report: parsed.data } : undefined;
}

/** Every readable report of a backup, newest first. */
export async function readReports(store: BackupStore, entry: CatalogEntry): Promise<StoredReport[]> {
  const keys = [...entry.reportKeys.restore, ...entry.reportKeys.verify];
  const reports = (await Promise.all(keys.map((key) => readReport(store, key)))).filter(
    (r): r is StoredReport => r !== undefined,
  );
  return reports.sort((a, b) => b.report.finishedAt.localeCompare(a.report.finishedAt));
}

/** The newest readable report of `kind` of a backup. */
export async function latestReport(
  store: BackupStore,
  entry: CatalogEntry,
  kind: ReportKind,
): Promise<BackupReport | undefined> {
  for (const key of entry.reportKeys[kind]) {
    const stored = await readReport(store, key);
    if (stored) return stored.report;
  }
  return undefined;
}

/** The newest verification report of each backup that has one. */
export async function latestVerifications(
  store: BackupStore,
  entries: readonly CatalogEntry[],
): Promise<Map<CatalogEntry, BackupReport>> {
  const verified = entries.filter((e) => e.reportKeys.verify.length > 0);
  const out = new Map<CatalogEntry, BackupReport>();
  for (let i = 0; i < verified.length; i += READ_CONCURRENCY) {
    const batch = verified.slice(i, i + READ_CONCURRENCY);
    const reports = await Promise.all(batch.map((entry) => latestReport(store, entry, 'verify')));
    batch.forEach((entry, j) => {
      const report = reports[j];
      if (report) out.set(entry, report);
    });
  }
  return out;
}

// --- backup age -------------------------------------------------------------------------------

/**
 * How far after the reader's `now` a backup may be dated and still count: two hosts' clocks (the
 * runner's that stamped the backup, the monitor's that reads it) disagree by a second or so,
 * never by minutes. A backup dated later than this is reported and counted as fresh by nothing.
 */
export const CLOCK_SKEW_ALLOWANCE_SECONDS = 300;

/**
 * True when `manifest` says it started or finished after `now` (by more than the allowance): its
 * clock was wrong. Such a backup would otherwise be the newest, aged `0m`, for as long as the
 * clock error lasts — hiding a schedule that stopped.
 */
export function isDatedAfter(manifest: BackupManifest, now: Date): boolean {
  const limit = now.getTime() + CLOCK_SKEW_ALLOWANCE_SECONDS * 1000;
  return Date.parse(manifest.startedAt) > limit || Date.parse(manifest.finishedAt) > limit;
}

export interface BackupAge {
  id: string;
  startedAt: string;
  finishedAt: string;
  /**
   * Seconds since it completed (`finishedAt`): the number CloudWatch's backup-age alarm watches
   * on AWS (`LastCompleteBackupTimestamp`, core/metrics.ts).
   */
  ageSeconds: number;
}

/** A backup folder whose manifest exists but cannot be used. */
export interface UnreadableBackup {
  id: string;
  /** When it started, from its id. */
  startedAt: string;
  /** The folder, as a URL (`file:///backups/shop/<id>/`, `s3://bucket/prefix/shop/<id>/`). */
  folder: string;
  problem: string;
}

export interface DatabaseStatus {
  /** The catalog name (by default a database's name; the field keeps its first name). */
  database: string;
  /** The newest complete backup (not dated after now). */
  newest?: BackupAge;
  /** The newest complete backup (not dated after now) whose latest verification passed. */
  newestVerified?: BackupAge & { verifiedAt: string };
  /** Backups whose manifest cannot be used, newest first: never counted, always a problem. */
  unreadable: UnreadableBackup[];
  /** Complete backups dated after now (a wrong clock), newest first: counted by nothing. */
  datedAfterNow: Omit<BackupAge, 'ageSeconds'>[];
}

/**
 * Per database with a folder in the store (or just `database`): the age of its newest complete
 * backup and of its newest verified one, since each completed; its unreadable backups and those
 * dated after `now`, which count as neither. Safety and migration backups (by origin) are no
 * database's newest backup: a name holding nothing else is left out unless asked for by name.
 */
export async function backupStatus(
  store: BackupStore,
  now: Date,
  database?: string,
): Promise<DatabaseStatus[]> {
  const scan = await scanStore(store, database);
  const unreadable = unreadableBackups(scan);
  const names = database === undefined ? scan.databases : [database];
  const statuses: DatabaseStatus[] = [];
  for (const name of names) {
    const entries = scan.entries.filter((e) => catalogNameOf(e.manifest) === name);
    const routine = entries.filter((e) => !SHORT_LIVED_ORIGINS.has(originOf(e.manifest)));
    if (database === undefined && entries.length > 0 && routine.length === 0) continue;
    const counted = routine.filter((e) => !isDatedAfter(e.manifest, now));
    const status: DatabaseStatus = {
      database: name,
      unreadable: unreadable
        .filter((folder) => folder.database === name)
        .map((folder) => ({
          id: folder.backupId,
          startedAt: folder.startedAt,
          folder: folderUrl(store, folder.folder),
          problem: folder.problem ?? 'its manifest cannot be read',
        })),
      datedAfterNow: entries
        .filter((e) => isDatedAfter(e.manifest, now))
        .map(({ manifest: m }) => ({ id: m.id, startedAt: m.startedAt, finishedAt: m.finishedAt })),
    };
    if (counted[0]) status.newest = ageOf(counted[0].manifest, now);
    for (const entry of counted) {
      if (entry.reportKeys.verify.length === 0) continue;
      const report = await latestReport(store, entry, 'verify');
      if (report?.status === 'passed') {
        status.newestVerified = { ...ageOf(entry.manifest, now), verifiedAt: report.finishedAt };
        break;
      }
    }
    statuses.push(status);
  }
  return statuses;
}

function ageOf(manifest: BackupManifest, now: Date): BackupAge {
  return {
    id: manifest.id,
    startedAt: manifest.startedAt,
    finishedAt: manifest.finishedAt,
    ageSeconds: Math.max(0, Math.floor((now.getTime() - Date.parse(manifest.finishedAt)) / 1000)),
  };
}

const DURATION_UNITS: Record<string, number> = { m: 60, h: 3600, d: 86_400, w: 604_800 };

/** `90m`, `36h`, `2d`, `1w` → seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([mhdw])$/.exec(text.trim());
  if (!match || Number(match[1]) === 0) {
    throw new PgferryError(
      'InvalidInput',
      `not a duration: ${JSON.stringify(text)} (use minutes, hours, days or weeks, e.g. 90m, 36h, 2d, 1w)`,
    );
  }
  return Number(match[1]) * DURATION_UNITS[match[2]];
}

/** `2d 3h`, `5h 12m`, `4m`, `0m`. */
export function formatAge(seconds: number): string {
  const minutes = Math.floor(seconds / 60);
  const [d, h, m] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60), minutes % 60];
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}
