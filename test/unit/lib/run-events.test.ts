/**
 * Run-finished events on AWS (lib/run-events.ts), on the synthesized template: the rule hears the
 * four workflows' finished executions, the announcing state machine describes the run then puts
 * one `pgferry` event on the default bus, and may do nothing else.
 */
import { FINISHED_STATUSES } from '../../../lib/run-events';
import { ACCOUNT, allowedActionsOf, definitionOf, policyStatementsOf, REGION, templateOf } from './fixtures';

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
  expect(definition.StartAt).toBe('Describe');
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
