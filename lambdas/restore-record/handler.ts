import {
  parsePayload,
  type RestoreReport,
  RestoreReportSchema,
  RestoreStateSchema,
} from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { restoreReportKey } from '../../core/store-keys';
import { reportOrFailure } from '../task-report';

const logger = createLogger('pgferry-restore-record');

/** Step Functions task: the runner's restore report (stored beside the backup) becomes the output. */
export async function handler(event: unknown): Promise<RestoreReport> {
  const { plan, safetyBackup, error } = parsePayload(RestoreStateSchema, event, 'restore state');
  const store = openStore(plan.request.store);
  const key = restoreReportKey(plan.manifest.database, plan.manifest.id, plan.restoreId);
  const report = await reportOrFailure(store, key, RestoreReportSchema, 'restore', error);
  if (safetyBackup) {
    // The runner could not know the safety backup's id: record it in the stored report too.
    report.safetyBackupId = safetyBackup.manifest.id;
    await store.putJson(key, report);
  }
  logger.info('restored', { restoreId: report.restoreId, backupId: report.backupId });
  return report;
}
