/**
 * The runbooks' first step (lib/runbooks.ts, `aws:invokeLambdaFunction`): the form's ids in, the
 * workflow's execution input out, built from the deployment compiled into this bundle. It starts
 * nothing, reads nothing and connects to nothing: the runbook itself starts the workflow.
 */
import { CONSOLE_FUNCTION_ENV, currentConsoleDeployment } from '../../../core/console-deployment';
import { parsePayload } from '../../../core/contracts';
import { StoreUrlSchema } from '../../../core/contracts/shared';
import { createLogger } from '../../../core/logging';
import { runbookRequest } from './runbook-request';

const deployment = currentConsoleDeployment();
const store = parsePayload(
  StoreUrlSchema,
  process.env[CONSOLE_FUNCTION_ENV.store],
  CONSOLE_FUNCTION_ENV.store,
);
const logger = createLogger('pgferry-runbook-request');

export async function handler(event: unknown): Promise<unknown> {
  try {
    return runbookRequest(deployment, store, event);
  } catch (err) {
    logger.error('refused', { error: err as Error });
    throw err;
  }
}
