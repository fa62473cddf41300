/** The pg-tools Fargate task: its container, logs and least-privilege role (its images: pg-tools-image.test.ts). */
import { TASK_SUBNETS_ENV } from '../../../core/deployment';
import { CONTAINER_PG_BIN_DIRS } from '../../../lib/pg-tools-task';
import { allowedActionsOf, definitionOf, resourcesAllowed, templateOf } from './fixtures';

const template = templateOf();
const TASK_ROLE = 'PgToolsTaskDefinitionTaskRole';

function container(): Record<string, unknown> {
  const [taskDefinition] = Object.values(template.findResources('AWS::ECS::TaskDefinition')) as {
    Properties: { ContainerDefinitions: Record<string, unknown>[] };
  }[];
  return taskDefinition.Properties.ContainerDefinitions[0];
}

test('the pg-tools container knows where the client tools of every major are', () => {
  expect(container().Environment).toContainEqual({
    Name: 'PGFERRY_PG_BIN_DIRS',
    Value: CONTAINER_PG_BIN_DIRS,
  });
  // The rest (the stall timeout, the bindings): test/lib/runtime-bindings.test.ts.
  expect((container().Environment as { Name: string }[]).map((e) => e.Name).sort()).toEqual([
    'PGFERRY_BINDINGS',
    'PGFERRY_PG_BIN_DIRS',
    'PGFERRY_STALL_TIMEOUT_SECONDS',
  ]);
  expect(CONTAINER_PG_BIN_DIRS).toMatch(/^\/usr\/lib\/postgresql\/13\/bin:.*\/18\/bin$/);
});

test('the container runs on a read-only root file system with /tmp on a task volume', () => {
  expect(container()).toMatchObject({
    ReadonlyRootFilesystem: true,
    MountPoints: [{ ContainerPath: '/tmp', SourceVolume: 'tmp', ReadOnly: false }],
  });
  template.hasResourceProperties('AWS::ECS::TaskDefinition', { Volumes: [{ Name: 'tmp' }] });
});

test('the container logs to its own log group, kept for a month', () => {
  const [logGroup] = Object.keys(
    template.findResources('AWS::Logs::LogGroup', { Properties: { RetentionInDays: 30 } }),
  ).filter((id) => id.startsWith('PgToolsLogs'));
  expect(container().LogConfiguration).toMatchObject({
    LogDriver: 'awslogs',
    Options: { 'awslogs-group': { Ref: logGroup }, 'awslogs-stream-prefix': 'pg-tools' },
  });
});

test('the cluster has Container Insights', () => {
  template.hasResourceProperties('AWS::ECS::Cluster', {
    ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
  });
});

test("the task runs in the databases' VPC's private subnets, in the database clients security group", () => {
  const { Restore } = definitionOf(template, 'RestoreStateMachine').States;
  expect(Restore.Parameters?.NetworkConfiguration?.AwsvpcConfiguration).toEqual({
    Subnets: ['subnet-0a1b2c3d4e5f60711', 'subnet-0a1b2c3d4e5f60722'],
    SecurityGroups: [expect.stringMatching(/^NetworkDatabaseClients[0-9A-F]+\.GroupId$/)],
  });
  // A dump runs in the subnets its preflight chose among the same (test/unit/lib/fleet.test.ts).
  const { Dump } = definitionOf(template, 'BackupStateMachine').States;
  expect(Dump.Parameters?.NetworkConfiguration?.AwsvpcConfiguration).toEqual({
    'Subnets.$': '$.placement.subnets',
    SecurityGroups: [expect.stringMatching(/^NetworkDatabaseClients[0-9A-F]+\.GroupId$/)],
  });
  const [preflight] = Object.entries(template.findResources('AWS::Lambda::Function'))
    .filter(([id]) => id.startsWith('FunctionsPreflight'))
    .map(([, r]) => r as { Properties: { Environment: { Variables: Record<string, string> } } });
  const byZone = JSON.parse(preflight.Properties.Environment.Variables[TASK_SUBNETS_ENV]) as Record<
    string,
    string[]
  >;
  expect(Object.values(byZone).flat().sort()).toEqual([
    'subnet-0a1b2c3d4e5f60711',
    'subnet-0a1b2c3d4e5f60722',
  ]);
});

test('the task role may read and write backups, not tag or delete them', () => {
  const s3 = allowedActionsOf(template, TASK_ROLE).filter((a) => a.startsWith('s3:'));
  expect(s3).toEqual([
    's3:AbortMultipartUpload',
    's3:GetBucket*',
    's3:GetObject*',
    's3:List*',
    's3:PutObject',
  ]);
});

test("the task role's object access is limited to the backups/ prefix", () => {
  const objects = resourcesAllowed(template, TASK_ROLE, 's3:PutObject');
  expect(JSON.stringify(objects)).toMatch(/"\/backups\/\*"/);
  expect(JSON.stringify(objects)).not.toMatch(/"\/\*"/);
});

test("the task role may read exactly the configured databases', servers' and targets' password secrets", () => {
  expect(resourcesAllowed(template, TASK_ROLE, 'secretsmanager:GetSecretValue').sort()).toEqual([
    // The server entry's login (analytics): its members are backed up as any database.
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/analytics-StUvWx',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/billing-GhIjKl',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-pg17-MnOpQr',
  ]);
});
