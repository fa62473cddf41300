import {
  MigrateRequestSchema,
  type MigrateState,
  parsePayload,
  schemaTestDecision,
} from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { storeJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { jobKey } from '../../../core/store-keys';
import { preflightMigrate } from './preflight';

const logger = createLogger('pgferry-migrate-preflight');

/** The Lambda function's entry: passwords from the connections' secrets (or IAM), else from its environment. */
export const handler = (event: unknown): Promise<MigrateState> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task: validates the execution input, checks both servers, plans the migration,
 * and stores the plan as the migration's job beside its first database's archived backup (so a
 * failed migration's cleanup removes it with that backup). The state carries the job's reference
 * and the optional steps the workflow's Choice states read. The passwords, where a connection names
 * no secret, are `credentials`.
 */
export async function handle(event: unknown, credentials: Credentials): Promise<MigrateState> {
  const request = parsePayload(MigrateRequestSchema, event, 'migrate request');
  const plan = await preflightMigrate(request, { openStore, env: withCredentials(process.env, credentials) });
  const first = plan.databases[0].backup;
  const job = await storeJob(
    openStore(request.store),
    jobKey('migrate', first.database, first.backupId, plan.migrateId),
    'migrate',
    plan,
  );
  logger.info('planned', {
    migrateId: plan.migrateId,
    databases: plan.databases.map((d) => d.source.database),
    sourceVersion: plan.sourceServer.version,
    targetVersion: plan.targetServer.version,
    estimate: plan.estimate,
  });
  const cutover = plan.request.cutover;
  return {
    job,
    migrateId: plan.migrateId,
    taskSize: plan.taskSize,
    steps: {
      schemaTest: schemaTestDecision(plan).run,
      freezeSource: plan.request.freezeSource,
      updateSecret: plan.cutoverSecretFields !== undefined,
      cutoverCommand: cutover?.command !== undefined,
      ...(cutover?.ecsServices ? { ecsServices: cutover.ecsServices } : {}),
    },
  };
}
