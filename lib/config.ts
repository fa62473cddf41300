/**
 * The deployment's configuration: which databases pgferry protects on AWS, when and for how long,
 * where it runs and whom it tells. One JSON file (see `config/pgferry.example.json`), validated
 * here with zod when the CDK app synthesizes, so a mistake fails `cdk synth` with a message naming
 * the field instead of failing a backup at 3 a.m.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { CompressionSchema, ConnectionSchema } from '../core/contracts';
import { DEFAULT_RETENTION, RetentionPolicySchema } from '../core/retention';
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
 * How to reach a database: the connection the workflows use (the execution input's `source`,
 * with no password: the workflows read it from `passwordSecretArn` at run time, or log in with
 * an RDS IAM authentication token with `iamAuth: true`). Only TLS modes
 * are accepted on AWS; the Lambda functions and the pg-tools task trust the public roots and the
 * Amazon RDS certificate authorities.
 */
const DatabaseConnectionSchema = ConnectionSchema.omit({ sslrootcert: true })
  .extend({
    port: z.number().int().min(1).max(65535).default(5432),
    sslmode: z.enum(['require', 'verify-ca', 'verify-full']).default('verify-full'),
    passwordSecretArn: z
      .string()
      .regex(
        SECRET_ARN,
        'must be the complete ARN of a Secrets Manager secret, ending in its 6-character suffix (arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf)',
      )
      .optional(),
  })
  .strict();

const DatabaseNetworkSchema = z
  .object({
    /** The database's security group: pgferry may connect to it on the database's port. */
    securityGroupId: z
      .string()
      .regex(/^sg-[0-9a-f]{8,17}$/)
      .optional(),
    /** Or the address range the database is in (e.g. a peered VPC's). */
    cidr: z
      .string()
      .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/)
      .optional(),
    /** Add an ingress rule for pgferry to the database's security group (else manage it yourself). */
    allowIngress: z.boolean().default(true),
  })
  .strict()
  .refine((n) => n.securityGroupId !== undefined || n.cidr !== undefined, {
    message: 'name the database security group (securityGroupId) or its address range (cidr)',
  });

export const DatabaseConfigSchema = z
  .object({
    /** Names this database's schedules, alarms and resources: letters, digits and dashes. */
    id: z
      .string()
      .regex(
        /^[A-Za-z][A-Za-z0-9-]{0,39}$/,
        'letters, digits and dashes, starting with a letter, at most 40',
      ),
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
    backupSchedules: z.array(ScheduleSchema).min(1, 'give at least one backup schedule'),
    /** When to verify the latest backup (restore it into a scratch database and check it). */
    verifySchedule: ScheduleSchema.optional(),
    compression: CompressionSchema.optional(),
    withRolePasswords: z.boolean().default(false),
    /** Alarm when no backup of this database has completed for this many hours. */
    alarmAfterHours: z.number().int().min(1).max(168).default(26),
  })
  .strict();
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>;

const VpcConfigSchema = z.discriminatedUnion('mode', [
  z
    .object({
      mode: z.literal('create'),
      cidr: z
        .string()
        .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/)
        .default('10.70.0.0/16'),
      maxAzs: z.number().int().min(2).max(3).default(2),
      /** Private subnets reach AWS APIs (ECR, Secrets Manager, Logs) through NAT gateways. */
      natGateways: z.number().int().min(1).max(3).default(1),
      /** Availability zones to use; naming them keeps `cdk synth` from looking them up. */
      availabilityZones: z.array(z.string().min(1)).min(2).max(3).optional(),
    })
    .strict(),
  z
    .object({
      mode: z.literal('existing'),
      vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/),
      availabilityZones: z.array(z.string().min(1)).min(1),
      /** Subnets with a route to AWS APIs (NAT gateway or VPC endpoints), one or more per zone. */
      privateSubnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/)).min(1),
    })
    .strict()
    .refine((v) => v.privateSubnetIds.length % v.availabilityZones.length === 0, {
      message: 'give the same number of private subnets in each availability zone',
    }),
]);

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
    vpc: VpcConfigSchema.default({ mode: 'create', cidr: '10.70.0.0/16', maxAzs: 2, natGateways: 1 }),
    bucket: BucketConfigSchema.default({
      noncurrentVersionExpirationDays: 30,
      accessLogsExpirationDays: 365,
    }),
    notifications: NotificationsConfigSchema.default({ emails: [], notifyOnSuccess: false }),
    /**
     * Which backups to keep (core/retention.ts): the record step tags each backup with its tier
     * and the bucket's lifecycle rules act on the tags. One policy for every database: the record
     * step reads it from its environment.
     */
    retention: RetentionPolicySchema.default({ ...DEFAULT_RETENTION }),
    // Each database adds schedules, an alarm and network rules; a stack holds 500 resources.
    databases: z.array(DatabaseConfigSchema).min(1, 'name at least one database').max(100),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = { id: new Map<string, number>(), database: new Map<string, number>() };
    config.databases.forEach((db, i) => {
      // The store keeps backups by database name, so two entries must not share one.
      for (const [key, value] of [
        ['id', db.id.toLowerCase()],
        ['database', db.connection.database],
      ] as const) {
        const first = seen[key].get(value);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['databases', i, key === 'id' ? 'id' : 'connection'],
            message: `${key === 'id' ? 'id' : 'database name'} ${JSON.stringify(value)} is already used by databases.${first}`,
          });
        } else seen[key].set(value, i);
      }
      const login = db.connection.iamAuth ? 'iam' : db.connection.passwordSecretArn ? 'secret' : 'none';
      if (login === 'none' || (db.connection.iamAuth && db.connection.passwordSecretArn)) {
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'connection'],
          message: 'give exactly one way to log in: passwordSecretArn, or iamAuth: true with rdsResourceId',
        });
      }
      if (login === 'iam' && !db.rdsResourceId) {
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'rdsResourceId'],
          message: 'iamAuth needs the RDS resource id (db-… or cluster-…) to grant rds-db:connect',
        });
      }
      if (login !== 'secret') return;
      const [, , region, account] = SECRET_ARN.exec(db.connection.passwordSecretArn ?? '') ?? [];
      if ((config.region && region !== config.region) || (config.account && account !== config.account)) {
        ctx.addIssue({
          code: 'custom',
          path: ['databases', i, 'connection', 'passwordSecretArn'],
          message: `the secret must be in the stack's account and region (${config.account ?? 'any'}, ${config.region ?? 'any'})`,
        });
      }
    });
  });

/** The configuration as written (defaults may be omitted). */
export type PgferryConfigInput = z.input<typeof PgferryConfigSchema>;
/** The configuration with every default filled in. */
export type PgferryConfig = z.infer<typeof PgferryConfigSchema>;

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
