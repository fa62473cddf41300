import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';

/**
 * Lambda throttling, which LambdaInvoke's `retryOnServiceExceptions` does not cover: retried with
 * exponential backoff (2, 4, 8… seconds). Every Lambda step gets it (`lambdaStep`).
 */
export const LAMBDA_THROTTLING_RETRY: sfn.RetryProps = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts: 6,
};

export interface LambdaStepProps {
  /** The function the step invokes. */
  readonly fn: lambda.IFunction;
  /** Longest one invocation may take (the state's `TimeoutSeconds`). */
  readonly timeout: Duration;
  /**
   * What the function is given.
   * @default the state's input
   */
  readonly payload?: sfn.TaskInput;
  /**
   * The part of the state the function is given (`InputPath`), when that is one object of it: a
   * response-only step renders a `payload` of `TaskInput.fromJsonPathAt` as a string, not as ASL.
   * @default the whole state
   */
  readonly inputPath?: string;
  /**
   * Where the function's result goes in the state.
   * @default it replaces the state
   */
  readonly resultPath?: string;
  /**
   * Errors of the function's own to retry, after Lambda's service errors and throttling.
   * @default none
   */
  readonly retries?: readonly sfn.RetryProps[];
}

/**
 * A Lambda step of a pgferry workflow: the function's response (not Lambda's envelope) as the
 * result, Lambda's transient service errors retried (`retryOnServiceExceptions`), throttling
 * retried (`LAMBDA_THROTTLING_RETRY`), then the step's own retries.
 */
export function lambdaStep(scope: Construct, id: string, props: LambdaStepProps): tasks.LambdaInvoke {
  const step = new tasks.LambdaInvoke(scope, id, {
    lambdaFunction: props.fn,
    payload: props.payload,
    inputPath: props.inputPath,
    payloadResponseOnly: true,
    resultPath: props.resultPath,
    taskTimeout: sfn.Timeout.duration(props.timeout),
    retryOnServiceExceptions: true,
  });
  step.addRetry(LAMBDA_THROTTLING_RETRY);
  for (const retry of props.retries ?? []) step.addRetry(retry);
  return step;
}
