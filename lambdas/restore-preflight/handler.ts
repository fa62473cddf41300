import { parseExecutionInput, RestoreRequestSchema, type RestoreState } from '../../core/contracts';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { preflightRestore } from './preflight';

const logger = createLogger('pgferry-restore-preflight');

/** Step Functions task: validates the execution input, resolves the backup, checks the target. */
export async function handler(event: unknown): Promise<RestoreState> {
  const request = parseExecutionInput(RestoreRequestSchema, event, 'restore request');
  const plan = await preflightRestore(request, { openStore, env: process.env });
  logger.info('planned', { restoreId: plan.restoreId, backupId: plan.manifest.id, jobs: plan.jobs });
  return { plan, job: JSON.stringify(plan) };
}
