import { BackupStateSchema, CaughtErrorSchema, parsePayload } from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { cleanupBackup } from './cleanup';

const logger = createLogger('pgferry-cleanup');

/** The state after a caught error: the workflow state plus Step Functions' `{Error, Cause}`. */
const CleanupInputSchema = BackupStateSchema.extend({ error: CaughtErrorSchema });

/** Step Functions task: removes a failed attempt's objects and names the failure. */
export async function handler(event: unknown) {
  const { error, job, database, backupId } = parsePayload(CleanupInputSchema, event, 'cleanup input');
  const result = await cleanupBackup({ store: job.store, database, backupId }, error, { openStore });
  logger.warn('cleaned up a failed backup', { backupId, ...result });
  return result;
}
