/** Synthesizing the stack for template tests: without bundling assets, from a configuration. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { renderTokens } from '../../../lib/asl';
import { EXAMPLE_CONFIG_PATH, loadConfig, type PgferryConfigInput, parseConfig } from '../../../lib/config';
import { PgferryStack } from '../../../lib/pgferry-stack';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';

type ExistingVpcInput = Extract<NonNullable<PgferryConfigInput['vpc']>, { mode: 'existing' }>;

/** The databases' VPC, as a configuration names it (a new object each time). */
export function existingVpc(overrides: Partial<ExistingVpcInput> = {}): ExistingVpcInput {
  return {
    mode: 'existing',
    vpcId: 'vpc-0123456789abcdef0',
    cidr: '10.0.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b'],
    privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'],
    privateSubnetRouteTableIds: ['rtb-0123456789abcdef0', 'rtb-0123456789abcdef1'],
    ...overrides,
  };
}

/** A small valid configuration: one database, reached through its security group, in its VPC. */
export function minimalConfig(overrides: Partial<PgferryConfigInput> = {}): PgferryConfigInput {
  return {
    vpc: existingVpc(),
    databases: [
      {
        id: 'shop',
        connection: {
          host: 'shop.abc.eu-west-1.rds.amazonaws.com',
          database: 'shop',
          user: 'backup',
          passwordSecretArn: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:shop-AbCdEf`,
        },
        network: { securityGroupId: 'sg-0123456789abcdef0' },
        backupSchedules: [{ cron: '0 3 * * ? *', timeZone: 'Europe/Berlin' }],
      },
    ],
    ...overrides,
  };
}

/**
 * A new app holding the stack built from `config` (default: the example configuration).
 * CDK's built-in CloudFormation validation (a WASM linter: ~5 s to start in each test file, ~2 s
 * per synth) runs only where asked — test/unit/lib/nag.test.ts asks, as `cdk synth` always does.
 */
export function synthesize(
  config?: PgferryConfigInput,
  { cloudFormationValidation = false }: { cloudFormationValidation?: boolean } = {},
): { app: App; stack: PgferryStack } {
  const app = new App({
    builtinCloudFormationValidation: cloudFormationValidation,
    context: { 'aws:cdk:bundling-stacks': [] },
    outdir: mkdtempSync(path.join(tmpdir(), 'pgferry-cdk-')),
  });
  const stack = new PgferryStack(app, 'Test', {
    env: { account: ACCOUNT, region: REGION },
    config: config ? parseConfig(config) : loadConfig(EXAMPLE_CONFIG_PATH),
  });
  return { app, stack };
}

export function templateOf(config?: PgferryConfigInput): Template {
  return Template.fromStack(synthesize(config).stack);
}

export interface PolicyStatement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}

/** The statements of the IAM policies attached to the roles whose logical ids start with `rolePrefix`. */
export function policyStatementsOf(template: Template, rolePrefix: string): PolicyStatement[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as {
    Properties: { Roles: { Ref: string }[]; PolicyDocument: { Statement: PolicyStatement[] } };
  }[];
  return policies
    .filter((p) => p.Properties.Roles.some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** Every action the roles whose logical ids start with `rolePrefix` are allowed, sorted. */
export function allowedActionsOf(template: Template, rolePrefix: string): string[] {
  return policyStatementsOf(template, rolePrefix)
    .filter((s) => s.Effect === 'Allow')
    .flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]))
    .sort();
}

/** The resources of the statements allowing `action` to the roles whose logical ids start with `rolePrefix`. */
export function resourcesAllowed(template: Template, rolePrefix: string, action: string): unknown[] {
  return policyStatementsOf(template, rolePrefix)
    .filter((s) => s.Effect === 'Allow' && (Array.isArray(s.Action) ? s.Action : [s.Action]).includes(action))
    .flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
}

/** The parts of an ASL state the tests look at. */
export interface AslState {
  Type: string;
  Next?: string;
  End?: boolean;
  Resource?: string;
  TimeoutSeconds?: number;
  Retry?: { ErrorEquals: string[]; BackoffRate?: number }[];
  Catch?: { ErrorEquals: string[]; Next: string }[];
  Parameters?: {
    NetworkConfiguration?: {
      AwsvpcConfiguration: { Subnets?: string[]; 'Subnets.$'?: string; SecurityGroups: string[] };
    };
    Overrides?: { ContainerOverrides: { Name: string; Environment: Record<string, string>[] }[] };
  };
}

export interface AslDefinition {
  StartAt: string;
  TimeoutSeconds?: number;
  States: Record<string, AslState>;
}

/** The ASL of the state machine whose logical id starts with `prefix`, tokens rendered by lib/asl.ts. */
export function definitionOf(template: Template, prefix: string): AslDefinition {
  const resources = template.toJSON().Resources as Record<
    string,
    { Type: string; Properties: Record<string, unknown> }
  >;
  const [id] = Object.keys(resources).filter(
    (key) => key.startsWith(prefix) && resources[key].Type === 'AWS::StepFunctions::StateMachine',
  );
  if (!id) throw new Error(`no state machine ${prefix}*`);
  return JSON.parse(renderTokens(resources[id].Properties.DefinitionString, resources)) as AslDefinition;
}

/** Whether an IAM action pattern (`s3:DeleteObject*`, `kms:*`, `*`) covers `action` (case-insensitive, as IAM). */
export function actionMatches(pattern: string, action: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`, 'i').test(action);
}
