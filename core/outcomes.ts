/**
 * The workflows' outputs (see `BackupOutcomeSchema` and its siblings in `./contracts`): built by
 * each workflow's last step from the document it stored, and read back by the CLI, which prints
 * the full document from the store when asked for JSON.
 */
import {
  type BackupManifest,
  type BackupOutcome,
  type MigrateOutcome,
  type MigrateReport,
  type RestoreOutcome,
  type RestoreReport,
  SCHEMA_VERSION,
  type VerifyOutcome,
  type VerifyReport,
} from './contracts';
import { catalogNameOf } from './store-keys';

/** A stored document's place: the store's URL and its key there. */
export interface DocumentLocation {
  store: string;
  key: string;
}

export function backupOutcome(manifest: BackupManifest, at: DocumentLocation): BackupOutcome {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'backup',
    status: 'complete',
    backupId: manifest.id,
    database: catalogNameOf(manifest),
    store: at.store,
    key: at.key,
    startedAt: manifest.startedAt,
    finishedAt: manifest.finishedAt,
    uncompressedBytes: manifest.uncompressedBytes,
    storedBytes: manifest.objects.reduce((sum, o) => sum + o.bytes, 0),
    objects: manifest.objects.length,
    tables: manifest.tables.length,
  };
}

export function restoreOutcome(report: RestoreReport, at: DocumentLocation): RestoreOutcome {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'restore',
    status: 'passed',
    restoreId: report.restoreId,
    backupId: report.backupId,
    database: report.database,
    store: at.store,
    key: at.key,
    target: report.target,
    ...(report.safetyBackupId ? { safetyBackupId: report.safetyBackupId } : {}),
    totalSeconds: report.timings.total ?? 0,
    checksums: report.checks.checksums.length,
    tables: report.checks.rowCounts.length,
    ...(report.warnings?.length ? { warnings: report.warnings } : {}),
    ...(report.backupScope ? { backupScope: report.backupScope } : {}),
  };
}

export function verifyOutcome(report: VerifyReport, at: DocumentLocation): VerifyOutcome {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'verify',
    status: 'passed',
    verifyId: report.verifyId,
    backupId: report.backupId,
    database: report.database,
    store: at.store,
    key: at.key,
    ...(report.server ? { server: report.server } : {}),
    ...(report.restoreSeconds === undefined ? {} : { restoreSeconds: report.restoreSeconds }),
    checksums: report.checks.checksums.length,
    tables: report.checks.rowCounts.length,
  };
}

/** The schema test in brief: passed or skipped, and why (absent in older reports). */
function schemaTestOutcome(test: MigrateReport['schemaTest']): Pick<MigrateOutcome, 'schemaTest'> {
  if (!test || test.status === 'failed' || test.reason === undefined) return {};
  return { schemaTest: { status: test.status, reason: test.reason } };
}

export function migrateOutcome(report: MigrateReport, at: DocumentLocation): MigrateOutcome {
  return {
    schemaVersion: SCHEMA_VERSION,
    kind: 'migrate',
    status: 'passed',
    migrateId: report.migrateId,
    store: at.store,
    key: at.key,
    source: report.source,
    target: report.target,
    totalSeconds: report.timings.total ?? 0,
    ...(report.writeDowntimeSeconds === undefined
      ? {}
      : { writeDowntimeSeconds: report.writeDowntimeSeconds }),
    ...(report.sourceLeftFrozen ? { sourceLeftFrozen: true } : {}),
    databases: report.databases.map((d) => ({
      database: d.database,
      targetDatabase: d.targetDatabase,
      backupId: d.backupId,
    })),
    tables: report.databases.reduce((n, d) => n + d.checks.rowCounts.length, 0),
    ...(report.roles.createdWithoutPassword?.length
      ? { rolesCreatedWithoutPassword: report.roles.createdWithoutPassword }
      : {}),
    ...schemaTestOutcome(report.schemaTest),
  };
}
