/**
 * The runbooks (lib/runbooks.ts): each SSM Automation document's form (parameters, allowed values,
 * the backup's pattern), its approval step where a choice needs one (and nowhere else), the state
 * machine it starts, its structure as SSM requires it (a small checker), and the least privilege of
 * its automation role and of the grants to run and approve it.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import type { PgferryConfigInput } from '../../../lib/config';
import { BACKUP_PARAMETER_PATTERN } from '../../../lib/runbooks';
import { ACCOUNT, minimalConfig, REGION, templateOf } from './fixtures';

type Resources = Record<string, { Type: string; Properties: Record<string, unknown> }>;

interface Step {
  name: string;
  action: string;
  inputs: Record<string, unknown>;
  outputs?: { Name: string; Selector: string; Type: string }[];
  nextStep?: string;
  isEnd?: boolean;
  onFailure?: string;
}
interface Document {
  schemaVersion: string;
  assumeRole: unknown;
  parameters: Record<
    string,
    { type: string; allowedValues?: string[]; allowedPattern?: string; default?: unknown }
  >;
  mainSteps: Step[];
  outputs: string[];
}

const APPROVER = `arn:aws:iam::${ACCOUNT}:role/dba-lead`;
const SECRET = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:drill-AbCdEf`;

/** Two databases (one a restore target), two targets (one with cutover services), an approver. */
function consoleConfig(overrides: Partial<PgferryConfigInput> = {}): PgferryConfigInput {
  const base = minimalConfig();
  const shop = base.databases[0];
  return {
    ...base,
    databases: [
      shop,
      {
        ...shop,
        id: 'billing',
        connection: { ...shop.connection, database: 'billing' },
        restoreTarget: true,
      },
    ],
    targets: [
      {
        id: 'shop-drill',
        connection: {
          ...shop.connection,
          host: 'drill.abc.eu-west-1.rds.amazonaws.com',
          passwordSecretArn: SECRET,
        },
        network: { securityGroupId: 'sg-0123456789abcdef1' },
      },
      {
        id: 'shop-pg17',
        connection: {
          ...shop.connection,
          host: 'pg17.abc.eu-west-1.rds.amazonaws.com',
          passwordSecretArn: SECRET.replace('drill', 'pg17'),
        },
        network: { securityGroupId: 'sg-0123456789abcdef1' },
        cutoverEcsServices: [{ cluster: 'prod', service: 'api' }],
      },
    ],
    console: { approvers: [APPROVER] },
    ...overrides,
  };
}

/** A resource's value with CloudFormation's intrinsic functions as `<Ref>`/`<Id.Attr>` placeholders. */
function placeholders(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(placeholders);
  if (value && typeof value === 'object') {
    const v = value as Record<string, unknown>;
    if ('Ref' in v) return `<${v.Ref}>`;
    if ('Fn::GetAtt' in v) return `<${(v['Fn::GetAtt'] as string[]).join('.')}>`;
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
      return parts.map((p) => String(placeholders(p))).join(sep);
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, placeholders(x)]));
  }
  return value;
}

function documents(template: Template): Record<string, { name: string; content: Document }> {
  const resources = template.toJSON().Resources as Resources;
  return Object.fromEntries(
    Object.values(resources)
      .filter((r) => r.Type === 'AWS::SSM::Document')
      .map((r) => {
        const name = r.Properties.Name as string;
        expect(r.Properties.DocumentType).toBe('Automation');
        return [name, { name, content: placeholders(r.Properties.Content) as Document }];
      }),
  );
}

/** The actions of SSM Automation (the actions reference) that a runbook may use. */
const AUTOMATION_ACTIONS = new Set([
  'aws:approve',
  'aws:assertAwsResourceProperty',
  'aws:branch',
  'aws:changeInstanceState',
  'aws:copyImage',
  'aws:createImage',
  'aws:createStack',
  'aws:createTags',
  'aws:deleteImage',
  'aws:deleteStack',
  'aws:executeAutomation',
  'aws:executeAwsApi',
  'aws:executeScript',
  'aws:executeStateMachine',
  'aws:invokeLambdaFunction',
  'aws:invokeWebhook',
  'aws:loop',
  'aws:pause',
  'aws:runCommand',
  'aws:runInstances',
  'aws:sleep',
  'aws:updateVariable',
  'aws:waitForAwsResourceProperty',
]);
/** Outputs every step of an action has (besides those it declares). */
const BUILT_IN_OUTPUTS: Record<string, string[]> = {
  'aws:invokeLambdaFunction': ['StatusCode', 'FunctionError', 'LogResult', 'Payload'],
  'aws:approve': ['ApprovalStatus', 'ApproverDecisions'],
};
const PARAMETER_TYPES = new Set(['String', 'StringList', 'Integer', 'Boolean', 'MapList', 'StringMap']);

/**
 * What SSM requires of an Automation document, as far as this checker knows it: schema 0.3, step
 * names unique and of SSM's characters, known actions, every `nextStep`/branch target a step,
 * every `{{Step.Output}}` and document output a step that precedes it and has that output, every
 * `{{Parameter}}` declared, parameters of known types with defaults among their allowed values,
 * and a last step (or `isEnd`) that ends it. Returns the problems.
 */
function checkAutomationDocument(doc: Document): string[] {
  const problems: string[] = [];
  if (doc.schemaVersion !== '0.3') problems.push(`schemaVersion ${doc.schemaVersion}`);
  const names = doc.mainSteps.map((s) => s.name);
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) problems.push(`step name ${name} twice`);
    seen.add(name);
    if (!/^[A-Za-z0-9_]{1,128}$/.test(name)) problems.push(`step name ${name}`);
  }
  for (const [name, p] of Object.entries(doc.parameters)) {
    if (!PARAMETER_TYPES.has(p.type)) problems.push(`parameter ${name}: type ${p.type}`);
    if (p.allowedValues && p.allowedValues.length === 0) problems.push(`parameter ${name}: no allowed value`);
    if (p.allowedValues && p.default !== undefined && !p.allowedValues.includes(String(p.default)))
      problems.push(`parameter ${name}: default ${p.default} not allowed`);
    if (p.allowedPattern && p.default !== undefined && !new RegExp(p.allowedPattern).test(String(p.default)))
      problems.push(`parameter ${name}: default ${p.default} does not match ${p.allowedPattern}`);
  }
  const outputsOf = (step: Step) => [
    ...(BUILT_IN_OUTPUTS[step.action] ?? []),
    ...(step.outputs ?? []).map((o) => o.Name),
  ];
  doc.mainSteps.forEach((step, i) => {
    if (!AUTOMATION_ACTIONS.has(step.action)) problems.push(`${step.name}: unknown action ${step.action}`);
    for (const next of [
      step.nextStep,
      ...((step.inputs.Choices as { NextStep: string }[] | undefined) ?? []).map((c) => c.NextStep),
      step.inputs.Default as string | undefined,
    ]) {
      if (next !== undefined && !names.includes(next))
        problems.push(`${step.name}: next step ${next} does not exist`);
    }
    for (const output of step.outputs ?? []) {
      if (!output.Selector.startsWith('$'))
        problems.push(`${step.name}.${output.Name}: selector ${output.Selector}`);
    }
    for (const match of JSON.stringify(step.inputs).matchAll(/\{\{\s*([A-Za-z0-9_:.]+)\s*\}\}/g)) {
      const ref = match[1];
      if (ref.startsWith('automation:') || ref.startsWith('global:')) continue;
      const [stepName, output] = ref.split('.');
      if (output === undefined) {
        if (!(ref in doc.parameters)) problems.push(`${step.name}: {{${ref}}} is no parameter`);
        continue;
      }
      const source = doc.mainSteps.findIndex((s) => s.name === stepName);
      if (source < 0 || source >= i) problems.push(`${step.name}: {{${ref}}} is no earlier step's`);
      else if (!outputsOf(doc.mainSteps[source]).includes(output))
        problems.push(`${step.name}: ${stepName} has no output ${output}`);
    }
    if (step.action === 'aws:branch' && step.inputs.Default === undefined)
      problems.push(`${step.name}: branch without Default`);
  });
  const last = doc.mainSteps[doc.mainSteps.length - 1];
  if (last && last.nextStep !== undefined) problems.push(`${last.name}: the last step names a next step`);
  for (const output of doc.outputs) {
    const [stepName, name] = output.split('.');
    const step = doc.mainSteps.find((s) => s.name === stepName);
    if (!step) problems.push(`output ${output}: no step ${stepName}`);
    else if (!outputsOf(step).includes(name))
      problems.push(`output ${output}: ${stepName} has no output ${name}`);
  }
  return problems;
}

const template = templateOf(consoleConfig());
const docs = documents(template);
const resources = template.toJSON().Resources as Resources;

test('four runbooks, named after the stack', () => {
  expect(Object.keys(docs).sort()).toEqual(['Test-Backup', 'Test-Migrate', 'Test-Restore', 'Test-Verify']);
  for (const r of Object.values(resources).filter((x) => x.Type === 'AWS::SSM::Document')) {
    // A named document is updated as a new version: a replacement would collide with its own name.
    expect(r.Properties.UpdateMethod).toBe('NewVersion');
  }
});

test.each(Object.keys(docs))(
  '%s is an Automation document SSM accepts (the checker finds nothing)',
  (name) => {
    expect(checkAutomationDocument(docs[name].content)).toEqual([]);
  },
);

test('the checker finds what SSM refuses', () => {
  const doc = structuredClone(docs['Test-Restore'].content);
  doc.mainSteps.push({ ...doc.mainSteps[0] });
  doc.mainSteps[1] = { ...doc.mainSteps[1], action: 'aws:startExecution', nextStep: 'Nowhere' };
  doc.outputs.push('Missing.Output', 'Result.Nothing');
  doc.parameters.Mode.default = 'dirty';
  expect(checkAutomationDocument(doc)).toEqual(
    expect.arrayContaining([
      'step name Request twice',
      `${doc.mainSteps[1].name}: unknown action aws:startExecution`,
      `${doc.mainSteps[1].name}: next step Nowhere does not exist`,
      'output Missing.Output: no step Missing',
      'output Result.Nothing: Result has no output Nothing',
      'parameter Mode: default dirty not allowed',
    ]),
  );
});

test('the form: databases and targets from the configuration, the backup by pattern, the modes from lists', () => {
  const restore = docs['Test-Restore'].content.parameters;
  expect(restore.Database.allowedValues).toEqual(['shop', 'billing']);
  // A target, or a database configured as one (restoreTarget).
  expect(restore.Target.allowedValues).toEqual(['shop-drill', 'shop-pg17', 'billing']);
  expect(restore.Backup).toMatchObject({ default: 'latest', allowedPattern: BACKUP_PARAMETER_PATTERN });
  const pattern = new RegExp(BACKUP_PARAMETER_PATTERN);
  expect(['latest', '20261202T021500Z-3fa9c1'].every((v) => pattern.test(v))).toBe(true);
  expect(
    ['', 'newest', '20261202T021500Z-3FA9C1', '20261202T021500Z-3fa9c1 ', '../x'].some((v) =>
      pattern.test(v),
    ),
  ).toBe(false);
  expect(restore.Mode).toMatchObject({ default: 'create', allowedValues: ['create', 'clean'] });
  expect(Object.keys(restore).sort()).toEqual(['Backup', 'Database', 'Mode', 'Target']);

  const migrate = docs['Test-Migrate'].content.parameters;
  expect(migrate.Target.allowedValues).toEqual(['shop-drill', 'shop-pg17']);
  expect(migrate.Cutover).toMatchObject({ default: 'none', allowedValues: ['none', 'ecs-services'] });
  expect(Object.keys(migrate).sort()).toEqual([
    'Cutover',
    'CutoverDesiredCount',
    'Database',
    'FreezeSource',
    'Target',
  ]);

  expect(Object.keys(docs['Test-Verify'].content.parameters).sort()).toEqual(['Backup', 'Database']);
  expect(Object.keys(docs['Test-Backup'].content.parameters)).toEqual(['Database']);
  // No guard rail is a parameter: nothing to force, no safety backup to switch off, no approval to skip.
  const all = Object.values(docs).flatMap((d) =>
    Object.keys(d.content.parameters).map((p) => p.toLowerCase()),
  );
  for (const rail of [
    'force',
    'safetybackup',
    'skipapproval',
    'approve',
    'connection',
    'host',
    'passwordsecretarn',
  ])
    expect(all).not.toContain(rail);
});

/** The steps that wait for an approval, and the branch that leads to it. */
function approval(doc: Document): { branch?: Step; approve?: Step } {
  return {
    branch: doc.mainSteps.find((s) => s.action === 'aws:branch'),
    approve: doc.mainSteps.find((s) => s.action === 'aws:approve'),
  };
}

test('a clean restore and a cutover wait for the configured approvers; create, other choices, backups and verifications do not', () => {
  const restore = approval(docs['Test-Restore'].content);
  expect(restore.branch?.inputs).toEqual({
    Choices: [{ NextStep: 'Approve', Variable: '{{Mode}}', StringEquals: 'clean' }],
    Default: 'Start',
  });
  expect(restore.approve?.inputs).toMatchObject({ Approvers: [APPROVER], MinRequiredApprovals: 1 });
  const migrate = approval(docs['Test-Migrate'].content);
  expect(migrate.branch?.inputs).toEqual({
    Choices: [{ NextStep: 'Approve', Variable: '{{Cutover}}', StringEquals: 'ecs-services' }],
    Default: 'Start',
  });
  expect(migrate.approve?.inputs).toMatchObject({ Approvers: [APPROVER] });
  for (const name of ['Test-Backup', 'Test-Verify']) expect(approval(docs[name].content)).toEqual({});
  // The approval comes before the workflow is started, never after.
  for (const name of ['Test-Restore', 'Test-Migrate']) {
    const steps = docs[name].content.mainSteps.map((s) => s.name);
    expect(steps.indexOf('Approve')).toBeLessThan(steps.indexOf('Start'));
    expect(steps.indexOf('ApprovalNeeded')).toBeLessThan(steps.indexOf('Approve'));
  }
});

test('without an approver, the forms do not offer a clean restore or a cutover; only the configuration skips the approval', () => {
  const none = documents(templateOf(consoleConfig({ console: {} })));
  expect(none['Test-Restore'].content.parameters.Mode.allowedValues).toEqual(['create']);
  expect(none['Test-Migrate'].content.parameters.Cutover.allowedValues).toEqual(['none']);
  expect(approval(none['Test-Restore'].content)).toEqual({});

  const skipped = documents(templateOf(consoleConfig({ console: { requireApproval: false } })));
  expect(skipped['Test-Restore'].content.parameters.Mode.allowedValues).toEqual(['create', 'clean']);
  expect(approval(skipped['Test-Restore'].content)).toEqual({});
  expect(approval(skipped['Test-Migrate'].content)).toEqual({});
});

/** The logical id of the state machine `<name>StateMachine…`. */
function stateMachine(name: string): string {
  const id = Object.keys(resources).find(
    (k) => resources[k].Type === 'AWS::StepFunctions::StateMachine' && k.startsWith(`${name}StateMachine`),
  );
  if (!id) throw new Error(`no ${name} state machine`);
  return id;
}

test.each([
  ['Test-Backup', 'Backup'],
  ['Test-Verify', 'Verify'],
  ['Test-Restore', 'Restore'],
  ['Test-Migrate', 'Migrate'],
])(
  '%s starts the %s state machine with the request built from the form, waits for it and outputs its result',
  (name, machine) => {
    const { mainSteps, outputs } = docs[name].content;
    const start = mainSteps.find((s) => s.name === 'Start');
    expect(start).toMatchObject({
      action: 'aws:executeAwsApi',
      inputs: {
        Service: 'stepfunctions',
        Api: 'StartExecution',
        stateMachineArn: `<${stateMachine(machine)}>`,
        name: '{{automation:EXECUTION_ID}}',
        input: '{{Request.Payload}}',
      },
    });
    const request = mainSteps.find((s) => s.name === 'Request');
    if (!request) throw new Error('no Request step');
    expect(request.action).toBe('aws:invokeLambdaFunction');
    expect((request.inputs.FunctionName as string).startsWith('<FunctionsRunbookRequest')).toBe(true);
    expect((request.inputs.InputPayload as Record<string, string>).kind).toBe(machine.toLowerCase());
    expect(mainSteps.find((s) => s.name === 'Wait')).toMatchObject({
      action: 'aws:waitForAwsResourceProperty',
      inputs: {
        Api: 'DescribeExecution',
        executionArn: '{{Start.ExecutionArn}}',
        PropertySelector: '$.status',
      },
    });
    expect(mainSteps.at(-1)).toMatchObject({
      action: 'aws:assertAwsResourceProperty',
      inputs: { DesiredValues: ['SUCCEEDED'] },
      isEnd: true,
    });
    expect(outputs).toEqual(expect.arrayContaining(['Result.Report', 'Result.Status', 'Result.Error']));
  },
);

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** The Allow statements of the policies attached to the role whose logical id starts with `prefix`. */
function grantsOf(prefix: string): Statement[] {
  const role = Object.keys(resources).find(
    (k) => k.startsWith(prefix) && resources[k].Type === 'AWS::IAM::Role',
  );
  if (!role) throw new Error(`no role ${prefix}`);
  return Object.values(resources)
    .filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        (r.Properties.Roles as { Ref: string }[]).some((ref) => ref.Ref === role),
    )
    .flatMap((r) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .map((s) => placeholders(s) as Statement);
}

test.each([['Backup'], ['Verify'], ['Restore'], ['Migrate']])(
  "the %s runbook's role may invoke the request function and start and describe its own workflow only",
  (kind) => {
    const grants = grantsOf(`Runbooks${kind}Role`);
    const machine = stateMachine(kind);
    const actions = grants.flatMap((s) => [s.Action].flat()).sort();
    expect(actions).toEqual(['lambda:InvokeFunction', 'states:DescribeExecution', 'states:StartExecution']);
    expect(grants.find((s) => s.Action === 'states:StartExecution')?.Resource).toBe(`<${machine}>`);
    const invoke = grants.find((s) => s.Action === 'lambda:InvokeFunction')?.Resource as string;
    expect(invoke).toMatch(/^<FunctionsRunbookRequest[0-9A-F]{8}\.Arn>$/);
    // Only SSM Automation of this account assumes it.
    const role = Object.entries(resources).find(
      ([k, r]) => k.startsWith(`Runbooks${kind}Role`) && r.Type === 'AWS::IAM::Role',
    );
    const trust = placeholders(role?.[1].Properties.AssumeRolePolicyDocument) as { Statement: Statement[] };
    expect(trust.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: 'ssm.amazonaws.com' },
        Condition: {
          StringEquals: { 'aws:SourceAccount': ACCOUNT },
          ArnLike: { 'aws:SourceArn': `arn:aws:ssm:${REGION}:${ACCOUNT}:automation-execution/*` },
        },
      }),
    ]);
  },
);

test('who may run a runbook is a grant of its own: start that document, pass that role to SSM', () => {
  const policy = Object.entries(resources).find(
    ([k, r]) => k.startsWith('RunbooksRunRestorePolicy') && r.Type === 'AWS::IAM::ManagedPolicy',
  );
  const statements = (placeholders(policy?.[1].Properties.PolicyDocument) as { Statement: Statement[] })
    .Statement;
  expect(statements.find((s) => s.Action === 'ssm:StartAutomationExecution')?.Resource).toBe(
    `arn:aws:ssm:${REGION}:${ACCOUNT}:automation-definition/Test-Restore:*`,
  );
  const pass = statements.find((s) => s.Action === 'iam:PassRole');
  expect(pass?.Resource).toMatch(/^<RunbooksRestoreRole[0-9A-F]{8}\.Arn>$/);
  expect(pass?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } });
  // No grant of the workflow itself: the caller starts the automation, the automation's role the workflow.
  expect(statements.flatMap((s) => [s.Action].flat()).some((a) => a.startsWith('states:'))).toBe(false);
});

test('a configuration without targets deploys the backup and verify runbooks only', () => {
  expect(Object.keys(documents(templateOf(minimalConfig()))).sort()).toEqual(['Test-Backup', 'Test-Verify']);
});

test('console.enabled: false deploys no runbook and no widget', () => {
  const off = templateOf(consoleConfig({ console: { enabled: false } }));
  expect(Object.keys(documents(off))).toEqual([]);
  off.resourceCountIs('AWS::SSM::Document', 0);
});
