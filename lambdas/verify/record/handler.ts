import { parsePayload, type VerifyOutcome, VerifyStateSchema } from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { recordVerification } from './record';

const logger = createLogger('pgferry-verify-record');

/**
 * Step Functions task: reads the runner's verification report (stored beside the backup); the
 * execution's output is the verification in brief (`VerifyOutcome`), which names the report.
 */
export async function handler(event: unknown): Promise<VerifyOutcome> {
  const state = parsePayload(VerifyStateSchema, event, 'verify state');
  const { report, outcome } = await recordVerification(state, { openStore });
  logger.info('verified', {
    verifyId: report.verifyId,
    backupId: report.backupId,
    restoreSeconds: report.restoreSeconds,
  });
  return outcome;
}
