/**
 * Run-finished events on AWS (lib/run-events.ts), on the synthesized template: the rule hears the
 * four workflows' finished executions, the announcing state machine runs the cleanup a stopped
 * execution skipped, describes the run then puts one `pgferry` event on the default bus, and may
 * do nothing else. The event of a stopped run carries what that cleanup did and left; a cleanup
 * that failed, or that left something behind, fails the announcer once the run is announced: the
 * announcer's own definition run by the local interpreter shows both.
 */
import * as path from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { LocalStore } from '../../../core/store';
import { STOPPED_STATUSES } from '../../../core/workflows';
import { describeFinished } from '../../../lambdas/api/events/announce';
import { StepFunctionsRuns } from '../../../lambdas/api/step-functions-runs';
import { FINISHED_STATUSES } from '../../../lib/run-events';
import { recordedStepFunctions } from '../../support/recorded-step-functions';
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

test('the describing function reads executions and the store; it starts and stops nothing, and writes only the run records', () => {
  const role = 'FunctionsRunEventsDescribeServiceRole';
  const actions = allowedActionsOf(template, role);
  expect(actions.filter((a) => a.startsWith('states:'))).toEqual([
    'states:DescribeExecution',
    'states:GetExecutionHistory',
  ]);
  expect(
    actions.filter((a) => /^s3:(Put|Delete|Abort|Restore)|^(events|secretsmanager|ecs):/.test(a)),
  ).toEqual(['s3:PutObject']);
  // PutObject alone, in a statement of its own, on `backups/.runs/*` (a stopped run's cleanup
  // record, which GET /v1/runs/{id} reads): no backup, manifest, report or job can be written.
  const writes = policyStatementsOf(template, role).filter((s) =>
    [s.Action].flat().some((a) => /^s3:Put|^s3:\*$/.test(String(a))),
  );
  expect(writes).toEqual([
    {
      Effect: 'Allow',
      Action: 's3:PutObject',
      Resource: {
        'Fn::Join': [
          '',
          [{ 'Fn::GetAtt': [expect.stringMatching(/^StoreBucket/), 'Arn'] }, '/backups/.runs/*'],
        ],
      },
    },
  ]);
  // The backup key encrypts its record through S3: the key policy names its role among the writers.
  const key = Object.values(resources).find((r) => r.Type === 'AWS::KMS::Key') as unknown as {
    Properties: {
      KeyPolicy: { Statement: { Sid?: string; Condition?: Record<string, Record<string, unknown>> }[] };
    };
  };
  const encrypt = key.Properties.KeyPolicy.Statement.find((s) => s.Sid === 'PgferryRolesEncryptThroughS3');
  expect(JSON.stringify(encrypt?.Condition?.ArnEquals)).toMatch(/FunctionsRunEventsDescribeServiceRole/);
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
    Choices: [
      { Variable: '$.cleanupError', IsPresent: true, Next: 'CleanupFailed' },
      { Variable: '$.event.unrecorded', IsPresent: true, Next: 'CleanupNotRecorded' },
    ],
    Default: 'Announced',
  });
  expect(stateOf('CleanupFailed').Type).toBe('Fail');
  // A cleanup Describe could not record for the run view: announced, then the announcer fails.
  expect(stateOf('CleanupNotRecorded')).toEqual({
    Type: 'Fail',
    ErrorPath: '$.event.unrecorded.Error',
    CausePath: '$.event.unrecorded.Cause',
  });
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

test("Describe is given the whole state, where each cleanup's result and the cleanup's error are kept for the event", () => {
  // No Parameters, no InputPath: the function reads the change and, after a stopped execution, the
  // results below (lambdas/api/events/stopped.ts, stoppedCleanupOutcome): a Parameters path to a
  // result that is absent would fail the state.
  expect(stateOf('Describe')).toMatchObject({ Type: 'Task', ResultPath: '$.event', Next: 'Announce' });
  expect(stateOf('Describe').Parameters).toBeUndefined();
  expect(stateOf('Describe').InputPath).toBeUndefined();
  expect(functionOf('Describe')).toMatch(/^FunctionsRunEventsDescribe/);
  expect(stateOf('CleanUpBackup').ResultPath).toBe('$.backupCleanup');
  expect(stateOf('CleanUpMigration').ResultPath).toBe('$.migrateCleanup');
  expect(stateOf('CleanUpRestore').ResultPath).toBe('$.restoreCleanup');
  expect(stateOf('RestartServices').ResultPath).toBeNull();
  for (const name of [
    'PlanCleanup',
    'CleanUpBackup',
    'CleanUpMigration',
    'RestartServices',
    'CleanUpRestore',
  ]) {
    expect(stateOf(name).Catch).toEqual([expect.objectContaining({ ResultPath: '$.cleanupError' })]);
  }
});

/**
 * The announcer's definition, as deployed, run by the local interpreter after a stopped restore
 * (or migration, without services to scale): its cleanup tasks answer (or fail) as the functions would (the
 * cleanups' own results on a real server: test/integration/lambdas/restore/cleanup,
 * test/integration/lambdas/migrate/steps, test/integration/lambdas/api/events); Describe is the
 * describing function's own code (`describeFinished`) over recorded executions
 * (test/fixtures/aws/stopped-executions.json), given the state the interpreter gives it; what
 * Announce was given is collected.
 */
async function announceStopped(
  kind: 'restore' | 'migrate',
  cleanupResult: unknown,
  store?: Pick<LocalStore, 'putJson'>,
) {
  const sfn = recordedStepFunctions({
    fixtureFile: path.join(__dirname, '../../fixtures/aws/stopped-executions.json'),
  });
  const runs = new StepFunctionsRuns({
    sfn,
    stateMachineArns: sfn.stateMachineArns,
    store: new LocalStore(path.join(__dirname, 'no-store')),
  });
  const announced: unknown[] = [];
  const handlers = {
    PlanCleanup: async () => ({ kind, waitSeconds: 0, [kind]: { id: 'r' } }),
    [kind === 'restore' ? 'CleanUpRestore' : 'CleanUpMigration']: async () => {
      if (cleanupResult instanceof Error) throw cleanupResult;
      return cleanupResult;
    },
    Describe: (state: unknown) => describeFinished(runs, sfn.stateMachineArns, state, store),
    Announce: async (input: unknown) => {
      announced.push(input);
      return {};
    },
  };
  const execution = new StateMachine(announcer as never).run(
    {
      stateMachineArn: sfn.stateMachineArns[kind],
      name: kind === 'restore' ? 'drill-cancel-cleanup' : 'deploy-4720-shop-to-pg17',
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

/** What Announce was given: one entry, the event's detail-type and detail. */
function entryOf(announced: unknown[]) {
  expect(announced).toHaveLength(1);
  const [{ Entries }] = announced as { Entries: { Source: string; DetailType: string; Detail: unknown }[] }[];
  expect(Entries).toHaveLength(1);
  return Entries[0];
}

const CANCELLED_RESTORE = {
  id: 'restore-drill-cancel-cleanup',
  kind: 'restore',
  database: 'shop',
  status: 'cancelled',
  summary: 'cancelled: cancelled through the API (DELETE /v1/runs/{id})',
};

test('run: a stopped restore whose cleanup dropped its restoring database is announced carrying that, and the announcer succeeds', async () => {
  const notes = [
    'the 1 session(s) the runner left on the target were ended',
    'the database shop_drill_restoring, which the restore loads before renaming it shop_drill, was dropped',
  ];
  const { announced, failure } = await announceStopped('restore', { notes, left: [] });
  expect(entryOf(announced)).toEqual({
    Source: 'pgferry',
    DetailType: 'Restore Cancelled',
    Detail: { ...CANCELLED_RESTORE, cleanup: { notes, left: [] } },
  });
  expect(failure).toBeUndefined();
});

test('run: a stopped restore whose cleanup left a database is announced carrying it, then the announcer fails naming it', async () => {
  // No double quote in it: the interpreter strips the backslashes of an intrinsic's result (JSON's
  // escapes included), which Step Functions keeps.
  const left = ['the database x … is left in place (…): remove it with DROP DATABASE x WITH (FORCE);'];
  const { announced, failure } = await announceStopped('restore', { notes: [], left });
  // What was left, not the announcer's own error about it.
  expect(entryOf(announced)).toEqual({
    Source: 'pgferry',
    DetailType: 'Restore Cancelled',
    Detail: { ...CANCELLED_RESTORE, cleanup: { notes: [], left } },
  });
  expect(failure).toEqual({ error: 'pgferry.RestoreLeftBehind', cause: JSON.stringify(left) });
});

test('run: a stopped restore whose cleanup Describe cannot record for the run view is announced all the same, then the announcer fails saying so', async () => {
  const notes = ['the 1 session(s) the runner left on the target were ended'];
  const denied = {
    putJson: async () => {
      throw new Error('AccessDenied');
    },
  };
  const { announced, failure } = await announceStopped('restore', { notes, left: [] }, denied);
  expect(entryOf(announced)).toEqual({
    Source: 'pgferry',
    DetailType: 'Restore Cancelled',
    Detail: { ...CANCELLED_RESTORE, cleanup: { notes, left: [] } },
  });
  expect(failure).toEqual({
    error: 'pgferry.CleanupNotRecorded',
    cause:
      'the cleanup of run restore-drill-cancel-cleanup was announced but not recorded for its run view: AccessDenied',
  });
});

test('run: a stopped restore whose cleanup failed is announced carrying its error, then the announcer fails with it', async () => {
  const { announced, failure } = await announceStopped('restore', new Error('connect ETIMEDOUT'));
  expect(entryOf(announced)).toMatchObject({
    DetailType: 'Restore Cancelled',
    Detail: { cleanup: { notes: [], left: [], error: { error: 'Error', cause: 'connect ETIMEDOUT' } } },
  });
  expect(failure).toMatchObject({ error: 'Error' });
});

test('run: a stopped migration whose cleanup left its replication slot is announced carrying it, then the announcer fails naming it', async () => {
  const left = [
    "THE REPLICATION SLOT pgferry_x MAY BE LEFT ON THE SOURCE (…): SELECT pg_drop_replication_slot('pgferry_x');",
  ];
  const failed = {
    error: 'pgferry.Cancelled',
    cause: 'stopped',
    unfrozen: true,
    deletedObjects: 0,
    notes: [],
  };
  const { announced, failure } = await announceStopped('migrate', { ...failed, left });
  expect(entryOf(announced)).toMatchObject({
    DetailType: 'Migration Cancelled',
    Detail: { id: 'migrate-deploy-4720-shop-to-pg17', cleanup: { notes: ['the source was unfrozen'], left } },
  });
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
