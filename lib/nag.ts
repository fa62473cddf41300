/**
 * Acknowledging cdk-nag findings (AwsSolutionsChecks, run by `cdk synth` and test/unit/lib/nag.test.ts)
 * where they are caused: every acknowledgement names one finding and says why it is acceptable.
 * cdk-nag 3 reads them from the construct tree (CDK's `Validations.of(...).acknowledge`), so the
 * constructs need no cdk-nag import.
 */
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { IConstruct } from 'constructs';

/** Acknowledges one finding (`AwsSolutions-IAM5[Action::s3:List*]`) on `scope` and everything under it. */
export function acknowledge(scope: IConstruct, finding: string, reason: string): void {
  Validations.of(scope).acknowledge({ id: finding, reason });
}

/** Acknowledges several wildcard findings (AwsSolutions-IAM5) of `scope`'s policies, each with its reason. */
export function acknowledgeWildcards(scope: IConstruct, findings: Record<string, string>): void {
  for (const [detail, reason] of Object.entries(findings))
    acknowledge(scope, `AwsSolutions-IAM5[${detail}]`, reason);
}

/**
 * The `Resource::…` detail cdk-nag reports for a policy resource that may contain tokens, e.g.
 * `Resource::<StoreBucket1234ABCD.Arn>/backups/*`: the resource resolved and flattened the way
 * cdk-nag flattens it (`Fn::GetAtt` → `<Id.Attr>`, `Ref` → `<Id>`, `Fn::Join` joined).
 */
export function wildcardResource(scope: IConstruct, resource: string): string {
  return `Resource::${flatten(Stack.of(scope).resolve(resource))}`;
}

/**
 * Acknowledges the wildcard that starting `nested` synchronously (`startExecution.sync:2`) leaves
 * in `parent`'s role: Step Functions grants describing and stopping `nested`'s executions, whose
 * names exist only at run time.
 */
export function acknowledgeNestedExecutions(parent: sfn.StateMachine, nested: sfn.IStateMachine): void {
  const stack = Stack.of(parent);
  const executions = stack.formatArn({
    service: 'states',
    resource: 'execution',
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    resourceName: `${stack.splitArn(nested.stateMachineArn, ArnFormat.COLON_RESOURCE_NAME).resourceName}*`,
  });
  acknowledgeWildcards(parent.role, {
    [wildcardResource(parent, executions)]:
      "StepFunctionsStartExecution's grant to describe and stop the nested workflow's executions, whose names exist only at run time",
  });
}

function flatten(node: unknown): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node.replace(/\$\{/g, '<').replace(/\}/g, '>');
  const n = node as Record<string, unknown>;
  if (Array.isArray(n['Fn::Join'])) {
    const [separator, items] = n['Fn::Join'] as [string, unknown[]];
    return items.map(flatten).join(separator);
  }
  if (n['Fn::Sub'] !== undefined) return flatten(n['Fn::Sub']);
  if (Array.isArray(n['Fn::GetAtt'])) {
    const [resource, attribute] = n['Fn::GetAtt'] as [unknown, unknown];
    return `<${flatten(resource)}.${flatten(attribute)}>`;
  }
  if (n['Fn::ImportValue'] !== undefined) return flatten(n['Fn::ImportValue']);
  if (n.Ref !== undefined) return `<${flatten(n.Ref)}>`;
  return JSON.stringify(node);
}
