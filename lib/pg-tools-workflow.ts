import { Duration } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import type { PgToolsTask } from './pg-tools-task';
import { pgferryStateMachine } from './state-machine';

export interface PgToolsWorkflowProps {
  /** What the workflow does, for the console. */
  readonly comment: string;
  /** The state names (the local executor binds its handlers by them). */
  readonly states: { readonly preflight: string; readonly task: string; readonly record: string };
  /** The pg-tools action the task runs (`PGFERRY_ACTION`). */
  readonly action: 'restore' | 'verify';
  /** Validates the input, plans and stores the plan: returns the state (`RestoreState`, `VerifyState`). */
  readonly preflightFunction: lambda.IFunction;
  /** Reads the report the task stored; returns the run in brief, naming the report, as the execution's output. */
  readonly recordFunction: lambda.IFunction;
  readonly pgTools: PgToolsTask;
  /**
   * The backup workflow, run (as a nested execution) before the task when the state has a
   * `safetyBackupRequest`: restores in `clean` mode back up their target first.
   * @default no safety backups
   */
  readonly safetyBackup?: { readonly stateName: string; readonly stateMachine: sfn.IStateMachine };
  /**
   * Longest the task may run.
   * @default 12 hours
   */
  readonly taskTimeout?: Duration;
}

/**
 * A workflow of three steps — Preflight (Lambda) → the pg-tools task (Fargate) → Record
 * (Lambda) — as used by restore and verify. Preflight refuses before anything is changed; the
 * task stores its report beside the backup; Record makes that report the output, or fails the
 * execution with the report's error.
 */
export class PgToolsWorkflow extends Construct {
  readonly stateMachine: sfn.StateMachine;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: PgToolsWorkflowProps,
  ) {
    super(scope, id);
    const task = this.buildTask();
    const record = this.buildRecord();
    // A failed task goes to Record too: it fails the execution with the report's error, which says
    // more than ECS's task description.
    task.addCatch(record, { resultPath: '$.error' });
    task.next(record);
    const definition = this.buildPreflight().next(this.buildSafetyBackup(task) ?? task);
    this.stateMachine = pgferryStateMachine(this, props.comment, definition);
  }

  private buildPreflight(): tasks.LambdaInvoke {
    return new tasks.LambdaInvoke(this, this.props.states.preflight, {
      lambdaFunction: this.props.preflightFunction,
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(2)),
      retryOnServiceExceptions: true,
    });
  }

  /** When preflight asks for it, a nested backup execution of the target, then the task. */
  private buildSafetyBackup(task: sfn.INextable & sfn.IChainable): sfn.IChainable | undefined {
    const safety = this.props.safetyBackup;
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
      this.props.states.task,
      this.props.action,
      this.props.taskTimeout ?? Duration.hours(12),
    );
  }

  private buildRecord(): tasks.LambdaInvoke {
    return new tasks.LambdaInvoke(this, this.props.states.record, {
      lambdaFunction: this.props.recordFunction,
      payloadResponseOnly: true,
      taskTimeout: sfn.Timeout.duration(Duration.minutes(2)),
      retryOnServiceExceptions: true,
    });
  }
}
