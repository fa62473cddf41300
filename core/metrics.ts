/**
 * pgferry's CloudWatch metrics: named once here for the record step that publishes them and the
 * alarms and dashboard (lib/monitoring.ts) that read them. They are published as CloudWatch
 * Embedded Metric Format (EMF) log lines: in Lambda, a JSON line on stdout with an `_aws` member
 * becomes a metric, with no API call and no extra dependency.
 */
import type { BackupManifest } from './contracts';
import { currentDeployment, type Deployment } from './deployment';
import { catalogNameOf } from './store-keys';

export const METRICS_NAMESPACE = 'Pgferry';
/**
 * The dimension every backup metric has: the backup's catalog name — on AWS the configured
 * database id, which the alarms name (the dimension keeps its first name, `Database`).
 */
export const DATABASE_DIMENSION = 'Database';

export const BACKUP_METRICS = {
  /** When the backup completed (Unix seconds); its SampleCount is the number of completed backups. */
  lastCompleteBackup: 'LastCompleteBackupTimestamp',
  durationSeconds: 'BackupDurationSeconds',
  storedBytes: 'BackupStoredBytes',
} as const;

/**
 * Whether to publish metrics: only on AWS (in Lambda, whose runtime turns stdout into CloudWatch
 * Logs), never in the local CLI, whose stdout is its output.
 */
export function metricsEnabled(
  deployment: Deployment = currentDeployment(),
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return deployment.onAws && env.POWERTOOLS_METRICS_DISABLED !== 'true';
}

/** The EMF line that records a complete backup. */
export function backupCompletedMetricLine(manifest: BackupManifest): string {
  const finishedAt = Date.parse(manifest.finishedAt);
  return JSON.stringify({
    _aws: {
      Timestamp: finishedAt,
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [[DATABASE_DIMENSION]],
          Metrics: [
            { Name: BACKUP_METRICS.lastCompleteBackup, Unit: 'None' },
            { Name: BACKUP_METRICS.durationSeconds, Unit: 'Seconds' },
            { Name: BACKUP_METRICS.storedBytes, Unit: 'Bytes' },
          ],
        },
      ],
    },
    [DATABASE_DIMENSION]: catalogNameOf(manifest),
    [BACKUP_METRICS.lastCompleteBackup]: Math.floor(finishedAt / 1000),
    [BACKUP_METRICS.durationSeconds]: manifest.durationSeconds,
    [BACKUP_METRICS.storedBytes]: manifest.objects.reduce((sum, o) => sum + o.bytes, 0),
  });
}

/** The dimension of a server entry's metrics: its configured id. */
export const SERVER_DIMENSION = 'Server';

export const SERVER_METRICS = {
  /** When a server's set was recorded (Unix seconds); its SampleCount is the number of sets. */
  lastSetRecorded: 'LastSetRecordedTimestamp',
  /** Databases of the set that failed this run. */
  databasesFailed: 'SetDatabasesFailed',
  /** Databases found whose newest complete backup is older than the entry's `alarmAfterHours`. */
  databasesStale: 'DatabasesWithoutFreshBackup',
  /** Databases the server's previous set had that the server no longer has. */
  databasesDisappeared: 'DatabasesDisappeared',
} as const;

/** An EMF line of `metrics` (counts, or a timestamp) for the server entry `server`. */
export function serverMetricLine(server: string, at: Date, metrics: Partial<Record<string, number>>): string {
  const names = Object.keys(metrics);
  return JSON.stringify({
    _aws: {
      Timestamp: at.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: METRICS_NAMESPACE,
          Dimensions: [[SERVER_DIMENSION]],
          Metrics: names.map((Name) => ({ Name, Unit: 'None' })),
        },
      ],
    },
    [SERVER_DIMENSION]: server,
    ...metrics,
  });
}
