import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';

/**
 * A pgferry state machine, with the settings every workflow shares: a 24-hour limit, X-Ray
 * tracing, and logs of every event without execution data (inputs and outputs stay out of
 * CloudWatch), kept three months.
 */
export function pgferryStateMachine(
  scope: Construct,
  comment: string,
  definition: sfn.IChainable,
): sfn.StateMachine {
  return new sfn.StateMachine(scope, 'StateMachine', {
    comment,
    definitionBody: sfn.DefinitionBody.fromChainable(definition),
    timeout: Duration.hours(24),
    tracingEnabled: true,
    logs: {
      destination: new logs.LogGroup(scope, 'Logs', {
        retention: logs.RetentionDays.THREE_MONTHS,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
      level: sfn.LogLevel.ALL,
      includeExecutionData: false,
    },
  });
}
