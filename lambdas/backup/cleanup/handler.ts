import { z } from 'zod';
import { BackupStateSchema, CaughtErrorSchema, parsePayload } from '../../../core/contracts';
import { CatalogNameSchema, RunIdSchema, StoreUrlSchema } from '../../../core/contracts/shared';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { cleanupBackup } from './cleanup';

const logger = createLogger('pgferry-cleanup');

/** The state after a caught error: the workflow state plus Step Functions' `{Error, Cause}`. */
const CaughtInputSchema = BackupStateSchema.extend({ error: CaughtErrorSchema });

/**
 * After a stopped execution, whose Catch did not run: the attempt by its ids, as the announcer
 * plans it from the execution's history (lambdas/api/events/stopped.ts).
 */
const StoppedInputSchema = z
  .object({
    store: StoreUrlSchema,
    database: CatalogNameSchema,
    backupId: RunIdSchema,
    error: CaughtErrorSchema,
  })
  .strict();

const CleanupInputSchema = z.union([CaughtInputSchema, StoppedInputSchema]);

/** Step Functions task: removes a failed (or stopped) attempt's objects and names the failure. */
export async function handler(event: unknown) {
  const input = parsePayload(CleanupInputSchema, event, 'cleanup input');
  const { error, database, backupId } = input;
  const store = 'job' in input ? input.job.store : input.store;
  const result = await cleanupBackup({ store, database, backupId }, error, { openStore });
  logger.warn('cleaned up a failed backup', { backupId, ...result });
  return result;
}
