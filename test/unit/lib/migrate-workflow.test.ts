/**
 * The migrate state machine as synthesized: its order of states, the states that run only when the
 * execution input asks for them, the AWS SDK integrations of the cutover, and the failure path that
 * every state after preflight takes.
 */
import { definitionOf, policyStatementsOf, resourcesAllowed, templateOf } from './fixtures';

const template = templateOf();
const { StartAt, States } = definitionOf(template, 'MigrateStateMachine');

interface ChoiceState {
  Type: 'Choice';
  Choices: { Next: string; Variable?: string; IsPresent?: boolean; And?: { Variable: string }[] }[];
  Default?: string;
}
interface MapState {
  Type: 'Map';
  ItemsPath: string;
  Next?: string;
  ItemProcessor: {
    StartAt: string;
    States: Record<string, { Resource: string; Parameters: Record<string, unknown> }>;
  };
}
const choice = (name: string) => States[name] as unknown as ChoiceState;
const map = (name: string) => States[name] as unknown as MapState;

/** The state a Choice goes to when its condition holds, and where it goes otherwise. */
function branches(name: string): { when: string; otherwise?: string } {
  const state = choice(name);
  expect(state.Type).toBe('Choice');
  return { when: state.Choices[0].Next, otherwise: state.Default };
}

test('runs Preflight → [SchemaTest] → [ScaleDown] → [Freeze] → Migrate → Record → cutover → Finish', () => {
  expect(StartAt).toBe('MigratePreflight');
  expect(States.MigratePreflight.Next).toBe('SchemaTestRequested');
  expect(branches('SchemaTestRequested')).toEqual({ when: 'SchemaTest', otherwise: 'ScaleDownRequested' });
  expect(States.SchemaTest.Next).toBe('ScaleDownRequested');
  expect(branches('ScaleDownRequested')).toEqual({ when: 'ScaleDownServices', otherwise: 'FreezeRequested' });
  expect(branches('FreezeRequested')).toEqual({ when: 'Freeze', otherwise: 'Migrate' });
  expect(States.Freeze.Next).toBe('Migrate');
  expect(States.Migrate.Next).toBe('MigrateRecord');
  expect(States.MigrateRecord.Next).toBe('SecretUpdateRequested');
  expect(branches('SecretUpdateRequested')).toEqual({
    when: 'UpdateTargetSecret',
    otherwise: 'CutoverCommandRequested',
  });
  expect(branches('CutoverCommandRequested')).toEqual({
    when: 'RunCutoverCommand',
    otherwise: 'ScaleUpRequested',
  });
  expect(branches('ScaleUpRequested')).toEqual({ when: 'ScaleUpServices', otherwise: 'MigrateFinish' });
  expect(States.MigrateFinish.End).toBe(true);
});

test('the schema test and the migration run in the pg-tools task, sized by preflight', () => {
  for (const state of ['SchemaTest', 'Migrate']) {
    expect(States[state].Resource).toBe('arn:aws:states:::ecs:runTask.sync');
    expect(
      (States[state] as unknown as { Parameters: { Overrides: unknown } }).Parameters.Overrides,
    ).toMatchObject({
      'Cpu.$': '$.taskSize.cpu',
      ContainerOverrides: [
        {
          Environment: expect.arrayContaining([
            { Name: 'PGFERRY_ACTION', Value: state === 'Migrate' ? 'migrate' : 'migrate-schema-test' },
          ]),
        },
      ],
    });
  }
});

test('every state after preflight that can fail goes to MigrateCleanup, which fails the execution', () => {
  const failing = Object.entries(States).filter(
    ([name, s]) =>
      (s.Type === 'Task' || s.Type === 'Map') &&
      !['MigratePreflight', 'MigrateCleanup'].includes(name) &&
      name !== 'RestartServicesAfterFailure',
  );
  expect(failing.length).toBeGreaterThanOrEqual(9);
  for (const [, state] of failing) expect(state.Catch?.map((c) => c.Next)).toEqual(['MigrateCleanup']);
  expect(States.MigrateCleanup.Next).toBe('RestartServicesRequested');
  expect(branches('RestartServicesRequested')).toEqual({
    when: 'RestartServicesAfterFailure',
    otherwise: 'MigrateFailed',
  });
  expect(States.MigrateFailed.Type).toBe('Fail');
});

test('ECS services are scaled to 0 before the freeze and to their count after the cutover', () => {
  const down = map('ScaleDownServices');
  expect(down.ItemsPath).toBe('$.steps.ecsServices');
  expect(down.ItemProcessor.States.ScaleDownService).toMatchObject({
    Resource: 'arn:aws:states:::aws-sdk:ecs:updateService',
    Parameters: { 'Cluster.$': '$.cluster', 'Service.$': '$.service', DesiredCount: 0 },
  });
  expect(map('ScaleUpServices').ItemProcessor.States.ScaleUpService.Parameters).toEqual({
    'Cluster.$': '$.cluster',
    'Service.$': '$.service',
    'DesiredCount.$': '$.desiredCount',
  });
});

test("the cutover secret is updated by the steps function, so its value never enters the execution's state", () => {
  expect(States.UpdateTargetSecret).toMatchObject({
    Resource: expect.stringMatching(/FunctionsMigrateSteps/),
    Parameters: { step: 'updateSecret', 'state.$': '$' },
    ResultPath: '$.cutoverSecret',
    Next: 'CutoverCommandRequested',
  });
  const secretStates = Object.values(States).filter((state) => /secretsmanager/.test(state.Resource ?? ''));
  expect(secretStates).toEqual([]);
});

test('only the steps function may read and write secrets for the cutover, only those tagged for it', () => {
  const statement = policyStatementsOf(template, 'FunctionsMigrateSteps').find((s) =>
    [s.Action].flat().includes('secretsmanager:PutSecretValue'),
  );
  expect(statement).toMatchObject({
    Condition: { StringEquals: { 'secretsmanager:ResourceTag/pgferry-cutover': 'true' } },
  });
  expect(resourcesAllowed(template, 'FunctionsMigrateSteps', 'secretsmanager:PutSecretValue')).toHaveLength(
    1,
  );
  expect(resourcesAllowed(template, 'FunctionsMigrateSteps', 'secretsmanager:DeleteSecret')).toEqual([]);
  expect(resourcesAllowed(template, 'MigrateStateMachineRole', 'secretsmanager:putSecretValue')).toEqual([]);
});

test("the state machine's role may update ECS services, nothing more of them", () => {
  expect(resourcesAllowed(template, 'MigrateStateMachineRole', 'ecs:UpdateService')).toHaveLength(1);
  expect(resourcesAllowed(template, 'MigrateStateMachineRole', 'ecs:DeleteService')).toEqual([]);
});
