/**
 * Acknowledging cdk-nag findings (AwsSolutionsChecks, run by `cdk synth` and test/unit/lib/nag.test.ts)
 * where they are caused: every acknowledgement names one finding and says why it is acceptable.
 * cdk-nag 3 reads them from the construct tree (CDK's `Validations.of(...).acknowledge`), so the
 * constructs need no cdk-nag import.
 */
import { Stack, Validations } from 'aws-cdk-lib';
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
