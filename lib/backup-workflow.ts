import { Duration } from 'aws-cdk-lib';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { TASK_SUBNETS_ENV } from '../core/deployment';
import { RETRYABLE_ERRORS } from '../core/errors';
import { BACKUP_STATES } from '../core/workflows';
import { lambdaStep } from './lambda-step';
import {
  DEFAULT_TASK_TIMEOUT,
  pgferryStateMachine,
  type Workflow,
  type WorkflowProps,
} from './state-machine';

/** The store's transient errors, retried by the steps that write after the dump. */
const storeRetry = (maxAttempts: number): sfn.RetryProps => ({
  errors: [...RETRYABLE_ERRORS],
  interval: Duration.seconds(2),
  backoffRate: 2,
  maxAttempts,
});

/**
 * The backup workflow: Preflight → Dump → Record, and on any failure after preflight,
 * Cleanup → BackupFailed. The same definition runs on AWS and, through the CLI, locally.
 */
export class BackupWorkflow extends Construct implements Workflow {
  readonly stateMachine: sfn.StateMachine;
  /** Checks source and store, plans the dump (`lambdas/backup/preflight`). */
  readonly preflight: nodejs.NodejsFunction;
  /** Verifies the dump, writes its manifest, tags retention tiers (`lambdas/backup/record`). */
  readonly record: nodejs.NodejsFunction;
  /** Removes a failed attempt's objects (`lambdas/backup/cleanup`). */
  readonly cleanup: nodejs.NodejsFunction;
  readonly handlers: readonly nodejs.NodejsFunction[];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: WorkflowProps,
  ) {
    super(scope, id);
    const { functions } = props;
    this.preflight = functions.add('Preflight', {
      folder: 'backup/preflight',
      name: 'preflight',
      description: 'pgferry: checks source and store, plans a backup',
      timeout: Duration.minutes(2),
      connectsToDatabases: true,
      // Where the dump runs: the database's zone (core/deployment.ts taskPlacement).
      environment: { [TASK_SUBNETS_ENV]: props.pgTools.subnetsByZone },
    });
    this.record = functions.add('Record', {
      folder: 'backup/record',
      name: 'record',
      description: 'pgferry: verifies a dump, writes its manifest, tags retention tiers',
      timeout: Duration.minutes(5),
      environment: functions.retentionEnvironment,
    });
    this.cleanup = functions.add('Cleanup', {
      folder: 'backup/cleanup',
      name: 'cleanup',
      description: "pgferry: removes a failed backup's objects",
      timeout: Duration.minutes(5),
    });
    this.handlers = [this.preflight, this.record, this.cleanup];
    this.grantStore();

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
   * The functions' access to the store: all three read and write (the database's lease, the
   * manifest); only record tags (the retention tiers the lifecycle rules act on); preflight
   * deletes its write probe and stale leases, cleanup a failed attempt's objects. Record cannot
   * delete.
   */
  private grantStore(): void {
    const { store } = this.props;
    for (const fn of this.handlers) {
      store.grantReadBackups(fn);
      store.grantWriteBackups(fn);
    }
    store.grantTagBackups(this.record);
    store.grantDeleteBackups(this.preflight);
    store.grantDeleteBackups(this.cleanup);
  }

  /**
   * Validates the input, checks source and store, plans the dump and stores the plan (the job).
   * Output: the job's reference, the backup's ids and the task's size (`BackupState`). It is
   * given the execution's id, so that a retry of it gets its own lease back.
   */
  private buildPreflight(): tasks.LambdaInvoke {
    return lambdaStep(this, BACKUP_STATES.preflight, {
      fn: this.preflight,
      payload: sfn.TaskInput.fromObject({
        request: sfn.JsonPath.entirePayload,
        executionId: sfn.JsonPath.executionId,
      }),
      timeout: Duration.minutes(2),
    });
  }

  /** Runs the pg-tools container on the job; the result reaches Record through the store. */
  private buildDump(): tasks.EcsRunTask {
    return this.props.pgTools.runTaskState(
      this,
      BACKUP_STATES.dump,
      'dump',
      this.props.taskTimeout ?? DEFAULT_TASK_TIMEOUT,
      { placedByState: true },
    );
  }

  /**
   * Checks the stored objects against the runner's report and writes the manifest, last. Output
   * (the execution's): the backup in brief, naming its manifest (`BackupOutcome`).
   */
  private buildRecord(): tasks.LambdaInvoke {
    return lambdaStep(this, BACKUP_STATES.record, {
      fn: this.record,
      timeout: Duration.minutes(5),
      retries: [storeRetry(4)],
    });
  }

  /** Removes what the failed attempt wrote, then fails the execution with the first error. */
  private buildCleanup(): tasks.LambdaInvoke {
    const cleanup = lambdaStep(this, BACKUP_STATES.cleanup, {
      fn: this.cleanup,
      resultPath: '$.cleanup',
      timeout: Duration.minutes(5),
      retries: [storeRetry(6)],
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
