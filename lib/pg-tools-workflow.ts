import { Duration } from 'aws-cdk-lib';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { lambdaStep } from './lambda-step';
import {
  DEFAULT_TASK_TIMEOUT,
  pgferryStateMachine,
  type Workflow,
  type WorkflowProps,
} from './state-machine';

/** What makes a Preflight → pg-tools task → Record workflow restore or verify. */
export interface PgToolsWorkflowSpec {
  /** What the workflow does, for the console. */
  readonly comment: string;
  /** The state names (the local executor binds its handlers by them). */
  readonly states: {
    readonly preflight: string;
    readonly task: string;
    readonly record: string;
    /** With `cleanup`: its state's name. */
    readonly cleanup?: string;
  };
  /**
   * The workflow: the pg-tools action the task runs (`PGFERRY_ACTION`), and the folder of its
   * handlers (`lambdas/<workflow>/preflight`, `…/record`).
   */
  readonly workflow: 'restore' | 'verify';
  /**
   * What preflight does, for the console. It validates the input, plans and stores the plan, and
   * returns the state (`RestoreState`, `VerifyState`).
   */
  readonly preflightDescription: string;
  /**
   * Whether preflight connects to databases (`WorkflowFunctionSpec.connectsToDatabases`).
   * @default false
   */
  readonly preflightConnectsToDatabases?: boolean;
  /**
   * What Record does, for the console. It reads the report the task stored and returns the run
   * in brief, naming the report, as the execution's output.
   */
  readonly recordDescription: string;
  /**
   * The backup workflow, run (as a nested execution) before the task when the state has a
   * `safetyBackupRequest`: restores in `clean` mode back up their target first.
   * @default no safety backups
   */
  readonly safetyBackup?: { readonly stateName: string; readonly stateMachine: sfn.IStateMachine };
  /**
   * A step between a failed task and Record (`lambdas/<workflow>/cleanup`), for what a task killed
   * too hard to clean up leaves on the servers: it connects to databases (with the same logins as
   * preflight) and reads the store; its result goes to `$.cleanup`, its own error (caught: Record
   * runs whatever it did) to `$.cleanupError`. Named by `states.cleanup`.
   * @default none: a failed task goes straight to Record
   */
  readonly cleanup?: { readonly description: string };
}

/**
 * A workflow of three steps — Preflight (Lambda) → the pg-tools task (Fargate) → Record
 * (Lambda) — as used by restore and verify. Preflight refuses before anything is changed; the
 * task stores its report beside the backup; Record makes that report the output, or fails the
 * execution with the report's error. Both functions read the store; preflight also writes (the
 * run's job). Neither deletes.
 */
export abstract class PgToolsWorkflow extends Construct implements Workflow {
  readonly stateMachine: sfn.StateMachine;
  readonly preflight: nodejs.NodejsFunction;
  readonly record: nodejs.NodejsFunction;
  /** With `spec.cleanup`: the step after a failed task. */
  readonly cleanup?: nodejs.NodejsFunction;
  readonly handlers: readonly nodejs.NodejsFunction[];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: WorkflowProps,
    private readonly spec: PgToolsWorkflowSpec,
  ) {
    super(scope, id);
    // Construct ids `RestorePreflight`, `VerifyRecord`…; log services `pgferry-restore-preflight`….
    this.preflight = props.functions.add(`${id}Preflight`, {
      folder: `${spec.workflow}/preflight`,
      name: `${spec.workflow}-preflight`,
      description: spec.preflightDescription,
      connectsToDatabases: spec.preflightConnectsToDatabases,
      timeout: Duration.minutes(2),
    });
    this.record = props.functions.add(`${id}Record`, {
      folder: `${spec.workflow}/record`,
      name: `${spec.workflow}-record`,
      description: spec.recordDescription,
      timeout: Duration.minutes(2),
    });
    if (spec.cleanup) {
      // Where preflight runs, with its logins (`grantDatabaseLogins`): it connects to the target.
      this.cleanup = props.functions.add(`${id}Cleanup`, {
        folder: `${spec.workflow}/cleanup`,
        name: `${spec.workflow}-cleanup`,
        description: spec.cleanup.description,
        connectsToDatabases: true,
        timeout: Duration.minutes(2),
      });
    }
    this.handlers = [this.preflight, this.record, ...(this.cleanup ? [this.cleanup] : [])];
    props.store.grantReadBackups(this.preflight);
    props.store.grantWriteBackups(this.preflight);
    props.store.grantReadBackups(this.record);
    // The cleanup reads the run's job (the plan): it writes nothing to the store.
    if (this.cleanup) props.store.grantReadBackups(this.cleanup);

    const task = this.buildTask();
    const record = this.buildRecord();
    // A failed task goes to Record too (after the cleanup, if any): it fails the execution with
    // the report's error, which says more than ECS's task description.
    task.addCatch(this.buildCleanup(record) ?? record, { resultPath: '$.error' });
    task.next(record);
    const definition = this.buildPreflight().next(this.buildSafetyBackup(task) ?? task);
    this.stateMachine = pgferryStateMachine(this, spec.comment, definition);
  }

  private buildPreflight(): tasks.LambdaInvoke {
    return lambdaStep(this, this.spec.states.preflight, {
      fn: this.preflight,
      timeout: Duration.minutes(2),
    });
  }

  /** When preflight asks for it, a nested backup execution of the target, then the task. */
  private buildSafetyBackup(task: sfn.INextable & sfn.IChainable): sfn.IChainable | undefined {
    const safety = this.spec.safetyBackup;
    if (!safety) return undefined;
    const backup = new tasks.StepFunctionsStartExecution(this, safety.stateName, {
      stateMachine: safety.stateMachine,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      input: sfn.TaskInput.fromJsonPathAt('$.safetyBackupRequest'),
      associateWithParent: false,
      // With `startExecution.sync:2` the nested execution's output (a `BackupOutcome`) is JSON.
      resultSelector: { 'backupId.$': '$.Output.backupId' },
      resultPath: '$.safetyBackup',
      taskTimeout: sfn.Timeout.duration(Duration.hours(13)),
    });
    backup.next(task);
    return new sfn.Choice(this, `${safety.stateName}Needed`)
      .when(sfn.Condition.isPresent('$.safetyBackupRequest'), backup)
      .otherwise(task);
  }

  private buildTask(): tasks.EcsRunTask {
    return this.props.pgTools.runTaskState(
      this,
      this.spec.states.task,
      this.spec.workflow,
      this.props.taskTimeout ?? DEFAULT_TASK_TIMEOUT,
    );
  }

  /** The cleanup after a failed task, then Record, also when the cleanup itself fails. */
  private buildCleanup(record: tasks.LambdaInvoke): tasks.LambdaInvoke | undefined {
    const stateName = this.spec.states.cleanup;
    if (!this.cleanup || !stateName) return undefined;
    const cleanup = lambdaStep(this, stateName, {
      fn: this.cleanup,
      resultPath: '$.cleanup',
      timeout: Duration.minutes(2),
    });
    cleanup.addCatch(record, { resultPath: '$.cleanupError' });
    cleanup.next(record);
    return cleanup;
  }

  private buildRecord(): tasks.LambdaInvoke {
    return lambdaStep(this, this.spec.states.record, { fn: this.record, timeout: Duration.minutes(2) });
  }
}
