import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { EVENT_SOURCE } from '../api/events';
import type { RunKind } from '../api/runs';
import { LEFT_BEHIND_ERRORS, STOPPED_STATUSES } from '../core/workflows';
import { acknowledgeExecutionGrants } from './api';
import type { BackupBucket } from './backup-bucket';
import { lambdaStep } from './lambda-step';
import { scaleServices } from './migrate-workflow';
import { acknowledgeWildcards, wildcardResource } from './nag';
import { pgferryStateMachine } from './state-machine';
import type { WorkflowFunctions } from './workflow-functions';

export interface RunEventsProps {
  /** Where the announcing function is built. */
  readonly functions: WorkflowFunctions;
  /** The state machines whose finished executions are announced. */
  readonly stateMachines: Record<RunKind, sfn.IStateMachine>;
  /** The store, where a run's result (the manifest or report its summary names) is read. */
  readonly store: BackupBucket;
  /** The environment of the API's functions (the store and the state machines). */
  readonly environment: Record<string, string>;
  /** What a stopped execution's skipped Catch steps would have run, run by the announcer instead. */
  readonly cleanup: StoppedCleanupProps;
}

/** The workflows' cleanup, which a stopped (or timed-out) execution skips. */
export interface StoppedCleanupProps {
  /** The backup workflow's Cleanup function: removes the attempt, releases the lease. */
  readonly backupCleanup: lambda.IFunction;
  /** The migrate workflow's steps function (its `cleanup` step: MigrateCleanup). */
  readonly migrateSteps: lambda.IFunction;
  /** The restore workflow's RestoreCleanup: ends the run's sessions, drops what it created and marked. */
  readonly restoreCleanup: lambda.IFunction;
  /** The cluster the pg-tools tasks run in: a stopped execution's task is stopped there. */
  readonly cluster: ecs.ICluster;
  /** The services a migration's cutover may scale, scaled back up after a stopped migration. */
  readonly cutoverServiceArns: readonly string[];
}

/** The execution statuses that end a run. */
export const FINISHED_STATUSES = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/**
 * An EventBridge event on the account's default bus for every finished run (`source: "pgferry"`,
 * detail-type `Backup Succeeded`, `Migration Failed`, …, detail `{id, kind, database, status,
 * summary, cleanup?}`: api/events.ts, the JSON `pgferry serve --webhook` posts), so that a
 * pipeline can wait on it. A rule on Step Functions' own status changes of the four workflows
 * starts a small state machine: `Describe` (a function: the run as the API shows it, made into the
 * event) then `Announce` (Step Functions' PutEvents integration, retried). Nothing is added to the
 * workflows' definitions, so local runs are unchanged.
 *
 * A stopped or timed-out execution skipped its workflow's Catch steps: before announcing it, the
 * announcer runs them (`buildCleanup`), so that a cancelled run cleans up as a failed one does and
 * its `… Cancelled` event comes once that cleanup is done — carrying what it did and left
 * (`detail.cleanup`), which a failed run's own cleanup says in its error.
 */
export class RunEvents extends Construct {
  readonly rule: events.Rule;
  readonly announcer: sfn.StateMachine;
  readonly describe: nodejs.NodejsFunction;

  /** The ARN of every task of pgferry's cluster (StopTask, DescribeTasks). */
  private readonly clusterTasks: string;

  constructor(scope: Construct, id: string, props: RunEventsProps) {
    super(scope, id);
    this.clusterTasks = Stack.of(this).formatArn({
      service: 'ecs',
      resource: 'task',
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      resourceName: `${props.cleanup.cluster.clusterName}/*`,
    });
    this.describe = props.functions.add('RunEventsDescribe', {
      folder: 'api/events',
      name: 'run-events',
      description: 'pgferry: the run-finished event of a finished execution',
      timeout: Duration.seconds(60),
      environment: props.environment,
    });
    for (const machine of Object.values(props.stateMachines)) {
      machine.grantExecution(this.describe, 'states:DescribeExecution', 'states:GetExecutionHistory');
    }
    props.store.grantReadBackups(this.describe);
    // After a stopped execution, Describe records what its cleanup did for the run view
    // (`GET /v1/runs/{id}` reads `backups/.runs/<run id>/cleanup.json`): that prefix, PutObject only.
    props.store.grantWriteRunRecords(this.describe);

    // Given the whole state: after a stopped execution, the cleanup's results and error are in it
    // (`$.backupCleanup`, `$.migrateCleanup`, `$.restoreCleanup`, `$.cleanupError`), each only when
    // its step ran, which Parameters could not pass (a path that is absent fails the state).
    const describe = lambdaStep(this, 'Describe', {
      fn: this.describe,
      timeout: Duration.seconds(60),
      resultPath: '$.event',
    });
    const announce = new tasks.EventBridgePutEvents(this, 'Announce', {
      entries: [
        {
          source: EVENT_SOURCE,
          detailType: sfn.JsonPath.stringAt('$.event.detailType'),
          detail: sfn.TaskInput.fromJsonPathAt('$.event.detail'),
        },
      ],
      resultPath: sfn.JsonPath.DISCARD,
    });
    announce.addRetry({
      errors: ['States.ALL'],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 6,
    });
    // A cleanup that failed, or left something behind, is announced all the same, then fails the
    // announcer (alarmed: its notification names the error and the cause); so does a cleanup that
    // Describe could not record for the run view (`$.event.unrecorded`), once it is announced.
    announce.next(
      new sfn.Choice(this, 'CleanedUp')
        .when(
          sfn.Condition.isPresent('$.cleanupError'),
          new sfn.Fail(this, 'CleanupFailed', {
            errorPath: sfn.JsonPath.stringAt('$.cleanupError.Error'),
            causePath: sfn.JsonPath.stringAt('$.cleanupError.Cause'),
          }),
        )
        .when(
          sfn.Condition.isPresent('$.event.unrecorded'),
          new sfn.Fail(this, 'CleanupNotRecorded', {
            errorPath: sfn.JsonPath.stringAt('$.event.unrecorded.Error'),
            causePath: sfn.JsonPath.stringAt('$.event.unrecorded.Cause'),
          }),
        )
        .otherwise(new sfn.Succeed(this, 'Announced')),
    );
    describe.next(announce);
    const stopped = new sfn.Choice(this, 'Stopped')
      .when(
        sfn.Condition.or(...STOPPED_STATUSES.map((status) => sfn.Condition.stringEquals('$.status', status))),
        this.buildCleanup(props.cleanup, describe),
      )
      .otherwise(describe);
    this.announcer = pgferryStateMachine(
      this,
      'pgferry: announces a finished run on the default event bus, after the cleanup a stopped execution skipped',
      stopped,
    );

    this.rule = new events.Rule(this, 'Finished', {
      description: 'pgferry: a finished backup, restore, verification or migration is announced',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          stateMachineArn: Object.values(props.stateMachines).map((m) => m.stateMachineArn),
          status: [...FINISHED_STATUSES],
        },
      },
      targets: [
        new eventTargets.SfnStateMachine(this.announcer, {
          input: events.RuleTargetInput.fromObject({
            stateMachineArn: events.EventField.fromPath('$.detail.stateMachineArn'),
            name: events.EventField.fromPath('$.detail.name'),
            status: events.EventField.fromPath('$.detail.status'),
          }),
          retryAttempts: 20,
          maxEventAge: Duration.hours(24),
        }),
      ],
    });
    acknowledgeExecutionGrants(this.describe, props.stateMachines, 'described and their history read');
    acknowledgeWildcards(this.announcer.role, {
      'Resource::*': 'X-Ray and CloudWatch Logs delivery accept no narrower resource',
      [`${wildcardResource(this, this.describe.functionArn)}:*`]:
        "LambdaInvoke's grant of the function's versions and aliases (pgferry's own function only)",
      [`${wildcardResource(this, props.cleanup.backupCleanup.functionArn)}:*`]:
        "LambdaInvoke's grant of the backup Cleanup function's versions and aliases (pgferry's own function only)",
      [`${wildcardResource(this, props.cleanup.migrateSteps.functionArn)}:*`]:
        "LambdaInvoke's grant of the migrate steps function's versions and aliases (pgferry's own function only)",
      [`${wildcardResource(this, props.cleanup.restoreCleanup.functionArn)}:*`]:
        "LambdaInvoke's grant of RestoreCleanup's versions and aliases (pgferry's own function only)",
      [wildcardResource(this, this.clusterTasks)]:
        "a stopped execution's task is named only at run time: StopTask and DescribeTasks on the tasks of pgferry's own cluster",
    });
  }

  /**
   * What a stopped execution's Catch would have run (lambdas/api/events/stopped.ts plans it):
   * PlanCleanup, waiting until the Lambda steps it stopped in have ended; its task stopped and
   * waited for; then the backup's Cleanup, MigrateCleanup and the services scaled back up, or
   * RestoreCleanup. Then `announce` (Describe, Announce): each cleanup's result is kept in the
   * state, where Describe reads it into the event. Any failure is kept in `$.cleanupError`: the run
   * is announced all the same (the event names the failure), then the announcer fails — and so is
   * what MigrateCleanup or RestoreCleanup says it left behind (`leftBehind`).
   */
  private buildCleanup(cleanup: StoppedCleanupProps, announce: sfn.IChainable): sfn.IChainable {
    const failed = { resultPath: '$.cleanupError' };

    const plan = lambdaStep(this, 'PlanCleanup', {
      fn: this.describe,
      timeout: Duration.seconds(60),
      payload: sfn.TaskInput.fromObject({
        stateMachineArn: sfn.JsonPath.stringAt('$.stateMachineArn'),
        name: sfn.JsonPath.stringAt('$.name'),
        status: sfn.JsonPath.stringAt('$.status'),
        plan: true,
      }),
      resultPath: '$.cleanup',
    });
    plan.addCatch(announce, failed);
    const waitForSteps = new sfn.Wait(this, 'WaitForSteps', {
      time: sfn.WaitTime.secondsPath('$.cleanup.waitSeconds'),
    });
    waitForSteps.next(plan);

    // The task: stopped (its runner cleans up on SIGTERM), then waited for until ECS says STOPPED.
    const stopTask = new tasks.CallAwsService(this, 'StopTask', {
      service: 'ecs',
      action: 'stopTask',
      parameters: {
        Cluster: sfn.JsonPath.stringAt('$.cleanup.task.cluster'),
        Task: sfn.JsonPath.stringAt('$.cleanup.task.taskArn'),
        Reason: 'pgferry: its execution was stopped',
      },
      iamResources: [this.clusterTasks],
      iamAction: 'ecs:StopTask',
      resultPath: sfn.JsonPath.DISCARD,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(1)),
    });
    const waitForTask = new sfn.Wait(this, 'WaitForTask', {
      time: sfn.WaitTime.duration(Duration.seconds(15)),
    });
    // Already stopped (Step Functions stops a stopped execution's task too): wait for it all the same.
    stopTask.addCatch(waitForTask, { resultPath: sfn.JsonPath.DISCARD });
    stopTask.next(waitForTask);
    const describeTask = new tasks.CallAwsService(this, 'DescribeTask', {
      service: 'ecs',
      action: 'describeTasks',
      parameters: {
        Cluster: sfn.JsonPath.stringAt('$.cleanup.task.cluster'),
        Tasks: sfn.JsonPath.array(sfn.JsonPath.stringAt('$.cleanup.task.taskArn')),
      },
      iamResources: [this.clusterTasks],
      iamAction: 'ecs:DescribeTasks',
      resultSelector: { 'Tasks.$': '$.Tasks' },
      resultPath: '$.taskStatus',
      taskTimeout: sfn.Timeout.duration(Duration.minutes(1)),
    });
    waitForTask.next(describeTask);

    const cleanUp = new sfn.Choice(this, 'CleanupOfKind');
    describeTask.addCatch(cleanUp, { resultPath: sfn.JsonPath.DISCARD });
    const lastStatus = '$.taskStatus.Tasks[0].LastStatus';
    describeTask.next(
      new sfn.Choice(this, 'TaskStopped')
        .when(sfn.Condition.isNotPresent(lastStatus), cleanUp)
        .when(sfn.Condition.stringEquals(lastStatus, 'STOPPED'), cleanUp)
        .otherwise(waitForTask),
    );

    const backup = lambdaStep(this, 'CleanUpBackup', {
      fn: cleanup.backupCleanup,
      timeout: Duration.minutes(5),
      payload: sfn.TaskInput.fromObject({
        store: sfn.JsonPath.stringAt('$.cleanup.backup.store'),
        database: sfn.JsonPath.stringAt('$.cleanup.backup.database'),
        backupId: sfn.JsonPath.stringAt('$.cleanup.backup.backupId'),
        error: sfn.JsonPath.objectAt('$.cleanup.backup.error'),
      }),
      resultPath: '$.backupCleanup',
      retries: [
        { errors: ['States.TaskFailed'], interval: Duration.seconds(5), backoffRate: 2, maxAttempts: 4 },
      ],
    });
    backup.addCatch(announce, failed);
    backup.next(announce);
    const migrate = lambdaStep(this, 'CleanUpMigration', {
      fn: cleanup.migrateSteps,
      timeout: Duration.minutes(5),
      payload: sfn.TaskInput.fromObject({
        step: 'cleanup',
        state: sfn.JsonPath.objectAt('$.cleanup.migrate'),
      }),
      resultPath: '$.migrateCleanup',
    });
    migrate.addCatch(announce, failed);
    const migrationLeft = this.leftBehind('Migration', '$.migrateCleanup', announce);
    const restart = this.buildRestartServices(cleanup.cutoverServiceArns);
    restart.addCatch(announce, failed);
    restart.next(migrationLeft);
    migrate.next(
      new sfn.Choice(this, 'RestartRequested')
        .when(sfn.Condition.isPresent('$.cleanup.migrate.steps.ecsServices'), restart)
        .otherwise(migrationLeft),
    );
    // What it did (its notes) and left go into the run's event; what it left fails the announcer.
    const restore = lambdaStep(this, 'CleanUpRestore', {
      fn: cleanup.restoreCleanup,
      timeout: Duration.minutes(2),
      inputPath: '$.cleanup.restore',
      resultPath: '$.restoreCleanup',
    });
    restore.addCatch(announce, failed);
    restore.next(this.leftBehind('Restore', '$.restoreCleanup', announce));
    cleanUp
      .when(sfn.Condition.isPresent('$.cleanup.backup'), backup)
      .when(sfn.Condition.isPresent('$.cleanup.migrate'), migrate)
      .when(sfn.Condition.isPresent('$.cleanup.restore'), restore)
      .otherwise(announce);

    return plan.next(
      new sfn.Choice(this, 'StepsEnded')
        .when(sfn.Condition.numberGreaterThan('$.cleanup.waitSeconds', 0), waitForSteps)
        .when(sfn.Condition.isPresent('$.cleanup.task'), stopTask)
        .otherwise(cleanUp),
    );
  }

  /**
   * Then `announce`; first, when the cleanup's result at `resultPath` lists what it left behind
   * (`left`, one line each: what and how to remove it), a `$.cleanupError` of those lines
   * (`LEFT_BEHIND_ERRORS`: `pgferry.RestoreLeftBehind` or `pgferry.MigrationLeftBehind`, the
   * cause their JSON list), so that the announcer fails once the run is announced, as after a
   * cleanup that failed. The event carries those lines as `left`, not as the cleanup's error.
   */
  private leftBehind(
    kind: 'Migration' | 'Restore',
    resultPath: string,
    announce: sfn.IChainable,
  ): sfn.Choice {
    const left = `${resultPath}.left`;
    const record = new sfn.Pass(this, `${kind}LeftBehind`, {
      parameters: {
        Error: LEFT_BEHIND_ERRORS[kind],
        Cause: sfn.JsonPath.jsonToString(sfn.JsonPath.listAt(left)),
      },
      resultPath: '$.cleanupError',
    });
    return new sfn.Choice(this, `${kind}LeftSomething`)
      .when(sfn.Condition.isPresent(`${left}[0]`), record.next(announce))
      .otherwise(announce);
  }

  /** The cutover's services back to their `desiredCount`, as the migrate workflow's failure path does. */
  private buildRestartServices(serviceArns: readonly string[]): sfn.Map {
    return scaleServices(this, {
      mapId: 'RestartServices',
      taskId: 'RestartService',
      itemsPath: '$.cleanup.migrate.steps.ecsServices',
      serviceArns,
    });
  }
}
