/**
 * What the stack hands the runtime: the bindings (in the task definition, and compiled into every
 * function), the stall timeout, and — through the schedules and alarms — the catalog names and
 * lock wait timeouts of the configured databases. That the bundled functions and the runner act on
 * them: test/e2e/aws-refusals.test.ts.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { BackupRequestSchema } from '../../../core/contracts';
import { deploymentOf } from '../../../core/deployment';
import type { PgferryConfigInput } from '../../../lib/config';
import { MAX_TASK_BINDINGS_CHARS } from '../../../lib/pg-tools-task';
import { ACCOUNT, definitionOf, minimalConfig, REGION, synthesize } from './fixtures';

const { stack } = synthesize();

type ContainerDefinition = { Image: unknown; Environment: { Name: string; Value: string }[] };

const template = Template.fromStack(stack);

function templateJson(s: typeof stack): { Resources: Record<string, unknown> } {
  return (s === stack ? template : Template.fromStack(s)).toJSON() as { Resources: Record<string, unknown> };
}

function containers(s = stack): ContainerDefinition[] {
  const resources = Object.values(templateJson(s).Resources) as {
    Type: string;
    Properties: { ContainerDefinitions?: ContainerDefinition[] };
  }[];
  return resources
    .filter((r) => r.Type === 'AWS::ECS::TaskDefinition')
    .flatMap((r) => r.Properties.ContainerDefinitions ?? []);
}

function environmentOf(container: ContainerDefinition): Record<string, string> {
  return Object.fromEntries(container.Environment.map((e) => [e.Name, e.Value]));
}

test("both task definitions carry the deployment's bindings in their environment, exactly", () => {
  const tasks = containers();
  expect(tasks).toHaveLength(2); // tools and verify
  for (const container of tasks) {
    const deployment = deploymentOf(environmentOf(container).PGFERRY_BINDINGS);
    expect(deployment).toEqual({ onAws: true, bindings: stack.bindings });
  }
});

test('no execution can set the bindings: every ECS state overrides only the action and the job', () => {
  for (const prefix of ['Backup', 'Restore', 'Verify', 'Migrate']) {
    const states = Object.values(definitionOf(template, `${prefix}StateMachine`).States);
    const overridden = states
      .flatMap((s) => s.Parameters?.Overrides?.ContainerOverrides ?? [])
      .flatMap((o) => o.Environment.map((e) => e.Name));
    expect(overridden.length).toBeGreaterThan(0);
    for (const name of overridden) {
      expect(['PGFERRY_ACTION', 'PGFERRY_JOB_STORE', 'PGFERRY_JOB_KEY']).toContain(name);
    }
  }
});

test('every function is bundled with the bindings compiled in, and none reads them from its environment', () => {
  expect(deploymentOf(stack.functions.encodedBindings)).toEqual({ onAws: true, bindings: stack.bindings });
  const functions = Object.values(templateJson(stack).Resources).filter(
    (r) => (r as { Type: string }).Type === 'AWS::Lambda::Function',
  ) as { Properties: { Environment?: { Variables?: Record<string, string> } } }[];
  expect(functions.length).toBeGreaterThanOrEqual(stack.functions.all.length);
  for (const fn of functions) expect(fn.Properties.Environment?.Variables?.PGFERRY_BINDINGS).toBeUndefined();
});

test('the tasks stop a run that makes no progress for tasks.stallTimeoutMinutes (10 by default)', () => {
  for (const container of containers()) {
    expect(environmentOf(container).PGFERRY_STALL_TIMEOUT_SECONDS).toBe('600');
  }
  const config = minimalConfig({ tasks: { stallTimeoutMinutes: 25 } });
  for (const container of containers(synthesize(config).stack)) {
    expect(environmentOf(container).PGFERRY_STALL_TIMEOUT_SECONDS).toBe('1500');
  }
});

/** A database or target of `i`, with a long host and secret, as a big deployment has them. */
function login(i: number) {
  const host = `db-${String(i).padStart(3, '0')}.cluster-abcdefghijkl.${REGION}.rds.amazonaws.com`;
  return {
    id: `db-${i}`,
    connection: {
      host,
      database: `application_database_${i}`,
      user: `pgferry_backup_${i}`,
      passwordSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:pgferry/application-${i}-AbCdEf`,
    },
    network: { cidr: '10.0.0.0/16', allowIngress: false },
  };
}

test('100 databases and 50 targets fit the task definition with room to spare (and no Lambda environment)', () => {
  const config: PgferryConfigInput = {
    ...minimalConfig(),
    databases: Array.from({ length: 100 }, (_, i) => ({
      ...login(i),
      backupSchedules: [{ cron: '0 3 * * ? *' }],
    })),
    targets: Array.from({ length: 50 }, (_, i) => ({ ...login(100 + i), anyDatabase: true })),
  };
  const big = synthesize(config).stack;
  const encoded = big.functions.encodedBindings;
  expect(deploymentOf(encoded)).toEqual({ onAws: true, bindings: big.bindings });
  // Measured: about 54,000 characters of plain JSON (most of a task definition's 64 KiB), 3,300 encoded.
  expect(JSON.stringify(big.bindings).length).toBeGreaterThan(40_000);
  expect(encoded.length).toBeLessThan(MAX_TASK_BINDINGS_CHARS / 4);
});

type ScheduleProperties = {
  Target: { Arn: { Ref: string }; Input: { 'Fn::Join': [string, unknown[]] } };
};

function scheduleInputs(s = stack): { target: string; input: Record<string, unknown> }[] {
  return Object.values(templateJson(s).Resources)
    .filter((r) => (r as { Type: string }).Type === 'AWS::Scheduler::Schedule')
    .map((r) => {
      const { Target } = (r as { Properties: ScheduleProperties }).Properties;
      const [sep, parts] = Target.Input['Fn::Join'];
      const input = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'bucket')).join(sep));
      return { target: Target.Arn.Ref, input };
    });
}

test("a scheduled backup is filed under the database's id, and carries its lock wait timeout when configured", () => {
  const config = minimalConfig();
  const shop = { ...config.databases[0], id: 'shop-eu', lockWaitTimeoutSeconds: 90 };
  const billing = {
    ...config.databases[0],
    id: 'billing',
    connection: {
      ...config.databases[0].connection,
      host: 'billing.abc.eu-west-1.rds.amazonaws.com',
      passwordSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:billing-GhIjKl`,
    },
    verifySchedule: { cron: '0 6 ? * SUN *' },
  };
  const inputs = scheduleInputs(synthesize({ ...config, databases: [shop, billing] }).stack);
  const backups = inputs.filter((i) => i.target.startsWith('BackupStateMachine')).map((i) => i.input);
  expect(backups.map((i) => BackupRequestSchema.parse(i))).toHaveLength(2);
  expect(backups.map((i) => [i.name, i.lockWaitTimeoutMs])).toEqual([
    ['shop-eu', 90_000],
    ['billing', undefined],
  ]);
  const verify = inputs.filter((i) => i.target.startsWith('VerifyStateMachine')).map((i) => i.input);
  expect(verify).toEqual([{ store: 's3://bucket/backups', backup: 'latest', name: 'billing' }]);
});

test("a database's freshness alarm watches its id, the name its backups are filed under", () => {
  const config = minimalConfig();
  const db = { ...config.databases[0], id: 'shop-eu' };
  const alarms = Object.values(
    templateJson(synthesize({ ...config, databases: [db] }).stack).Resources,
  ).filter(
    (r) =>
      (r as { Type: string }).Type === 'AWS::CloudWatch::Alarm' &&
      (r as { Properties: { MetricName?: string } }).Properties.MetricName === 'LastCompleteBackupTimestamp',
  ) as { Properties: { Dimensions: { Name: string; Value: string }[] } }[];
  expect(alarms.map((a) => a.Properties.Dimensions)).toEqual([[{ Name: 'Database', Value: 'shop-eu' }]]);
});

test("a database's scope reaches its scheduled backups' requests, which the task dumps by", () => {
  const config = minimalConfig();
  const scope = { schemas: ['app'], excludeTableData: ['app.audit_log'] };
  const scoped = { ...config.databases[0], scope };
  const whole = {
    ...config.databases[0],
    id: 'whole',
    connection: { ...config.databases[0].connection, database: 'other' },
    scope: { tables: [] },
  };
  const inputs = scheduleInputs(synthesize({ ...config, databases: [scoped, whole] }).stack)
    .filter((i) => i.target.startsWith('BackupStateMachine'))
    .map((i) => BackupRequestSchema.parse(i.input));
  // Backup preflight puts the request's scope into the plan the task reads (lambdas/backup/preflight),
  // and the dump runner passes it to pg_dump (test/e2e/scoped-backups.test.ts).
  expect(inputs.map((i) => [i.name, i.scope])).toEqual([
    [
      'shop',
      {
        schemas: ['app'],
        excludeSchemas: [],
        tables: [],
        excludeTables: [],
        excludeTableData: ['app.audit_log'],
      },
    ],
    ['whole', undefined],
  ]);
});
