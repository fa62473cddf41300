import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import type { BackupBucket } from './backup-bucket';
import type { PgToolsTask } from './pg-tools-task';
import type { WorkflowFunctions } from './workflow-functions';

/**
 * What every workflow construct (backup, restore, verify, migrate) is built from. Each adds its
 * own functions to `functions`, grants them their access to `store` (and whatever else they
 * call), and builds its state machine from named phase methods, its Lambda steps with
 * `lambdaStep` (lib/lambda-step.ts).
 */
export interface WorkflowProps {
  /** Where the workflow's functions are built. */
  readonly functions: WorkflowFunctions;
  /** The store the functions read and write. */
  readonly store: BackupBucket;
  /** The Fargate task of the workflow's pg-tools step(s). */
  readonly pgTools: PgToolsTask;
  /**
   * Longest the workflow's main pg-tools task (dump, restore, verify, migrate) may run.
   * @default 12 hours
   */
  readonly taskTimeout?: Duration;
}

/** What every workflow construct exposes: its state machine and the functions it invokes. */
export interface Workflow {
  readonly stateMachine: sfn.StateMachine;
  /** The workflow's own functions (the state machine may invoke these, and only these). */
  readonly handlers: readonly nodejs.NodejsFunction[];
}

/** How long a workflow's pg-tools task may run unless configured. */
export const DEFAULT_TASK_TIMEOUT = Duration.hours(12);

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
