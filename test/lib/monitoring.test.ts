/** Monitoring: the notification topic, the alarms, the notifications of executions, the dashboard. */
import { Match } from 'aws-cdk-lib/assertions';
import { backupCompletedMetricLine, metricsEnabled } from '../../core/metrics';
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

test('CloudWatch may use the topic key on behalf of this account only', () => {
  template.hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          Condition: { StringEquals: { 'aws:SourceAccount': '123456789012' } },
        }),
      ]),
    },
  });
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

test('metrics are published only in Lambda, never by the local CLI', () => {
  expect(metricsEnabled({})).toBe(false);
  expect(metricsEnabled({ AWS_LAMBDA_FUNCTION_NAME: 'Record' })).toBe(true);
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
  const rules = Object.values(template.findResources('AWS::Events::Rule')) as {
    Properties: { EventPattern: { detail: { stateMachineArn: { Ref: string }[]; status: string[] } } };
  }[];
  expect(rules).toHaveLength(4);
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
