import {
  parsePayload,
  type RestoreReport,
  RestoreReportSchema,
  RestoreStateSchema,
} from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { restoreReportKey } from '../../core/store-keys';

const logger = createLogger('pgferry-restore-record');

/** Step Functions task: the runner's restore report (stored beside the backup) becomes the output. */
export async function handler(event: unknown): Promise<RestoreReport> {
  const { plan, safetyBackup } = parsePayload(RestoreStateSchema, event, 'restore state');
  const store = openStore(plan.request.store);
  const key = restoreReportKey(plan.manifest.database, plan.manifest.id, plan.restoreId);
  const raw = await store.getJson(key);
  if (raw === undefined) throw new PgferryError('RestoreFailed', `restore ${plan.restoreId} left no report`);
  const report = parsePayload(RestoreReportSchema, raw, 'restore report');
  if (report.status !== 'passed')
    throw new PgferryError('RestoreFailed', report.error ?? 'the restore failed');
  if (safetyBackup) {
    // The runner could not know the safety backup's id: record it in the stored report too.
    report.safetyBackupId = safetyBackup.manifest.id;
    await store.putJson(key, report);
  }
  logger.info('restored', { restoreId: report.restoreId, backupId: report.backupId });
  return report;
}
