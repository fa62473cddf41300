/** Monitoring: the notification topic, the alarms, the notifications of executions, the dashboard. */
import { Match } from 'aws-cdk-lib/assertions';
import { backupCompletedMetricLine, metricsEnabled } from '../../../core/metrics';
import { minimalConfig, templateOf } from './fixtures';

const template = templateOf();

function alarms(): Record<string, Record<string, unknown>> {
  return Object.fromEntries(
    Object.entries(template.findResources('AWS::CloudWatch::Alarm')).map(([id, r]) => [
      id,
      (r as { Properties: Record<string, unknown> }).Properties,
    ]),
  );
}

function noBackupAlarm(id: string): Record<string, unknown> {
  const [alarm] = Object.entries(alarms())
    .filter(([logicalId]) => logicalId.startsWith(`Monitoring${id}NoRecentBackup`))
    .map(([, a]) => a);
  return alarm;
}

test('the notification topic is encrypted with a KMS key and refuses requests without TLS', () => {
  template.hasResourceProperties('AWS::SNS::Topic', {
    KmsMasterKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^MonitoringKey'), 'Arn'] },
  });
  template.hasResourceProperties('AWS::SNS::TopicPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  });
});

interface PolicyStatement {
  Sid?: string;
  Effect: string;
  Principal?: { Service?: string; AWS?: unknown } | string;
  Action: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}
type Resource = { Type: string; Properties: Record<string, unknown> };
const resources = template.toJSON().Resources as Record<string, Resource>;

/** The statements of the policy of the topic with logical id `topic`. */
function topicStatements(topic: string): PolicyStatement[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::SNS::TopicPolicy')
    .filter((r) => (r.Properties.Topics as { Ref: string }[]).some((t) => t.Ref === topic))
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement);
}

/** The statements of the key policy of the key that encrypts the topic `topic`. */
function topicKeyStatements(topic: string): PolicyStatement[] {
  const keyId = (resources[topic].Properties.KmsMasterKeyId as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
  return (resources[keyId].Properties.KeyPolicy as { Statement: PolicyStatement[] }).Statement;
}

const allowsService = (s: PolicyStatement, service: string) =>
  s.Effect === 'Allow' && typeof s.Principal === 'object' && s.Principal.Service === service;

const sourceArns = (s: PolicyStatement): unknown[] => [s.Condition?.ArnEquals?.['aws:SourceArn']].flat();

test("every alarm action's topic lets CloudWatch publish for that alarm, in this account, and use the topic's key", () => {
  const alarmsWithActions = Object.values(resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
  expect(alarmsWithActions.length).toBeGreaterThanOrEqual(8);
  for (const alarm of alarmsWithActions) {
    const actions = alarm.Properties.AlarmActions as { Ref: string }[];
    expect(actions.length).toBeGreaterThan(0);
    const arn = `arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${alarm.Properties.AlarmName}`;
    for (const { Ref: topic } of actions) {
      const publish = topicStatements(topic).filter(
        (s) => allowsService(s, 'cloudwatch.amazonaws.com') && [s.Action].flat().includes('sns:Publish'),
      );
      expect(publish).toHaveLength(1);
      expect(publish[0].Condition?.StringEquals).toEqual({ 'aws:SourceAccount': '123456789012' });
      expect(sourceArns(publish[0])).toContain(arn);
      const key = topicKeyStatements(topic).filter((s) => allowsService(s, 'cloudwatch.amazonaws.com'));
      expect(key).toEqual([
        expect.objectContaining({
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          Condition: publish[0].Condition,
        }),
      ]);
    }
  }
});

test("CloudWatch may publish for this stack's alarms only: their exact ARNs, nothing else", () => {
  const names = Object.values(resources)
    .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
    .map((r) => `arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${r.Properties.AlarmName}`);
  const [topic] = Object.keys(resources).filter((id) => resources[id].Type === 'AWS::SNS::Topic');
  const [publish] = topicStatements(topic).filter((s) => allowsService(s, 'cloudwatch.amazonaws.com'));
  expect((sourceArns(publish) as string[]).sort()).toEqual(names.sort());
});

/** The notification rules: one per workflow, and one for the run-events announcer (lib/run-events.ts). */
function notificationRules() {
  return Object.entries(resources).filter(
    ([id, r]) => r.Type === 'AWS::Events::Rule' && id.startsWith('Monitoring'),
  );
}

test("every rule target's topic lets EventBridge publish for that rule only, and use the topic's key", () => {
  const rules = notificationRules();
  expect(rules).toHaveLength(6);
  for (const [ruleId, rule] of rules) {
    for (const target of rule.Properties.Targets as { Arn: { Ref: string } }[]) {
      const topic = target.Arn.Ref;
      const publish = topicStatements(topic).filter(
        (s) => allowsService(s, 'events.amazonaws.com') && [s.Action].flat().includes('sns:Publish'),
      );
      expect(publish).toHaveLength(1);
      expect(sourceArns(publish[0])).toContainEqual({ 'Fn::GetAtt': [ruleId, 'Arn'] });
      // SNS does not pass the rule to KMS: the key's grant has no source condition (AWS documents it).
      expect(topicKeyStatements(topic).filter((s) => allowsService(s, 'events.amazonaws.com'))).toEqual([
        expect.objectContaining({ Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] }),
      ]);
    }
  }
});

test('no statement lets EventBridge or CloudWatch publish without naming the source', () => {
  const [topic] = Object.keys(resources).filter((id) => resources[id].Type === 'AWS::SNS::Topic');
  for (const s of topicStatements(topic).filter((st) => st.Effect === 'Allow')) {
    expect(sourceArns(s).filter(Boolean).length).toBeGreaterThan(0);
  }
});

test('every rule target retries, then keeps the notification in a dead-letter queue that raises an alarm', () => {
  const rules = notificationRules();
  const queues = new Set<string>();
  for (const [ruleId, rule] of rules) {
    for (const target of rule.Properties.Targets as Record<string, unknown>[]) {
      expect(target).toMatchObject({
        RetryPolicy: { MaximumRetryAttempts: 20, MaximumEventAgeInSeconds: 86400 },
        DeadLetterConfig: {
          Arn: { 'Fn::GetAtt': [expect.stringMatching(/^MonitoringNotificationDeadLetters/), 'Arn'] },
        },
      });
      const queue = (target.DeadLetterConfig as { Arn: { 'Fn::GetAtt': [string] } }).Arn['Fn::GetAtt'][0];
      queues.add(queue);
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: queue }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'sqs:SendMessage',
              Principal: { Service: 'events.amazonaws.com' },
              Condition: { ArnEquals: { 'aws:SourceArn': { 'Fn::GetAtt': [ruleId, 'Arn'] } } },
            }),
          ]),
        },
      });
    }
  }
  for (const queue of queues) {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'Test-notification-dead-letters',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queue, 'QueueName'] } }],
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^MonitoringTopic') }],
    });
  }
});

test('the configured e-mail addresses are subscribed', () => {
  template.hasResourceProperties('AWS::SNS::Subscription', {
    Protocol: 'email',
    Endpoint: 'dba-oncall@example.com',
  });
});

test('each workflow has an alarm on failed, timed-out or aborted executions that notifies the topic', () => {
  const failed = Object.values(alarms()).filter((a) => /-failed$/.test(String(a.AlarmName)));
  expect(failed.map((a) => a.AlarmName).sort()).toEqual([
    'Test-backup-failed',
    'Test-migrate-failed',
    'Test-restore-failed',
    'Test-run-events-failed',
    'Test-serverBackup-failed',
    'Test-verify-failed',
  ]);
  for (const alarm of failed) {
    expect(alarm).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: expect.stringMatching(/^MonitoringTopic/) }],
    });
    expect(JSON.stringify(alarm.Metrics)).toMatch(/ExecutionsFailed.*ExecutionsTimedOut.*ExecutionsAborted/);
  }
});

test('each database has an alarm when no backup completed for its alarmAfterHours', () => {
  expect(noBackupAlarm('shop')).toMatchObject({
    Namespace: 'Pgferry',
    MetricName: 'LastCompleteBackupTimestamp',
    Dimensions: [{ Name: 'Database', Value: 'shop' }],
    Statistic: 'SampleCount',
    Period: 3600,
    EvaluationPeriods: 26,
    DatapointsToAlarm: 26,
    Threshold: 1,
    ComparisonOperator: 'LessThanThreshold',
    TreatMissingData: 'breaching',
    AlarmActions: [{ Ref: expect.stringMatching(/^MonitoringTopic/) }],
  });
  expect(noBackupAlarm('billing')).toMatchObject({ EvaluationPeriods: 30, DatapointsToAlarm: 30 });
});

test('the metric the record step publishes is the one the alarm watches', () => {
  const line = JSON.parse(
    backupCompletedMetricLine({
      database: 'shop',
      finishedAt: '2026-11-21T23:32:01.586Z',
      durationSeconds: 1.5,
      objects: [{ bytes: 10 }, { bytes: 5 }],
    } as never),
  );
  const alarm = noBackupAlarm('shop');
  const [directive] = line._aws.CloudWatchMetrics;
  expect(directive.Namespace).toBe(alarm.Namespace);
  expect(directive.Dimensions).toEqual([[(alarm.Dimensions as { Name: string }[])[0].Name]]);
  expect(directive.Metrics.map((m: { Name: string }) => m.Name)).toContain(alarm.MetricName);
  expect(line[alarm.MetricName as string]).toBe(Math.floor(Date.parse('2026-11-21T23:32:01.586Z') / 1000));
  expect(line.Database).toBe('shop');
});

test('metrics are published only on AWS, never by the local CLI', () => {
  expect(metricsEnabled({ onAws: false }, {})).toBe(false);
  expect(metricsEnabled({ onAws: true, bindings: { version: 1, bindings: [] } }, {})).toBe(true);
});

test('schedules that could not start raise an alarm', () => {
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    AlarmName: 'Test-schedule-dead-letters',
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Namespace: 'AWS/SQS',
    AlarmActions: [{ Ref: Match.stringLikeRegexp('^MonitoringTopic') }],
  });
});

test('failed, timed-out and aborted executions of each workflow are notified', () => {
  const rules = notificationRules().map(([, r]) => r) as unknown as {
    Properties: { EventPattern: { detail: { stateMachineArn: { Ref: string }[]; status: string[] } } };
  }[];
  expect(rules).toHaveLength(6);
  for (const rule of rules) {
    expect(rule.Properties.EventPattern.detail.status).toEqual(['FAILED', 'TIMED_OUT', 'ABORTED']);
  }
  template.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: {
      source: ['aws.states'],
      detail: { stateMachineArn: [{ Ref: Match.stringLikeRegexp('^BackupStateMachine') }] },
    },
    Targets: [
      Match.objectLike({
        Arn: { Ref: Match.stringLikeRegexp('^MonitoringTopic') },
        InputTransformer: Match.anyValue(),
      }),
    ],
  });
});

test('succeeded executions are notified only with notifyOnSuccess', () => {
  const t = templateOf(minimalConfig({ notifications: { notifyOnSuccess: true } }));
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { detail: { status: ['FAILED', 'TIMED_OUT', 'ABORTED', 'SUCCEEDED'] } },
  });
});

test('a dashboard shows the workflows and the backups', () => {
  const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as {
    Properties: { DashboardBody: unknown };
  }[];
  const body = JSON.stringify(dashboard.Properties.DashboardBody);
  expect(body).toContain('backup executions');
  expect(body).toContain('shop: backups');
  expect(body).toContain('billing: backups');
});
