import { parsePayload, type VerifyReport, VerifyReportSchema, VerifyStateSchema } from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { verifyReportKey } from '../../core/store-keys';
import { reportOrFailure } from '../task-report';

const logger = createLogger('pgferry-verify-record');

/** Step Functions task: the runner's verification report (stored beside the backup) as the output. */
export async function handler(event: unknown): Promise<VerifyReport> {
  const { plan, error } = parsePayload(VerifyStateSchema, event, 'verify state');
  const store = openStore(plan.request.store);
  const key = verifyReportKey(plan.manifest.database, plan.manifest.id, plan.verifyId);
  const report = await reportOrFailure(store, key, VerifyReportSchema, 'verification', error);
  logger.info('verified', {
    verifyId: report.verifyId,
    backupId: report.backupId,
    restoreSeconds: report.restoreSeconds,
  });
  return report;
}
