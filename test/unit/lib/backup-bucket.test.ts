/** The backup store's bucket: encryption, TLS, public access, logs, lifecycle, Object Lock, grants. */
import { App, type CfnElement, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { DEFAULT_RETENTION, EXPIRED_AFTER_DAYS, lifecycleRulesFor, TIER_TAG } from '../../../core/retention';
import { BackupBucket, type BackupBucketProps, PROTECTED_VERSION_ACTIONS } from '../../../lib/backup-bucket';
import { actionMatches } from './fixtures';

function bucketTemplate(
  props: Partial<BackupBucketProps> = {},
  use?: (store: BackupBucket, stack: Stack) => void,
) {
  const stack = new Stack(new App(), 'Test');
  const store = new BackupBucket(stack, 'Store', { retention: DEFAULT_RETENTION, ...props });
  use?.(store, stack);
  return Template.fromStack(stack);
}

const template = bucketTemplate();
/** Logical ids in `template`. */
const ids = (() => {
  const stack = new Stack(new App(), 'Test');
  const store = new BackupBucket(stack, 'Store', { retention: DEFAULT_RETENTION });
  const id = (c: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(c.node.defaultChild as CfnElement);
  return { key: id(store.key), bucket: id(store.bucket), accessLogs: id(store.accessLogsBucket as never) };
})();

function backupBucket(): Record<string, unknown> {
  const buckets = template.findResources('AWS::S3::Bucket', {
    Properties: { VersioningConfiguration: { Status: 'Enabled' } },
  });
  const [bucket] = Object.values(buckets) as { Properties: Record<string, unknown> }[];
  return bucket.Properties;
}

function lifecycleRules(t: Template = template): Record<string, unknown>[] {
  const [bucket] = Object.values(
    t.findResources('AWS::S3::Bucket', { Properties: { VersioningConfiguration: { Status: 'Enabled' } } }),
  ) as { Properties: { LifecycleConfiguration: { Rules: Record<string, unknown>[] } } }[];
  return bucket.Properties.LifecycleConfiguration.Rules;
}

function bucketPolicyStatements(t: Template = template): Record<string, unknown>[] {
  const policies = Object.values(t.findResources('AWS::S3::BucketPolicy')) as {
    Properties: { Bucket: { Ref: string }; PolicyDocument: { Statement: Record<string, unknown>[] } };
  }[];
  const [policy] = policies.filter((p) => p.Properties.Bucket.Ref.startsWith('StoreBucket'));
  return policy.Properties.PolicyDocument.Statement;
}

test('backups are encrypted with the bucket key of a customer-managed KMS key', () => {
  expect(backupBucket().BucketEncryption).toEqual({
    ServerSideEncryptionConfiguration: [
      {
        BucketKeyEnabled: true,
        ServerSideEncryptionByDefault: {
          SSEAlgorithm: 'aws:kms',
          KMSMasterKeyID: { 'Fn::GetAtt': [ids.key, 'Arn'] },
        },
      },
    ],
  });
});

test('the key rotates yearly and outlives the stack', () => {
  template.hasResource('AWS::KMS::Key', {
    Properties: Match.objectLike({ EnableKeyRotation: true }),
    DeletionPolicy: 'Retain',
  });
});

test('the bucket is versioned and outlives the stack', () => {
  template.hasResource('AWS::S3::Bucket', {
    Properties: Match.objectLike({ VersioningConfiguration: { Status: 'Enabled' } }),
    DeletionPolicy: 'Retain',
  });
});

test('public access is blocked and ACLs are disabled', () => {
  expect(backupBucket()).toMatchObject({
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    },
    OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
  });
});

test('requests without TLS are denied', () => {
  expect(bucketPolicyStatements()).toContainEqual(
    expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
  );
});

test('requests with TLS older than 1.2 are denied', () => {
  expect(bucketPolicyStatements()).toContainEqual(
    expect.objectContaining({ Effect: 'Deny', Condition: { NumericLessThan: { 's3:TlsVersion': 1.2 } } }),
  );
});

test('uploads asking for another encryption than KMS are denied', () => {
  expect(bucketPolicyStatements()).toContainEqual(
    expect.objectContaining({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Condition: { StringNotEqualsIfExists: { 's3:x-amz-server-side-encryption': 'aws:kms' } },
    }),
  );
});

test("uploads asking for another KMS key than the bucket's are denied", () => {
  expect(bucketPolicyStatements()).toContainEqual(
    expect.objectContaining({
      Effect: 'Deny',
      Action: 's3:PutObject',
      Condition: {
        StringNotEqualsIfExists: {
          's3:x-amz-server-side-encryption-aws-kms-key-id': { 'Fn::GetAtt': [ids.key, 'Arn'] },
        },
      },
    }),
  );
});

test('server access logs go to the access-log bucket', () => {
  expect(backupBucket().LoggingConfiguration).toEqual({
    DestinationBucketName: { Ref: ids.accessLogs },
    LogFilePrefix: 'backups-bucket/',
  });
});

test('the access-log bucket is encrypted, private, TLS-only and expires logs after a year', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    BucketEncryption: {
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
    },
    PublicAccessBlockConfiguration: Match.objectLike({
      BlockPublicPolicy: true,
      RestrictPublicBuckets: true,
    }),
    LifecycleConfiguration: { Rules: [{ ExpirationInDays: 365, Status: 'Enabled' }] },
  });
});

test('unfinished multipart uploads are aborted after 2 days', () => {
  expect(lifecycleRules()).toContainEqual(
    expect.objectContaining({
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 },
      Status: 'Enabled',
    }),
  );
});

test('old versions of overwritten or deleted objects expire after 30 days by default', () => {
  expect(lifecycleRules()).toContainEqual(
    expect.objectContaining({
      NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      ExpiredObjectDeleteMarker: true,
    }),
  );
});

test('how long old versions are kept is configurable', () => {
  const rules = lifecycleRules(bucketTemplate({ noncurrentVersionExpiration: Duration.days(90) }));
  expect(rules[0]).toMatchObject({ Id: 'housekeeping', NoncurrentVersionExpiration: { NoncurrentDays: 90 } });
});

test('there is one lifecycle rule per rule of the retention policy, on the backups prefix, by tier tag', () => {
  const expected = lifecycleRulesFor(DEFAULT_RETENTION)
    .filter((r) => r.expirationDays || r.transitions.length)
    .map((r) => ({ Id: r.id, Prefix: 'backups/', TagFilters: [{ Key: TIER_TAG, Value: r.tagValue }] }));
  const tierRules = lifecycleRules().filter((r) => r.TagFilters);
  expect(tierRules.map((r) => ({ Id: r.Id, Prefix: r.Prefix, TagFilters: r.TagFilters }))).toEqual(expected);
});

test('objects the retention policy tagged expired are removed', () => {
  expect(lifecycleRules()).toContainEqual(
    expect.objectContaining({
      TagFilters: [{ Key: TIER_TAG, Value: 'expired' }],
      ExpirationInDays: EXPIRED_AFTER_DAYS,
    }),
  );
});

test('backups the policy keeps are never expired by age', () => {
  const kept = lifecycleRules().filter(
    (r) => r.TagFilters && JSON.stringify(r.TagFilters).indexOf('expired') < 0,
  );
  expect(kept.length).toBeGreaterThan(0);
  for (const rule of kept) expect(rule.ExpirationInDays).toBeUndefined();
});

test('long-kept tiers move to cheaper storage classes as the retention policy says', () => {
  const monthly = lifecycleRulesFor(DEFAULT_RETENTION).find((r) => r.tagValue === 'monthly');
  expect(lifecycleRules()).toContainEqual(
    expect.objectContaining({
      TagFilters: [{ Key: TIER_TAG, Value: 'monthly' }],
      Transitions: monthly?.transitions.map((t) => ({
        StorageClass: t.storageClass,
        TransitionInDays: t.afterDays,
      })),
    }),
  );
});

test('Object Lock is off unless asked for', () => {
  expect(backupBucket()).toMatchObject({ ObjectLockEnabled: false });
  expect(backupBucket().ObjectLockConfiguration).toBeUndefined();
});

test('with Object Lock in governance mode, every new version is locked for the retention days', () => {
  bucketTemplate({ objectLock: { mode: 'governance', retentionDays: 14 } }).hasResourceProperties(
    'AWS::S3::Bucket',
    {
      ObjectLockEnabled: true,
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'GOVERNANCE', Days: 14 } },
      },
    },
  );
});

test('Object Lock can be in compliance mode', () => {
  bucketTemplate({ objectLock: { mode: 'compliance', retentionDays: 30 } }).hasResourceProperties(
    'AWS::S3::Bucket',
    {
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 30 } },
      },
    },
  );
});

interface Statement {
  Action: string | string[];
  Resource: unknown;
}

/** The statements of the policies attached to the role whose logical id starts with `roleRef`. */
function statementsOf(t: Template, roleRef: string): Statement[] {
  const policies = Object.values(t.findResources('AWS::IAM::Policy')) as {
    Properties: { Roles: { Ref: string }[]; PolicyDocument: { Statement: Statement[] } };
  }[];
  return policies
    .filter((p) => p.Properties.Roles.some((r) => r.Ref.startsWith(roleRef)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

/** The S3 actions a role may use. */
function s3ActionsOf(t: Template, roleRef: string): string[] {
  return statementsOf(t, roleRef)
    .flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]))
    .filter((a) => a.startsWith('s3:'))
    .sort();
}

function grantTemplate(grant: (store: BackupBucket, role: iam.Role) => void): Template {
  return bucketTemplate({}, (store, stack) => {
    const role = new iam.Role(stack, 'Grantee', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    });
    grant(store, role);
  });
}

test('grantReadBackups gives read access only', () => {
  expect(
    s3ActionsOf(
      grantTemplate((store, role) => store.grantReadBackups(role)),
      'Grantee',
    ),
  ).toEqual(['s3:GetBucket*', 's3:GetObject*', 's3:List*']);
});

test('grants reach objects under backups/ only', () => {
  const t = grantTemplate((store, role) => store.grantReadBackups(role));
  const objectResources = statementsOf(t, 'Grantee')
    .flatMap((st) => (Array.isArray(st.Resource) ? st.Resource : [st.Resource]))
    .filter((r) => JSON.stringify(r).includes('/'));
  expect(objectResources).toEqual([
    { 'Fn::Join': ['', [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }, '/backups/*']] },
  ]);
});

test('grantWriteBackups lets write objects and abort uploads: no tags, no retention, no delete', () => {
  expect(
    s3ActionsOf(
      grantTemplate((store, role) => store.grantWriteBackups(role)),
      'Grantee',
    ),
  ).toEqual(['s3:AbortMultipartUpload', 's3:PutObject']);
});

test('grantTagBackups lets tag objects, nothing else', () => {
  expect(
    s3ActionsOf(
      grantTemplate((store, role) => store.grantTagBackups(role)),
      'Grantee',
    ),
  ).toEqual(['s3:PutObjectTagging']);
});

test('grantDeleteBackups lets delete objects (a delete marker) and abort uploads, never a version', () => {
  expect(
    s3ActionsOf(
      grantTemplate((store, role) => store.grantDeleteBackups(role)),
      'Grantee',
    ),
  ).toEqual(['s3:AbortMultipartUpload', 's3:DeleteObject']);
});

interface KeyStatement {
  Sid?: string;
  Effect: string;
  Principal: { AWS?: unknown; Service?: string };
  Action: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

function keyStatements(t: Template): KeyStatement[] {
  const keys = Object.values(t.findResources('AWS::KMS::Key')) as {
    Properties: { KeyPolicy: { Statement: KeyStatement[] } };
  }[];
  expect(keys).toHaveLength(1);
  return keys[0].Properties.KeyPolicy.Statement;
}

const actionsOf = (s: { Action: string | string[] }) => [s.Action].flat();

test('the account administers the key but cannot use it: no kms:*, no crypto, no grants', () => {
  const root = keyStatements(template).filter((s) => JSON.stringify(s.Principal.AWS ?? '').includes(':root'));
  expect(root).toHaveLength(1);
  const actions = actionsOf(root[0]);
  expect(actions).toEqual(
    expect.arrayContaining(['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion', 'kms:Describe*']),
  );
  for (const action of actions) {
    expect(action).not.toMatch(/^kms:(\*|Decrypt|Encrypt|GenerateDataKey|ReEncrypt|CreateGrant|Create\*)/);
  }
});

test('the key decrypts through S3 only for the roles granted access to backups', () => {
  const t = grantTemplate((store, role) => store.grantReadBackups(role));
  const decrypt = keyStatements(t).filter(
    (s) => s.Effect === 'Allow' && actionsOf(s).some((a) => actionMatches(a, 'kms:Decrypt')),
  );
  expect(decrypt).toHaveLength(1);
  expect(decrypt[0]).toMatchObject({ Action: 'kms:Decrypt', Principal: { AWS: '*' } });
  expect(decrypt[0].Condition).toEqual({
    StringEquals: {
      'kms:CallerAccount': { Ref: 'AWS::AccountId' },
      'kms:ViaService': { 'Fn::Join': ['', ['s3.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] },
    },
    ArnEquals: { 'aws:PrincipalArn': [{ 'Fn::GetAtt': [expect.stringMatching(/^Grantee/), 'Arn'] }] },
  });
});

test('a key with no grant decrypts for nobody', () => {
  expect(keyStatements(template).filter((s) => actionsOf(s).includes('kms:Decrypt'))).toEqual([]);
});

test('only writers may make data keys', () => {
  const t = grantTemplate((store, role) => store.grantReadBackups(role));
  expect(
    keyStatements(t).filter((s) => actionsOf(s).some((a) => a.startsWith('kms:GenerateDataKey'))),
  ).toEqual([]);
  const w = grantTemplate((store, role) => store.grantWriteBackups(role));
  expect(keyStatements(w).filter((s) => actionsOf(s).includes('kms:GenerateDataKey'))).toHaveLength(1);
});

test('configured readers may read backups (bucket policy) and decrypt them (key policy)', () => {
  const reader = 'arn:aws:iam::123456789012:role/auditor';
  const t = bucketTemplate({ readerRoleArns: [reader] });
  expect(keyStatements(t)).toContainEqual(
    expect.objectContaining({ Principal: { AWS: reader }, Action: ['kms:Decrypt', 'kms:DescribeKey'] }),
  );
  expect(bucketPolicyStatements(t)).toContainEqual(
    expect.objectContaining({
      Effect: 'Allow',
      Principal: { AWS: reader },
      Action: ['s3:GetObject*', 's3:GetBucket*', 's3:List*'],
    }),
  );
});

test('the bucket policy denies retention and legal-hold changes and version deletes to everyone', () => {
  const deny = bucketPolicyStatements().find((st) => st.Sid === 'DenyRetentionChangesAndVersionDeletes');
  expect(deny).toMatchObject({
    Effect: 'Deny',
    Principal: { AWS: '*' },
    Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': [ids.bucket, 'Arn'] }, '/*']] },
  });
  expect([deny?.Action].flat().sort()).toEqual([
    's3:BypassGovernanceRetention',
    's3:DeleteObjectVersion*',
    's3:PutObjectLegalHold',
    's3:PutObjectRetention',
  ]);
  expect([...PROTECTED_VERSION_ACTIONS].sort()).toEqual([deny?.Action].flat().sort());
  expect(deny?.Condition).toBeUndefined();
});

test('a configured break-glass role is the one exception to that deny', () => {
  const breakGlass = 'arn:aws:iam::123456789012:role/break-glass';
  const t = bucketTemplate({ breakGlassRoleArn: breakGlass });
  t.hasResourceProperties('AWS::S3::BucketPolicy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Sid: 'DenyRetentionChangesAndVersionDeletes',
          Effect: 'Deny',
          Condition: { ArnNotEquals: { 'aws:PrincipalArn': breakGlass } },
        }),
      ]),
    },
  });
});

test('the API’s run records (a stopped run’s cleanup) expire with the runs: 90 days, under backups/.runs/ alone', () => {
  expect(lifecycleRules()).toContainEqual({
    Id: 'run-records',
    Prefix: 'backups/.runs/',
    ExpirationInDays: 90,
    Status: 'Enabled',
  });
});
