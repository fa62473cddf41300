import { completeBackup } from '../../../core/complete-backup';
import {
  type BackupOutcome,
  BackupPlanSchema,
  BackupStateSchema,
  parsePayload,
} from '../../../core/contracts';
import { retentionFor } from '../../../core/deployment';
import { loadJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { backupCompletedMetricLine, metricsEnabled } from '../../../core/metrics';
import { backupOutcome } from '../../../core/outcomes';
import { retentionPolicyFromEnv } from '../../../core/retention';
import { openStore } from '../../../core/store';
import { manifestKey } from '../../../core/store-keys';

const logger = createLogger('pgferry-record');
/**
 * PGFERRY_RETENTION, read once: a bad value fails the function's start, naming the variable. A
 * database whose configuration sets its own policy is tagged by that (`retentionFor`).
 */
const retention = retentionPolicyFromEnv(process.env);
/** CloudWatch metrics (EMF lines on stdout) only on AWS: the local CLI's stdout is its output. */
const publishMetrics = metricsEnabled();

/**
 * Step Functions task: writes the manifest of a finished dump (planned by the job the state
 * names), tags retention tiers (S3) and releases the database's lease; its output, the
 * execution's, is the backup in brief (`BackupOutcome`), which names the manifest.
 */
export async function handler(event: unknown): Promise<BackupOutcome> {
  const state = parsePayload(BackupStateSchema, event, 'backup state');
  const plan = await loadJob(openStore, state.job, 'backup', BackupPlanSchema);
  const { manifest, tiers, leaseReleased, warnings } = await completeBackup(plan, {
    openStore,
    retention: retentionFor(plan.database, retention),
  });
  logger.info('recorded', {
    backupId: manifest.id,
    database: manifest.database,
    objects: manifest.objects.length,
    retagged: tiers,
    leaseReleased,
  });
  for (const warning of warnings) logger.warn(warning, { backupId: manifest.id });
  if (publishMetrics) process.stdout.write(`${backupCompletedMetricLine(manifest)}\n`);
  return backupOutcome(manifest, { store: plan.store, key: manifestKey(plan.database, plan.backupId) });
}
