import { parsePayload, type VerifyReport, VerifyReportSchema, VerifyStateSchema } from '../../core/contracts';
import { PgferryError } from '../../core/errors';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { verifyReportKey } from '../../core/store-keys';

const logger = createLogger('pgferry-verify-record');

/** Step Functions task: the runner's verification report (stored beside the backup) as the output. */
export async function handler(event: unknown): Promise<VerifyReport> {
  const { plan } = parsePayload(VerifyStateSchema, event, 'verify state');
  const store = openStore(plan.request.store);
  const raw = await store.getJson(verifyReportKey(plan.manifest.database, plan.manifest.id, plan.verifyId));
  if (raw === undefined)
    throw new PgferryError('RestoreFailed', `verification ${plan.verifyId} left no report`);
  const report = parsePayload(VerifyReportSchema, raw, 'verify report');
  if (report.status !== 'passed')
    throw new PgferryError('RestoreFailed', report.error ?? 'the verification failed');
  logger.info('verified', {
    verifyId: report.verifyId,
    backupId: report.backupId,
    restoreSeconds: report.restoreSeconds,
  });
  return report;
}
