import { Duration } from 'aws-cdk-lib';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/**
 * Lambda throttling, which LambdaInvoke's `retryOnServiceExceptions` does not cover: retried with
 * exponential backoff (2, 4, 8… seconds). Add it to every Lambda step.
 */
export const LAMBDA_THROTTLING_RETRY: sfn.RetryProps = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts: 6,
};
