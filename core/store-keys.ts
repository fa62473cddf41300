/**
 * Where things live in a store. Every key is built here, so no other module can put an object
 * outside `<root>/<catalog name>/<backupId>/`.
 *
 * Backups are filed under a *catalog name*: the configured database id on AWS, `--name` locally
 * (by default the database's name), so that two servers' databases of the same name never share
 * a folder, a `latest` or a retention (see core/catalog-name.ts). Stores written before catalog
 * names existed used the database's name, which is still the default: they read as before.
 *
 * Layout:
 *   <name segment>/<backupId>/manifest.json     written last: its presence means "complete"
 *   <name segment>/<backupId>/dump-result.json  the runner's report to the record step
 *   <name segment>/<backupId>/<objects…>        dump and globals
 *   <name segment>/<backupId>/<kind>-job-<runId>.json  a run's plan, read by the runner (`jobKey`)
 *
 * (The functions below call the name `database`, as every key of an older store was one.)
 */
import { randomBytes } from 'node:crypto';
import { PgferryError } from './errors';

export const MANIFEST_FILE = 'manifest.json';
export const DUMP_RESULT_FILE = 'dump-result.json';

/** PostgreSQL caps identifiers at 63 bytes; anything longer cannot be a database name. */
const MAX_DATABASE_NAME_BYTES = 63;
/**
 * A catalog name's limit: room for a database name with its server (`<database>@<host>:<port>`,
 * the name of a local restore's safety backup), while a key stays well under S3's 1,024 bytes
 * even when every byte of the name is percent-encoded.
 */
export const MAX_CATALOG_NAME_BYTES = 128;
const SAFE_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/;

/**
 * A catalog name as one path segment. Names made only of `[A-Za-z0-9_.-]` (not starting with
 * a dot) are kept as they are, so the common case stays readable; anything else is
 * percent-encoded (UTF-8), which is reversible and never contains `/` or starts with `.`.
 */
export function databaseSegment(database: string): string {
  assertCatalogName(database);
  if (SAFE_SEGMENT.test(database)) return database;
  let out = '';
  for (const byte of Buffer.from(database, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function databaseFromSegment(segment: string): string {
  const name = decodeURIComponent(segment);
  if (databaseSegment(name) !== segment) {
    throw new PgferryError('InvalidInput', `not a pgferry database folder: ${JSON.stringify(segment)}`);
  }
  return name;
}

/**
 * The catalog name a manifest (or anything that records one beside its database) is filed under:
 * its `name`, or — written before catalog names existed — its database's name.
 */
export function catalogNameOf(record: { readonly name?: string; readonly database: string }): string {
  return record.name ?? record.database;
}

/** A catalog name: not empty, no NUL byte, at most `MAX_CATALOG_NAME_BYTES` bytes of UTF-8. */
export function assertCatalogName(name: string): void {
  if (name.length === 0) throw new PgferryError('InvalidInput', 'catalog name is empty');
  if (name.includes('\0')) throw new PgferryError('InvalidInput', 'catalog name contains a NUL byte');
  if (Buffer.byteLength(name, 'utf8') > MAX_CATALOG_NAME_BYTES) {
    throw new PgferryError('InvalidInput', `catalog name is longer than ${MAX_CATALOG_NAME_BYTES} bytes`);
  }
}

export function assertDatabaseName(database: string): void {
  if (database.length === 0) throw new PgferryError('InvalidInput', 'database name is empty');
  if (database.includes('\0')) throw new PgferryError('InvalidInput', 'database name contains a NUL byte');
  if (Buffer.byteLength(database, 'utf8') > MAX_DATABASE_NAME_BYTES) {
    throw new PgferryError('InvalidInput', `database name is longer than ${MAX_DATABASE_NAME_BYTES} bytes`);
  }
}

/** `20261121T231920Z-3fa9c1`: sorts by time, unique enough for one database. */
export const BACKUP_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

export function newBackupId(now: Date = new Date()): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function assertBackupId(id: string): void {
  if (!BACKUP_ID_PATTERN.test(id)) {
    throw new PgferryError('InvalidInput', `not a backup id: ${JSON.stringify(id.slice(0, 80))}`);
  }
}

/** Object names inside a backup folder: fixed names chosen by pgferry, never user input. */
const OBJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function backupPrefix(database: string, backupId: string): string {
  assertBackupId(backupId);
  return `${databaseSegment(database)}/${backupId}/`;
}

export function backupObjectKey(database: string, backupId: string, name: string): string {
  if (!OBJECT_NAME.test(name)) throw new PgferryError('InvalidInput', `not a backup object name: ${name}`);
  return backupPrefix(database, backupId) + name;
}

export function manifestKey(database: string, backupId: string): string {
  return backupObjectKey(database, backupId, MANIFEST_FILE);
}

export function dumpResultKey(database: string, backupId: string): string {
  return backupObjectKey(database, backupId, DUMP_RESULT_FILE);
}

/** What a job is for: the workflow whose preflight stored it. */
export const JOB_KINDS = ['backup', 'restore', 'verify', 'migrate'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/**
 * Where a run's job (the plan its preflight made, which the runner and the later steps read) lives:
 * `<kind>-job-<runId>.json` beside the backup it concerns — a backup's in the backup's own folder,
 * so the Cleanup of a failed attempt removes it with everything else; a restore's or a
 * verification's beside the backup it reads, like its report; a migration's beside its first
 * database's archived backup. Prune removes jobs with their backup, and catalogs pass them by
 * (a job is neither a manifest nor a report). `runId` is the run's own id (for a backup, its id).
 */
export function jobKey(kind: JobKind, database: string, backupId: string, runId: string): string {
  assertBackupId(runId);
  return backupObjectKey(database, backupId, `${kind}-job-${runId}.json`);
}

/**
 * A backup's pin (`pgferry pin`): an object in its folder, whose presence keeps the backup from
 * retention (`pgferry prune`, and on S3 the tier tag `pinned`, which no lifecycle rule selects).
 * Written after the manifest and removed by `unpin`; it never makes a folder complete.
 */
export const PIN_FILE = 'pin.json';

export function pinKey(database: string, backupId: string): string {
  return backupObjectKey(database, backupId, PIN_FILE);
}

/**
 * Backup sets (server backups) live beside the catalog names, under `.sets/<setId>/`, which no
 * catalog name's segment can look like (a segment never starts with a dot): `list --sets` is one
 * listing of that folder and `latest` one read more. A set's manifest is written last.
 */
export const SETS_FOLDER = '.sets/';

export function setPrefix(setId: string): string {
  assertBackupId(setId);
  return `${SETS_FOLDER}${setId}/`;
}

export function setManifestKey(setId: string): string {
  return `${setPrefix(setId)}${MANIFEST_FILE}`;
}

/** Where a restore's report lives: beside the backup it restored. */
export function restoreReportKey(database: string, backupId: string, restoreId: string): string {
  assertBackupId(restoreId);
  return backupObjectKey(database, backupId, `restore-report-${restoreId}.json`);
}

/**
 * A catalog name's lease (one backup at a time, see `core/lease.ts`): numbered generations under
 * a dot-folder, `<name segment>/.lease/<generation>.json`, which no backup id or name segment
 * can look like (neither starts with a dot), so catalogs never mistake it for a backup.
 */
export function leasePrefix(database: string): string {
  return `${databaseSegment(database)}/.lease/`;
}

const LEASE_FILE = /^(\d{12})\.json$/;

export function leaseKey(database: string, generation: number): string {
  if (!Number.isSafeInteger(generation) || generation < 1 || generation >= 1e12) {
    throw new PgferryError('InvalidInput', `not a lease generation: ${generation}`);
  }
  return `${leasePrefix(database)}${String(generation).padStart(12, '0')}.json`;
}

/** The generation a key under `leasePrefix` names; `undefined` for anything else there. */
export function leaseGenerationOf(key: string): number | undefined {
  const match = LEASE_FILE.exec(key.slice(key.lastIndexOf('/') + 1));
  return match ? Number(match[1]) : undefined;
}

export type ReportKind = 'restore' | 'verify';

/**
 * Reports of restores and verifications live beside the backup they are about
 * (`restoreReportKey`, `verifyReportKey`): `<kind>-report-<reportId>.json`, where a report id has
 * a backup id's form (UTC time and random hex), so a folder's reports sort by time.
 */
const REPORT_FILE = /^(restore|verify)-report-(\d{8}T\d{6}Z-[0-9a-f]{6})\.json$/;

/** `{kind, reportId}` when `name` (an object name in a backup folder) is a report. */
export function parseReportName(name: string): { kind: ReportKind; reportId: string } | undefined {
  const match = REPORT_FILE.exec(name);
  return match ? { kind: match[1] as ReportKind, reportId: match[2] } : undefined;
}

/** Where a verification's report lives: beside the backup it verified. */
export function verifyReportKey(database: string, backupId: string, verifyId: string): string {
  assertBackupId(verifyId);
  return backupObjectKey(database, backupId, `verify-report-${verifyId}.json`);
}

/** A migration's files beside the backup it archived: the task's result, the schema test's, the report. */
export function migrateResultKey(database: string, backupId: string): string {
  return backupObjectKey(database, backupId, 'migrate-result.json');
}

export function schemaTestResultKey(database: string, backupId: string): string {
  return backupObjectKey(database, backupId, 'schema-test.json');
}

export function migrateReportKey(database: string, backupId: string, migrateId: string): string {
  assertBackupId(migrateId);
  return backupObjectKey(database, backupId, `migrate-report-${migrateId}.json`);
}

export const MIGRATE_REPORT_FILE = /^migrate-report-(\d{8}T\d{6}Z-[0-9a-f]{6})\.json$/;

/**
 * What the API shows of runs beside their executions lives under `.runs/` (a dot-folder, which no
 * catalog name's segment can look like, so catalogs pass it by): today a stopped run's cleanup,
 * `.runs/<run id>/cleanup.json`, written by the announcer on AWS once it has cleaned up after a
 * stopped (or timed-out) execution and read by `GET /v1/runs/{id}`. The bucket's lifecycle removes
 * these records after Step Functions forgets the execution (lib/backup-bucket.ts).
 */
export const RUNS_FOLDER = '.runs/';

/** A run id as the API names runs: `<kind>-<execution name>` (1 to 80 of `[A-Za-z0-9_-]`). */
const RUN_ID = /^[a-z]+-[A-Za-z0-9_-]{1,80}$/;

export function runCleanupKey(runId: string): string {
  if (!RUN_ID.test(runId)) {
    throw new PgferryError('InvalidInput', `not a run id: ${JSON.stringify(runId.slice(0, 100))}`);
  }
  return `${RUNS_FOLDER}${runId}/cleanup.json`;
}
