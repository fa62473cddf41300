/**
 * A database's own retention policy (`databases[].retention`) reaches the record step — through
 * the bindings compiled into the functions, which no execution input can change — and the
 * bucket's lifecycle rules, whose transitions allow for its shorter-lived tiers.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { deploymentOf, retentionFor } from '../../../core/deployment';
import { DEFAULT_RETENTION } from '../../../core/retention';
import { minimalConfig, synthesize } from './fixtures';

const base = minimalConfig();
const [shop] = base.databases ?? [];
const billing = {
  ...shop,
  id: 'billing',
  connection: { ...shop.connection, database: 'billing' },
  // Three monthlies live ~90 days: too short for Glacier Instant Retrieval's 90-day minimum after 90.
  retention: { keepMonthly: 3, keepDaily: 30 },
};
const { stack } = synthesize({ ...base, databases: [shop, billing] });

type Rule = { Id: string; Transitions?: { StorageClass: string; TransitionInDays: number }[] };
/** The backup bucket's lifecycle rules, as the template has them. */
function lifecycleRules(s = stack): Rule[] {
  const buckets = Template.fromStack(s).findResources('AWS::S3::Bucket', {
    Properties: { ObjectLockEnabled: Match.anyValue() },
  });
  const [bucket] = Object.values(buckets) as { Properties: { LifecycleConfiguration: { Rules: Rule[] } } }[];
  return bucket.Properties.LifecycleConfiguration.Rules;
}

test("the record step tags a database's backups by its own policy, over the deployment's", () => {
  const deployment = deploymentOf(stack.functions.encodedBindings);
  expect(retentionFor('billing', DEFAULT_RETENTION, deployment)).toEqual({
    ...DEFAULT_RETENTION,
    keepMonthly: 3,
    keepDaily: 30,
  });
  // A database without a policy of its own: the deployment's (PGFERRY_RETENTION).
  expect(retentionFor('shop', DEFAULT_RETENTION, deployment)).toBe(DEFAULT_RETENTION);
  // The task definition carries the same bindings.
  expect(deploymentOf(stack.functions.encodedBindings)).toEqual({ onAws: true, bindings: stack.bindings });
});

test("the lifecycle's monthly transitions allow for the shortest-lived monthlies; no rule per database", () => {
  const rules = lifecycleRules();
  expect(rules.find((r) => r.Id === 'pgferry-monthly')?.Transitions).toEqual([
    { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
  ]);
  // Without billing's policy, the monthlies (12, ~360 days) also go to Glacier Instant Retrieval.
  const alone = lifecycleRules(synthesize(base).stack);
  expect(alone.find((r) => r.Id === 'pgferry-monthly')?.Transitions).toEqual([
    { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
    { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
  ]);
  expect(rules.map((r) => r.Id)).toEqual(alone.map((r) => r.Id));
});
