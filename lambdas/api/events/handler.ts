/**
 * Step Functions task of the announcing state machine (lib/run-events.ts): given a finished
 * execution of one of the four workflows, returns the run-finished event that the next state puts
 * on the default event bus.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import type { RunFinishedEvent } from '../../../api/events';
import { parsePayload } from '../../../core/contracts';
import { createLogger } from '../../../core/logging';
import { openStore } from '../../../core/store';
import { apiEnvironment } from '../environment';
import { StepFunctionsRuns } from '../step-functions-runs';
import { announce, ExecutionChangeSchema } from './announce';

const logger = createLogger('pgferry-run-events');
const env = apiEnvironment(process.env);
const runs = new StepFunctionsRuns({
  sfn: new SFNClient({}),
  stateMachineArns: env.stateMachineArns,
  store: openStore(env.store),
});

export async function handler(event: unknown): Promise<RunFinishedEvent> {
  const change = parsePayload(ExecutionChangeSchema, event, 'execution status change');
  const announced = await announce(runs, env.stateMachineArns, change);
  logger.info('announced', { detailType: announced.detailType, id: announced.detail.id });
  return announced;
}
