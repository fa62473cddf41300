/**
 * The deployment's configuration: which databases pgferry protects on AWS, when and for how long,
 * where it runs and whom it tells. One JSON file (see `config/pgferry.example.json`), validated
 * here with zod when the CDK app synthesizes, so a mistake fails `cdk synth` with a message naming
 * the field instead of failing a backup at 3 a.m.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { CutoverEcsServiceSchema } from '../core/bindings';
import { BackupScopeSchema, CompressionSchema, ConnectionSchema } from '../core/contracts';
import { DEFAULT_RETENTION, type RetentionPolicy, RetentionPolicySchema } from '../core/retention';
import { cidrContains, isIpv4Cidr } from './cidr';
import { REPO_ROOT } from './paths';

/** The example configuration: what `cdk synth`, the tests and the ASL generation use by default. */
export const EXAMPLE_CONFIG_PATH = path.join(REPO_ROOT, 'config', 'pgferry.example.json');

const SECRET_ARN =
  /^arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):(\d{12}):secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[0-9a-f-]{36}$/;

function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/**
 * An EventBridge Scheduler cron expression without its `cron(...)` wrapper: six fields
 * (minutes hours day-of-month month day-of-week year), one of the two day fields `?`.
 */
const CronSchema = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    const fields = value.split(/\s+/);
    if (fields.length !== 6) {
      ctx.addIssue({
        code: 'custom',
        message: `cron needs 6 fields (minutes hours day-of-month month day-of-week year), e.g. "0 3 * * ? *"; got ${fields.length}`,
      });
    } else if ((fields[2] === '?') === (fields[4] === '?')) {
      ctx.addIssue({
        code: 'custom',
        message: 'cron needs "?" in exactly one of day-of-month (3rd field) and day-of-week (5th field)',
      });
    }
  });

export const ScheduleSchema = z
  .object({
    cron: CronSchema,
    /** IANA time zone the cron expression is read in (daylight saving time is followed). */
    timeZone: z
      .string()
      .refine(isTimeZone, 'not an IANA time zone, e.g. "Europe/Berlin" or "UTC"')
      .default('UTC'),
    /** Scheduler may start the run up to this many minutes late, to spread load (0: exactly on time). */
    flexibleWindowMinutes: z.number().int().min(0).max(1440).default(15),
  })
  .strict();
export type ScheduleConfig = z.infer<typeof ScheduleSchema>;

/**
 * How to reach a database: the connection the workflows use (the execution input's `source` or
 * `target`, with no password: the workflows read it from `passwordSecretArn` at run time, or log
 * in with an RDS IAM authentication token with `iamAuth: true`). On AWS the server is always
 * authenticated: `verify-full` (the default), or `verify-ca` — both checked against the Amazon RDS
 * certificate authorities, which the Lambda functions and the pg-tools task trust.
 */
const DatabaseConnectionSchema = ConnectionSchema.omit({ sslrootcert: true })
  .extend({
    port: z.number().int().min(1).max(65535).default(5432),
    sslmode: z
      .enum(['verify-ca', 'verify-full'], {
        error:
          'on AWS only "verify-full" (the default) or "verify-ca" is accepted: the server must prove who it is before a password or token is sent to it',
      })
      .default('verify-full'),
    passwordSecretArn: z
      .string()
      .regex(
        SECRET_ARN,
        'must be the complete ARN of a Secrets Manager secret, ending in its 6-character suffix (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf)',
      )
      .optional(),
  })
  .strict();

const Ipv4CidrSchema = z.string().refine(isIpv4Cidr, 'an IPv4 CIDR block, e.g. "10.20.0.0/16"');
const SecurityGroupIdSchema = z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'a security group id (sg-…)');

const DatabaseNetworkSchema = z
  .object({
    /**
     * The database's security group: pgferry may connect to it on the database's port. It must be
     * in the VPC pgferry runs in (`vpc.mode: existing`).
     */
    securityGroupId: SecurityGroupIdSchema.optional(),
    /** Or the address range the database is in: inside the VPC, or in one of `vpc.routedCidrs`. */
    cidr: Ipv4CidrSchema.optional(),
    /** Add an ingress rule for pgferry to the database's security group (else manage it yourself). */
    allowIngress: z.boolean().default(true),
  })
  .strict()
  .refine((n) => n.securityGroupId !== undefined || n.cidr !== undefined, {
    message: 'name the database security group (securityGroupId) or its address range (cidr)',
  });

/** What databases and targets share: the id, the connection, how to log in, where it is. */
const ServerLoginFields = {
  /** Names this entry's schedules, alarms and resources: letters, digits and dashes. */
  id: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9-]{0,39}$/, 'letters, digits and dashes, starting with a letter, at most 40'),
  connection: DatabaseConnectionSchema,
  /**
   * With `connection.iamAuth`: the RDS instance's (`db-…`) or Aurora cluster's (`cluster-…`)
   * resource id, to which pgferry's roles are granted `rds-db:connect` for the connection's user.
   */
  rdsResourceId: z
    .string()
    .regex(/^(db|cluster)-[A-Z0-9]+$/, 'an RDS resource id: db-… (instance) or cluster-… (Aurora)')
    .optional(),
  /** The KMS key of the password secret, when it is not the account's default `aws/secretsmanager`. */
  passwordSecretKmsKeyArn: z.string().regex(KMS_KEY_ARN).optional(),
  network: DatabaseNetworkSchema,
};

/** How a scheduled backup is made: of a configured database, or of each of a server's. */
const ScheduledBackupFields = {
  compression: CompressionSchema.optional(),
  withRolePasswords: z.boolean().default(false),
  /**
   * How long a scheduled backup waits for a table's lock before it fails, naming the lock's
   * holder (pg_dump's `--lock-wait-timeout`): the schedules' `lockWaitTimeoutMs`.
   * @default pgferry's own, 5 minutes
   */
  lockWaitTimeoutSeconds: z
    .number()
    .int()
    .min(1)
    .max(24 * 60 * 60)
    .optional(),
};

export const DatabaseConfigSchema = z
  .object({
    ...ServerLoginFields,
    backupSchedules: z.array(ScheduleSchema).min(1, 'give at least one backup schedule'),
    /** When to verify the latest backup (restore it into a scratch database and check it). */
    verifySchedule: ScheduleSchema.optional(),
    ...ScheduledBackupFields,
    /** Alarm when no backup of this database has completed for this many hours. */
    alarmAfterHours: z.number().int().min(1).max(168).default(26),
    /**
     * Back up only part of the database, as `pgferry backup`'s scope options do: pg_dump patterns
     * in `schemas`, `excludeSchemas`, `tables`, `excludeTables`, `excludeTableData` (e.g.
     * `{ "excludeTableData": ["public.audit_log"] }`). An include pattern that matches nothing
     * fails the backup.
     * @default the whole database
     */
    scope: BackupScopeSchema.optional(),
    /**
     * This very database may also be restored into (disaster recovery: a restore in `clean`
     * mode replaces it). Restores into another database, even on the same server, are a target.
     */
    restoreTarget: z.boolean().default(false),
    /**
     * This database's own retention policy, over the deployment's `retention` (e.g.
     * `{ "keepDaily": 30 }`): the record step tags its backups' tiers by it, and the bucket's
     * lifecycle transitions allow for it (docs/aws.md, "Retention").
     * @default the deployment's `retention`
     */
    retention: RetentionPolicySchema.partial().optional(),
    /**
     * The availability zone the database is in (one of `vpc.availabilityZones`): its dumps run in
     * that zone's subnets, so what pg_dump reads does not cross zones (docs/cost.md).
     * @default unknown: the task runs in any of pgferry's subnets
     */
    availabilityZone: z.string().min(1).optional(),
  })
  .strict();
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>;

/**
 * A whole server (issue 16): its schedule runs one server-backup execution that lists the
 * server's databases at run time and backs each up through the backup workflow, `maxConcurrency`
 * at once, filed under `<id>.<database>`; then the set's manifest. `connection.database` is only
 * where the listing connects (e.g. `postgres`).
 */
export const ServerConfigSchema = z
  .object({
    ...ServerLoginFields,
    /** `"all"`: every connectable, non-template database, found at each run; or a list of names. */
    databases: z.union([z.literal('all'), z.array(z.string().min(1).max(63)).min(1).max(400)]).default('all'),
    /** With `databases: "all"`: only those matching one of these glob patterns (`*`, `?`). */
    include: z.array(z.string().min(1).max(200)).max(100).default([]),
    /** Databases never backed up (exact names). */
    exclude: z.array(z.string().min(1).max(63)).max(1000).default([]),
    backupSchedules: z.array(ScheduleSchema).min(1, 'give at least one backup schedule'),
    /** How many of the server's databases are dumped at once (the Map's maximum concurrency). */
    maxConcurrency: z.number().int().min(1).max(40).default(4),
    ...ScheduledBackupFields,
    /** Alarm when a database found has had no complete backup, or no set was recorded, for this many hours. */
    alarmAfterHours: z.number().int().min(1).max(168).default(26),
    /** The server's retention policy over the deployment's (every database of it). */
    retention: RetentionPolicySchema.partial().optional(),
    /** Per-database policies over the server's, by database name: `{ "audit": { "keepDaily": 90 } }`. */
    databaseRetention: z.record(z.string().min(1).max(63), RetentionPolicySchema.partial()).default({}),
    /** The availability zone the server is in (one of `vpc.availabilityZones`). */
    availabilityZone: z.string().min(1).optional(),
  })
  .strict()
  .superRefine((server, ctx) => {
    if (server.databases !== 'all' && server.include.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['include'],
        message: 'include patterns select among "all" databases: with a list of databases, leave include out',
      });
    }
  });
export type ServerConfig = z.infer<typeof ServerConfigSchema>;

/**
 * A server and database that restores and migrations may write into: the same connection,
 * network and login as a database, without schedules.
 */
export const TargetConfigSchema = z
  .object({
    ...ServerLoginFields,
    /**
     * Any database on the server may be written, not only `connection.database` (a migration of
     * every database of a server needs it).
     */
    anyDatabase: z.boolean().default(false),
    /** ECS services a migration into this target may scale down and up during its cutover. */
    cutoverEcsServices: z.array(CutoverEcsServiceSchema).max(20).default([]),
  })
  .strict();
export type TargetConfig = z.infer<typeof TargetConfigSchema>;

/** A database, a server or a target: what the network rules and login grants are made for. */
export type ServerLoginConfig = DatabaseConfig | ServerConfig | TargetConfig;

const SubnetIdSchema = z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'a subnet id (subnet-…)');

/**
 * Address ranges outside the VPC that its subnets route to (VPC peering, a transit gateway): a
 * database addressed by a CIDR must be in the VPC or in one of these. synth is offline, so the
 * configuration says what the route tables hold; pgferry adds no route.
 */
const RoutedCidrsSchema = z.array(Ipv4CidrSchema).max(20).default([]);

const VpcEndpointsSchema = z
  .object({
    /** `create`: an S3 gateway endpoint on the subnets' route tables; `existing`: the VPC has one. */
    s3: z.enum(['create', 'existing']).default('create'),
    /**
     * `create`: interface endpoints for Secrets Manager, ECR, CloudWatch Logs, STS, Step Functions
     * and KMS in the subnets; `existing`: the VPC has them (with private DNS), in `securityGroupIds`.
     */
    interface: z.enum(['create', 'existing']).default('create'),
    /** With `interface: existing`: the security groups of the VPC's interface endpoints. */
    securityGroupIds: z.array(SecurityGroupIdSchema).max(10).default([]),
    /** Add an ingress rule for pgferry to those security groups (else manage them yourself). */
    allowIngress: z.boolean().default(true),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.interface === 'existing' && e.securityGroupIds.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['securityGroupIds'],
        message:
          "with interface: existing, name the security groups of the VPC's interface endpoints (pgferry may reach them on 443)",
      });
    }
    if (e.interface === 'create' && e.securityGroupIds.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['securityGroupIds'],
        message: 'only with interface: existing (the created endpoints get a security group of their own)',
      });
    }
  });

const VpcConfigSchema = z.discriminatedUnion(
  'mode',
  [
    z
      .object({
        /** pgferry in the databases' own VPC: the documented way (see docs/aws.md). */
        mode: z.literal('existing'),
        vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'a VPC id (vpc-…)'),
        /** The VPC's own address range (synth looks nothing up). */
        cidr: Ipv4CidrSchema,
        availabilityZones: z.array(z.string().min(1)).min(1),
        /** Private subnets for pgferry's functions and tasks, the same number in each zone. */
        privateSubnetIds: z.array(SubnetIdSchema).min(1),
        /** Their route tables, in the same order: the S3 gateway endpoint is added to them. */
        privateSubnetRouteTableIds: z
          .array(z.string().regex(/^rtb-[0-9a-f]{8,17}$/, 'a route table id (rtb-…)'))
          .optional(),
        routedCidrs: RoutedCidrsSchema,
        endpoints: VpcEndpointsSchema.default({
          s3: 'create',
          interface: 'create',
          securityGroupIds: [],
          allowIngress: true,
        }),
      })
      .strict()
      .superRefine((v, ctx) => {
        if (v.privateSubnetIds.length % v.availabilityZones.length !== 0) {
          ctx.addIssue({
            code: 'custom',
            path: ['privateSubnetIds'],
            message: 'give the same number of private subnets in each availability zone',
          });
        }
        const tables = v.privateSubnetRouteTableIds;
        if (v.endpoints.s3 === 'create' && tables?.length !== v.privateSubnetIds.length) {
          ctx.addIssue({
            code: 'custom',
            path: ['privateSubnetRouteTableIds'],
            message:
              'the S3 gateway endpoint is added to the route tables of the private subnets: give one per subnet, in the same order (or endpoints.s3: "existing")',
          });
        }
      }),
    z
      .object({
        /**
         * A new VPC of private subnets with VPC endpoints and no NAT gateway. Reaches only what is
         * inside it or in `routedCidrs` (routes you add): not a database's security group.
         */
        mode: z.literal('create'),
        cidr: Ipv4CidrSchema.default('10.70.0.0/16'),
        maxAzs: z.number().int().min(2).max(3).default(2),
        /** Availability zones to use; naming them keeps `cdk synth` from looking them up. */
        availabilityZones: z.array(z.string().min(1)).min(2).max(3).optional(),
        routedCidrs: RoutedCidrsSchema,
      })
      .strict(),
  ],
  {
    error:
      'vpc.mode is "existing" (the databases\' VPC: vpcId, cidr, availabilityZones, privateSubnetIds) or "create"',
  },
);
export type VpcConfig = z.infer<typeof VpcConfigSchema>;

const RoleArnSchema = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:iam::\d{12}:role\/[A-Za-z0-9+=,.@_/-]+$/,
    'an IAM role ARN (arn:aws:iam::<account>:role/<name>)',
  );

const BucketConfigSchema = z
  .object({
    /** @default a name generated by CloudFormation */
    bucketName: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
      .optional(),
    /** Write-once backups: S3 Object Lock with a default retention. Only settable on a new bucket. */
    objectLock: z
      .object({
        mode: z.enum(['governance', 'compliance']),
        retentionDays: z.number().int().min(1).max(36500),
      })
      .strict()
      .optional(),
    /** Overwritten and deleted objects' old versions are kept this long. */
    noncurrentVersionExpirationDays: z.number().int().min(1).max(3650).default(30),
    /** Server access logs are kept this long. */
    accessLogsExpirationDays: z.number().int().min(1).max(3650).default(365),
    /**
     * Roles (outside pgferry) that may read the backups: the bucket policy lets them list and
     * read `backups/`, the key policy lets them decrypt. Nobody else outside pgferry can.
     */
    readerRoleArns: z.array(RoleArnSchema).max(10).default([]),
    /**
     * The one role that may still change retention and legal holds, bypass governance retention
     * and delete object versions: the bucket policy denies those to everyone else.
     * @default nobody
     */
    breakGlassRoleArn: RoleArnSchema.optional(),
  })
  .strict();

const NotificationsConfigSchema = z
  .object({
    /** E-mail addresses subscribed to the notification topic (each must confirm once). */
    emails: z.array(z.email()).default([]),
    /** Also notify when an execution succeeds. */
    notifyOnSuccess: z.boolean().default(false),
  })
  .strict();

const TasksConfigSchema = z
  .object({
    /**
     * The CPU architecture of the Fargate tasks and their images: `arm64` (Graviton, about 20%
     * cheaper per vCPU-hour, like the Lambda functions) or `x86_64`. Docker builds the images for
     * it on any machine (emulated where the machine's own differs).
     */
    architecture: z.enum(['arm64', 'x86_64']).default('arm64'),
    /**
     * A task that makes no progress for this long — no bytes moved, no phase changed, no session
     * of it working on its servers — is stopped (it fails into the workflow's cleanup). Longer
     * than the lock wait timeout, so that a lock wait fails with its own, better message.
     */
    stallTimeoutMinutes: z.number().int().min(1).max(720).default(10),
    /**
     * The most Fargate tasks the schedules may run at once (your account's Fargate quota, in
     * tasks of the largest size you use): synthesis refuses a configuration whose schedules
     * could together run more — each database schedule one task, each server entry its
     * `maxConcurrency`. Ad hoc runs (CLI, API) are not counted: RunTask's capacity errors are
     * retried for about an hour.
     * @default no cap
     */
    maxConcurrentTasks: z.number().int().min(1).max(100000).optional(),
  })
  .strict();

/**
 * The HTTP API (issue 14): an API Gateway REST API in front of one Lambda function, every method
 * authorized by IAM (SigV4). Regional by default, reachable by any principal of this account that
 * an IAM policy allows; `private` makes it reachable only through the named VPC endpoints
 * (`execute-api` interface endpoints), and `allowedAccountIds` lets principals of other accounts in.
 */
const ApiConfigSchema = z
  .object({
    /** Deploy the API (its Lambda, its gateway, its run-finished events). */
    enabled: z.boolean().default(true),
    /** `regional` (a public endpoint, IAM on every method) or `private` (VPC endpoints only). */
    endpoint: z.enum(['regional', 'private']).default('regional'),
    /** With `endpoint: "private"`: the `execute-api` interface endpoints that may reach it. */
    vpcEndpointIds: z
      .array(z.string().regex(/^vpce-[0-9a-f]{8,17}$/, 'a VPC endpoint id (vpce-…)'))
      .max(10)
      .default([]),
    /** Other accounts whose principals may call it (their own IAM policies must allow it too). */
    allowedAccountIds: z
      .array(z.string().regex(/^\d{12}$/, 'a 12-digit account id'))
      .max(20)
      .default([]),
    /** Requests per second the stage allows (steady rate), and its burst. */
    throttle: z
      .object({
        rateLimit: z.number().min(1).max(10000).default(10),
        burstLimit: z.number().int().min(1).max(5000).default(20),
      })
      .strict()
      .default({ rateLimit: 10, burstLimit: 20 }),
    /**
     * Create API Gateway's account-wide CloudWatch Logs role (needed once per account and region
     * for access logs). `false` when the account already has one set.
     */
    createCloudWatchRole: z.boolean().default(true),
  })
  .strict()
  .superRefine((api, ctx) => {
    if (api.endpoint === 'private' && api.vpcEndpointIds.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['vpcEndpointIds'],
        message: 'a private API needs the execute-api VPC endpoints that may reach it (vpce-…)',
      });
    }
    if (api.endpoint === 'regional' && api.vpcEndpointIds.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['vpcEndpointIds'],
        message: 'VPC endpoints reach a private API only: set endpoint to "private"',
      });
    }
  });
export type ApiConfig = z.infer<typeof ApiConfigSchema>;

/**
 * The AWS console (issue 15): Systems Manager Automation runbooks as forms (lib/runbooks.ts) and
 * the dashboard's backups widget (lib/backups-widget.ts). A restore in `clean` mode and a migration
 * with cutover wait for an approval (`aws:approve`) by `approvers`: only this configuration can
 * skip it (`requireApproval: false`); with approval required and no approver, the forms do not
 * offer them at all.
 */
const ConsoleConfigSchema = z
  .object({
    /** Deploy the runbooks and the dashboard's backups widget. */
    enabled: z.boolean().default(true),
    /** Who may approve a `clean` restore or a cutover: IAM users' or roles' ARNs (at most 10, SSM's limit). */
    approvers: z
      .array(
        z
          .string()
          .regex(
            /^arn:aws[a-z-]*:iam::\d{12}:(user|role)\/[A-Za-z0-9+=,.@_/-]+$/,
            'an IAM user or role ARN (arn:aws:iam::<account>:role/<name>)',
          ),
      )
      .max(10)
      .default([]),
    /** How many of `approvers` must approve. */
    minRequiredApprovals: z.number().int().min(1).max(10).default(1),
    /** `false` runs a `clean` restore or a cutover without waiting for an approval. */
    requireApproval: z.boolean().default(true),
  })
  .strict()
  .superRefine((console, ctx) => {
    if (console.approvers.length > 0 && console.minRequiredApprovals > console.approvers.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['minRequiredApprovals'],
        message: `${console.minRequiredApprovals} approvals required of ${console.approvers.length} approvers: name more approvers or require fewer`,
      });
    }
  });
export type ConsoleConfig = z.infer<typeof ConsoleConfigSchema>;

export const PgferryConfigSchema = z
  .object({
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,63}$/)
      .default('Pgferry'),
    /** @default the AWS CLI's account and region (CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION) */
    account: z
      .string()
      .regex(/^\d{12}$/)
      .optional(),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/)
      .optional(),
    /** Tags on every resource of the stack. */
    tags: z.record(z.string().min(1).max(128), z.string().max(256)).default({}),
    /** Where pgferry runs: the databases' VPC (`mode: existing`), or a new one. */
    vpc: VpcConfigSchema,
    bucket: BucketConfigSchema.default({
      noncurrentVersionExpirationDays: 30,
      accessLogsExpirationDays: 365,
      readerRoleArns: [],
    }),
    notifications: NotificationsConfigSchema.default({ emails: [], notifyOnSuccess: false }),
    tasks: TasksConfigSchema.default({ architecture: 'arm64', stallTimeoutMinutes: 10 }),
    api: ApiConfigSchema.default({
      enabled: true,
      endpoint: 'regional',
      vpcEndpointIds: [],
      allowedAccountIds: [],
      throttle: { rateLimit: 10, burstLimit: 20 },
      createCloudWatchRole: true,
    }),
    console: ConsoleConfigSchema.default({
      enabled: true,
      approvers: [],
      minRequiredApprovals: 1,
      requireApproval: true,
    }),
    /**
     * Which backups to keep (core/retention.ts): the record step tags each backup with its tier
     * and the bucket's lifecycle rules act on the tags. The policy of every database that sets
     * none of its own (`databases[].retention`): the record step reads it from its environment.
     */
    retention: RetentionPolicySchema.default({ ...DEFAULT_RETENTION }),
    // A fleet's schedules and alarms go to nested stacks by server (lib/fleet.ts); 1,000 databases
    // keep the bindings well inside the task definition's share (MAX_TASK_BINDINGS_CHARS).
    // Required (it may be empty when `servers` names the servers to back up).
    databases: z.array(DatabaseConfigSchema).max(1000),
    /** Whole servers: every database found at run time, backed up as a set (`ServerConfigSchema`). */
    servers: z.array(ServerConfigSchema).max(100).default([]),
    /** Where restores and migrations may write (besides databases with `restoreTarget`). */
    targets: z.array(TargetConfigSchema).max(50).default([]),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.databases.length === 0 && config.servers.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['databases'],
        message: 'name at least one database (or server)',
      });
    }
    checkServers(ctx, config);
    checkTaskCap(ctx, config);
    const entries: { path: 'databases' | 'servers' | 'targets'; i: number; entry: ServerLoginConfig }[] = [
      ...config.databases.map((entry, i) => ({ path: 'databases' as const, i, entry })),
      ...config.servers.map((entry, i) => ({ path: 'servers' as const, i, entry })),
      ...config.targets.map((entry, i) => ({ path: 'targets' as const, i, entry })),
    ];
    const ids = new Map<string, string>();
    const secrets = new Map<string, { where: string; server: string }>();
    const databases = new Map<string, number>();
    const targets = new Map<string, number>();
    for (const { path, i, entry } of entries) {
      const where = `${path}.${i}`;
      const { connection } = entry;
      const firstId = ids.get(entry.id.toLowerCase());
      if (firstId !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [path, i, 'id'],
          message: `id ${JSON.stringify(entry.id)} is already used by ${firstId}`,
        });
      } else ids.set(entry.id.toLowerCase(), where);
      const server = `${connection.host.toLowerCase()}:${connection.port}/${connection.database}`;
      if (path === 'servers') {
        // checkServers: one entry per server, no database entry beside it.
      } else if (path === 'databases') {
        // Backups are filed under the id, so two servers' databases of one name are two entries;
        // one database configured twice would be two catalogs of the same backups.
        const first = databases.get(server);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [path, i, 'connection'],
            message: `${server} is already databases.${first}: configure a database once`,
          });
        } else databases.set(server, i);
      } else if (databases.has(server)) {
        ctx.addIssue({
          code: 'custom',
          path: [path, i, 'connection'],
          message: `${server} is databases.${databases.get(server)}: to restore into it, set restoreTarget: true there instead`,
        });
      } else if (targets.has(server)) {
        ctx.addIssue({
          code: 'custom',
          path: [path, i, 'connection'],
          message: `${server} is already targets.${targets.get(server)}: configure a target once`,
        });
      } else targets.set(server, i);
      checkLogin(ctx, config, path, i, entry);
      // A secret holds one user's password on one server: naming it with another is a mistake
      // that would send the password to the other server.
      const arn = connection.passwordSecretArn;
      if (arn) {
        const login = `${connection.user}@${connection.host}:${connection.port}`;
        const first = secrets.get(arn);
        if (first && first.server !== login) {
          ctx.addIssue({
            code: 'custom',
            path: [path, i, 'connection', 'passwordSecretArn'],
            message: `this secret is ${first.server}'s (${first.where}): a secret holds one user's password on one server`,
          });
        } else if (!first) secrets.set(arn, { where, server: login });
      }
      checkReachable(ctx, config.vpc, path, i, entry);
      const zone = path !== 'targets' ? (entry as DatabaseConfig | ServerConfig).availabilityZone : undefined;
      if (zone !== undefined && !(config.vpc.availabilityZones ?? []).includes(zone)) {
        ctx.addIssue({
          code: 'custom',
          path: [path, i, 'availabilityZone'],
          message: `${zone} is not one of vpc.availabilityZones (${(config.vpc.availabilityZones ?? []).join(', ') || 'none named'}): name the zones pgferry's subnets are in, and the database's among them`,
        });
      }
    }
  });

/**
 * A server entry covers every database of its server: a second entry for the server, or a
 * database entry on it, would back the same databases up twice under two names (and share one
 * login between two bindings).
 */
function checkServers(
  ctx: z.RefinementCtx,
  config: { databases: DatabaseConfig[]; servers: ServerConfig[] },
): void {
  const key = (e: ServerLoginConfig) => `${e.connection.host.toLowerCase()}:${e.connection.port}`;
  const servers = new Map<string, number>();
  config.servers.forEach((server, i) => {
    const first = servers.get(key(server));
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['servers', i, 'connection'],
        message: `${key(server)} is already servers.${first}: configure a server once (use include/exclude to choose its databases)`,
      });
    } else servers.set(key(server), i);
  });
  config.databases.forEach((db, i) => {
    const server = servers.get(key(db));
    if (server !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['databases', i, 'connection'],
        message: `${key(db)} is the server entry servers.${server}, which backs up every database of it: remove this entry (its own settings go to the server's databaseRetention or exclude)`,
      });
    }
  });
}

/** With `tasks.maxConcurrentTasks`: the schedules cannot together run more tasks at once. */
function checkTaskCap(
  ctx: z.RefinementCtx,
  config: { tasks: { maxConcurrentTasks?: number }; databases: DatabaseConfig[]; servers: ServerConfig[] },
): void {
  const cap = config.tasks.maxConcurrentTasks;
  if (cap === undefined) return;
  const worst = scheduledTaskBurst(config);
  if (worst > cap) {
    ctx.addIssue({
      code: 'custom',
      path: ['tasks', 'maxConcurrentTasks'],
      message: `the schedules could run ${worst} tasks at once (one per database schedule, maxConcurrency per server schedule), more than maxConcurrentTasks ${cap}: lower the servers' maxConcurrency, or raise the cap with your Fargate quota`,
    });
  }
}

/**
 * The most pg-tools tasks the schedules can run at once: every database schedule (backup and
 * verify) one task, every server schedule its `maxConcurrency`.
 */
export function scheduledTaskBurst(config: { databases: DatabaseConfig[]; servers: ServerConfig[] }): number {
  return (
    config.databases.reduce((sum, db) => sum + db.backupSchedules.length + (db.verifySchedule ? 1 : 0), 0) +
    config.servers.reduce((sum, s) => sum + s.backupSchedules.length * s.maxConcurrency, 0)
  );
}

/** Exactly one way to log in, with what it needs; a secret in the stack's account and region. */
function checkLogin(
  ctx: z.RefinementCtx,
  config: { account?: string; region?: string },
  path: string,
  i: number,
  entry: ServerLoginConfig,
): void {
  const { connection } = entry;
  const login = connection.iamAuth ? 'iam' : connection.passwordSecretArn ? 'secret' : 'none';
  if (login === 'none' || (connection.iamAuth && connection.passwordSecretArn)) {
    ctx.addIssue({
      code: 'custom',
      path: [path, i, 'connection'],
      message: 'give exactly one way to log in: passwordSecretArn, or iamAuth: true with rdsResourceId',
    });
  }
  if (login === 'iam' && !entry.rdsResourceId) {
    ctx.addIssue({
      code: 'custom',
      path: [path, i, 'rdsResourceId'],
      message: 'iamAuth needs the RDS resource id (db-… or cluster-…) to grant rds-db:connect',
    });
  }
  if (login !== 'secret') return;
  const [, , region, account] = SECRET_ARN.exec(connection.passwordSecretArn ?? '') ?? [];
  if ((config.region && region !== config.region) || (config.account && account !== config.account)) {
    ctx.addIssue({
      code: 'custom',
      path: [path, i, 'connection', 'passwordSecretArn'],
      message: `the secret must be in the stack's account and region (${config.account ?? 'any'}, ${config.region ?? 'any'})`,
    });
  }
}

/**
 * The database can be reached from the VPC: a security group only in the VPC pgferry runs in (a
 * new VPC holds none of the databases' groups, and a rule naming a group of another VPC fails at
 * deploy time), an address range only inside the VPC or a range routed to it.
 */
function checkReachable(
  ctx: z.RefinementCtx,
  vpc: VpcConfig,
  path: string,
  i: number,
  entry: ServerLoginConfig,
): void {
  const { network } = entry;
  if (network.securityGroupId && vpc.mode === 'create') {
    ctx.addIssue({
      code: 'custom',
      path: [path, i, 'network', 'securityGroupId'],
      message:
        'a security group belongs to one VPC, and vpc.mode "create" makes a new one that holds none of them: deploy into the database\'s VPC (vpc.mode "existing") or give the database\'s cidr with a route to it in vpc.routedCidrs',
    });
  }
  const cidr = network.cidr;
  if (cidr && isIpv4Cidr(cidr) && isIpv4Cidr(vpc.cidr)) {
    const reachable = [vpc.cidr, ...vpc.routedCidrs].some((range) => cidrContains(range, cidr));
    if (!reachable) {
      ctx.addIssue({
        code: 'custom',
        path: [path, i, 'network', 'cidr'],
        message: `${cidr} is outside the VPC (${vpc.cidr}) and outside every range routed to it (vpc.routedCidrs: ${vpc.routedCidrs.join(', ') || 'none'}): add the route's range to vpc.routedCidrs, or deploy into the database's VPC`,
      });
    }
  }
}

/** The configuration as written (defaults may be omitted). */
export type PgferryConfigInput = z.input<typeof PgferryConfigSchema>;
/** The configuration with every default filled in. */
export type PgferryConfig = z.infer<typeof PgferryConfigSchema>;

/** The retention policy of `db`: its own settings over the deployment's; undefined when it sets none. */
export function databaseRetention(config: PgferryConfig, db: DatabaseConfig): RetentionPolicy | undefined {
  if (!db.retention) return undefined;
  const own = Object.fromEntries(Object.entries(db.retention).filter(([, v]) => v !== undefined));
  return { ...config.retention, ...own };
}

/** A server entry's policy (its own over the deployment's); undefined when it sets none. */
export function serverRetention(config: PgferryConfig, server: ServerConfig): RetentionPolicy | undefined {
  if (!server.retention) return undefined;
  return { ...config.retention, ...defined(server.retention) };
}

/** Each of a server entry's per-database policies, over the server's (and the deployment's). */
export function serverDatabaseRetention(
  config: PgferryConfig,
  server: ServerConfig,
): Record<string, RetentionPolicy> {
  const base = serverRetention(config, server) ?? config.retention;
  return Object.fromEntries(
    Object.entries(server.databaseRetention).map(([db, policy]) => [db, { ...base, ...defined(policy) }]),
  );
}

function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Validates a configuration; throws one error listing every problem with its field. */
export function parseConfig(value: unknown, source = 'configuration'): PgferryConfig {
  const result = PgferryConfigSchema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `  ${issue.path.length ? issue.path.join('.') : '(top level)'}: ${issue.message}`,
  );
  throw new Error(`invalid pgferry configuration in ${source}:\n${problems.join('\n')}`);
}

/** Reads and validates a JSON configuration file. */
export function loadConfig(file: string): PgferryConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the pgferry configuration ${file}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`the pgferry configuration ${file} is not JSON: ${(err as Error).message}`);
  }
  return parseConfig(value, file);
}
