import { Duration, RemovalPolicy, Stack, TimeZone } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
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
 * Every schedule starts its executions as one role of this construct's stack — also schedules
 * placed in nested stacks (a fleet's, lib/fleet.ts), which then hold no role of their own.
 */
export class Schedules extends Construct {
  readonly group: scheduler.ScheduleGroup;
  /** The role every schedule assumes: may start the scheduled state machines and dead-letter. */
  readonly role: iam.Role;
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
    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      description: "pgferry's schedules: start the scheduled workflows",
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account, 'aws:SourceArn': this.group.scheduleGroupArn },
        },
      }),
    });
    acknowledge(
      this.deadLetterQueue,
      'AwsSolutions-SQS3',
      "this queue is the schedules' dead-letter queue (EventBridge Scheduler's, which cdk-nag cannot see)",
    );
  }

  /**
   * Starts `execution.stateMachine` on its schedule. The schedule is a child of `scope` (a
   * fleet's nested stack), else of this construct.
   */
  add(execution: ScheduledExecution, scope: Construct = this): scheduler.Schedule {
    const schedule = new scheduler.Schedule(scope, execution.id, {
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
        role: this.role,
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: this.props.retryAttempts ?? DEFAULTS.retryAttempts,
        maxEventAge: this.props.maxEventAge ?? DEFAULTS.maxEventAge,
      }),
    });
    this.schedules.push(schedule);
    return schedule;
  }
}
