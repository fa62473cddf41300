/** The pg-tools Fargate task: its container, logs and least-privilege role; and its image. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../../lib/paths';
import { CONTAINER_PG_BIN_DIRS } from '../../lib/pg-tools-task';
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
  expect(container().Environment).toEqual([{ Name: 'PGFERRY_PG_BIN_DIRS', Value: CONTAINER_PG_BIN_DIRS }]);
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

test('the task runs in private subnets, in the database clients security group', () => {
  const { Dump } = definitionOf(template, 'BackupStateMachine').States;
  expect(Dump.Parameters?.NetworkConfiguration?.AwsvpcConfiguration).toEqual({
    Subnets: [
      expect.stringMatching(/^NetworkVpcPrivateSubnet1/),
      expect.stringMatching(/^NetworkVpcPrivateSubnet2/),
    ],
    SecurityGroups: [expect.stringMatching(/^NetworkDatabaseClients[0-9A-F]+\.GroupId$/)],
  });
});

test('the task role may read and write backups but not delete them', () => {
  const s3 = allowedActionsOf(template, TASK_ROLE).filter((a) => a.startsWith('s3:'));
  expect(s3).toEqual(expect.arrayContaining(['s3:GetObject*', 's3:PutObject', 's3:Abort*']));
  expect(s3.filter((a) => a.startsWith('s3:Delete'))).toEqual([]);
});

test("the task role's object access is limited to the backups/ prefix", () => {
  const objects = resourcesAllowed(template, TASK_ROLE, 's3:PutObject');
  expect(JSON.stringify(objects)).toMatch(/"\/backups\/\*"/);
  expect(JSON.stringify(objects)).not.toMatch(/"\/\*"/);
});

test('the task role may read exactly the configured password secrets', () => {
  expect(resourcesAllowed(template, TASK_ROLE, 'secretsmanager:GetSecretValue').sort()).toEqual([
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/billing-GhIjKl',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pgferry/shop-AbCdEf',
  ]);
});

describe('the image (containers/pg-tools/Dockerfile)', () => {
  const dockerfile = readFileSync(path.join(REPO_ROOT, 'containers', 'pg-tools', 'Dockerfile'), 'utf8');

  test('installs PostgreSQL 13 to 18 from the PostgreSQL apt repository', () => {
    expect(dockerfile).toMatch(/ARG PG_MAJORS="13 14 15 16 17 18"/);
    expect(dockerfile).toContain('https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main');
    expect(dockerfile).toMatch(/postgresql-client-\$m/);
  });

  test('sets PGFERRY_PG_BIN_DIRS to the directories the task definition names', () => {
    expect(dockerfile).toContain(`PGFERRY_PG_BIN_DIRS=${CONTAINER_PG_BIN_DIRS} `);
  });

  test('ships the RDS CA bundle and trusts it for libpq and Node.js', () => {
    expect(dockerfile).toContain('https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem');
    expect(dockerfile).toContain(
      'ln -s /etc/pgferry/rds-global-bundle.pem /home/pgferry/.postgresql/root.crt',
    );
    expect(dockerfile).toContain('NODE_EXTRA_CA_CERTS=/etc/pgferry/rds-global-bundle.pem');
  });

  test('runs as a non-root user', () => {
    const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    expect(users).toEqual(['10001']);
  });
});
