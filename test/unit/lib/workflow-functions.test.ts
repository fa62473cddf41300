/** The Lambda handlers: runtime, tracing, logs, network placement and least-privilege roles. */
import { formatRetentionPolicy, RETENTION_ENV } from '../../../core/retention';
import { EXAMPLE_CONFIG_PATH, loadConfig } from '../../../lib/config';
import { allowedActionsOf, resourcesAllowed, templateOf } from './fixtures';

const template = templateOf();

type LambdaProperties = Record<string, unknown> & {
  Environment: { Variables: Record<string, string> };
  VpcConfig?: unknown;
};

/** pgferry's handlers (not CDK's own custom-resource function), by logical id. */
function functionsBy(prefix = 'Functions'): Record<string, LambdaProperties> {
  const all = template.findResources('AWS::Lambda::Function') as Record<
    string,
    { Properties: LambdaProperties }
  >;
  return Object.fromEntries(
    Object.entries(all)
      .filter(([id]) => id.startsWith(prefix))
      .map(([id, r]) => [id, r.Properties]),
  );
}

function functionNamed(name: string): LambdaProperties {
  const [properties] = Object.values(functionsBy(`Functions${name}`));
  return properties;
}

test('every handler runs on Node.js 22 on arm64', () => {
  for (const fn of Object.values(functionsBy())) {
    expect(fn).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'] });
  }
});

test('every handler is traced with X-Ray', () => {
  for (const fn of Object.values(functionsBy())) expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
});

test('every handler logs to its own log group, kept for a month', () => {
  const groups = template.findResources('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 30 } });
  for (const fn of Object.values(functionsBy())) {
    const ref = (fn.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(Object.keys(groups)).toContain(ref);
  }
});

test('every handler runs in the VPC: those that connect to databases as database clients, the others as AWS API clients', () => {
  const groupOf = (fn: LambdaProperties) =>
    (fn.VpcConfig as { SecurityGroupIds: { 'Fn::GetAtt': [string] }[] }).SecurityGroupIds.map((g) =>
      g['Fn::GetAtt'][0].replace(/[0-9A-F]{8}$/, ''),
    );
  const byGroup: Record<string, string[]> = {};
  for (const [id, fn] of Object.entries(functionsBy())) {
    for (const group of groupOf(fn))
      byGroup[group] = [...(byGroup[group] ?? []), id.replace(/[0-9A-F]{8}$/, '')];
  }
  expect(Object.values(byGroup).flat()).toHaveLength(Object.keys(functionsBy()).length);
  expect(byGroup.NetworkDatabaseClients.sort()).toEqual([
    'FunctionsMigratePreflight',
    'FunctionsMigrateSteps',
    'FunctionsPreflight',
    'FunctionsRestoreCleanup',
    'FunctionsRestorePreflight',
    'FunctionsServerList',
  ]);
  expect(byGroup.NetworkAwsApiClients.sort()).toEqual([
    'FunctionsApi',
    'FunctionsBackupsWidget',
    'FunctionsCleanup',
    'FunctionsRecord',
    'FunctionsRestoreRecord',
    'FunctionsRunEventsDescribe',
    'FunctionsRunbookRequest',
    'FunctionsServerRecord',
    'FunctionsVerifyPreflight',
    'FunctionsVerifyRecord',
  ]);
});

test('the migration steps record backups with the same retention policy as the record step', () => {
  expect(functionNamed('MigrateSteps').Environment.Variables[RETENTION_ENV]).toBe(
    functionNamed('Record').Environment.Variables[RETENTION_ENV],
  );
});

test('handlers in the VPC use the database clients security group and trust the Amazon RDS CAs', () => {
  expect(functionNamed('Preflight')).toMatchObject({
    VpcConfig: {
      SecurityGroupIds: [{ 'Fn::GetAtt': [expect.stringMatching(/^NetworkDatabaseClients/), 'GroupId'] }],
    },
  });
  expect(functionNamed('Preflight').Environment.Variables.NODE_EXTRA_CA_CERTS).toBe(
    '/var/runtime/ca-cert.pem',
  );
});

test('the record step gets the retention policy it tags backups by', () => {
  const policy = loadConfig(EXAMPLE_CONFIG_PATH).retention;
  expect(functionNamed('Record').Environment.Variables[RETENTION_ENV]).toBe(formatRetentionPolicy(policy));
});

test('the record step cannot delete backups', () => {
  expect(
    allowedActionsOf(template, 'FunctionsRecordServiceRole').filter((a) => a.startsWith('s3:Delete')),
  ).toEqual([]);
});

test("restore and verify handlers never delete: the preflights write their jobs, restore's record a safety backup's id", () => {
  const s3 = (role: string) =>
    allowedActionsOf(template, `${role}ServiceRole`).filter((a) => a.startsWith('s3:'));
  for (const role of ['FunctionsVerifyPreflight', 'FunctionsRestorePreflight', 'FunctionsRestoreRecord']) {
    expect(s3(role)).toContain('s3:PutObject');
    expect(s3(role).filter((a) => a.startsWith('s3:Delete'))).toEqual([]);
  }
  expect(s3('FunctionsVerifyRecord')).toEqual(['s3:GetBucket*', 's3:GetObject*', 's3:List*']);
});

test("preflight may read exactly the configured databases', servers' and targets' password secrets", () => {
  expect(
    resourcesAllowed(template, 'FunctionsPreflightServiceRole', 'secretsmanager:GetSecretValue').sort(),
  ).toEqual([
    // The server entry's login (analytics): its members are backed up as any database.
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/analytics-StUvWx',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/billing-GhIjKl',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-pg17-MnOpQr',
  ]);
});

test('handlers that do not connect to databases cannot read password secrets', () => {
  for (const role of ['FunctionsRecord', 'FunctionsCleanup', 'FunctionsVerifyPreflight']) {
    expect(allowedActionsOf(template, `${role}ServiceRole`)).not.toContain('secretsmanager:GetSecretValue');
  }
});
