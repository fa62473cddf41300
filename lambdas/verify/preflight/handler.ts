import { parseExecutionInput, VerifyRequestSchema, type VerifyState } from '../../../core/contracts';
import { storeJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { catalogNameOf, jobKey } from '../../../core/store-keys';
import { preflightVerify } from './preflight';

const logger = createLogger('pgferry-verify-preflight');

/**
 * Step Functions task: validates the input, resolves the backup to verify, refuses one whose
 * download, dump and restored database cannot fit the task's disk, and stores the plan as the
 * verification's job beside the backup; the state carries the job's reference.
 */
export async function handler(event: unknown): Promise<VerifyState> {
  const request = parseExecutionInput(VerifyRequestSchema, event, 'verify request');
  const plan = await preflightVerify(request, { openStore, env: process.env });
  const { manifest } = plan;
  const job = await storeJob(
    openStore(request.store),
    jobKey('verify', catalogNameOf(manifest), manifest.id, plan.verifyId),
    'verify',
    plan,
  );
  logger.info('planned', { verifyId: plan.verifyId, backupId: manifest.id });
  return {
    job,
    verifyId: plan.verifyId,
    backupId: manifest.id,
    database: catalogNameOf(manifest),
    taskSize: plan.taskSize,
  };
}
