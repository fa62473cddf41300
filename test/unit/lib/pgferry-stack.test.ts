/** Template assertions on the whole stack: the workflows' settings and the wiring between parts. */
import { Match } from 'aws-cdk-lib/assertions';
import { definitionOf, minimalConfig, resourcesAllowed, templateOf } from './fixtures';

const template = templateOf();
const WORKFLOWS = ['Backup', 'Restore', 'Verify', 'Migrate'];
/** Every state machine: the workflows, and the announcer of finished runs (lib/run-events.ts). */
// The workflows, the server backup (ServerBackup) and the API's run-finished announcer.
const STATE_MACHINE_COUNT = WORKFLOWS.length + 2;

test('every state machine logs without execution data and is traced', () => {
  const machines = template.findResources('AWS::StepFunctions::StateMachine', {
    Properties: {
      LoggingConfiguration: Match.objectLike({ IncludeExecutionData: false, Level: 'ALL' }),
      TracingConfiguration: { Enabled: true },
    },
  });
  expect(Object.keys(machines)).toHaveLength(STATE_MACHINE_COUNT);
});

test('every execution times out after 24 hours', () => {
  for (const name of WORKFLOWS)
    expect(definitionOf(template, `${name}StateMachine`).TimeoutSeconds).toBe(86400);
});

test('every task state has a timeout', () => {
  for (const name of WORKFLOWS) {
    const tasks = Object.values(definitionOf(template, `${name}StateMachine`).States).filter(
      (s) => s.Type === 'Task',
    );
    for (const task of tasks) expect(task.TimeoutSeconds).toBeGreaterThan(0);
  }
});

/** Every workflow's Lambda steps (Task states invoking a function), by state name. */
function lambdaStepsOf(stateMachine: string) {
  const { States } = definitionOf(template, stateMachine);
  return Object.entries(States).filter(([, state]) =>
    /:lambda:[^:]+:[^:]+:function:/.test(String((state as { Resource?: unknown }).Resource)),
  );
}

const STATE_MACHINES = [
  'BackupStateMachine',
  'RestoreStateMachine',
  'VerifyStateMachine',
  'MigrateStateMachine',
];

test('the Lambda steps of every workflow retry service errors with exponential backoff', () => {
  expect(
    lambdaStepsOf('BackupStateMachine')
      .map(([name]) => name)
      .sort(),
  ).toEqual(['Cleanup', 'Preflight', 'Record']);
  for (const stateMachine of STATE_MACHINES) {
    const steps = lambdaStepsOf(stateMachine);
    expect(steps.length).toBeGreaterThanOrEqual(2);
    for (const [, state] of steps) {
      expect(state.Retry).toContainEqual(
        expect.objectContaining({
          ErrorEquals: expect.arrayContaining(['Lambda.ServiceException', 'Lambda.AWSLambdaException']),
          BackoffRate: 2,
        }),
      );
    }
  }
});

test('the Lambda steps of every workflow retry throttling with exponential backoff', () => {
  for (const stateMachine of STATE_MACHINES) {
    for (const [, state] of lambdaStepsOf(stateMachine)) {
      expect(state.Retry).toContainEqual(
        expect.objectContaining({ ErrorEquals: ['Lambda.TooManyRequestsException'], BackoffRate: 2 }),
      );
    }
  }
});

test('the dump runs as a Fargate task given its job by reference, waiting for completion', () => {
  const { Dump } = definitionOf(template, 'BackupStateMachine').States;
  expect(Dump.Resource).toMatch(/:states:::ecs:runTask\.sync$/);
  expect(Dump.Parameters?.Overrides?.ContainerOverrides[0].Environment).toEqual([
    { Name: 'PGFERRY_ACTION', Value: 'dump' },
    { Name: 'PGFERRY_JOB_STORE', 'Value.$': '$.job.store' },
    { Name: 'PGFERRY_JOB_KEY', 'Value.$': '$.job.key' },
  ]);
});

test("the dump task is sized by preflight's plan (its vCPUs are what the plan's jobs were chosen for)", () => {
  const { Dump } = definitionOf(template, 'BackupStateMachine').States;
  expect(Dump.Parameters?.Overrides).toMatchObject({
    'Cpu.$': '$.taskSize.cpu',
    'Memory.$': '$.taskSize.memoryMiB',
    EphemeralStorage: { 'SizeInGiB.$': '$.taskSize.ephemeralStorageGiB' },
  });
});

test('only failures to start the dump task are retried', () => {
  const { Dump } = definitionOf(template, 'BackupStateMachine').States;
  expect(Dump.Retry?.flatMap((r: { ErrorEquals: string[] }) => r.ErrorEquals)).toEqual([
    'ECS.AmazonECSException',
    'ECS.ServerException',
  ]);
});

test('a failed dump or record is caught, cleaned up and fails the execution', () => {
  const { States } = definitionOf(template, 'BackupStateMachine');
  for (const state of ['Dump', 'Record'])
    expect(States[state].Catch?.[0]).toMatchObject({ ErrorEquals: ['States.ALL'], Next: 'Cleanup' });
  expect(States.Cleanup.Next).toBe('BackupFailed');
});

test('the workflows may run the pg-tools task definition only, not every revision of its family', () => {
  expect(resourcesAllowed(template, 'BackupStateMachineRole', 'ecs:RunTask')).toEqual([
    { Ref: expect.stringMatching(/^PgToolsTaskDefinition/) },
  ]);
});

test('the configured tags are on the resources', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    Tags: Match.arrayWith([{ Key: 'team', Value: 'platform' }]),
  });
});

test('no password is anywhere in the template', () => {
  expect(JSON.stringify(template.toJSON())).not.toMatch(/"password"|PGPASSWORD|PGFERRY_SOURCE_PASSWORD/i);
});

test('a minimal configuration synthesizes', () => {
  templateOf(minimalConfig()).resourceCountIs('AWS::StepFunctions::StateMachine', STATE_MACHINE_COUNT);
});

test("teardown keeps the backups, their key, the access logs, every log group and API Gateway's logging role; nothing else", () => {
  const retained = Object.entries(
    template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>,
  )
    .filter(([, r]) => r.DeletionPolicy === 'Retain')
    .map(([id, r]) => `${r.Type} ${id.replace(/[0-9A-F]{8}$/, '')}`);
  const notLogs = retained.filter((r) => !r.startsWith('AWS::Logs::LogGroup'));
  expect(notLogs.sort()).toEqual([
    // API Gateway's account-wide logging setting and role: other APIs of the account may log through it.
    'AWS::ApiGateway::Account ApiAccount',
    'AWS::IAM::Role ApiCloudWatchRole',
    'AWS::KMS::Key StoreKey',
    'AWS::S3::Bucket StoreAccessLogs',
    'AWS::S3::Bucket StoreBucket',
  ]);
  expect(retained.length - notLogs.length).toBe(
    Object.keys(template.findResources('AWS::Logs::LogGroup')).length,
  );
});
