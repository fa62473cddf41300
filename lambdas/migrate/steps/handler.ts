import { z } from 'zod';
import {
  CaughtErrorSchema,
  MigratePlanSchema,
  MigrateStateSchema,
  parsePayload,
} from '../../../core/contracts';
import { type Credentials, credentialsFromEnv, withCredentials } from '../../../core/credentials';
import { loadJob } from '../../../core/jobs';
import { createLogger } from '../../../core/logging';
import { migrateOutcome } from '../../../core/outcomes';
import { retentionPolicyFromEnv } from '../../../core/retention';
import { openStore } from '../../../core/store';
import { secretsManagerApi, updateCutoverSecret } from './cutover-secret';
import { cleanupMigration, finishMigration, refuseCommandOnLambda } from './finish';
import { freezeSource } from './freeze';
import { recordMigration } from './record';

const logger = createLogger('pgferry-migrate-steps');
/** PGFERRY_RETENTION, read once: the archived backups are tagged like any other. */
const retention = retentionPolicyFromEnv(process.env);

const StepSchema = z.object({
  step: z.enum(['freeze', 'record', 'updateSecret', 'finish', 'cleanup', 'cutoverCommand']),
  state: MigrateStateSchema,
});

/** The Lambda function's entry: passwords from the connections' secrets (or IAM), else from its environment. */
export const handler = (event: unknown): ReturnType<typeof handle> =>
  handle(event, credentialsFromEnv(process.env));

/**
 * Step Functions task for the migrate workflow's own steps (one function, several states): the
 * freeze of the source, the record of the archived backups (the backup workflow's record step,
 * which writes each manifest last), the cutover secret's update, the finish (unfreeze, report), and the cleanup after a failure.
 * Each reads the plan from the job the state names; the source's password, where its connection
 * names no secret, is `credentials.source`.
 */
export async function handle(event: unknown, credentials: Credentials) {
  const { step, state } = parsePayload(StepSchema, event, 'migrate step');
  const env = withCredentials(process.env, credentials);
  if (step === 'cutoverCommand') return refuseCommandOnLambda();
  const plan = await loadJob(openStore, state.job, 'migrate', MigratePlanSchema);
  const run = { ...state, plan };
  switch (step) {
    case 'freeze': {
      const result = await freezeSource(plan, env);
      logger.info('froze the source', { migrateId: plan.migrateId, ...result });
      return result;
    }
    case 'record':
      return recordMigration(plan, {
        openStore,
        retention,
        onWarning: (backupId, warning) => logger.warn(warning, { backupId }),
      });
    case 'updateSecret': {
      const result = await updateCutoverSecret(plan, await secretsManagerApi());
      logger.info('pointed the cutover secret at the target', { migrateId: plan.migrateId, ...result });
      return result;
    }
    case 'finish': {
      const { report, key } = await finishMigration(run, { openStore, env });
      logger.info('migrated', { migrateId: plan.migrateId, timings: report.timings });
      return migrateOutcome(report, { store: state.job.store, key });
    }
    case 'cleanup': {
      const caught = parsePayload(
        CaughtErrorSchema,
        state.error ?? { Error: 'States.TaskFailed' },
        'caught error',
      );
      const result = await cleanupMigration(run, caught, { openStore, env });
      logger.warn('cleaned up a failed migration', { migrateId: plan.migrateId, ...result });
      return result;
    }
  }
}
