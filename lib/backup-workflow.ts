import { Duration } from 'aws-cdk-lib';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { RETRYABLE_ERRORS } from '../core/errors';
import { BACKUP_STATES } from '../core/workflows';
import type { PgToolsTask } from './pg-tools-task';
import { LAMBDA_THROTTLING_RETRY } from './retries';
import { pgferryStateMachine } from './state-machine';
import type { WorkflowFunctions } from './workflow-functions';

export interface BackupWorkflowProps {
  readonly functions: WorkflowFunctions;
  readonly pgTools: PgToolsTask;
  /**
   * Longest a dump may run before it is stopped and cleaned up.
   * @default 12 hours
   */
  readonly dumpTimeout?: Duration;
}

/**
 * The backup state machine: Preflight → Dump → Record, and on any failure after preflight,
 * Cleanup → BackupFailed. The same definition runs on AWS and, through the CLI, locally.
 */
export class BackupWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: BackupWorkflowProps,
  ) {
    super(scope, id);
    const failed = this.buildCleanup();
    const definition = this.buildPreflight()
      .next(this.buildDump().addCatch(failed, { resultPath: '$.error' }))
      .next(this.buildRecord().addCatch(failed, { resultPath: '$.error' }));

    this.stateMachine = pgferryStateMachine(
      this,
      'pgferry backup: pg_dump of one database into the store, recorded by a manifest',
      definition,
    );
  }

  /**
   * Validates the input, checks source and store, plans the dump and stores the plan (the job).
   * Output: the job's reference, the backup's ids and the task's size (`BackupState`). It is
   * given the execution's id, so that a retry of it gets its own lease back.
   */
  private buildPreflight(): tasks.LambdaInvoke {
    const preflight = new tasks.LambdaInvoke(this, BACKUP_STATES.preflight, {
      lambdaFunction: this.props.functions.preflight,
      payload: sfn.TaskInput.fromObject({
        request: sfn.JsonPath.entirePayload,
        executionId: sfn.JsonPath.executionId,
      }),
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(2)),
      retryOnServiceExceptions: true,
    });
    preflight.addRetry(LAMBDA_THROTTLING_RETRY);
    return preflight;
  }

  /** Runs the pg-tools container on the job; the result reaches Record through the store. */
  private buildDump(): tasks.EcsRunTask {
    return this.props.pgTools.runTaskState(
      this,
      BACKUP_STATES.dump,
      'dump',
      this.props.dumpTimeout ?? Duration.hours(12),
    );
  }

  /**
   * Checks the stored objects against the runner's report and writes the manifest, last. Output
   * (the execution's): the backup in brief, naming its manifest (`BackupOutcome`).
   */
  private buildRecord(): tasks.LambdaInvoke {
    const record = new tasks.LambdaInvoke(this, BACKUP_STATES.record, {
      lambdaFunction: this.props.functions.record,
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(5)),
      retryOnServiceExceptions: true,
    });
    record.addRetry(LAMBDA_THROTTLING_RETRY);
    record.addRetry({
      errors: [...RETRYABLE_ERRORS],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 4,
    });
    return record;
  }

  /** Removes what the failed attempt wrote, then fails the execution with the first error. */
  private buildCleanup(): tasks.LambdaInvoke {
    const cleanup = new tasks.LambdaInvoke(this, BACKUP_STATES.cleanup, {
      lambdaFunction: this.props.functions.cleanup,
      payloadResponseOnly: true,
      resultPath: '$.cleanup',
      taskTimeout: sfn.Timeout.duration(Duration.minutes(5)),
      retryOnServiceExceptions: true,
    });
    cleanup.addRetry(LAMBDA_THROTTLING_RETRY);
    cleanup.addRetry({
      errors: [...RETRYABLE_ERRORS],
      interval: Duration.seconds(2),
      backoffRate: 2,
      maxAttempts: 6,
    });
    cleanup.next(
      new sfn.Fail(this, BACKUP_STATES.failed, {
        errorPath: sfn.JsonPath.stringAt('$.cleanup.error'),
        causePath: sfn.JsonPath.stringAt('$.cleanup.cause'),
      }),
    );
    return cleanup;
  }
}
