/**
 * A fleet of 300 databases on 30 servers (test/support/fleet.ts) synthesizes inside AWS's default
 * limits, each asserted with its number: resources and template size per stack, security group
 * rules, IAM policy sizes, the topic's and keys' policies, the dashboard, state machine
 * definitions, execution inputs, Lambda environments, the task definition's bindings and the
 * RunTask overrides. Also: the burst is spread (flexible windows) and RunTask capacity errors are
 * retried long enough.
 */
import { NestedStack, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { deploymentOf, TASK_SUBNETS_ENV, taskPlacement } from '../../../core/deployment';
import { parseConfig } from '../../../lib/config';
import { MAX_DATABASE_RESOURCES_IN_STACK } from '../../../lib/fleet';
import { MAX_TASK_BINDINGS_CHARS } from '../../../lib/pg-tools-task';
import { fleetConfig, fleetServers } from '../../support/fleet';
import { synthesize } from './fixtures';

/** AWS's default limits (CloudFormation, VPC, IAM, SNS, KMS, CloudWatch, Step Functions, Lambda, ECS). */
const LIMITS = {
  resourcesPerStack: 500,
  templateBytes: 1_000_000,
  rulesPerSecurityGroupDirection: 60,
  roleInlinePolicyChars: 10_240,
  managedPoliciesPerRole: 10,
  topicPolicyBytes: 30 * 1024,
  keyPolicyBytes: 32 * 1024,
  dashboardWidgets: 500,
  stateMachineDefinitionBytes: 1024 * 1024,
  executionInputBytes: 256 * 1024,
  lambdaEnvironmentBytes: 4 * 1024,
  containerOverridesChars: 8 * 1024,
  scheduleTargetInputBytes: 8 * 1024,
} as const;

/** Room the stack keeps for what comes next (an API's routes, more workflows): asserted below. */
const HEADROOM = 200;

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

const config = fleetConfig({ servers: 30, databasesPerServer: 10 });
const { stack } = synthesize(config);
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Resources;
const nestedStacks = stack.node.children.filter((c): c is NestedStack => c instanceof NestedStack);
const nestedTemplates = nestedStacks.map((n) => Template.fromStack(n).toJSON() as { Resources: Resources });
const all: Resources = Object.assign({}, resources, ...nestedTemplates.map((t) => t.Resources));
const ofType = (type: string, from: Resources = all) => Object.values(from).filter((r) => r.Type === type);
const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

test('the fleet is 300 databases on 30 servers, each backed up and verified on a schedule', () => {
  expect(parseConfig(config).databases).toHaveLength(300);
  expect(ofType('AWS::Scheduler::Schedule')).toHaveLength(600);
  expect(
    ofType('AWS::CloudWatch::Alarm').filter((a) => /fleet-no-backup/.test(String(a.Properties.AlarmName))),
  ).toHaveLength(300);
});

test(`every stack holds fewer than ${LIMITS.resourcesPerStack} resources, the stack itself ${HEADROOM} fewer`, () => {
  const counts = [
    Object.keys(resources).length,
    ...nestedTemplates.map((t) => Object.keys(t.Resources).length),
  ];
  // Measured: the stack 290 (30 of them nested stacks, one per server; 62 network rules), each nested stack 30.
  // The worst cases of every feature at the in-stack maximum: test/unit/lib/stack-headroom.test.ts.
  expect(counts[0]).toBeLessThanOrEqual(LIMITS.resourcesPerStack - HEADROOM);
  expect(nestedStacks).toHaveLength(30);
  for (const count of counts.slice(1)) expect(count).toBeLessThan(LIMITS.resourcesPerStack);
  expect(Math.max(...counts.slice(1))).toBe(30);
});

test(`every template is under CloudFormation's ${LIMITS.templateBytes} bytes`, () => {
  expect(size(template.toJSON())).toBeLessThan(LIMITS.templateBytes / 2);
  for (const t of nestedTemplates) expect(size(t)).toBeLessThan(LIMITS.templateBytes);
});

test(`the database clients' security group has at most ${LIMITS.rulesPerSecurityGroupDirection} egress rules: one per server group and port`, () => {
  const egress = ofType('AWS::EC2::SecurityGroupEgress', resources).filter((r) =>
    JSON.stringify(r.Properties.GroupId).includes('NetworkDatabaseClients'),
  );
  // 30 servers' security groups + the endpoints' and S3's.
  expect(egress.length).toBe(32);
  expect(egress.length).toBeLessThanOrEqual(LIMITS.rulesPerSecurityGroupDirection);
});

/** Per role: the characters of its inline policies, and how many managed policies CDK added for the rest. */
function policiesByRole(from: Resources): Map<string, { inlineChars: number; overflow: number }> {
  const byRole = new Map<string, { inlineChars: number; overflow: number }>();
  const entry = (role: string) => byRole.get(role) ?? { inlineChars: 0, overflow: 0 };
  for (const policy of ofType('AWS::IAM::Policy', from)) {
    for (const role of (policy.Properties.Roles ?? []) as { Ref: string }[]) {
      const e = entry(role.Ref);
      byRole.set(role.Ref, {
        ...e,
        inlineChars: e.inlineChars + JSON.stringify(policy.Properties.PolicyDocument).length,
      });
    }
  }
  for (const policy of ofType('AWS::IAM::ManagedPolicy', from)) {
    for (const role of (policy.Properties.Roles ?? []) as { Ref: string }[]) {
      const e = entry(role.Ref);
      byRole.set(role.Ref, { ...e, overflow: e.overflow + 1 });
    }
  }
  return byRole;
}

test(`with one secret per server login, every role's inline policies stay under IAM's ${LIMITS.roleInlinePolicyChars} characters`, () => {
  const byRole = [...policiesByRole(resources).values()];
  // Measured: ~3,200 at most (a preflight function's, with 30 secrets).
  expect(Math.max(...byRole.map((r) => r.inlineChars))).toBeLessThan(LIMITS.roleInlinePolicyChars / 2);
  expect(byRole.every((r) => r.overflow === 0)).toBe(true);
});

test(`with a secret per database, CDK moves the excess into managed policies: at most ${LIMITS.managedPoliciesPerRole} per role`, () => {
  const distinct = fleetConfig({ servers: 30, databasesPerServer: 10 });
  for (const db of distinct.databases ?? []) {
    db.connection.passwordSecretArn = db.connection.passwordSecretArn?.replace('-AbCdEf', `-${db.id}-AbCdEf`);
  }
  const byRole = [
    ...policiesByRole(Template.fromStack(synthesize(distinct).stack).toJSON().Resources).values(),
  ];
  for (const role of byRole) expect(role.inlineChars).toBeLessThan(LIMITS.roleInlinePolicyChars);
  // Measured: 4 overflow policies on each role that reads the secrets, besides Lambda's 2 AWS-managed ones.
  const overflow = Math.max(...byRole.map((r) => r.overflow));
  expect(overflow).toBe(4);
  expect(overflow + 2).toBeLessThanOrEqual(LIMITS.managedPoliciesPerRole);
});

test('the topic and key policies name the fleet alarms by one pattern, not 300 ARNs', () => {
  const [topicPolicy] = ofType('AWS::SNS::TopicPolicy', resources);
  expect(size(topicPolicy.Properties.PolicyDocument)).toBeLessThan(LIMITS.topicPolicyBytes / 10);
  expect(JSON.stringify(topicPolicy.Properties.PolicyDocument)).toContain('Test-fleet-no-backup-*');
  for (const key of ofType('AWS::KMS::Key', resources)) {
    expect(size(key.Properties.KeyPolicy)).toBeLessThan(LIMITS.keyPolicyBytes / 5);
  }
});

test(`the dashboard shows the fleet in a few widgets (of ${LIMITS.dashboardWidgets})`, () => {
  const [dashboard] = ofType('AWS::CloudWatch::Dashboard', resources);
  const body = stack.resolve(dashboard.Properties.DashboardBody) as { 'Fn::Join': [string, unknown[]] };
  const text = body['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'X')).join('');
  const widgets = (JSON.parse(text) as { widgets: unknown[] }).widgets;
  // The backups widget, two per workflow (the five and the run-finished announcer), three for the fleet.
  expect(widgets).toHaveLength(16);
  expect(text).toContain('SEARCH(\'{Pgferry,Database} MetricName=\\"LastCompleteBackupTimestamp\\"\'');
});

test(`state machine definitions do not grow with the fleet (under ${LIMITS.stateMachineDefinitionBytes} bytes)`, () => {
  const small = Template.fromStack(synthesize(fleetConfig({ servers: 1, databasesPerServer: 1 })).stack);
  const definitions = (t: Template) =>
    Object.values(t.findResources('AWS::StepFunctions::StateMachine')).map((r) =>
      size((r as { Properties: { DefinitionString: unknown } }).Properties.DefinitionString),
    );
  expect(definitions(template)).toEqual(definitions(small));
  for (const bytes of definitions(template))
    expect(bytes).toBeLessThan(LIMITS.stateMachineDefinitionBytes / 20);
});

test(`each schedule's input is far under the execution input's ${LIMITS.executionInputBytes} bytes and the target's ${LIMITS.scheduleTargetInputBytes}`, () => {
  const inputs = ofType('AWS::Scheduler::Schedule').map(
    (s) => (s.Properties.Target as { Input: unknown }).Input,
  );
  expect(Math.max(...inputs.map((i) => size(i)))).toBeLessThan(LIMITS.scheduleTargetInputBytes / 8);
});

test(`every function's environment is under Lambda's ${LIMITS.lambdaEnvironmentBytes} bytes (the bindings are compiled in)`, () => {
  for (const fn of ofType('AWS::Lambda::Function', resources)) {
    const variables = (fn.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)
      ?.Variables;
    expect(size(variables ?? {})).toBeLessThan(LIMITS.lambdaEnvironmentBytes / 4);
  }
});

test(`the task definition's bindings of 300 logins take under ${MAX_TASK_BINDINGS_CHARS} characters`, () => {
  for (const taskDefinition of ofType('AWS::ECS::TaskDefinition', resources)) {
    const [container] = taskDefinition.Properties.ContainerDefinitions as {
      Environment: { Name: string; Value: string }[];
    }[];
    const bindings = container.Environment.find((e) => e.Name === 'PGFERRY_BINDINGS');
    expect(bindings?.Value.length).toBeLessThan(MAX_TASK_BINDINGS_CHARS / 3);
  }
});

test(`RunTask's container overrides name the job by reference: far under ECS's ${LIMITS.containerOverridesChars} characters`, () => {
  for (const machine of ofType('AWS::StepFunctions::StateMachine', resources)) {
    const definition = JSON.stringify(stack.resolve(machine.Properties.DefinitionString));
    for (const match of definition.matchAll(/ContainerOverrides\\":\[(.*?)\]\}/g)) {
      expect(match[1].length).toBeLessThan(LIMITS.containerOverridesChars / 8);
    }
  }
});

test('the 02:00 burst is spread: every backup schedule starts within its flexible window', () => {
  const backups = ofType('AWS::Scheduler::Schedule').filter((s) =>
    String(s.Properties.Description).includes('backs up'),
  );
  expect(backups).toHaveLength(300);
  for (const schedule of backups) {
    expect(schedule.Properties.FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 60 });
  }
});

test('the schedules of a fleet start executions as the one role of the stack: no role per nested stack', () => {
  for (const t of nestedTemplates) expect(ofType('AWS::IAM::Role', t.Resources)).toHaveLength(0);
  const roles = ofType('AWS::Scheduler::Schedule').map((s) =>
    JSON.stringify((s.Properties.Target as { RoleArn: unknown }).RoleArn),
  );
  expect(new Set(roles).size).toBe(1);
});

test(`a configuration whose databases need up to ${MAX_DATABASE_RESOURCES_IN_STACK} resources has no nested stack`, () => {
  // 20 databases, each backed up and verified, with its alarm: 3 resources each.
  const small = synthesize(
    fleetConfig({ servers: 2, databasesPerServer: MAX_DATABASE_RESOURCES_IN_STACK / 6 }),
  ).stack;
  expect(small.node.children.filter((c) => c instanceof NestedStack)).toHaveLength(0);
  expect(Stack.of(small).resolve(1)).toBe(1);
});

test('a task that cannot start for capacity is retried with jittered backoff for up to an hour', () => {
  for (const machine of ofType('AWS::StepFunctions::StateMachine', resources)) {
    const definition = JSON.parse(
      (stack.resolve(machine.Properties.DefinitionString) as { 'Fn::Join': [string, unknown[]] })[
        'Fn::Join'
      ][1]
        .map((p) => (typeof p === 'string' ? p : 'X'))
        .join(''),
    ) as { States: Record<string, { Resource?: string; Retry?: Record<string, unknown>[] }> };
    const runTasks = Object.values(definition.States).filter((s) =>
      String(s.Resource).includes('ecs:runTask'),
    );
    for (const state of runTasks) {
      const retry = state.Retry?.find((r) => (r.ErrorEquals as string[]).includes('ECS.AmazonECSException'));
      expect(retry).toEqual({
        ErrorEquals: ['ECS.AmazonECSException', 'ECS.ServerException'],
        IntervalSeconds: 30,
        BackoffRate: 2,
        MaxDelaySeconds: 300,
        JitterStrategy: 'FULL',
        MaxAttempts: 15,
      });
      // The nominal waits: 30, 60, 120, 240, then 300 s eleven times — 62.5 minutes.
      const waits = Array.from({ length: 15 }, (_, i) => Math.min(30 * 2 ** i, 300));
      expect(waits.reduce((a, b) => a + b, 0)).toBe(3_750);
    }
  }
});

test("a dump runs in its database's availability zone, where the configuration names it", () => {
  const fn = Object.entries(resources).find(
    ([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('FunctionsPreflight'),
  )?.[1];
  if (!fn) throw new Error('no backup preflight function');
  const env = (fn.Properties.Environment as { Variables: Record<string, string> }).Variables;
  const byZone = JSON.parse(env[TASK_SUBNETS_ENV]) as Record<string, string[]>;
  expect(byZone).toEqual({
    'eu-west-1a': ['subnet-0123456789abcdef0'],
    'eu-west-1b': ['subnet-0123456789abcdef1'],
  });
  const deployment = deploymentOf(stack.functions.encodedBindings);
  // s01 is in zone a, s02 in zone b (test/support/fleet.ts).
  expect(taskPlacement('s01-db01', env, deployment)).toEqual({ subnets: ['subnet-0123456789abcdef0'] });
  expect(taskPlacement('s02-db05', env, deployment)).toEqual({ subnets: ['subnet-0123456789abcdef1'] });
  // The backup's Dump state takes its subnets from the preflight's placement; the others keep theirs.
  const backup = Object.entries(resources).find(
    ([id, r]) => r.Type === 'AWS::StepFunctions::StateMachine' && id.startsWith('Backup'),
  )?.[1];
  const definition = JSON.stringify(stack.resolve(backup?.Properties.DefinitionString));
  expect(definition).toContain('\\"Subnets.$\\":\\"$.placement.subnets\\"');
});

test('a database without a zone, or a zone the VPC lacks, dumps in any subnet; a zone outside the VPC is refused', () => {
  const env = { [TASK_SUBNETS_ENV]: JSON.stringify({ a: ['subnet-0a'], b: ['subnet-0b'] }) };
  const deployment = deploymentOf(stack.functions.encodedBindings);
  expect(taskPlacement('not-configured', env, deployment)).toEqual({ subnets: ['subnet-0a', 'subnet-0b'] });
  expect(taskPlacement('s01-db01', {}, { onAws: false })).toEqual({ subnets: [] });
  expect(() => taskPlacement('s01-db01', {}, deployment)).toThrow(TASK_SUBNETS_ENV);
  const [db] = fleetConfig({ servers: 1, databasesPerServer: 1 }).databases ?? [];
  expect(() =>
    parseConfig(
      fleetConfig(
        { servers: 1, databasesPerServer: 1 },
        { databases: [{ ...db, availabilityZone: 'eu-west-1c' }] },
      ),
    ),
  ).toThrow(
    'databases.0.availabilityZone: eu-west-1c is not one of vpc.availabilityZones (eu-west-1a, eu-west-1b)',
  );
});

describe('a fleet of 30 servers, 10 of them server entries (databases: "all") beside 200 database entries', () => {
  const mixed = fleetConfig({ servers: 20, databasesPerServer: 10 }, { servers: fleetServers(20, 10) });
  const mixedStack = synthesize(mixed).stack;
  const parent = Template.fromStack(mixedStack).toJSON() as { Resources: Resources };
  const nested = mixedStack.node.children
    .filter((c): c is NestedStack => c instanceof NestedStack)
    .map((n) => Template.fromStack(n).toJSON() as { Resources: Resources });
  const everything: Resources = Object.assign({}, parent.Resources, ...nested.map((t) => t.Resources));

  test('every stack stays under the limits; a server entry is one schedule and three alarms, whatever its databases', () => {
    const counts = [
      Object.keys(parent.Resources).length,
      ...nested.map((t) => Object.keys(t.Resources).length),
    ];
    // Measured: the parent 272 (with the API; 30 nested stacks), a database server's nested stack 30, a server entry's 4.
    expect(counts[0]).toBeLessThanOrEqual(LIMITS.resourcesPerStack - HEADROOM);
    expect(nested).toHaveLength(30);
    expect(nested.map((t) => Object.keys(t.Resources).length).sort((a, b) => a - b)[0]).toBe(4);
    for (const count of counts.slice(1)) expect(count).toBeLessThan(LIMITS.resourcesPerStack);
    const schedules = ofType('AWS::Scheduler::Schedule', everything);
    expect(
      schedules.filter((s) => String(s.Properties.Description).includes('every database of')),
    ).toHaveLength(10);
    const alarms = ofType('AWS::CloudWatch::Alarm', everything).map((a) => String(a.Properties.AlarmName));
    expect(alarms.filter((n) => /fleet-no-backup-srv\d+-disappeared$/.test(n))).toHaveLength(10);
    expect(size(parent)).toBeLessThan(LIMITS.templateBytes / 2);
  });

  test("the servers' Map concurrency and the database schedules bound the 02:00 burst (tasks.maxConcurrentTasks)", () => {
    // 200 database schedules and verifies (400) + 10 servers × 4.
    expect(() => parseConfig({ ...mixed, tasks: { maxConcurrentTasks: 439 } })).toThrow(
      /could run 440 tasks at once/,
    );
    expect(parseConfig({ ...mixed, tasks: { maxConcurrentTasks: 440 } }).servers).toHaveLength(10);
  });
});
