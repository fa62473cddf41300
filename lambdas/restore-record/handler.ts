import {
  parsePayload,
  type RestoreOutcome,
  RestoreReportSchema,
  RestoreStateSchema,
} from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { restoreOutcome } from '../../core/outcomes';
import { openStore } from '../../core/store';
import { restoreReportKey } from '../../core/store-keys';
import { reportOrFailure } from '../task-report';

const logger = createLogger('pgferry-restore-record');

/**
 * Step Functions task: reads the runner's restore report (stored beside the backup); the
 * execution's output is the restore in brief (`RestoreOutcome`), which names the report.
 */
export async function handler(event: unknown): Promise<RestoreOutcome> {
  const state = parsePayload(RestoreStateSchema, event, 'restore state');
  const store = openStore(state.job.store);
  const key = restoreReportKey(state.database, state.backupId, state.restoreId);
  const report = await reportOrFailure(store, key, RestoreReportSchema, 'restore', state.error);
  if (state.safetyBackup) {
    // The runner could not know the safety backup's id: record it in the stored report too.
    report.safetyBackupId = state.safetyBackup.backupId;
    await store.putJson(key, report);
  }
  logger.info('restored', { restoreId: report.restoreId, backupId: report.backupId });
  return restoreOutcome(report, { store: store.url, key });
}
