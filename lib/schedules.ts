import { Duration, RemovalPolicy, TimeZone } from 'aws-cdk-lib';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as targets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledge } from './nag';

/** A state machine started on a schedule. */
export interface ScheduledExecution {
  /** Names the schedule in the stack (unique). */
  readonly id: string;
  readonly description: string;
  readonly stateMachine: sfn.IStateMachine;
  /** EventBridge Scheduler cron fields, without `cron(...)`: `0 3 * * ? *`. */
  readonly cron: string;
  /** IANA time zone the cron expression is read in. */
  readonly timeZone: string;
  /**
   * How late the start may be, to spread load.
   * @default exactly on time
   */
  readonly flexibleWindow?: Duration;
  /** The execution input: ids and ARNs, never a secret. */
  readonly input: Record<string, unknown>;
}

export interface SchedulesProps {
  /**
   * How often a start that failed (throttling, a service error) is retried.
   * @default 3
   */
  readonly retryAttempts?: number;
  /**
   * How long a start may be retried for; then it goes to the dead-letter queue.
   * @default one hour
   */
  readonly maxEventAge?: Duration;
}

const DEFAULTS = { retryAttempts: 3, maxEventAge: Duration.hours(1) } as const;

/**
 * EventBridge Scheduler schedules that start pgferry's workflows (backups, verifies), in their
 * own schedule group, with retries and a dead-letter queue for starts that never happened.
 */
export class Schedules extends Construct {
  readonly group: scheduler.ScheduleGroup;
  /** Starts that failed after every retry: watched by an alarm (see Monitoring). */
  readonly deadLetterQueue: sqs.Queue;
  readonly schedules: scheduler.Schedule[] = [];

  constructor(
    scope: Construct,
    id: string,
    private readonly props: SchedulesProps = {},
  ) {
    super(scope, id);
    // Holds nothing once its schedules are gone: removed with the stack.
    this.group = new scheduler.ScheduleGroup(this, 'Group', { removalPolicy: RemovalPolicy.DESTROY });
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(
      this.deadLetterQueue,
      'AwsSolutions-SQS3',
      "this queue is the schedules' dead-letter queue (EventBridge Scheduler's, which cdk-nag cannot see)",
    );
  }

  /** Starts `execution.stateMachine` on its schedule. */
  add(execution: ScheduledExecution): scheduler.Schedule {
    const schedule = new scheduler.Schedule(this, execution.id, {
      description: execution.description,
      scheduleGroup: this.group,
      schedule: scheduler.ScheduleExpression.expression(
        `cron(${execution.cron})`,
        TimeZone.of(execution.timeZone),
      ),
      timeWindow:
        execution.flexibleWindow && execution.flexibleWindow.toMinutes() > 0
          ? scheduler.TimeWindow.flexible(execution.flexibleWindow)
          : scheduler.TimeWindow.off(),
      target: new targets.StepFunctionsStartExecution(execution.stateMachine, {
        input: scheduler.ScheduleTargetInput.fromObject(execution.input),
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: this.props.retryAttempts ?? DEFAULTS.retryAttempts,
        maxEventAge: this.props.maxEventAge ?? DEFAULTS.maxEventAge,
      }),
    });
    this.schedules.push(schedule);
    return schedule;
  }
}
