/** EventBridge Scheduler: per-database schedules that start backups and verifies, safely. */
import { Match } from 'aws-cdk-lib/assertions';
import { BackupRequestSchema, VerifyRequestSchema } from '../../../core/contracts';
import { minimalConfig, templateOf } from './fixtures';

const template = templateOf();

type ScheduleProperties = {
  ScheduleExpression: string;
  ScheduleExpressionTimezone: string;
  Target: { Arn: { Ref: string }; Input: { 'Fn::Join': [string, unknown[]] } } & Record<string, unknown>;
} & Record<string, unknown>;

function schedules(t = template): ScheduleProperties[] {
  return Object.values(t.findResources('AWS::Scheduler::Schedule')).map(
    (r) => (r as { Properties: ScheduleProperties }).Properties,
  );
}

/** A schedule's execution input, with the bucket's name made up. */
function inputOf(schedule: ScheduleProperties): unknown {
  const [sep, parts] = schedule.Target.Input['Fn::Join'];
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'pgferry-backups')).join(sep));
}

test('each backup schedule of each database is a cron schedule in its time zone', () => {
  expect(schedules().map((s) => [s.ScheduleExpression, s.ScheduleExpressionTimezone])).toEqual([
    // The example's server entry (analytics) first, then its databases'.
    ['cron(0 3 * * ? *)', 'UTC'],
    ['cron(0 2 * * ? *)', 'Europe/Berlin'],
    ['cron(0 14 ? * MON-FRI *)', 'Europe/Berlin'],
    ['cron(30 1 * * ? *)', 'UTC'],
  ]);
});

test("a database's schedules start the backup state machine, a server entry's the server backup's", () => {
  const [server, ...databases] = schedules();
  expect(server.Target.Arn.Ref).toMatch(/^ServerBackupStateMachine/);
  expect(databases).toHaveLength(3);
  for (const s of databases) expect(s.Target.Arn.Ref).toMatch(/^BackupStateMachine/);
});

test('schedules have a flexible window', () => {
  // shop's first schedule: the default window (the server entry's is 60 minutes).
  expect(schedules()[1].FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 15 });
  expect(schedules()[0].FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 60 });
});

test('a window of 0 minutes starts exactly on time', () => {
  const config = minimalConfig();
  const db = { ...config.databases[0], backupSchedules: [{ cron: '0 3 * * ? *', flexibleWindowMinutes: 0 }] };
  expect(schedules(templateOf({ ...config, databases: [db] }))[0].FlexibleTimeWindow).toEqual({
    Mode: 'OFF',
  });
});

test('failed starts are retried for an hour, then kept in the dead-letter queue', () => {
  for (const s of schedules()) {
    expect(s.Target).toMatchObject({
      RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
      DeadLetterConfig: { Arn: { 'Fn::GetAtt': [expect.stringMatching(/^SchedulesDeadLetters/), 'Arn'] } },
    });
  }
});

test('the dead-letter queue is encrypted and TLS-only', () => {
  template.hasResourceProperties('AWS::SQS::Queue', { SqsManagedSseEnabled: true });
  template.hasResourceProperties('AWS::SQS::QueuePolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  });
});

test("a backup schedule's input is a valid backup request naming the secret's ARN, never a password", () => {
  const input = inputOf(schedules()[1]);
  expect(BackupRequestSchema.safeParse(input).success).toBe(true);
  expect(input).toMatchObject({
    source: { passwordSecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf' },
    store: 's3://pgferry-backups/backups',
  });
  expect(JSON.stringify(input)).not.toMatch(/"password"/);
});

test('a verify schedule starts the verify state machine on the latest backup of its database', () => {
  const config = minimalConfig();
  const db = { ...config.databases[0], verifySchedule: { cron: '0 6 ? * SUN *' } };
  const verify = schedules(templateOf({ ...config, databases: [db] })).filter((s) =>
    s.Target.Arn.Ref.startsWith('VerifyStateMachine'),
  );
  expect(verify).toHaveLength(1);
  const input = inputOf(verify[0]);
  expect(VerifyRequestSchema.safeParse(input).success).toBe(true);
  expect(input).toEqual({ store: 's3://pgferry-backups/backups', backup: 'latest', name: 'shop' });
});
