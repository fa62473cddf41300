/**
 * A server entry (`servers[]`, issue 16): its schedule starts the server-backup state machine,
 * whose Map's concurrency is the entry's `maxConcurrency`; the workflow may start only the backup
 * workflow, its listing function reaches only the server entries' secrets; the server's alarms
 * (databases without a fresh backup, databases that disappeared, no set recorded); its retention
 * and per-database retention reach the record step and the lifecycle; and the configuration's
 * refusals.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { memberCatalogName } from '../../../core/bindings';
import { deploymentOf, retentionFor, TASK_SUBNETS_ENV, taskPlacement } from '../../../core/deployment';
import { DEFAULT_RETENTION } from '../../../core/retention';
import { type PgferryConfigInput, parseConfig } from '../../../lib/config';
import { ACCOUNT, minimalConfig, REGION, synthesize } from './fixtures';

const base = minimalConfig();
const secret = (name: string) => `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${name}-AbCdEf`;
const servers: NonNullable<PgferryConfigInput['servers']> = [
  {
    id: 'main',
    connection: {
      host: 'main.abc.eu-west-1.rds.amazonaws.com',
      database: 'postgres',
      user: 'backup',
      passwordSecretArn: secret('main'),
    },
    network: { securityGroupId: 'sg-0123456789abcdef1' },
    databases: 'all',
    exclude: ['scratch'],
    maxConcurrency: 6,
    availabilityZone: 'eu-west-1b',
    backupSchedules: [{ cron: '0 2 * * ? *', flexibleWindowMinutes: 30 }],
    retention: { keepDaily: 14 },
    databaseRetention: { audit: { keepMonthly: 3, keepDaily: 30 } },
  },
  {
    id: 'crm',
    connection: {
      host: 'crm.abc.eu-west-1.rds.amazonaws.com',
      database: 'postgres',
      user: 'backup',
      passwordSecretArn: secret('crm'),
    },
    network: { securityGroupId: 'sg-0123456789abcdef2' },
    databases: ['contacts', 'deals'],
    backupSchedules: [{ cron: '0 3 * * ? *' }],
  },
];
const config: PgferryConfigInput = { ...base, servers };
const { stack } = synthesize(config);
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;
const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(construct.node.defaultChild as never);

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
/** Every Allow statement of the policies attached to the role `roleId`. */
function statementsOf(roleId: string): Statement[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .filter((r) => (r.Properties.Roles as { Ref: string }[]).some((role) => role.Ref === roleId))
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .filter((s) => s.Effect === 'Allow');
}
const actions = (s: Statement) => [s.Action].flat();
/** A schedule's input, its tokens (the store's bucket) as placeholders. */
function inputOf(value: unknown): Record<string, unknown> {
  if (typeof value === 'string') return JSON.parse(value);
  const [, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join(''));
}

test("a server entry's schedule starts the server-backup workflow with its id, selection and concurrency", () => {
  const schedules = template.findResources('AWS::Scheduler::Schedule', {
    Properties: { Description: Match.stringLikeRegexp('every database of main') },
  });
  const [schedule] = Object.values(schedules) as {
    Properties: { Target: { Arn: unknown; Input: unknown } };
  }[];
  expect(schedule.Properties.Target.Arn).toEqual({ Ref: logicalId(stack.serverBackup.stateMachine) });
  const input = inputOf(schedule.Properties.Target.Input);
  expect(input).toMatchObject({
    name: 'main',
    source: {
      host: 'main.abc.eu-west-1.rds.amazonaws.com',
      database: 'postgres',
      passwordSecretArn: secret('main'),
    },
    selection: { include: [], exclude: ['scratch'] },
    parallel: 6,
    origin: 'scheduled',
    staleAfterHours: 26,
  });
  expect(JSON.stringify(input)).not.toMatch(/password"/i);
  // A list of databases is the selection's include.
  const crm = Object.values(
    template.findResources('AWS::Scheduler::Schedule', {
      Properties: { Description: Match.stringLikeRegexp('every database of crm') },
    }),
  ) as { Properties: { Target: { Input: unknown } } }[];
  expect(inputOf(crm[0].Properties.Target.Input).selection).toEqual({
    include: ['contacts', 'deals'],
    exclude: [],
  });
});

test("the Map's maximum concurrency is the request's parallel: each nested backup a startExecution.sync:2", () => {
  const definition = JSON.stringify(
    stack.resolve(
      (stack.serverBackup.stateMachine.node.defaultChild as unknown as { definitionString: unknown })
        .definitionString,
    ),
  );
  expect(definition).toContain('\\"MaxConcurrencyPath\\":\\"$.parallel\\"');
  expect(definition).toContain('states:startExecution.sync:2');
  expect(definition).toContain('\\"ItemsPath\\":\\"$.members\\"');
});

test('the server-backup workflow may start only the backup workflow, and invoke only its own two functions', () => {
  const role = stack.getLogicalId(stack.serverBackup.stateMachine.role.node.defaultChild as never);
  const statements = statementsOf(role);
  const starts = statements.filter((s) => actions(s).some((a) => a.startsWith('states:StartExecution')));
  expect(starts).toHaveLength(1);
  expect(starts[0].Resource).toEqual({ Ref: logicalId(stack.backup.stateMachine) });
  const invokes = statements.filter((s) => actions(s).includes('lambda:InvokeFunction'));
  const invoked = JSON.stringify(invokes.map((s) => s.Resource));
  expect(invoked).toContain(logicalId(stack.serverBackup.list));
  expect(invoked).toContain(logicalId(stack.serverBackup.record));
  for (const fn of [stack.backup.preflight, stack.backup.record, stack.restore.preflight]) {
    expect(invoked).not.toContain(logicalId(fn));
  }
  // No secret, no store, no task: it only starts, waits and invokes.
  expect(statements.flatMap(actions).filter((a) => /^(secretsmanager|s3|ecs):/.test(a))).toEqual([]);
});

test("the listing function reads only the server entries' secrets; the dumps' preflight and task read them too", () => {
  const secretReads = (roleId: string) =>
    statementsOf(roleId)
      .filter((s) => actions(s).includes('secretsmanager:GetSecretValue'))
      .flatMap((s) => [s.Resource].flat());
  const listRole = stack.getLogicalId(stack.serverBackup.list.role?.node.defaultChild as never);
  expect(secretReads(listRole).sort()).toEqual([secret('crm'), secret('main')].sort());
  const preflightRole = stack.getLogicalId(stack.backup.preflight.role?.node.defaultChild as never);
  expect(secretReads(preflightRole)).toEqual(
    expect.arrayContaining([secret('main'), secret('crm'), secret('shop')]),
  );
  // The record step of sets reads and writes the store, never a secret.
  const recordRole = stack.getLogicalId(stack.serverBackup.record.role?.node.defaultChild as never);
  expect(secretReads(recordRole)).toEqual([]);
});

test("a server's alarms: databases without a fresh backup, databases that disappeared, no set recorded", () => {
  const alarm = (name: string) =>
    Object.values(template.findResources('AWS::CloudWatch::Alarm', { Properties: { AlarmName: name } }))[0] as
      | { Properties: Record<string, unknown> }
      | undefined;
  expect(alarm('Test-server-main-disappeared')?.Properties).toMatchObject({
    MetricName: 'DatabasesDisappeared',
    Namespace: 'Pgferry',
    Dimensions: [{ Name: 'Server', Value: 'main' }],
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    Threshold: 1,
    AlarmActions: [{ Ref: expect.stringMatching(/^MonitoringTopic/) }],
  });
  expect(alarm('Test-server-main-stale')?.Properties).toMatchObject({
    MetricName: 'DatabasesWithoutFreshBackup',
    Dimensions: [{ Name: 'Server', Value: 'main' }],
  });
  expect(alarm('Test-server-main-no-set')?.Properties).toMatchObject({
    MetricName: 'LastSetRecordedTimestamp',
    EvaluationPeriods: 26,
    TreatMissingData: 'breaching',
  });
  expect(alarm('Test-server-crm-disappeared')).toBeDefined();
});

test("a server's retention and its databases' own reach the record step (bindings) and the lifecycle", () => {
  const deployment = deploymentOf(stack.functions.encodedBindings);
  expect(retentionFor(memberCatalogName('main', 'shop'), DEFAULT_RETENTION, deployment)).toEqual({
    ...DEFAULT_RETENTION,
    keepDaily: 14,
  });
  expect(retentionFor(memberCatalogName('main', 'audit'), DEFAULT_RETENTION, deployment)).toEqual({
    ...DEFAULT_RETENTION,
    keepDaily: 30,
    keepMonthly: 3,
  });
  // A server without a policy: the deployment's. The database entry keeps its own name.
  expect(retentionFor(memberCatalogName('crm', 'deals'), DEFAULT_RETENTION, deployment)).toBe(
    DEFAULT_RETENTION,
  );
  // The members' dumps run in the server's zone.
  const env = {
    [TASK_SUBNETS_ENV]: JSON.stringify({ 'eu-west-1a': ['subnet-a'], 'eu-west-1b': ['subnet-b'] }),
  };
  expect(taskPlacement(memberCatalogName('main', 'shop'), env, deployment)).toEqual({
    subnets: ['subnet-b'],
  });
  // audit's three monthlies (~90 days) keep the monthly tier out of Glacier Instant Retrieval.
  const [bucket] = Object.values(
    template.findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: Match.anyValue() } }),
  ) as { Properties: { LifecycleConfiguration: { Rules: { Id: string; Transitions?: unknown[] }[] } } }[];
  const monthly = bucket.Properties.LifecycleConfiguration.Rules.find((r) => r.Id === 'pgferry-monthly');
  expect(monthly?.Transitions).toEqual([{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }]);
});

test('a database entry on a server entry, a second entry for a server, and a burst over maxConcurrentTasks are refused', () => {
  const [shop] = base.databases ?? [];
  const onMain = {
    ...shop,
    id: 'dup',
    connection: { ...shop.connection, host: 'main.abc.eu-west-1.rds.amazonaws.com' },
  };
  expect(() => parseConfig({ ...config, databases: [shop, onMain] })).toThrow(
    /databases\.1\.connection: main\.abc\.eu-west-1\.rds\.amazonaws\.com:5432 is the server entry servers\.0/,
  );
  expect(() =>
    parseConfig({ ...config, servers: [servers[0], { ...servers[1], connection: servers[0].connection }] }),
  ).toThrow(/servers\.1\.connection: .* is already servers\.0/);
  // 1 database schedule + 6 + 4 = 11 tasks at once.
  expect(() => parseConfig({ ...config, tasks: { maxConcurrentTasks: 10 } })).toThrow(
    /tasks\.maxConcurrentTasks: the schedules could run 11 tasks at once/,
  );
  expect(parseConfig({ ...config, tasks: { maxConcurrentTasks: 11 } }).tasks.maxConcurrentTasks).toBe(11);
  expect(() => parseConfig({ ...config, servers: [{ ...servers[1], include: ['x*'] }] })).toThrow(
    /servers\.0\.include: include patterns select among "all" databases/,
  );
});
