/**
 * Run-finished events on AWS (lib/run-events.ts), on the synthesized template: the rule hears the
 * four workflows' finished executions, the announcing state machine runs the cleanup a stopped
 * execution skipped, describes the run then puts one `pgferry` event on the default bus, and may
 * do nothing else. A cleanup that failed, or that left something behind, fails the announcer once
 * the run is announced: the announcer's own definition run by the local interpreter shows it.
 */
import { StateMachine } from 'aws-local-stepfunctions';
import { FINISHED_STATUSES, STOPPED_STATUSES } from '../../../lib/run-events';
import {
  ACCOUNT,
  allowedActionsOf,
  definitionOf,
  policyStatementsOf,
  REGION,
  resourcesAllowed,
  templateOf,
} from './fixtures';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const template = templateOf();
const resources = template.toJSON().Resources as Resources;
const [ruleId, rule] = Object.entries(resources).find(
  ([id, r]) => id.startsWith('RunEventsFinished') && r.Type === 'AWS::Events::Rule',
) ?? ['', { Type: '', Properties: {} }];

const refOf = (value: unknown): string => (value as { Ref: string }).Ref;

test("the rule hears every end of the four workflows' executions, and only theirs", () => {
  expect(ruleId).not.toBe('');
  const pattern = rule.Properties.EventPattern as {
    source: string[];
    'detail-type': string[];
    detail: { stateMachineArn: unknown[]; status: string[] };
  };
  expect(pattern.source).toEqual(['aws.states']);
  expect(pattern['detail-type']).toEqual(['Step Functions Execution Status Change']);
  expect(pattern.detail.status).toEqual(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']);
  expect([...FINISHED_STATUSES]).toEqual(pattern.detail.status);
  expect(pattern.detail.stateMachineArn.map(refOf).map((id) => id.replace(/[0-9A-F]{8}$/, ''))).toEqual([
    'BackupStateMachine',
    'RestoreStateMachine',
    'VerifyStateMachine',
    'MigrateStateMachine',
  ]);
});

test('its target is the announcing state machine, given the execution, retried for a day', () => {
  const [target] = rule.Properties.Targets as {
    Arn: unknown;
    Input?: string;
    InputTransformer?: { InputPathsMap: Record<string, string>; InputTemplate: string };
    RetryPolicy: { MaximumEventAgeInSeconds: number; MaximumRetryAttempts: number };
  }[];
  expect(refOf(target.Arn)).toMatch(/^RunEventsStateMachine/);
  expect(target.InputTransformer?.InputPathsMap).toEqual({
    'detail-name': '$.detail.name',
    'detail-stateMachineArn': '$.detail.stateMachineArn',
    'detail-status': '$.detail.status',
  });
  expect(target.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 86400, MaximumRetryAttempts: 20 });
});

test('the announcer: Describe (the run made into the event), then Announce: one pgferry event on the default bus', () => {
  const definition = definitionOf(template, 'RunEventsStateMachine');
  expect(definition.StartAt).toBe('Stopped');
  expect(definition.States.Stopped).toMatchObject({ Type: 'Choice', Default: 'Describe' });
  expect(definition.States.Describe).toMatchObject({ Type: 'Task', Next: 'Announce' });
  const announce = definition.States.Announce as unknown as {
    Resource: string;
    Parameters: { Entries: Record<string, string>[] };
    Retry: { ErrorEquals: string[]; MaxAttempts: number }[];
  };
  expect(announce.Resource).toMatch(/:states:::events:putEvents$/);
  expect(announce.Parameters.Entries).toEqual([
    { 'Detail.$': '$.event.detail', 'DetailType.$': '$.event.detailType', Source: 'pgferry' },
  ]);
  expect(announce.Retry).toEqual([expect.objectContaining({ ErrorEquals: ['States.ALL'], MaxAttempts: 6 })]);
});

test("the announcer may put events on the account's default bus only", () => {
  const statements = policyStatementsOf(template, 'RunEventsStateMachineRole').filter((s) =>
    [s.Action].flat().some((a) => a.startsWith('events:')),
  );
  expect(statements).toEqual([
    expect.objectContaining({
      Action: 'events:PutEvents',
      Resource: `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/default`,
    }),
  ]);
});

test('the describing function reads executions and the store; it starts, stops and writes nothing', () => {
  const actions = allowedActionsOf(template, 'FunctionsRunEventsDescribeServiceRole');
  expect(actions.filter((a) => a.startsWith('states:'))).toEqual([
    'states:DescribeExecution',
    'states:GetExecutionHistory',
  ]);
  expect(actions.filter((a) => /^s3:(Put|Delete)|^(events|secretsmanager|ecs):/.test(a))).toEqual([]);
});

type Definition = ReturnType<typeof definitionOf>;
const announcer: Definition = definitionOf(template, 'RunEventsStateMachine');
const stateOf = (name: string) => announcer.States[name] as unknown as Record<string, unknown>;
/** The logical id a state's Lambda resource names (`arn:…:function:<id>`, as lib/asl.ts renders it). */
const functionOf = (name: string) => String(stateOf(name).Resource).replace(/^.*:function:/, '');

test('a stopped or timed-out execution is cleaned up before it is described and announced', () => {
  expect([...STOPPED_STATUSES]).toEqual(['ABORTED', 'TIMED_OUT']);
  expect(stateOf('Stopped').Choices).toEqual([
    {
      Or: [
        { Variable: '$.status', StringEquals: 'ABORTED' },
        { Variable: '$.status', StringEquals: 'TIMED_OUT' },
      ],
      Next: 'PlanCleanup',
    },
  ]);
  // The plan: the describing function, asked for the cleanup; planned again after the Lambda
  // steps the execution stopped in have ended.
  expect(stateOf('PlanCleanup')).toMatchObject({
    Parameters: {
      'stateMachineArn.$': '$.stateMachineArn',
      'name.$': '$.name',
      'status.$': '$.status',
      plan: true,
    },
    ResultPath: '$.cleanup',
    Next: 'StepsEnded',
  });
  expect(functionOf('PlanCleanup')).toMatch(/^FunctionsRunEventsDescribe/);
  expect(stateOf('StepsEnded')).toMatchObject({
    Choices: [
      { Variable: '$.cleanup.waitSeconds', NumericGreaterThan: 0, Next: 'WaitForSteps' },
      { Variable: '$.cleanup.task', IsPresent: true, Next: 'StopTask' },
    ],
    Default: 'CleanupOfKind',
  });
  expect(stateOf('WaitForSteps')).toMatchObject({
    SecondsPath: '$.cleanup.waitSeconds',
    Next: 'PlanCleanup',
  });
  // The task stopped, then waited for until ECS says it has stopped.
  expect(stateOf('StopTask')).toMatchObject({
    Resource: 'arn:aws:states:::aws-sdk:ecs:stopTask',
    Parameters: { 'Cluster.$': '$.cleanup.task.cluster', 'Task.$': '$.cleanup.task.taskArn' },
    Next: 'WaitForTask',
  });
  expect(stateOf('WaitForTask')).toMatchObject({ Next: 'DescribeTask' });
  expect(stateOf('TaskStopped')).toMatchObject({
    Choices: [
      { Variable: '$.taskStatus.Tasks[0].LastStatus', IsPresent: false, Next: 'CleanupOfKind' },
      { Variable: '$.taskStatus.Tasks[0].LastStatus', StringEquals: 'STOPPED', Next: 'CleanupOfKind' },
    ],
    Default: 'WaitForTask',
  });
  // The workflows' own cleanup: the backup's Cleanup function, MigrateCleanup and the services,
  // RestoreCleanup.
  expect(stateOf('CleanupOfKind')).toMatchObject({
    Choices: [
      { Variable: '$.cleanup.backup', IsPresent: true, Next: 'CleanUpBackup' },
      { Variable: '$.cleanup.migrate', IsPresent: true, Next: 'CleanUpMigration' },
      { Variable: '$.cleanup.restore', IsPresent: true, Next: 'CleanUpRestore' },
    ],
    Default: 'Describe',
  });
  expect(functionOf('CleanUpBackup')).toMatch(/^FunctionsCleanup[0-9A-F]{8}$/);
  expect(stateOf('CleanUpBackup')).toMatchObject({
    Parameters: {
      'store.$': '$.cleanup.backup.store',
      'database.$': '$.cleanup.backup.database',
      'backupId.$': '$.cleanup.backup.backupId',
      'error.$': '$.cleanup.backup.error',
    },
    Next: 'Describe',
  });
  expect(functionOf('CleanUpMigration')).toMatch(/^FunctionsMigrateSteps/);
  expect(stateOf('CleanUpMigration')).toMatchObject({
    Parameters: { step: 'cleanup', 'state.$': '$.cleanup.migrate' },
    Next: 'RestartRequested',
  });
  expect(stateOf('RestartRequested')).toMatchObject({
    Choices: [{ Variable: '$.cleanup.migrate.steps.ecsServices', IsPresent: true, Next: 'RestartServices' }],
    Default: 'MigrationLeftSomething',
  });
  expect(stateOf('RestartServices')).toMatchObject({
    ItemsPath: '$.cleanup.migrate.steps.ecsServices',
    Next: 'MigrationLeftSomething',
  });
  // RestoreCleanup, given the plan's state as the restore's Catch gives it; its notes kept apart.
  expect(functionOf('CleanUpRestore')).toMatch(/^FunctionsRestoreCleanup[0-9A-F]{8}$/);
  expect(stateOf('CleanUpRestore')).toMatchObject({
    InputPath: '$.cleanup.restore',
    ResultPath: '$.restoreCleanup',
    Next: 'RestoreLeftSomething',
  });
  expect(stateOf('CleanUpRestore').Parameters).toBeUndefined();
});

test('after a stopped restore the announcer may invoke RestoreCleanup, that function exactly (and its versions)', () => {
  const restoreCleanup = Object.keys(resources).find(
    (id) => /^FunctionsRestoreCleanup[0-9A-F]{8}$/.test(id) && resources[id].Type === 'AWS::Lambda::Function',
  );
  expect(restoreCleanup).toBeDefined();
  const arn = { 'Fn::GetAtt': [restoreCleanup, 'Arn'] };
  const itsOwn = resourcesAllowed(template, 'RunEventsStateMachineRole', 'lambda:InvokeFunction').filter(
    (r) => JSON.stringify(r).includes(`"${restoreCleanup}"`),
  );
  expect(itsOwn).toEqual([arn, { 'Fn::Join': ['', [arn, ':*']] }]);
});

test('a cleanup that fails is announced all the same, then fails the announcer (alarmed)', () => {
  for (const name of [
    'PlanCleanup',
    'CleanUpBackup',
    'CleanUpMigration',
    'RestartServices',
    'CleanUpRestore',
  ]) {
    expect(stateOf(name).Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.cleanupError', Next: 'Describe' },
    ]);
  }
  expect(stateOf('Announce').Next).toBe('CleanedUp');
  expect(stateOf('CleanedUp')).toMatchObject({
    Choices: [{ Variable: '$.cleanupError', IsPresent: true, Next: 'CleanupFailed' }],
  });
  expect(stateOf('CleanupFailed').Type).toBe('Fail');
});

test('a cleanup that left something behind (its `left`) is announced all the same, then fails the announcer naming it', () => {
  for (const [kind, result] of [
    ['Restore', '$.restoreCleanup'],
    ['Migration', '$.migrateCleanup'],
  ]) {
    expect(stateOf(`${kind}LeftSomething`)).toMatchObject({
      Type: 'Choice',
      Choices: [{ Variable: `${result}.left[0]`, IsPresent: true, Next: `${kind}LeftBehind` }],
      Default: 'Describe',
    });
    expect(stateOf(`${kind}LeftBehind`)).toEqual({
      Type: 'Pass',
      Parameters: { Error: `pgferry.${kind}LeftBehind`, 'Cause.$': `States.JsonToString(${result}.left)` },
      ResultPath: '$.cleanupError',
      Next: 'Describe',
    });
  }
});

/**
 * The announcer's definition, as deployed, run by the local interpreter after a stopped restore
 * (or migration, without services to scale): its tasks answer as the functions and EventBridge
 * would (the cleanups' own results on a real server: test/integration/lambdas/restore/cleanup,
 * test/integration/lambdas/migrate/steps); what Announce was given is collected.
 */
async function announceStopped(kind: 'restore' | 'migrate', cleanupResult: unknown) {
  const announced: unknown[] = [];
  const handlers = {
    PlanCleanup: async () => ({ kind, waitSeconds: 0, [kind]: { id: 'r' } }),
    [kind === 'restore' ? 'CleanUpRestore' : 'CleanUpMigration']: async () => cleanupResult,
    Describe: async () => ({
      detailType: 'Restore Cancelled',
      detail: { id: 'restore-x', status: 'cancelled' },
    }),
    Announce: async (input: unknown) => {
      announced.push(input);
      return {};
    },
  };
  const execution = new StateMachine(announcer as never).run(
    {
      stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:restore',
      name: 'x',
      status: 'ABORTED',
    },
    { overrides: { taskResourceLocalHandlers: handlers as never } },
  );
  const failure = await execution.result.then(
    () => undefined,
    (err: Error) => err.cause as Error,
  );
  return { announced, failure: failure && { error: failure.name, cause: failure.message } };
}

test('run: a stopped restore whose cleanup left nothing is announced, and the announcer succeeds', async () => {
  const { announced, failure } = await announceStopped('restore', { notes: ['… was dropped'], left: [] });
  expect(announced).toHaveLength(1);
  expect(failure).toBeUndefined();
});

test('run: a stopped restore whose cleanup left a database is announced, then the announcer fails naming it', async () => {
  // No double quote in it: the interpreter strips the backslashes of an intrinsic's result (JSON's
  // escapes included), which Step Functions keeps.
  const left = ['the database x … is left in place (…): remove it with DROP DATABASE x WITH (FORCE);'];
  const { announced, failure } = await announceStopped('restore', { notes: [], left });
  expect(announced).toEqual([
    {
      Entries: [
        {
          Detail: { id: 'restore-x', status: 'cancelled' },
          DetailType: 'Restore Cancelled',
          Source: 'pgferry',
        },
      ],
    },
  ]);
  expect(failure).toEqual({ error: 'pgferry.RestoreLeftBehind', cause: JSON.stringify(left) });
});

test('run: a stopped migration whose cleanup left its replication slot is announced, then the announcer fails naming it', async () => {
  const left = [
    "THE REPLICATION SLOT pgferry_x MAY BE LEFT ON THE SOURCE (…): SELECT pg_drop_replication_slot('pgferry_x');",
  ];
  const failed = { error: 'pgferry.Cancelled', cause: 'stopped', unfrozen: true, deletedObjects: 0 };
  const { announced, failure } = await announceStopped('migrate', { ...failed, left });
  expect(announced).toHaveLength(1);
  expect(failure).toEqual({ error: 'pgferry.MigrationLeftBehind', cause: JSON.stringify(left) });
  expect((await announceStopped('migrate', { ...failed, left: [] })).failure).toBeUndefined();
});

test("the announcer may invoke only the describing function and the workflows' cleanups, stop only pgferry's tasks, scale only the cutover's services", () => {
  const role = 'RunEventsStateMachineRole';
  expect([...new Set(allowedActionsOf(template, role))]).toEqual([
    'ecs:DescribeTasks',
    'ecs:StopTask',
    'ecs:UpdateService',
    'events:PutEvents',
    'lambda:InvokeFunction',
    'logs:CreateLogDelivery',
    'logs:DeleteLogDelivery',
    'logs:DescribeLogGroups',
    'logs:DescribeResourcePolicies',
    'logs:GetLogDelivery',
    'logs:ListLogDeliveries',
    'logs:PutResourcePolicy',
    'logs:UpdateLogDelivery',
    'xray:GetSamplingRules',
    'xray:GetSamplingTargets',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ]);
  const invoked = resourcesAllowed(template, role, 'lambda:InvokeFunction').map((r) =>
    JSON.stringify(r).replace(/^.*?"(Functions[A-Za-z]+?)[0-9A-F]{8}".*$/, '$1'),
  );
  expect([...new Set(invoked)].sort()).toEqual([
    'FunctionsCleanup',
    'FunctionsMigrateSteps',
    'FunctionsRestoreCleanup',
    'FunctionsRunEventsDescribe',
  ]);
  const clusterTasks = {
    'Fn::Join': [
      '',
      [`arn:aws:ecs:${REGION}:${ACCOUNT}:task/`, { Ref: expect.stringMatching(/^PgToolsCluster/) }, '/*'],
    ],
  };
  for (const action of ['ecs:StopTask', 'ecs:DescribeTasks']) {
    expect(resourcesAllowed(template, role, action)).toEqual([clusterTasks]);
  }
  expect(resourcesAllowed(template, role, 'ecs:UpdateService')).toEqual(
    resourcesAllowed(template, 'MigrateStateMachineRole', 'ecs:UpdateService'),
  );
});
