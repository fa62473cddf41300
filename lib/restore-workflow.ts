import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { RESTORE_STATES, TASK_ENV } from '../core/workflows';
import type { PgToolsTask } from './pg-tools-task';

export interface RestoreWorkflowProps {
  /** Resolves the backup and checks the target: the `restore-preflight` handler. */
  readonly preflightFunction: lambda.IFunction;
  /** Reads the runner's report: the `restore-record` handler. */
  readonly recordFunction: lambda.IFunction;
  readonly pgTools: PgToolsTask;
  /**
   * Longest a restore may run.
   * @default 12 hours
   */
  readonly restoreTimeout?: Duration;
}

/**
 * The restore state machine: RestorePreflight → Restore → RestoreRecord. Preflight refuses
 * before anything touches the target; the runner verifies every checksum before it writes; a
 * failed restore fails the execution with the runner's first error.
 */
export class RestoreWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: RestoreWorkflowProps,
  ) {
    super(scope, id);
    const definition = this.buildPreflight().next(this.buildRestore()).next(this.buildRecord());
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'pgferry restore: a verified backup into a target database, checked and reported',
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      timeout: Duration.hours(24),
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, 'Logs', {
          retention: logs.RetentionDays.THREE_MONTHS,
          removalPolicy: RemovalPolicy.RETAIN,
        }),
        level: sfn.LogLevel.ALL,
        includeExecutionData: false,
      },
    });
  }

  /** Validates the input, resolves `latest`, refuses unsafe targets. Output: `{plan, job}`. */
  private buildPreflight(): tasks.LambdaInvoke {
    return new tasks.LambdaInvoke(this, RESTORE_STATES.preflight, {
      lambdaFunction: this.props.preflightFunction,
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(2)),
      retryOnServiceExceptions: true,
    });
  }

  /** Downloads and verifies the backup, then restores, analyzes and checks row counts. */
  private buildRestore(): tasks.EcsRunTask {
    const { pgTools } = this.props;
    const restore = new tasks.EcsRunTask(this, RESTORE_STATES.restore, {
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      cluster: pgTools.cluster,
      taskDefinition: pgTools.taskDefinition,
      launchTarget: new tasks.EcsFargateLaunchTarget({ platformVersion: ecs.FargatePlatformVersion.LATEST }),
      subnets: pgTools.subnets,
      securityGroups: [pgTools.securityGroup],
      containerOverrides: [
        {
          containerDefinition: pgTools.container,
          environment: [
            { name: TASK_ENV.action, value: 'restore' },
            { name: TASK_ENV.job, value: sfn.JsonPath.stringAt('$.job') },
          ],
        },
      ],
      resultPath: sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(this.props.restoreTimeout ?? Duration.hours(12)),
    });
    // Only failures to start the task are retried: a restore that ran is never repeated blindly.
    restore.addRetry({
      errors: ['ECS.AmazonECSException', 'ECS.ServerException'],
      interval: Duration.seconds(10),
      backoffRate: 2,
      maxAttempts: 3,
    });
    return restore;
  }

  /** The runner's report (stored beside the backup) becomes the execution's output. */
  private buildRecord(): tasks.LambdaInvoke {
    return new tasks.LambdaInvoke(this, RESTORE_STATES.record, {
      lambdaFunction: this.props.recordFunction,
      payloadResponseOnly: true,
      inputPath: '$.plan',
      taskTimeout: sfn.Timeout.duration(Duration.minutes(2)),
      retryOnServiceExceptions: true,
    });
  }
}
