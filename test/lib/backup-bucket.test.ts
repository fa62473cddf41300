/** The backup store's bucket: encryption, TLS, public access, logs, lifecycle, Object Lock, grants. */
import { App, type CfnElement, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { DEFAULT_RETENTION, EXPIRED_AFTER_DAYS, lifecycleRulesFor, TIER_TAG } from '../../core/retention';
import { BackupBucket, type BackupBucketProps } from '../../lib/backup-bucket';

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

function bucketPolicyStatements(): Record<string, unknown>[] {
  const policies = Object.values(template.findResources('AWS::S3::BucketPolicy')) as {
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

test('grantWriteBackups lets write and abort uploads, never delete', () => {
  const actions = s3ActionsOf(
    grantTemplate((store, role) => store.grantWriteBackups(role)),
    'Grantee',
  );
  expect(actions).toContain('s3:PutObject');
  expect(actions).toContain('s3:Abort*');
  expect(actions.filter((a) => a.startsWith('s3:Delete'))).toEqual([]);
});

test('grantDeleteBackups lets delete objects and abort uploads, nothing else', () => {
  expect(
    s3ActionsOf(
      grantTemplate((store, role) => store.grantDeleteBackups(role)),
      'Grantee',
    ),
  ).toEqual(['s3:Abort*', 's3:DeleteObject*']);
});
