/**
 * Step Functions task of the announcing state machine (lib/run-events.ts), in two uses: given a
 * finished execution of one of the four workflows (the announcer's whole state: after a stopped
 * execution, with what its cleanup did, which it records for the run view), returns the
 * run-finished event that the last state puts on the default event bus; given `plan: true` and a stopped (or timed-out) execution,
 * returns what its skipped Catch steps would have cleaned up (./stopped.ts), which the next states
 * run.
 */
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { RUN_KINDS } from '../../../api/runs';
import { parsePayload } from '../../../core/contracts';
import { currentDeployment } from '../../../core/deployment';
import { PgferryError } from '../../../core/errors';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { wasStopped } from '../../../core/workflows';
import { apiEnvironment } from '../environment';
import { executionArnOf, StepFunctionsRuns } from '../step-functions-runs';
import { type Described, describeFinished, ExecutionChangeSchema } from './announce';
import { executionHistory, planStoppedCleanup, type StoppedCleanup } from './stopped';

const logger = createLogger('pgferry-run-events');
const env = apiEnvironment(process.env);
const sfn = new SFNClient({});
const store = openStore(env.store);
const runs = new StepFunctionsRuns({ sfn, stateMachineArns: env.stateMachineArns, store });

const EventSchema = ExecutionChangeSchema.extend({ plan: z.literal(true).optional() });

export async function handler(event: unknown): Promise<Described | StoppedCleanup> {
  const { plan, ...change } = parsePayload(EventSchema, event, 'execution status change');
  if (!plan) {
    // After a stopped execution, its cleanup is recorded for the run view (../run-cleanup.ts).
    const announced = await describeFinished(runs, env.stateMachineArns, event, store);
    logger.info('announced', {
      detailType: announced.detailType,
      id: announced.detail.id,
      cleanup: announced.detail.cleanup,
    });
    if (announced.unrecorded) logger.error('cleanup not recorded', { cause: announced.unrecorded.Cause });
    return announced;
  }
  const kind = RUN_KINDS.find((k) => env.stateMachineArns[k] === change.stateMachineArn);
  if (!kind)
    throw new PgferryError(
      'InvalidInput',
      `${change.stateMachineArn} is not one of pgferry's state machines`,
    );
  const executionArn = executionArnOf(change.stateMachineArn, change.name);
  const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
  if (!wasStopped(execution.status)) {
    throw new PgferryError(
      'InvalidInput',
      `${executionArn} is ${execution.status}: only a stopped execution is cleaned up here`,
    );
  }
  const cleanup = await planStoppedCleanup(kind, execution, await executionHistory(sfn, executionArn), {
    store,
    deployment: currentDeployment(),
  });
  logger.info('planned the cleanup of a stopped execution', {
    executionArn,
    waitSeconds: cleanup.waitSeconds,
    task: cleanup.task?.taskArn,
    backupId: cleanup.backup?.backupId,
    migrateId: cleanup.migrate?.migrateId,
    restoreId: cleanup.restore?.restoreId,
  });
  return cleanup;
}
