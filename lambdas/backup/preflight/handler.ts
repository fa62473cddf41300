import { z } from 'zod';
import {
  BackupRequestSchema,
  type BackupState,
  parseExecutionInput,
  parsePayload,
} from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { currentDeployment, taskPlacement } from '../../../core/deployment';
import { storeJob } from '../../../core/jobs';
import { leaseOwnerFor, releaseLease } from '../../../core/lease';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { jobKey } from '../../../core/store-keys';
import { preflightBackup } from './preflight';

const logger = createLogger('pgferry-preflight');
/** Locally, the CLI process holds the lease (and a crashed one's is taken over); on AWS, none. */
const leaseOwner = leaseOwnerFor(currentDeployment());

/** The execution's input, and the execution's id (from the context object). */
const PreflightInputSchema = z.object({ request: z.unknown(), executionId: z.string().min(1) }).strict();

/** The Lambda function's entry: passwords from the connections' secrets (or IAM), else from its environment. */
export const handler = (event: unknown): Promise<BackupState> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task: validates the execution input, plans the backup and stores the plan as
 * the backup's job (in its own folder); the state carries the job's reference. The source's
 * password, where its connection names no secret, is `credentials.source`.
 */
export async function handle(event: unknown, credentials: Credentials): Promise<BackupState> {
  const input = parsePayload(PreflightInputSchema, event, 'preflight input');
  const request = parseExecutionInput(BackupRequestSchema, input.request, 'backup request');
  const plan = await preflightBackup(request, {
    openStore,
    env: withCredentials(process.env, credentials),
    leaseOwner,
    executionId: input.executionId,
  });
  logger.info('planned', {
    backupId: plan.backupId,
    database: plan.database,
    serverVersion: plan.server.version,
    sizeBytes: plan.sizeBytes,
  });
  const store = openStore(plan.store);
  try {
    const job = await storeJob(
      store,
      jobKey('backup', plan.database, plan.backupId, plan.backupId),
      'backup',
      plan,
    );
    return {
      job,
      backupId: plan.backupId,
      database: plan.database,
      taskSize: plan.taskSize,
      placement: taskPlacement(plan.database, process.env),
    };
  } catch (err) {
    // Cleanup catches only the steps after this one: give the lease back here.
    await releaseLease(store, plan.database, plan.backupId).catch(() => undefined);
    throw err;
  }
}
