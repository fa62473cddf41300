/**
 * The API's Lambda function: API Gateway's REST proxy events in, the application (api/app.ts) over
 * Step Functions and the deployment's store. The same routes `pgferry serve` serves.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { handle } from 'hono/aws-lambda';
import { createApi } from '../../api/app';
import { createLogger } from '../../core/logging';
import { openStore } from '../../core/store';
import { apiEnvironment } from './environment';
import { StepFunctionsRuns } from './step-functions-runs';

const env = apiEnvironment(process.env);
const store = openStore(env.store);
const runs = new StepFunctionsRuns({ sfn: new SFNClient({}), stateMachineArns: env.stateMachineArns, store });

const logger = createLogger('pgferry-api');

export const handler = handle(
  createApi({
    runs,
    store,
    basePath: env.basePath,
    onError: (err) => logger.error('request failed', { error: err as Error }),
  }),
);
