/**
 * Least privilege, proven on the whole stack's template: who may tag backups, that no role may
 * touch retention or object versions (and the bucket policy denies it to everyone else), who may
 * decrypt backups, which ECS services a migration may scale.
 */
import { ACCOUNT, actionMatches, minimalConfig, REGION, templateOf } from './fixtures';

const template = templateOf();
const resources = template.toJSON().Resources as Record<
  string,
  { Type: string; Properties: Record<string, unknown> }
>;

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Principal?: unknown;
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
}

/** Every Allow statement of every IAM policy in the template, with the roles it is attached to. */
function roleGrants(): { roles: string[]; statement: Statement }[] {
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .flatMap((r) => {
      const roles = (r.Properties.Roles as { Ref: string }[]).map((role) => role.Ref);
      const { Statement } = r.Properties.PolicyDocument as { Statement: Statement[] };
      return Statement.filter((s) => s.Effect === 'Allow').map((statement) => ({ roles, statement }));
    });
}

/** The roles (logical id, without CDK's hash) allowed `action`, by any pattern that covers it. */
function rolesAllowed(action: string): string[] {
  return [
    ...new Set(
      roleGrants()
        .filter(({ statement }) => [statement.Action].flat().some((a) => actionMatches(a, action)))
        .flatMap(({ roles }) => roles.map((r) => r.replace(/[0-9A-F]{8}$/, ''))),
    ),
  ].sort();
}

test('only the record steps may tag backups (a tier tag decides what the lifecycle deletes)', () => {
  expect(rolesAllowed('s3:PutObjectTagging')).toEqual([
    'FunctionsMigrateStepsServiceRole',
    'FunctionsRecordServiceRole',
  ]);
  // Tagging an older version is no one's business either.
  expect(rolesAllowed('s3:PutObjectVersionTagging')).toEqual([]);
});

test.each([
  's3:PutObjectRetention',
  's3:PutObjectLegalHold',
  's3:BypassGovernanceRetention',
  's3:DeleteObjectVersion',
  's3:DeleteObjectVersionTagging',
])('no role of the stack may %s', (action) => {
  expect(rolesAllowed(action)).toEqual([]);
  // Nor through an AWS-managed policy: the only ones attached are Lambda's execution policies and
  // API Gateway's policy for its account-wide logging role.
  const managed = Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Role')
    .flatMap((r) => (r.Properties.ManagedPolicyArns ?? []) as unknown[])
    .map((arn) => JSON.stringify(arn).replace(/.*policy\/service-role\/(\w+).*/, '$1'));
  expect([...new Set(managed)].sort()).toEqual([
    'AWSLambdaBasicExecutionRole',
    'AWSLambdaVPCAccessExecutionRole',
    'AmazonAPIGatewayPushToCloudWatchLogs',
  ]);
});

test('the bucket policy denies those to every principal but the configured break-glass role', () => {
  const [policy] = Object.values(resources).filter(
    (r) => r.Type === 'AWS::S3::BucketPolicy' && JSON.stringify(r.Properties.Bucket).includes('StoreBucket'),
  );
  const deny = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement.find(
    (s) => s.Sid === 'DenyRetentionChangesAndVersionDeletes',
  );
  expect(deny).toMatchObject({
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Condition: { ArnNotEquals: { 'aws:PrincipalArn': `arn:aws:iam::${ACCOUNT}:role/pgferry-break-glass` } },
  });
  for (const action of [
    's3:PutObjectRetention',
    's3:PutObjectLegalHold',
    's3:BypassGovernanceRetention',
    's3:DeleteObjectVersion',
  ])
    expect([deny?.Action].flat().some((a) => actionMatches(String(a), action))).toBe(true);
});

test("the backups' key decrypts only for pgferry's roles (through S3) and the configured readers", () => {
  const reader = `arn:aws:iam::${ACCOUNT}:role/auditor`;
  const t = templateOf(minimalConfig({ bucket: { readerRoleArns: [reader] } }));
  const all = t.toJSON().Resources as typeof resources;
  const [key] = Object.entries(all).filter(
    ([id, r]) => r.Type === 'AWS::KMS::Key' && id.startsWith('StoreKey'),
  );
  const statements = (key[1].Properties.KeyPolicy as { Statement: Statement[] }).Statement;
  const decrypting = statements.filter(
    (s) => s.Effect === 'Allow' && [s.Action].flat().some((a) => actionMatches(a, 'kms:Decrypt')),
  );
  // The account's administrators are not among them.
  for (const s of decrypting) expect(JSON.stringify(s.Principal)).not.toContain(':root');
  const byRole = decrypting.filter((s) => JSON.stringify(s.Principal) === '{"AWS":"*"}');
  expect(byRole).toHaveLength(1);
  expect(byRole[0].Condition?.StringEquals).toMatchObject({
    'kms:CallerAccount': ACCOUNT,
    'kms:ViaService': { 'Fn::Join': ['', [`s3.${REGION}.`, { Ref: 'AWS::URLSuffix' }]] },
  });
  const roles = (
    (byRole[0].Condition?.ArnEquals?.['aws:PrincipalArn'] ?? []) as { 'Fn::GetAtt': [string, string] }[]
  ).map((r) => r['Fn::GetAtt'][0]);
  for (const role of roles) expect(all[role].Type).toBe('AWS::IAM::Role');
  // Every role that reads backups (or only their catalog: the dashboard's widget), and no other.
  const readers = Object.values(all)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .filter((r) =>
      (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement.some((s) =>
        [s.Action].flat().some((a) => a === 's3:GetObject*' || a === 's3:GetObject'),
      ),
    )
    .flatMap((r) => (r.Properties.Roles as { Ref: string }[]).map((role) => role.Ref));
  expect([...roles].sort()).toEqual([...new Set(readers)].sort());
  expect(decrypting.filter((s) => s !== byRole[0])).toEqual([
    expect.objectContaining({ Principal: { AWS: reader }, Action: ['kms:Decrypt', 'kms:DescribeKey'] }),
  ]);
});

test('a migration may scale only the ECS services the targets name (and the announcer scale them back after a stopped one)', () => {
  const updates = roleGrants().filter(({ statement }) =>
    [statement.Action].flat().some((a) => actionMatches(a, 'ecs:UpdateService')),
  );
  expect(rolesAllowed('ecs:UpdateService')).toEqual(['MigrateStateMachineRole', 'RunEventsStateMachineRole']);
  expect([...new Set(updates.flatMap(({ statement }) => [statement.Resource].flat()))]).toEqual([
    `arn:aws:ecs:${REGION}:${ACCOUNT}:service/shop/shop-api`,
  ]);
});

test('with no cutover service configured, a migration may scale none', () => {
  const t = templateOf(minimalConfig());
  const policies = Object.values(t.toJSON().Resources as typeof resources).filter(
    (r) => r.Type === 'AWS::IAM::Policy',
  );
  const resourcesOf = policies
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .filter((s) => [s.Action].flat().some((a) => actionMatches(a, 'ecs:UpdateService')))
    .flatMap((s) => [s.Resource].flat());
  expect([...new Set(resourcesOf)]).toEqual([
    `arn:aws:ecs:${REGION}:${ACCOUNT}:service/pgferry-no-cutover-services/none`,
  ]);
});

test('the verification task reads no database password: it restores into a server of its own', () => {
  expect(rolesAllowed('secretsmanager:GetSecretValue')).not.toContain('VerifyToolsTaskDefinitionTaskRole');
  expect(rolesAllowed('secretsmanager:GetSecretValue')).toContain('PgToolsTaskDefinitionTaskRole');
});
