import {
  parsePayload,
  RestorePlanSchema,
  type RestoreReport,
  RestoreReportSchema,
} from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { restoreReportKey } from '../../core/store-keys';

const logger = createLogger('pgferry-restore-record');

/** Step Functions task: reads the runner's restore report (stored beside the backup) as the output. */
export async function handler(event: unknown): Promise<RestoreReport> {
  const plan = parsePayload(RestorePlanSchema, event, 'restore plan');
  const store = openStore(plan.request.store);
  const raw = await store.getJson(restoreReportKey(plan.manifest.database, plan.manifest.id, plan.restoreId));
  if (raw === undefined) throw new PgferryError('RestoreFailed', `restore ${plan.restoreId} left no report`);
  const report = parsePayload(RestoreReportSchema, raw, 'restore report');
  if (report.status !== 'passed')
    throw new PgferryError('RestoreFailed', report.error ?? 'the restore failed');
  logger.info('restored', { restoreId: report.restoreId, backupId: report.backupId });
  return report;
}
