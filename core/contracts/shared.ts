/**
 * The pieces every workflow's payloads are made of: ids, names, the store's URL, a connection,
 * compression, the task's size, the job reference, the schema version. Defined once here so each
 * payload says the same thing the same way.
 */
import { z } from 'zod';
import { assertCatalogName, assertDatabaseName, BACKUP_ID_PATTERN, JOB_KINDS } from '../store-keys';

/** The version of every stored document and plan; a reader refuses another. */
export const SCHEMA_VERSION = 1;

/** The `schemaVersion` field of a stored document or plan. */
export const SchemaVersionSchema = z.literal(SCHEMA_VERSION);

/** A run's id (backup, restore, verify, migrate): `20261121T231920Z-3fa9c1` (core/store-keys.ts). */
export const RunIdSchema = z.string().regex(BACKUP_ID_PATTERN);

/** When something happened: an ISO 8601 UTC timestamp. */
export const TimestampSchema = z.iso.datetime();

/** What a Step Functions `Catch` puts at its result path: the error's name and cause. */
export const CaughtErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() }).loose();
export type CaughtError = z.infer<typeof CaughtErrorSchema>;

/** A PostgreSQL database's name, as `assertDatabaseName` allows. */
export const DatabaseNameSchema = z.string().superRefine((value, ctx) => {
  try {
    assertDatabaseName(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/**
 * A catalog name: what backups are filed under (see core/catalog-name.ts) — the configured
 * database id on AWS, `--name` locally, by default the database's name.
 */
export const CatalogNameSchema = z.string().superRefine((value, ctx) => {
  try {
    assertCatalogName(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

/** `latest` or a backup id: which backup a restore or a verification reads. */
const NOT_A_BACKUP_REF = 'not latest or a backup id (such as 20261121T233200Z-3d6d1f)';
export const BackupRefSchema = z.union(
  [z.literal('latest'), z.string().regex(BACKUP_ID_PATTERN, NOT_A_BACKUP_REF)],
  {
    error: NOT_A_BACKUP_REF,
  },
);

/** Where backups are kept: a local folder or an S3 bucket and prefix. */
export const StoreUrlSchema = z
  .string()
  .max(2048)
  .regex(
    /^(file:\/\/\/|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/|$))/,
    'store must be file:///abs/dir or s3://bucket/prefix',
  );

/** A Secrets Manager secret's ARN. */
export const SecretArnSchema = z
  .string()
  .regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/);

export const SslModeSchema = z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);
export type SslMode = z.infer<typeof SslModeSchema>;

/**
 * Where a database is and who to connect as. The password is never part of it: it comes from
 * Secrets Manager (`passwordSecretArn`) or from the environment of the process that connects
 * (`PGFERRY_SOURCE_PASSWORD`), see `core/connection.ts`.
 */
export const ConnectionSchema = z
  .object({
    host: z.string().min(1).max(1024),
    port: z.number().int().min(1).max(65535),
    database: DatabaseNameSchema,
    user: z.string().min(1).max(63),
    sslmode: SslModeSchema.default('prefer'),
    /** Path to a CA bundle for `verify-ca`/`verify-full` (the container ships the RDS bundle). */
    sslrootcert: z.string().max(4096).optional(),
    passwordSecretArn: SecretArnSchema.optional(),
    /**
     * Log in with an RDS IAM authentication token instead of a password (the role running
     * the step needs `rds-db:connect` for this user; TLS is required).
     */
    iamAuth: z.boolean().optional(),
  })
  .strict();
export type Connection = z.infer<typeof ConnectionSchema>;

export const CompressionCodecSchema = z.enum(['zstd', 'gzip', 'lz4', 'none']);
export type CompressionCodec = z.infer<typeof CompressionCodecSchema>;
export const CompressionSchema = z
  .object({ codec: CompressionCodecSchema, level: z.number().int().min(-7).max(22).optional() })
  .strict();
export type Compression = z.infer<typeof CompressionSchema>;

/** A request's compression: what a dump compresses with, zstd level 1 unless the request says otherwise. */
export const RequestedCompressionSchema = CompressionSchema.default({ codec: 'zstd', level: 1 });

/** How long pg_dump waits for a table's lock before the backup (or migration) fails: 5 minutes. */
export const DEFAULT_LOCK_WAIT_TIMEOUT_MS = 5 * 60 * 1000;

/**
 * How long a dump may wait for a table lock (pg_dump's `--lock-wait-timeout`), in milliseconds;
 * a wait that outlasts it fails the run, naming the lock's holder.
 * @default DEFAULT_LOCK_WAIT_TIMEOUT_MS (5 minutes)
 */
export const LockWaitTimeoutSchema = z
  .number()
  .int()
  .min(1)
  .max(24 * 60 * 60 * 1000);

/** The most parallel jobs a request may ask for (`--jobs`). */
export const MAX_REQUESTED_JOBS = 64;

/** Parallel jobs a request may ask for (pg_restore's; a backup's pg_dumps); absent: a default. */
export const RequestedJobsSchema = z.number().int().min(1).max(MAX_REQUESTED_JOBS);

/**
 * How a restore's (or a migration's) sessions compress TOASTed values: `lz4` where the target
 * offers it (the default: the same values, loaded several times faster than with pglz), or the
 * target server's own `default_toast_compression`.
 */
export const ToastCompressionSchema = z.enum(['lz4', 'server-default']);
export type ToastCompression = z.infer<typeof ToastCompressionSchema>;

export const ServerInfoSchema = z
  .object({
    version: z.string(),
    major: z.number().int(),
    /**
     * `pg_control_system()`'s system identifier, set by initdb and shared by physical replicas and
     * snapshot restores: with the address, what tells servers apart (core/catalog-name.ts).
     * Absent where unreadable, and in manifests written before it was recorded.
     */
    systemIdentifier: z
      .string()
      .regex(/^\d{1,20}$/)
      .optional(),
  })
  .strict();

/** The Fargate task size for one run (on AWS; ignored locally): `cpu` and `memoryMiB` as ECS takes them. */
export const TaskSizeSchema = z
  .object({
    cpu: z.enum(['256', '512', '1024', '2048', '4096', '8192', '16384']),
    memoryMiB: z.string().regex(/^\d+$/),
    ephemeralStorageGiB: z.number().int().min(21).max(200),
  })
  .strict();
export type TaskSize = z.infer<typeof TaskSizeSchema>;

/**
 * Where preflight stored a run's plan (its job, see `core/jobs.ts`): the workflow's state and the
 * pg-tools task's environment carry this reference, never the plan, so they stay small however
 * many tables a backup holds (ECS takes 8 KiB of container overrides, Step Functions 256 KiB per
 * state).
 */
export const JobRefSchema = z
  .object({
    store: StoreUrlSchema,
    /** Relative to the store's root (`jobKey` in core/store-keys.ts). */
    key: z.string().min(1).max(1024),
  })
  .strict();
export type JobRef = z.infer<typeof JobRefSchema>;

/** A stored job: the plan, and the kind of run it is for (the runner refuses another kind's). */
export const JobDocumentSchema = z
  .object({ schemaVersion: SchemaVersionSchema, kind: z.enum(JOB_KINDS), plan: z.unknown() })
  .strict();
export type JobDocument = z.infer<typeof JobDocumentSchema>;

/**
 * The fields of a workflow's output that say where its full document (manifest or report) is.
 * A manifest or report lists every table and would exceed Step Functions' 256 KiB for a database
 * of a few thousand tables; `pgferry … --json` prints the full document, read from the store.
 */
export const documentLocation = {
  store: StoreUrlSchema,
  /** Relative to `store`. */
  key: z.string().min(1).max(1024),
};

export const TableRowCountSchema = z
  .object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() })
  .strict();
export type TableRowCount = z.infer<typeof TableRowCountSchema>;

/** A table's rows in the backup and as restored (or migrated). */
export const TableCheckSchema = TableRowCountSchema.extend({
  restoredRows: z.number().int().nonnegative(),
}).strict();

/**
 * The roles a restore or migration created on the target, those it left alone because they
 * existed, and of the roles created, those that can log in but were given no password (dumped
 * without passwords, or without one on the source): set one with `ALTER ROLE … PASSWORD`.
 */
export const RolesCreatedSchema = z
  .object({
    created: z.array(z.string()),
    skippedExisting: z.array(z.string()),
    createdWithoutPassword: z.array(z.string()).optional(),
  })
  .strict();
