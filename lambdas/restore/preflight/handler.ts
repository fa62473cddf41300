import { parseExecutionInput, RestoreRequestSchema, type RestoreState } from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { storeJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { catalogNameOf, jobKey } from '../../../core/store-keys';
import { preflightRestore } from './preflight';

const logger = createLogger('pgferry-restore-preflight');

/** The Lambda function's entry: passwords from the connections' secrets (or IAM), else from its environment. */
export const handler = (event: unknown): Promise<RestoreState> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task: validates the execution input, resolves the backup, checks the target, and
 * stores the plan as the restore's job beside the backup; the state carries the job's reference.
 * The target's password, where its connection names no secret, is `credentials.target`.
 */
export async function handle(event: unknown, credentials: Credentials): Promise<RestoreState> {
  const request = parseExecutionInput(RestoreRequestSchema, event, 'restore request');
  const plan = await preflightRestore(request, { openStore, env: withCredentials(process.env, credentials) });
  const { manifest } = plan;
  const job = await storeJob(
    openStore(request.store),
    jobKey('restore', catalogNameOf(manifest), manifest.id, plan.restoreId),
    'restore',
    plan,
  );
  logger.info('planned', { restoreId: plan.restoreId, backupId: manifest.id, jobs: plan.jobs });
  return {
    job,
    restoreId: plan.restoreId,
    backupId: manifest.id,
    database: catalogNameOf(manifest),
    taskSize: plan.taskSize,
    ...(plan.safetyBackup ? { safetyBackupRequest: plan.safetyBackup } : {}),
  };
}
