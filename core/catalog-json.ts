/**
 * The catalog as JSON: the shapes of the catalog commands' `--json` output (list, status, show,
 * prune), which the HTTP API (api/) answers with too, as zod schemas, and the functions that build
 * them from the store. The code builds its output through these types, docs/user-guide.md
 * documents them, and the tests parse real output with them (strict: no key more, none missing —
 * an absent value is `null`). backup, restore, verify and migrate print their stored manifest or
 * report (core/contracts/).
 */
import { z } from 'zod';
import {
  type BackupAge,
  backupStatus,
  type CatalogEntry,
  type CatalogFilter,
  type DatabaseStatus,
  filterEntries,
  folderUrl,
  formatAge,
  latestVerifications,
  readReports,
  retentionByBackup,
  scanStore,
  unreadableBackups,
} from './catalog';
import { BACKUP_ORIGINS, type BackupManifest, BackupManifestSchema, originOf } from './contracts';
import { PgferryError } from './errors';
import { type BackupReport, BackupReportSchema } from './reports';
import { RETENTION_TIERS, type RetentionDecision, retentionPolicyFromEnv } from './retention';
import type { BackupStore } from './store';
import { catalogNameOf } from './store-keys';

const TierSchema = z.enum(RETENTION_TIERS);

/** How the retention policy treats a backup now (`list`'s TIER column, `show`'s retention). */
export const RetentionJsonSchema = z
  .object({
    /** The longest-lived rule keeping it; null when no rule keeps it (or it is dated after now). */
    tier: TierSchema.nullable(),
    /** Whether the policy keeps it (false: `prune` deletes it). */
    keep: z.boolean(),
    /** Every rule keeping it, shortest-lived first, with the period it is the newest of. */
    reasons: z.array(z.object({ tier: TierSchema, bucket: z.string() }).strict()),
    /** Dated after now (a wrong clock): kept, counted by no rule. */
    afterNow: z.boolean(),
    /** Pinned (`pgferry pin`): kept whatever the rules say. */
    pinned: z.boolean(),
  })
  .strict();
export type RetentionJson = z.infer<typeof RetentionJsonSchema>;

/** A retention decision as JSON (`null` where there is none). */
export function retentionJson(decision: RetentionDecision | undefined): RetentionJson | null {
  if (!decision) return null;
  return {
    tier: decision.tier ?? null,
    keep: decision.keep,
    reasons: decision.reasons.map(({ tier, bucket }) => ({ tier, bucket })),
    afterNow: decision.afterNow,
    pinned: decision.pinned,
  };
}

/**
 * `list`'s TIER column: `after now`, `pinned`, the tier, `kept` (a safety or migration backup
 * within its days), or `expired`.
 */
export function tierLabel(decision: RetentionDecision | undefined): string {
  if (!decision) return '-';
  if (decision.afterNow) return 'after now';
  if (decision.pinned) return 'pinned';
  if (decision.tier) return decision.tier;
  return decision.keep ? 'kept' : 'expired';
}

/** What `list --json` adds to each manifest, under `catalog`: the table's other columns. */
export const ListedCatalogSchema = z
  .object({
    /** The catalog name it is filed under (the NAME column). */
    name: z.string(),
    /** Where it came from (ORIGIN): the manifest's `origin`, `manual` where it has none. */
    origin: z.enum(BACKUP_ORIGINS),
    /** Bytes stored, every object of the backup (SIZE). */
    storedBytes: z.number().int().nonnegative(),
    retention: RetentionJsonSchema.nullable(),
    /** Its latest verification (VERIFIED), or null when it was never verified. */
    verification: z
      .object({ status: z.enum(['passed', 'failed']), finishedAt: z.string() })
      .strict()
      .nullable(),
  })
  .strict();
export type ListedCatalog = z.infer<typeof ListedCatalogSchema>;

const BackupAgeSchema = z
  .object({ id: z.string(), startedAt: z.string(), finishedAt: z.string(), ageSeconds: z.number() })
  .strict();

/** `status --json`. */
export const StatusJsonSchema = z
  .object({
    store: z.string(),
    now: z.string(),
    databases: z.array(
      z
        .object({
          database: z.string(),
          /** The newest complete backup, or null when there is none. */
          newest: BackupAgeSchema.nullable(),
          /** The newest backup whose latest verification passed, or null. */
          newestVerified: BackupAgeSchema.extend({ verifiedAt: z.string() }).strict().nullable(),
          unreadable: z.array(
            z
              .object({ id: z.string(), startedAt: z.string(), folder: z.string(), problem: z.string() })
              .strict(),
          ),
          datedAfterNow: z.array(
            z.object({ id: z.string(), startedAt: z.string(), finishedAt: z.string() }).strict(),
          ),
          /** Why it fails `status` (empty when it does not). */
          problems: z.array(z.string()),
        })
        .strict(),
    ),
  })
  .strict();
export type StatusJson = z.infer<typeof StatusJsonSchema>;

/** One backup of `list --json`: its manifest as stored, with the table's other columns under `catalog`. */
export type ListedBackup = BackupManifest & { catalog: ListedCatalog };

/** A backup folder whose manifest exists but cannot be used (what `list` names on stderr). */
export interface UnreadableFolder {
  id: string;
  database: string;
  startedAt: string;
  /** The folder as a URL. */
  folder: string;
  problem: string;
}

/** `entry` as `list --json` prints it, given the tiers and latest verifications of its scan. */
export function listedBackup(
  entry: CatalogEntry,
  tiers: ReadonlyMap<CatalogEntry, RetentionDecision>,
  verifications: ReadonlyMap<CatalogEntry, BackupReport>,
): ListedBackup {
  const verification = verifications.get(entry);
  const catalog: ListedCatalog = {
    name: catalogNameOf(entry.manifest),
    // Manifests written before origins were recorded read as `manual` (see originOf).
    origin: originOf(entry.manifest),
    storedBytes: entry.storedBytes,
    retention: retentionJson(tiers.get(entry)),
    verification: verification ? { status: verification.status, finishedAt: verification.finishedAt } : null,
  };
  return { ...entry.manifest, catalog };
}

/**
 * The complete backups `filter` selects, newest first, as `list --json` prints them, and the
 * unreadable folders in the same window. Tiers are decided over all of a name's backups, whatever
 * the filter shows.
 */
export async function listedBackups(
  store: BackupStore,
  filter: CatalogFilter,
  now: Date,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ backups: ListedBackup[]; unreadable: UnreadableFolder[] }> {
  const scan = await scanStore(store, filter.database);
  const entries = filterEntries(scan.entries, filter);
  const tiers = retentionByBackup(scan.entries, retentionPolicyFromEnv(env), now);
  const verifications = await latestVerifications(store, entries);
  const backups = entries.map((entry) => listedBackup(entry, tiers, verifications));
  const unreadable = unreadableBackups(scan)
    .filter((folder) => {
      const time = Date.parse(folder.startedAt);
      return !(
        (filter.since && time < filter.since.getTime()) ||
        (filter.until && time > filter.until.getTime())
      );
    })
    .map((folder) => ({
      id: folder.backupId,
      database: folder.database,
      startedAt: folder.startedAt,
      folder: folderUrl(store, folder.folder),
      problem: folder.problem ?? 'its manifest cannot be read',
    }));
  return { backups, unreadable };
}

/** `show --json`: a backup's manifest, how retention treats it, and its reports, newest first. */
export const BackupDetailSchema = z
  .object({
    manifest: BackupManifestSchema,
    retention: RetentionJsonSchema.nullable(),
    reports: z.object({ restore: z.array(BackupReportSchema), verify: z.array(BackupReportSchema) }).strict(),
  })
  .strict();
export type BackupDetail = z.infer<typeof BackupDetailSchema>;

/** `show --json` of the backup `entry` (one of `entries`, the scan of its catalog name). */
export async function backupDetail(
  store: BackupStore,
  entries: readonly CatalogEntry[],
  entry: CatalogEntry,
  now: Date,
  env: NodeJS.ProcessEnv = process.env,
): Promise<BackupDetail> {
  const retention = retentionByBackup(entries, retentionPolicyFromEnv(env), now).get(entry);
  const reports = await readReports(store, entry);
  return {
    manifest: entry.manifest,
    retention: retentionJson(retention),
    reports: {
      restore: reports.filter((r) => r.report.kind === 'restore').map((r) => r.report),
      verify: reports.filter((r) => r.report.kind === 'verify').map((r) => r.report),
    },
  };
}

/** `status`'s thresholds, in seconds. */
export interface StatusThresholds {
  maxAge?: number;
  maxVerifiedAge?: number;
}

/**
 * `status --json`: per catalog name (or just `database`), its newest and newest verified backups
 * and every problem — unreadable backups, backups dated after now, and ages over `thresholds`.
 */
export async function statusReport(
  store: BackupStore,
  now: Date,
  thresholds: StatusThresholds,
  database?: string,
  printName?: (text: string) => string,
): Promise<StatusJson> {
  const statuses = await backupStatus(store, now, database);
  return {
    store: store.url,
    now: now.toISOString(),
    databases: statuses.map((status) => ({
      database: status.database,
      newest: status.newest ?? null,
      newestVerified: status.newestVerified ?? null,
      unreadable: status.unreadable,
      datedAfterNow: status.datedAfterNow,
      problems: statusProblems(status, thresholds, now, printName),
    })),
  };
}

/**
 * Why a database fails `status`: unreadable backups and backups dated after now (whatever the
 * thresholds), then ages over them. `printName` makes the names taken from the store safe for where
 * the lines go (the CLI's `printable`).
 */
export function statusProblems(
  status: DatabaseStatus,
  thresholds: StatusThresholds,
  now: Date,
  printName: (text: string) => string = (text) => text,
): string[] {
  return [
    ...status.unreadable.map(
      (b) => `backup ${b.id} is unreadable: ${printName(b.problem)} (${printName(b.folder)})`,
    ),
    ...status.datedAfterNow.map(
      (b) =>
        `backup ${b.id} is dated ${b.startedAt}, after now (${now.toISOString()}): a clock was wrong; it is not counted`,
    ),
    ...ageProblems(status, thresholds),
  ];
}

/** What `maxAge` and `maxVerifiedAge` find wrong. */
export function ageProblems(
  status: { newest?: BackupAge | null; newestVerified?: BackupAge | null },
  thresholds: StatusThresholds,
): string[] {
  const problems: string[] = [];
  if (thresholds.maxAge !== undefined) {
    if (!status.newest) problems.push('no complete backup');
    else if (status.newest.ageSeconds > thresholds.maxAge) {
      problems.push(
        `newest backup is ${formatAge(status.newest.ageSeconds)} old (max ${formatAge(thresholds.maxAge)})`,
      );
    }
  }
  if (thresholds.maxVerifiedAge !== undefined) {
    if (!status.newestVerified) problems.push('no verified backup');
    else if (status.newestVerified.ageSeconds > thresholds.maxVerifiedAge) {
      problems.push(
        `newest verified backup is ${formatAge(status.newestVerified.ageSeconds)} old (max ${formatAge(thresholds.maxVerifiedAge)})`,
      );
    }
  }
  return problems;
}

/** Refuses a catalog lookup that found nothing, naming what to do. */
export function backupNotFound(store: BackupStore, database: string, id: string): PgferryError {
  return new PgferryError('BackupNotFound', `no complete backup ${id} of ${database} in ${store.url}`);
}
