import {
  parsePayload,
  type VerifyOutcome,
  VerifyReportSchema,
  VerifyStateSchema,
} from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { verifyOutcome } from '../../../core/outcomes';
import { openStore } from '../../../core/store';
import { verifyReportKey } from '../../../core/store-keys';
import { reportOrFailure } from '../../../core/task-report';

const logger = createLogger('pgferry-verify-record');

/**
 * Step Functions task: reads the runner's verification report (stored beside the backup); the
 * execution's output is the verification in brief (`VerifyOutcome`), which names the report.
 */
export async function handler(event: unknown): Promise<VerifyOutcome> {
  const state = parsePayload(VerifyStateSchema, event, 'verify state');
  const store = openStore(state.job.store);
  const key = verifyReportKey(state.database, state.backupId, state.verifyId);
  const report = await reportOrFailure(store, key, VerifyReportSchema, 'verification', state.error);
  logger.info('verified', {
    verifyId: report.verifyId,
    backupId: report.backupId,
    restoreSeconds: report.restoreSeconds,
  });
  return verifyOutcome(report, { store: store.url, key });
}
