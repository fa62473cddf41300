import { ArnFormat, Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  BACKUP_METRICS,
  DATABASE_DIMENSION,
  METRICS_NAMESPACE,
  SERVER_DIMENSION,
  SERVER_METRICS,
} from '../core/metrics';
import { acknowledge } from './nag';

export interface MonitoringProps {
  /**
   * E-mail addresses subscribed to the notification topic (each confirms once).
   * @default none: subscribe to the topic later
   */
  readonly emailAddresses?: readonly string[];
  /**
   * Also notify when an execution succeeds.
   * @default false: failures, time-outs and aborts only
   */
  readonly notifyOnSuccess?: boolean;
}

/** A database whose backups are watched. */
export interface WatchedDatabase {
  /** Names the alarm: letters, digits and dashes. */
  readonly id: string;
  /**
   * The catalog name its backups are filed under — the configured id — as the record step
   * publishes it (the metrics' `Database` dimension, core/metrics.ts).
   */
  readonly database: string;
  /** How long without a completed backup is too long. */
  readonly maxAge: Duration;
  /**
   * A nested stack to create the alarm in (a fleet's, lib/fleet.ts). Its alarm is then named
   * `<stack>-fleet-no-backup-<id>`, the topic accepts all such alarms by one ARN pattern, and the
   * dashboard shows the fleet in a few widgets instead of two per database (a dashboard holds 500).
   * @default this construct's stack: `<stack>-no-backup-<id>`, with widgets of its own
   */
  readonly nestedScope?: Construct;
}

/** The name of a nested stack's freshness alarms, after `<stack>-`: one pattern covers them all. */
const FLEET_ALARM_PREFIX = 'fleet-no-backup-';

/** How often the failed-executions alarm looks. */
const FAILURE_PERIOD = Duration.minutes(5);

/**
 * Watching pgferry, apart from what it watches: an SNS topic (KMS-encrypted, TLS only) that hears
 * of every failed execution (EventBridge, with the error and a console link) and every alarm; an
 * alarm per workflow on failed, timed-out or aborted executions; an alarm per database when no
 * backup has completed for too long (the `LastCompleteBackupTimestamp` metric the record step
 * publishes); an alarm on schedules that could not start; and a dashboard.
 *
 * Who may publish is said once, here: CloudWatch for this construct's alarms, EventBridge for
 * this construct's rules, each by ARN. The rules' deliveries that fail after retries go to a
 * dead-letter queue, which has an alarm of its own.
 */
export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly key: kms.Key;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** Notifications EventBridge could not deliver to the topic after its retries. */
  readonly notificationDeadLetters: sqs.Queue;
  private readonly alarmAction: cloudwatch.IAlarmAction;
  /** The alarms that may publish to the topic (their ARNs, in the topic's and the key's policy). */
  private readonly alarmArns: string[] = [];
  /** The rules that may publish to the topic (their ARNs, in the topic's policy). */
  private readonly ruleArns: string[] = [];
  /** Whether the fleet's alarms and widgets (those of nested stacks) have been added. */
  private fleetWatched = false;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: MonitoringProps = {},
  ) {
    super(scope, id);
    const stack = Stack.of(this);
    this.key = new kms.Key(this, 'Key', {
      description: 'pgferry: encrypts notifications',
      enableKeyRotation: true,
      // It encrypts messages in flight only: nothing is left to read once the topic is gone.
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'pgferry',
      masterKey: this.key,
      enforceSSL: true,
    });
    this.allowAlarmsToPublish();
    this.allowRulesToPublish();
    for (const email of props.emailAddresses ?? []) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }
    this.alarmAction = new cwActions.SnsAction(this.topic);
    this.notificationDeadLetters = new sqs.Queue(this, 'NotificationDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(
      this.notificationDeadLetters,
      'AwsSolutions-SQS3',
      "this queue is the notification rules' dead-letter queue (EventBridge's, which cdk-nag cannot see)",
    );
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${stack.stackName}-pgferry`,
      defaultInterval: Duration.days(7),
    });
    this.watchDeadLetterQueue(
      'NotificationDeadLettersAlarm',
      this.notificationDeadLetters,
      'notification-dead-letters',
      'pgferry: EventBridge could not deliver an execution notification to the topic; it is in the dead-letter queue',
    );
  }

  /**
   * CloudWatch alarms publish to the encrypted topic: the topic's policy and the key's allow the
   * CloudWatch service for this stack's alarms only (`aws:SourceArn`: their ARNs, built from their
   * names, so the policy does not depend on the alarms: no cycle), on behalf of this account.
   */
  private allowAlarmsToPublish(): void {
    const cloudwatchAlarms = new iam.ServicePrincipal('cloudwatch.amazonaws.com').withConditions({
      StringEquals: { 'aws:SourceAccount': Stack.of(this).account },
      ArnEquals: { 'aws:SourceArn': Lazy.list({ produce: () => this.alarmArns }) },
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsOfThisStackPublish',
        principals: [cloudwatchAlarms],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
      }),
    );
    this.key.grant(cloudwatchAlarms, 'kms:Decrypt', 'kms:GenerateDataKey*');
  }

  /**
   * The name of a new alarm, `<stack>-<suffix>`; its ARN joins those the topic accepts, or, for a
   * nested stack's alarm, the one pattern of them all (ArnEquals takes wildcards: the policies
   * stay the same size however many databases there are).
   */
  private alarmName(suffix: string, nested = false): string {
    const stack = Stack.of(this);
    const name = `${stack.stackName}-${suffix}`;
    const arn = (resourceName: string) =>
      stack.formatArn({
        service: 'cloudwatch',
        resource: 'alarm',
        resourceName,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
    if (!nested) this.alarmArns.push(arn(name));
    else if (!this.fleetWatched) {
      this.fleetWatched = true;
      this.alarmArns.push(arn(`${stack.stackName}-${FLEET_ALARM_PREFIX}*`));
      this.addFleetWidgets();
    }
    return name;
  }

  /**
   * The fleet's databases on the dashboard: every database's completed backups, durations and
   * stored bytes in three widgets (CloudWatch SEARCH over the `Database` dimension).
   */
  private addFleetWidgets(): void {
    const search = (metric: string, statistic: string, period: Duration, label: string) =>
      new cloudwatch.MathExpression({
        expression: `SEARCH('{${METRICS_NAMESPACE},${DATABASE_DIMENSION}} MetricName="${metric}"', '${statistic}', ${period.toSeconds()})`,
        label,
        usingMetrics: {},
        period,
      });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Backups completed per day, by database',
        width: 24,
        left: [search(BACKUP_METRICS.lastCompleteBackup, 'SampleCount', Duration.days(1), 'completed')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Backup duration (s), by database',
        width: 12,
        left: [search(BACKUP_METRICS.durationSeconds, 'Maximum', Duration.hours(1), 'duration')],
      }),
      new cloudwatch.GraphWidget({
        title: 'Stored bytes, by database',
        width: 12,
        left: [search(BACKUP_METRICS.storedBytes, 'Maximum', Duration.hours(1), 'stored bytes')],
      }),
    );
  }

  /**
   * EventBridge publishes for the rules of `watchWorkflow` only (their ARNs, filled in as they
   * are added). The key's grant to EventBridge has no source condition: SNS does not pass the
   * rule to KMS (AWS documents aws:SourceArn/aws:SourceAccount as unsupported there), and the
   * topic's policy already limits who publishes.
   */
  private allowRulesToPublish(): void {
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'PgferryRulesPublish',
        principals: [new iam.ServicePrincipal('events.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { ArnEquals: { 'aws:SourceArn': Lazy.list({ produce: () => this.ruleArns }) } },
      }),
    );
    this.key.grant(new iam.ServicePrincipal('events.amazonaws.com'), 'kms:Decrypt', 'kms:GenerateDataKey*');
  }

  /**
   * The topic as a rule's target, with retries and the dead-letter queue. Unlike
   * `aws-events-targets.SnsTopic`, it does not allow every EventBridge rule to publish: the topic
   * policy names the rule.
   */
  private notificationTarget(message: events.RuleTargetInput): events.IRuleTarget {
    return {
      bind: (rule) => {
        this.ruleArns.push(events.CfnRule.arnForRule(rule));
        eventTargets.addToDeadLetterQueueResourcePolicy(rule, this.notificationDeadLetters);
        return {
          ...eventTargets.bindBaseTargetConfig({
            deadLetterQueue: this.notificationDeadLetters,
            retryAttempts: 20,
            maxEventAge: Duration.hours(24),
          }),
          arn: this.topic.topicArn,
          input: message,
          targetResource: this.topic,
        };
      },
    };
  }

  /**
   * Watches a workflow: each failed, timed-out or aborted execution is notified (and succeeded
   * ones with `notifyOnSuccess`), an alarm goes off when executions fail, and the dashboard shows
   * its executions.
   */
  watchWorkflow(name: string, stateMachine: sfn.IStateMachine): cloudwatch.Alarm {
    const statuses = ['FAILED', 'TIMED_OUT', 'ABORTED', ...(this.props.notifyOnSuccess ? ['SUCCEEDED'] : [])];
    new events.Rule(this, `${name}Executions`, {
      description: `pgferry ${name}: notifies of finished executions`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [stateMachine.stateMachineArn], status: statuses },
      },
      targets: [this.notificationTarget(executionMessage(name))],
    });

    const period = FAILURE_PERIOD;
    const failed = new cloudwatch.MathExpression({
      label: `${name} executions failed, timed out or aborted`,
      expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
      usingMetrics: {
        failed: stateMachine.metricFailed({ period }),
        timedOut: stateMachine.metricTimedOut({ period }),
        aborted: stateMachine.metricAborted({ period }),
      },
      period,
    });
    const alarm = this.addAlarm(
      failed.createAlarm(this, `${name}Failed`, {
        alarmName: this.alarmName(`${name}-failed`),
        alarmDescription: `pgferry: ${name} executions failed, timed out or were aborted; the notification of each names the error`,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: `${name} executions`,
        width: 12,
        left: [
          stateMachine.metricStarted({ period: Duration.hours(1) }),
          stateMachine.metricSucceeded({ period: Duration.hours(1) }),
          stateMachine.metricFailed({ period: Duration.hours(1) }),
          stateMachine.metricTimedOut({ period: Duration.hours(1) }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: `${name} execution time`,
        width: 12,
        left: [stateMachine.metricTime({ statistic: 'Maximum', period: Duration.hours(1) })],
      }),
    );
    return alarm;
  }

  /**
   * Alarms when no backup of a database has completed for `maxAge` (whole hours, at most 7 days):
   * that many hourly periods in a row in which the record step published no
   * `LastCompleteBackupTimestamp` for it. Until its first backup completes, the alarm is in ALARM.
   */
  watchBackups(watched: WatchedDatabase): cloudwatch.Alarm {
    const { id, database, maxAge, nestedScope } = watched;
    const hours = maxAge.toHours();
    const completed = this.backupMetric(database, BACKUP_METRICS.lastCompleteBackup, {
      statistic: 'SampleCount',
      period: Duration.hours(1),
    });
    const alarm = this.addAlarm(
      completed.createAlarm(nestedScope ?? this, `${id}NoRecentBackup`, {
        alarmName: nestedScope
          ? this.alarmName(`${FLEET_ALARM_PREFIX}${id}`, true)
          : this.alarmName(`no-backup-${id}`),
        alarmDescription: `pgferry: no backup of database ${database} has completed for ${hours} hours`,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: hours,
        datapointsToAlarm: hours,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    if (nestedScope) return alarm;
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: `${database}: backups`,
        width: 12,
        left: [completed.with({ period: Duration.days(1), label: 'completed per day' })],
        right: [
          this.backupMetric(database, BACKUP_METRICS.durationSeconds, {
            statistic: 'Maximum',
            label: 'duration (s)',
          }),
        ],
      }),
      new cloudwatch.GraphWidget({
        title: `${database}: stored bytes`,
        width: 12,
        left: [this.backupMetric(database, BACKUP_METRICS.storedBytes, { statistic: 'Maximum' })],
      }),
    );
    return alarm;
  }

  /**
   * A server entry's alarms. Its databases are found at run time, so no alarm can be made per
   * database at deploy time; the server-backup workflow publishes per server (dimension `Server`)
   * what those alarms would watch: databases found that have no fresh backup (a failed member
   * whose newest complete backup is older than `maxAge`), databases that disappeared since the
   * previous set, and each recorded set — whose absence for `maxAge` means nothing ran at all.
   * Each member's own `LastCompleteBackupTimestamp` (dimension `Database`: `<id>.<database>`) is
   * published by the backup workflow as for any database, and graphed by the fleet's widgets.
   */
  watchServer(watched: { id: string; maxAge: Duration; nestedScope?: Construct }): cloudwatch.Alarm[] {
    const { id, maxAge, nestedScope } = watched;
    const hours = maxAge.toHours();
    const metric = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { [SERVER_DIMENSION]: id },
        statistic,
        period: Duration.hours(1),
      });
    const name = (suffix: string) =>
      nestedScope
        ? this.alarmName(`${FLEET_ALARM_PREFIX}${id}-${suffix}`, true)
        : this.alarmName(`server-${id}-${suffix}`);
    const scope = nestedScope ?? this;
    const atLeastOne = {
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };
    return [
      this.addAlarm(
        metric(SERVER_METRICS.databasesStale, 'Maximum').createAlarm(scope, `${id}StaleDatabases`, {
          alarmName: name('stale'),
          alarmDescription: `pgferry: databases of server ${id} have had no complete backup for ${hours} hours (the server's set names them as failed)`,
          ...atLeastOne,
        }),
      ),
      this.addAlarm(
        metric(SERVER_METRICS.databasesDisappeared, 'Maximum').createAlarm(
          scope,
          `${id}DatabasesDisappeared`,
          {
            alarmName: name('disappeared'),
            alarmDescription: `pgferry: databases of server ${id} that its previous backup set had are gone from the server (dropped, renamed or no longer connectable); the set manifest's "disappeared" names them`,
            ...atLeastOne,
          },
        ),
      ),
      this.addAlarm(
        metric(SERVER_METRICS.lastSetRecorded, 'SampleCount').createAlarm(scope, `${id}NoRecentSet`, {
          alarmName: name('no-set'),
          alarmDescription: `pgferry: no backup set of server ${id} has been recorded for ${hours} hours`,
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: hours,
          datapointsToAlarm: hours,
          treatMissingData: cloudwatch.TreatMissingData.BREACHING,
        }),
      ),
    ];
  }

  /** Alarms when a scheduled start could not happen after its retries (a message in the queue). */
  watchScheduleDeadLetters(queue: sqs.IQueue): cloudwatch.Alarm {
    return this.watchDeadLetterQueue(
      'ScheduleDeadLetters',
      queue,
      'schedule-dead-letters',
      'pgferry: a scheduled execution could not be started; its request is in the dead-letter queue',
    );
  }

  private watchDeadLetterQueue(
    id: string,
    queue: sqs.IQueue,
    name: string,
    description: string,
  ): cloudwatch.Alarm {
    return this.addAlarm(
      queue
        .metricApproximateNumberOfMessagesVisible({ period: FAILURE_PERIOD, statistic: 'Maximum' })
        .createAlarm(this, id, {
          alarmName: this.alarmName(name),
          alarmDescription: description,
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
    );
  }

  private addAlarm(alarm: cloudwatch.Alarm): cloudwatch.Alarm {
    alarm.addAlarmAction(this.alarmAction);
    this.alarms.push(alarm);
    return alarm;
  }

  private backupMetric(
    database: string,
    metricName: string,
    options: cloudwatch.MetricOptions,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName,
      dimensionsMap: { [DATABASE_DIMENSION]: database },
      ...options,
    });
  }
}

/** The notification of a finished execution: what, how it ended, why, and where to look. */
function executionMessage(workflow: string): events.RuleTargetInput {
  const field = (p: string) => events.EventField.fromPath(p);
  return events.RuleTargetInput.fromText(
    [
      `pgferry ${workflow}: execution ${field('$.detail.name')} ${field('$.detail.status')}.`,
      `Error: ${field('$.detail.error')}`,
      `Cause: ${field('$.detail.cause')}`,
      `Execution: https://console.aws.amazon.com/states/home?region=${field('$.region')}#/v2/executions/details/${field('$.detail.executionArn')}`,
    ].join('\n'),
  );
}
