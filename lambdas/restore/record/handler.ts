import { parsePayload, type RestoreOutcome, RestoreStateSchema } from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { recordRestore } from './record';

const logger = createLogger('pgferry-restore-record');

/**
 * Step Functions task: reads the runner's restore report (stored beside the backup); the
 * execution's output is the restore in brief (`RestoreOutcome`), which names the report. With a
 * safety backup, its id goes into the stored report whatever the outcome, and a failed restore's
 * error names it and the command that puts the target back as it was.
 */
export async function handler(event: unknown): Promise<RestoreOutcome> {
  const state = parsePayload(RestoreStateSchema, event, 'restore state');
  const { report, outcome } = await recordRestore(state, { openStore });
  logger.info('restored', { restoreId: report.restoreId, backupId: report.backupId });
  return outcome;
}
