/**
 * The Amazon States Language definitions of the workflows, as synthesized from this CDK app.
 * The CLI runs exactly these (generated at build time into dist/asl/, and a test checks they
 * equal a fresh synthesis).
 */
import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { WORKFLOW_NAMES, type WorkflowName } from '../core/workflows';
import { EXAMPLE_CONFIG_PATH, loadConfig } from './config';
import { PgferryStack } from './pgferry-stack';

export type AslDefinition = { StartAt: string; States: Record<string, unknown> } & Record<string, unknown>;

/** Placeholder account/region used where the template refers to the deployment's own values. */
const LOCAL_ACCOUNT = '000000000000';
const LOCAL_REGION = 'local-1';

/** Synthesizes the stack (without bundling assets) and renders each workflow's definition. */
/** The definitions the CLI runs: the workflows', and the server backup's. */
export type AslName = WorkflowName | 'server-backup';

export function synthesizeWorkflowDefinitions(): Record<AslName, AslDefinition> {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new PgferryStack(app, 'PgferryAsl', {
    env: { account: LOCAL_ACCOUNT, region: 'us-east-1' },
    config: loadConfig(EXAMPLE_CONFIG_PATH),
  });
  const template = Template.fromStack(stack).toJSON() as { Resources: Record<string, CfnResource> };
  const logicalId = (sm: sfn.StateMachine) => stack.getLogicalId(sm.node.defaultChild as CfnElement);
  const stateMachineIds: Record<AslName, string> = {
    'server-backup': logicalId(stack.serverBackup.stateMachine),
    backup: logicalId(stack.backup.stateMachine),
    restore: logicalId(stack.restore.stateMachine),
    verify: logicalId(stack.verify.stateMachine),
    migrate: logicalId(stack.migrate.stateMachine),
  };
  const out = {} as Record<AslName, AslDefinition>;
  for (const name of [...WORKFLOW_NAMES, 'server-backup' as const]) {
    const resource = template.Resources[stateMachineIds[name]];
    out[name] = JSON.parse(
      renderTokens(resource.Properties.DefinitionString, template.Resources),
    ) as AslDefinition;
  }
  return out;
}

interface CfnResource {
  Type: string;
  Properties: Record<string, unknown> & { DefinitionString: unknown };
}

/**
 * Resolves the CloudFormation intrinsics in a definition string into stable placeholders that
 * the local executor accepts: ARNs of the right service naming the logical id, e.g.
 * `arn:aws:lambda:local-1:000000000000:function:FunctionsPreflightE50EEC6A`.
 */
export function renderTokens(value: unknown, resources: Record<string, { Type: string }>): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (Array.isArray(v['Fn::Join'])) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((part) => renderTokens(part, resources)).join(sep);
  }
  if (Array.isArray(v['Fn::GetAtt'])) {
    const [logicalId, attr] = v['Fn::GetAtt'] as [string, string];
    return attr === 'Arn' ? placeholderArn(logicalId, resources[logicalId]?.Type) : `${logicalId}.${attr}`;
  }
  if (typeof v.Ref === 'string') {
    const pseudo: Record<string, string> = {
      'AWS::Partition': 'aws',
      'AWS::Region': LOCAL_REGION,
      'AWS::AccountId': LOCAL_ACCOUNT,
      'AWS::URLSuffix': 'amazonaws.com',
    };
    return pseudo[v.Ref] ?? v.Ref;
  }
  throw new Error(
    `unsupported intrinsic in a state machine definition: ${JSON.stringify(value).slice(0, 200)}`,
  );
}

function placeholderArn(logicalId: string, type: string | undefined): string {
  switch (type) {
    case 'AWS::Lambda::Function':
      return `arn:aws:lambda:${LOCAL_REGION}:${LOCAL_ACCOUNT}:function:${logicalId}`;
    case 'AWS::ECS::Cluster':
      return `arn:aws:ecs:${LOCAL_REGION}:${LOCAL_ACCOUNT}:cluster/${logicalId}`;
    default:
      return `arn:aws:cloudformation:${LOCAL_REGION}:${LOCAL_ACCOUNT}:resource/${logicalId}`;
  }
}
