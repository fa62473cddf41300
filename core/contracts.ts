/**
 * The payloads that cross a boundary — CLI → state machine, state → state, state machine →
 * container, container → record step, and the manifest in the store — typed once, here, and
 * validated with zod wherever they are received. None of them ever carries a password.
 */
import { z } from 'zod';
import { PgferryError } from './errors';
import { assertCatalogName, assertDatabaseName, BACKUP_ID_PATTERN, JOB_KINDS } from './store-keys';

export const SCHEMA_VERSION = 1;

/** What a Step Functions `Catch` puts at its result path: the error's name and cause. */
export const CaughtErrorSchema = z.object({ Error: z.string(), Cause: z.string().optional() }).loose();
export type CaughtError = z.infer<typeof CaughtErrorSchema>;

const databaseName = z.string().superRefine((value, ctx) => {
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
const catalogName = z.string().superRefine((value, ctx) => {
  try {
    assertCatalogName(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

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
    database: databaseName,
    user: z.string().min(1).max(63),
    sslmode: SslModeSchema.default('prefer'),
    /** Path to a CA bundle for `verify-ca`/`verify-full` (the container ships the RDS bundle). */
    sslrootcert: z.string().max(4096).optional(),
    passwordSecretArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/)
      .optional(),
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

const StoreUrlSchema = z
  .string()
  .max(2048)
  .regex(
    /^(file:\/\/\/|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/|$))/,
    'store must be file:///abs/dir or s3://bucket/prefix',
  );

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

/** Input of the backup state machine: what `pgferry backup` and the schedules start it with. */
export const BackupRequestSchema = z
  .object({
    /**
     * The catalog name to file the backup under. On AWS it is the source's configured id (given
     * or not); locally `--name`, by default the source database's name.
     */
    name: catalogName.optional(),
    source: ConnectionSchema,
    store: StoreUrlSchema,
    compression: CompressionSchema.default({ codec: 'zstd', level: 1 }),
    withRolePasswords: z.boolean().default(false),
    backupId: z.string().regex(BACKUP_ID_PATTERN).optional(),
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
  })
  .strict();
export type BackupRequest = z.infer<typeof BackupRequestSchema>;
export type BackupRequestInput = z.input<typeof BackupRequestSchema>;

/**
 * How a restore's (or a migration's) sessions compress TOASTed values: `lz4` where the target
 * offers it (the default: the same values, loaded several times faster than with pglz), or the
 * target server's own `default_toast_compression`.
 */
export const ToastCompressionSchema = z.enum(['lz4', 'server-default']);
export type ToastCompression = z.infer<typeof ToastCompressionSchema>;

export const DumpStrategySchema = z
  .object({
    /** pg_dump archive format; `custom` streams to the store with no local disk. */
    format: z.literal('custom'),
    jobs: z.number().int().min(1),
    /** Multipart uploads (S3 stores): part size and parts in flight. Absent in older manifests. */
    upload: z
      .object({
        partBytes: z
          .number()
          .int()
          .min(5 * 1024 * 1024),
        queueSize: z.number().int().min(1).max(16),
      })
      .strict()
      .optional(),
  })
  .strict();
export type DumpStrategy = z.infer<typeof DumpStrategySchema>;

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

/** Preflight's output: everything the dump runner and the record step need. */
export const BackupPlanSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /**
     * The catalog name the backup is filed under: every key of it is built from this (the
     * database's own name is `source.database`).
     */
    database: catalogName,
    store: StoreUrlSchema,
    source: ConnectionSchema,
    compression: CompressionSchema,
    withRolePasswords: z.boolean(),
    server: ServerInfoSchema,
    /** The oldest pg_dump major that can dump this server: its own major. */
    minPgDumpMajor: z.number().int(),
    sizeBytes: z.number().int().nonnegative(),
    strategy: DumpStrategySchema,
    taskSize: TaskSizeSchema,
    /** The request's lock wait timeout; absent: DEFAULT_LOCK_WAIT_TIMEOUT_MS. */
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
    startedAt: z.iso.datetime(),
  })
  .strict();
export type BackupPlan = z.infer<typeof BackupPlanSchema>;

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
  .object({ schemaVersion: z.literal(SCHEMA_VERSION), kind: z.enum(JOB_KINDS), plan: z.unknown() })
  .strict();
export type JobDocument = z.infer<typeof JobDocumentSchema>;

/**
 * The backup workflow's state after preflight: ids, the job and the task's size (which the ECS
 * state reads). The steps that need the plan read it through `job`; Cleanup needs only the ids.
 */
export const BackupStateSchema = z
  .object({
    job: JobRefSchema,
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The catalog name (the folder of the backup). */
    database: catalogName,
    taskSize: TaskSizeSchema,
  })
  .strict();
export type BackupState = z.infer<typeof BackupStateSchema>;

export const StoredObjectSchema = z
  .object({
    /** Relative to the backup's folder. */
    key: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    kind: z.enum(['dump', 'globals']),
    bytes: z.number().int().nonnegative(),
    /** SHA-256 (hex) of the bytes as stored, i.e. after compression. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    compression: CompressionSchema,
  })
  .strict();
export type StoredObject = z.infer<typeof StoredObjectSchema>;

export const TableRowCountSchema = z
  .object({ schema: z.string(), name: z.string(), rows: z.number().int().nonnegative() })
  .strict();
export type TableRowCount = z.infer<typeof TableRowCountSchema>;

export const GlobalsInfoSchema = z
  .object({
    rolePasswords: z.boolean(),
    /** Why role passwords are missing although they were asked for (e.g. no access to pg_authid). */
    note: z.string().optional(),
  })
  .strict();

export const LocaleProviderSchema = z.enum(['libc', 'icu', 'builtin']);
export type LocaleProvider = z.infer<typeof LocaleProviderSchema>;

/**
 * How a database sorts and classifies text: what `CREATE DATABASE` is given to make one like it
 * (its encoding is recorded beside it).
 */
export const DatabaseLocaleSchema = z
  .object({
    /** LC_COLLATE and LC_CTYPE: operating-system (libc) locales, set whatever the provider. */
    collate: z.string(),
    ctype: z.string(),
    /** The default collation's provider (PostgreSQL 15 added icu, 17 builtin; libc before). */
    provider: LocaleProviderSchema,
    /** An ICU database's locale (`daticulocale`; `datlocale` from 17). */
    icuLocale: z.string().optional(),
    /** An ICU database's tailoring rules (`daticurules`, 16 and later). */
    icuRules: z.string().optional(),
    /** A builtin-provider database's locale (`datlocale`, 17 and later). */
    builtinLocale: z.string().optional(),
  })
  .strict();
export type DatabaseLocale = z.infer<typeof DatabaseLocaleSchema>;

/**
 * A collation the database's objects need: one of its own (`CREATE COLLATION`), or one of the
 * server's (`pg_catalog`) that its columns, indexes or expressions use.
 */
export const CollationRequirementSchema = z
  .object({
    schema: z.string(),
    name: z.string(),
    provider: LocaleProviderSchema,
    /** libc: its LC_COLLATE and LC_CTYPE. */
    collate: z.string().optional(),
    ctype: z.string().optional(),
    /** icu and builtin: its locale; icu: its rules. */
    locale: z.string().optional(),
    rules: z.string().optional(),
    deterministic: z.boolean(),
  })
  .strict();
export type CollationRequirement = z.infer<typeof CollationRequirementSchema>;

export const ColumnRefSchema = z
  .object({ schema: z.string(), table: z.string(), column: z.string() })
  .strict();
export type ColumnRef = z.infer<typeof ColumnRefSchema>;

/**
 * What a target server needs to restore a backup: checked by the restore preflight (and by
 * verify, on its own server) before anything is downloaded. The fields after `roles` are absent
 * in manifests written before pgferry recorded them.
 */
export const RequirementsSchema = z
  .object({
    encoding: z.string(),
    extensions: z.array(z.object({ name: z.string(), version: z.string() }).strict()),
    /** Roles that own objects of the database or are granted privileges on them. */
    roles: z.array(z.string()),
    locale: DatabaseLocaleSchema.optional(),
    collations: z.array(CollationRequirementSchema).optional(),
    /** Columns stored with lz4 compression (`ALTER TABLE … SET COMPRESSION lz4`). */
    lz4Columns: z.array(ColumnRefSchema).optional(),
  })
  .strict();
export type Requirements = z.infer<typeof RequirementsSchema>;

/**
 * The database's own properties, which pg_dump keeps only for `pg_restore --create` (into a
 * database of the original name): pgferry records them and applies them to whatever database it
 * restores into.
 */
export const DatabasePropertiesSchema = z
  .object({
    owner: z.string(),
    comment: z.string().nullable(),
    /** `ALTER DATABASE … SET` (role: null) and `ALTER ROLE … IN DATABASE … SET` settings, as `name=value`. */
    settings: z.array(z.object({ role: z.string().nullable(), setting: z.string() }).strict()),
    /** The explicit ACL, or null for the default privileges. */
    grants: z
      .array(z.object({ grantee: z.string(), privilege: z.string(), grantable: z.boolean() }).strict())
      .nullable(),
  })
  .strict();
export type DatabaseProperties = z.infer<typeof DatabasePropertiesSchema>;

export const ToolInfoSchema = z.object({ pgDumpVersion: z.string(), pgDumpMajor: z.number().int() }).strict();

/** What the runner reports to the record step, through the store (ECS returns no payload). */
export const DumpResultSchema = z.discriminatedUnion('status', [
  z
    .object({
      schemaVersion: z.literal(SCHEMA_VERSION),
      backupId: z.string().regex(BACKUP_ID_PATTERN),
      status: z.literal('succeeded'),
      tool: ToolInfoSchema,
      objects: z.array(StoredObjectSchema).min(1),
      tables: z.array(TableRowCountSchema),
      globals: GlobalsInfoSchema,
      requires: RequirementsSchema,
      databaseProperties: DatabasePropertiesSchema,
      uncompressedBytes: z.number().int().nonnegative(),
      finishedAt: z.iso.datetime(),
    })
    .strict(),
  z
    .object({
      schemaVersion: z.literal(SCHEMA_VERSION),
      backupId: z.string().regex(BACKUP_ID_PATTERN),
      status: z.literal('failed'),
      error: z.object({ name: z.string(), message: z.string() }).strict(),
      finishedAt: z.iso.datetime(),
    })
    .strict(),
]);
export type DumpResult = z.infer<typeof DumpResultSchema>;

/** `manifest.json`: written last; a backup folder without it is incomplete and never listed. */
export const BackupManifestSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    id: z.string().regex(BACKUP_ID_PATTERN),
    database: databaseName,
    /**
     * The catalog name it is filed under (the folder); absent in manifests written before catalog
     * names existed, whose folder is the database's name (`catalogNameOf`).
     */
    name: catalogName.optional(),
    status: z.literal('complete'),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    durationSeconds: z.number().nonnegative(),
    source: z.object({ host: z.string(), port: z.number().int(), user: z.string() }).strict(),
    server: ServerInfoSchema,
    tool: ToolInfoSchema.extend({ pgferryVersion: z.string() }).strict(),
    format: z.literal('custom'),
    compression: CompressionSchema,
    strategy: DumpStrategySchema,
    uncompressedBytes: z.number().int().nonnegative(),
    objects: z.array(StoredObjectSchema).min(1),
    tables: z.array(TableRowCountSchema),
    globals: GlobalsInfoSchema,
    requires: RequirementsSchema.optional(),
    databaseProperties: DatabasePropertiesSchema.optional(),
    /** How long the dump would wait for a table lock (absent in older manifests). */
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
  })
  .strict();
export type BackupManifest = z.infer<typeof BackupManifestSchema>;

/** Parses a payload, turning schema errors into one readable line naming the payload. */
export function parsePayload<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues
    .slice(0, 5)
    .map((issue) => readable(`${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`))
    .join('; ');
  throw new PgferryError('InvalidInput', `invalid ${what}: ${issues}`);
}

/**
 * One short line of an issue: issues may quote the input (an unknown key), which may hold
 * control characters or be very long.
 */
function readable(text: string, max = 200): string {
  let line = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    const control = code < 0x20 || code === 0x7f || code === 0x2028 || code === 0x2029;
    line += control ? `\\u${code.toString(16).padStart(4, '0')}` : c;
    if (line.length > max) return `${line.slice(0, max)}…`;
  }
  return line;
}

/** `latest` or a backup id. */
const NOT_A_BACKUP_REF = 'not latest or a backup id (such as 20261121T233200Z-3d6d1f)';
const BackupRefSchema = z.union(
  [z.literal('latest'), z.string().regex(BACKUP_ID_PATTERN, NOT_A_BACKUP_REF)],
  {
    error: NOT_A_BACKUP_REF,
  },
);

/** Input of the restore state machine: what `pgferry restore` and the console start it with. */
export const RestoreRequestSchema = z
  .object({
    store: StoreUrlSchema,
    backup: BackupRefSchema,
    /** The backup's catalog name: needed with `latest`, optional with an id. */
    name: catalogName.optional(),
    /** `name`'s earlier spelling, still accepted (a catalog name, by default a database's name). */
    database: catalogName.optional(),
    /** The server and database to restore into (the database is created in `create` mode). */
    target: ConnectionSchema,
    mode: z.enum(['create', 'clean']).default('create'),
    /** pg_restore jobs; default: the task's vCPUs. */
    jobs: z.number().int().min(1).max(64).optional(),
    withGlobals: z.boolean().default(false),
    noOwner: z.boolean().default(false),
    noAcl: z.boolean().default(false),
    role: z.string().min(1).max(63).optional(),
    schemas: z.array(z.string().min(1).max(63)).max(100).default([]),
    tables: z.array(z.string().min(1).max(63)).max(100).default([]),
    force: z.boolean().default(false),
    allowDowngrade: z.boolean().default(false),
    /** With `mode: clean`, back up the target before replacing it. */
    safetyBackup: z.boolean().default(true),
    /**
     * With `mode: clean`, end the other sessions connected to the target database before anything
     * is dropped; without it, such sessions make the restore fail, naming them.
     */
    terminateConnections: z.boolean().default(false),
    toastCompression: ToastCompressionSchema.default('lz4'),
  })
  .strict();
export type RestoreRequest = z.infer<typeof RestoreRequestSchema>;
export type RestoreRequestInput = z.input<typeof RestoreRequestSchema>;

/** Restore preflight's output: the request with the backup resolved and the target checked. */
export const RestorePlanSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    restoreId: z.string().regex(BACKUP_ID_PATTERN),
    request: RestoreRequestSchema,
    manifest: BackupManifestSchema,
    targetServer: ServerInfoSchema,
    jobs: z.number().int().min(1),
    /** What the load compresses TOASTed values with: the request's choice, as the target allows. */
    toastCompression: ToastCompressionSchema,
    taskSize: TaskSizeSchema,
    /** The backup of the target to take first (`mode: clean`): the input of the backup workflow. */
    safetyBackup: BackupRequestSchema.optional(),
    /** What preflight let through but expects to fail (e.g. with `allowDowngrade`). */
    warnings: z.array(z.string()).optional(),
    startedAt: z.iso.datetime(),
  })
  .strict();
export type RestorePlan = z.infer<typeof RestorePlanSchema>;

/**
 * The restore workflow's state: ids, the job, the task's size, and with `mode: clean` the input of
 * the nested backup of the target (`safetyBackupRequest`); `safetyBackup` is that backup's id once
 * it was taken.
 */
export const RestoreStateSchema = z
  .object({
    job: JobRefSchema,
    restoreId: z.string().regex(BACKUP_ID_PATTERN),
    /** The backup restored, and its catalog name (where its report goes). */
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    database: catalogName,
    taskSize: TaskSizeSchema,
    safetyBackupRequest: BackupRequestSchema.optional(),
    safetyBackup: z
      .object({ backupId: z.string().regex(BACKUP_ID_PATTERN) })
      .strict()
      .optional(),
    error: CaughtErrorSchema.optional(),
  })
  .strict();
export type RestoreState = z.infer<typeof RestoreStateSchema>;

const TableCheckSchema = TableRowCountSchema.extend({
  restoredRows: z.number().int().nonnegative(),
}).strict();

/**
 * Of the roles created, those that can log in but were given no password (dumped without
 * passwords, or without one on the source): set one with `ALTER ROLE … PASSWORD`.
 */
const CreatedWithoutPasswordSchema = z.array(z.string()).optional();

/** The restore report: stored next to the backup (`restore-report-<restoreId>.json`) and printed. */
export const RestoreReportSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('restore'),
    restoreId: z.string().regex(BACKUP_ID_PATTERN),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The backup's catalog name. */
    database: catalogName,
    target: z
      .object({ host: z.string(), port: z.number().int(), database: z.string(), serverVersion: z.string() })
      .strict(),
    status: z.enum(['passed', 'failed']),
    error: z.string().optional(),
    mode: z.enum(['create', 'clean']),
    /** The backup taken of the target before it was replaced (`mode: clean`). */
    safetyBackupId: z.string().regex(BACKUP_ID_PATTERN).optional(),
    jobs: z.number().int(),
    toastCompression: ToastCompressionSchema.optional(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    timings: z.record(z.string(), z.number()),
    checks: z
      .object({
        checksums: z.array(z.object({ key: z.string(), sha256: z.string(), verified: z.boolean() }).strict()),
        rowCounts: z.array(TableCheckSchema),
        analyzed: z.boolean(),
        globals: z
          .object({
            created: z.array(z.string()),
            skippedExisting: z.array(z.string()),
            createdWithoutPassword: CreatedWithoutPasswordSchema,
          })
          .strict()
          .optional(),
        /** The encoding and locale the database was created with (`mode: create`). */
        createdWith: z.object({ encoding: z.string(), locale: DatabaseLocaleSchema }).strict().optional(),
        /** The sessions ended before the target was cleaned (`terminateConnections`). */
        terminatedSessions: z
          .array(
            z
              .object({
                pid: z.number().int(),
                user: z.string().nullable(),
                application: z.string().nullable(),
              })
              .strict(),
          )
          .optional(),
      })
      .strict(),
    /** The plan's warnings. */
    warnings: z.array(z.string()).optional(),
  })
  .strict();
export type RestoreReport = z.infer<typeof RestoreReportSchema>;

/** Input of the verify state machine: a restore drill of one backup into a throwaway server. */
export const VerifyRequestSchema = z
  .object({
    store: StoreUrlSchema,
    backup: BackupRefSchema,
    /** The backup's catalog name: needed with `latest`, optional with an id. */
    name: catalogName.optional(),
    /** `name`'s earlier spelling, still accepted. */
    database: catalogName.optional(),
    jobs: z.number().int().min(1).max(64).optional(),
  })
  .strict();
export type VerifyRequest = z.infer<typeof VerifyRequestSchema>;

export const VerifyPlanSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    verifyId: z.string().regex(BACKUP_ID_PATTERN),
    request: VerifyRequestSchema,
    manifest: BackupManifestSchema,
    jobs: z.number().int().min(1),
    taskSize: TaskSizeSchema,
    startedAt: z.iso.datetime(),
  })
  .strict();
export type VerifyPlan = z.infer<typeof VerifyPlanSchema>;

/** The verify workflow's state: ids, the job and the task's size. */
export const VerifyStateSchema = z
  .object({
    job: JobRefSchema,
    verifyId: z.string().regex(BACKUP_ID_PATTERN),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The backup's catalog name. */
    database: catalogName,
    taskSize: TaskSizeSchema,
    error: CaughtErrorSchema.optional(),
  })
  .strict();
export type VerifyState = z.infer<typeof VerifyStateSchema>;

/** The verification report: stored beside the backup (`verify-report-<verifyId>.json`). */
export const VerifyReportSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('verify'),
    verifyId: z.string().regex(BACKUP_ID_PATTERN),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The backup's catalog name. */
    database: catalogName,
    status: z.enum(['passed', 'failed']),
    error: z.string().optional(),
    server: z.object({ version: z.string(), major: z.number().int() }).strict().optional(),
    /** Seconds from the start of the download to a checked, analyzed database: the time to restore. */
    restoreSeconds: z.number().nonnegative().optional(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    timings: z.record(z.string(), z.number()),
    checks: RestoreReportSchema.shape.checks,
  })
  .strict();
export type VerifyReport = z.infer<typeof VerifyReportSchema>;

/** Step Functions' limit on an execution's input (and every state's), in bytes of JSON. */
export const MAX_EXECUTION_INPUT_BYTES = 256 * 1024;

/**
 * Parses a workflow's execution input in its first state. Larger input than Step Functions
 * accepts is refused before validation (so locally, where nothing else limits it, the same input
 * fails as on AWS, and a huge payload is never walked); then as `parsePayload`.
 */
export function parseExecutionInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  let bytes: number;
  try {
    bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  } catch {
    throw new PgferryError('InvalidInput', `invalid ${what}: not JSON`);
  }
  if (bytes > MAX_EXECUTION_INPUT_BYTES) {
    throw new PgferryError(
      'InvalidInput',
      `invalid ${what}: ${bytes} bytes of JSON, more than the ${MAX_EXECUTION_INPUT_BYTES} Step Functions accepts`,
    );
  }
  return parsePayload(schema, value, what);
}

/**
 * Cutover actions of a migration on AWS, run by Step Functions' own integrations: point an
 * application's Secrets Manager secret at the target (its `host`, `port` and `dbname` fields are
 * replaced, the rest kept), and scale ECS services to zero before the freeze and back after.
 */
export const CutoverSchema = z
  .object({
    /** The secret whose connection fields are pointed at the target after verification. */
    secretArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/)
      .optional(),
    /** Services scaled to 0 before the freeze, and to `desiredCount` after the cutover. */
    ecsServices: z
      .array(
        z
          .object({
            cluster: z.string().min(1).max(2048),
            service: z.string().min(1).max(2048),
            desiredCount: z.number().int().min(0).max(10_000),
          })
          .strict(),
      )
      .max(20)
      .optional(),
    /**
     * Locally only: a shell command run after verification, before the source is unfrozen, with
     * `PGFERRY_TARGET_URL` (no password) in its environment.
     */
    command: z.string().min(1).max(4096).optional(),
  })
  .strict();
export type Cutover = z.infer<typeof CutoverSchema>;

/** Input of the migrate state machine: what `pgferry migrate` starts it with. */
export const MigrateRequestSchema = z
  .object({
    /**
     * The catalog name of the archived backup (one database only). On AWS it is the source's
     * configured id; locally, by default, the source database's name.
     */
    name: catalogName.optional(),
    source: ConnectionSchema,
    /** The target server and (for one database) the database to create there. */
    target: ConnectionSchema,
    store: StoreUrlSchema,
    /** Every non-template database of the source server, under the same names, plus roles. */
    allDatabases: z.boolean().default(false),
    freezeSource: z.boolean().default(false),
    schemaTest: z.boolean().default(true),
    /** Replace a target database that exists and is not empty (it is dropped and created again). */
    force: z.boolean().default(false),
    /** pg_restore jobs for the post-data phase (indexes, constraints); default: the task's vCPUs. */
    jobs: z.number().int().min(1).max(64).optional(),
    compression: CompressionSchema.default({ codec: 'zstd', level: 1 }),
    withRolePasswords: z.boolean().default(false),
    toastCompression: ToastCompressionSchema.default('lz4'),
    cutover: CutoverSchema.optional(),
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
  })
  .strict();
export type MigrateRequest = z.infer<typeof MigrateRequestSchema>;
export type MigrateRequestInput = z.input<typeof MigrateRequestSchema>;

/** One database of a migration: where it comes from, where it goes, and the backup it leaves. */
export const MigrateDatabasePlanSchema = z
  .object({
    source: ConnectionSchema,
    target: ConnectionSchema,
    /** The archived backup: a normal backup plan, recorded by the backup workflow's own record step. */
    backup: BackupPlanSchema,
    sizeBytes: z.number().int().nonnegative(),
    encoding: z.string(),
    locale: DatabaseLocaleSchema,
    /** The target database exists (empty, or replaced with `force`). */
    targetExists: z.boolean(),
    /** `default_transaction_read_only` set on the source database before the freeze, if any. */
    readOnlySetting: z.string().nullable(),
  })
  .strict();
export type MigrateDatabasePlan = z.infer<typeof MigrateDatabasePlanSchema>;

export const MigrateEstimateSchema = z
  .object({
    bytes: z.number().int().nonnegative(),
    bytesPerSecond: z.number().positive(),
    seconds: z.number().nonnegative(),
    /** `measured`: from the newest earlier migration's report in the store; else the default. */
    basis: z.enum(['measured', 'default']),
  })
  .strict();
export type MigrateEstimate = z.infer<typeof MigrateEstimateSchema>;

/** Migrate preflight's output. */
export const MigratePlanSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    migrateId: z.string().regex(BACKUP_ID_PATTERN),
    request: MigrateRequestSchema,
    sourceServer: ServerInfoSchema,
    targetServer: ServerInfoSchema,
    databases: z.array(MigrateDatabasePlanSchema).min(1),
    jobs: z.number().int().min(1),
    /** What the load compresses TOASTed values with: the request's choice, as the target allows. */
    toastCompression: ToastCompressionSchema,
    estimate: MigrateEstimateSchema,
    /** The `host`/`port`/`dbname` a cutover secret gets (AWS), absent without one. */
    cutoverSecretFields: z
      .object({ host: z.string(), port: z.number().int(), dbname: z.string() })
      .strict()
      .optional(),
    taskSize: TaskSizeSchema,
    startedAt: z.iso.datetime(),
  })
  .strict();
export type MigratePlan = z.infer<typeof MigratePlanSchema>;

export const WritingSessionSchema = z
  .object({
    pid: z.number().int(),
    user: z.string().nullable(),
    application: z.string().nullable(),
    transactionStart: z.string().nullable(),
  })
  .strict();

/** What the Freeze step did: when, and which sessions were still writing. */
export const FreezeResultSchema = z
  .object({
    frozenAt: z.iso.datetime(),
    databases: z.array(
      z.object({ database: z.string(), writingSessions: z.array(WritingSessionSchema) }).strict(),
    ),
  })
  .strict();
export type FreezeResult = z.infer<typeof FreezeResultSchema>;

/** What the schema test found (stored beside the first database's backup). */
export const SchemaTestResultSchema = z
  .object({
    status: z.enum(['passed', 'failed']),
    seconds: z.number().nonnegative(),
    databases: z.array(
      z.object({ database: z.string(), scratchDatabase: z.string(), dropped: z.boolean() }).strict(),
    ),
    /** Roles created on the target first (the schema needs them). */
    roles: z
      .object({
        created: z.array(z.string()),
        skippedExisting: z.array(z.string()),
        createdWithoutPassword: CreatedWithoutPasswordSchema,
      })
      .strict()
      .optional(),
    error: z.string().optional(),
  })
  .strict();
export type SchemaTestResult = z.infer<typeof SchemaTestResultSchema>;

const ObjectCountSchema = z
  .object({ kind: z.string(), source: z.number().int(), target: z.number().int() })
  .strict();
const SequenceCheckSchema = z
  .object({
    schema: z.string(),
    name: z.string(),
    source: z.string(),
    target: z.string(),
  })
  .strict();

/** The migrate task's account of one database (stored beside its backup as `migrate-result.json`). */
export const MigrateDatabaseResultSchema = z
  .object({
    database: z.string(),
    targetDatabase: z.string(),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    sourceBytes: z.number().int().nonnegative(),
    dumpedBytes: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    timings: z.record(z.string(), z.number()),
    roles: z
      .object({
        created: z.array(z.string()),
        skippedExisting: z.array(z.string()),
        createdWithoutPassword: CreatedWithoutPasswordSchema,
      })
      .strict(),
    checks: z
      .object({
        rowCounts: z.array(TableCheckSchema),
        sequences: z.array(SequenceCheckSchema),
        objectCounts: z.array(ObjectCountSchema),
        analyzed: z.boolean(),
      })
      .strict(),
  })
  .strict();
export type MigrateDatabaseResult = z.infer<typeof MigrateDatabaseResultSchema>;

/** The optional steps of a migration: what the migrate workflow's Choice and Map states read. */
export const MigrateStepsSchema = z
  .object({
    schemaTest: z.boolean(),
    freezeSource: z.boolean(),
    /** A cutover secret to point at the target (AWS). */
    updateSecret: z.boolean(),
    /** A local cutover command to run. */
    cutoverCommand: z.boolean(),
    /** The services to scale to 0 and back (AWS). */
    ecsServices: CutoverSchema.shape.ecsServices,
  })
  .strict();
export type MigrateSteps = z.infer<typeof MigrateStepsSchema>;

/**
 * The migrate workflow's state as it moves through the states: ids, the job, the task's size, the
 * steps to take, and what the steps so far returned.
 */
export const MigrateStateSchema = z
  .object({
    job: JobRefSchema,
    migrateId: z.string().regex(BACKUP_ID_PATTERN),
    taskSize: TaskSizeSchema,
    steps: MigrateStepsSchema,
    freeze: FreezeResultSchema.optional(),
    record: z
      .object({ backupIds: z.array(z.string()), recordedAt: z.iso.datetime() })
      .strict()
      .optional(),
    cutoverSecret: z.unknown().optional(),
    error: CaughtErrorSchema.optional(),
  })
  .strict();
export type MigrateState = z.infer<typeof MigrateStateSchema>;

/**
 * The migrate report: printed, and stored beside each database's backup as
 * `migrate-report-<migrateId>.json`.
 */
export const MigrateReportSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('migrate'),
    migrateId: z.string().regex(BACKUP_ID_PATTERN),
    status: z.literal('passed'),
    source: z.object({ host: z.string(), port: z.number().int(), serverVersion: z.string() }).strict(),
    target: z.object({ host: z.string(), port: z.number().int(), serverVersion: z.string() }).strict(),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    estimate: MigrateEstimateSchema,
    toastCompression: ToastCompressionSchema.optional(),
    /** Seconds per phase: preflight, schemaTest, freeze, migrate (the task), record, cutover, unfreeze, total. */
    timings: z.record(z.string(), z.number()),
    /** Freeze to unfreeze: how long the source refused writes (absent without `freezeSource`). */
    writeDowntimeSeconds: z.number().nonnegative().optional(),
    freeze: FreezeResultSchema.optional(),
    schemaTest: SchemaTestResultSchema.optional(),
    sizes: z
      .object({
        sourceBytes: z.number().int().nonnegative(),
        dumpedBytes: z.number().int().nonnegative(),
        storedBytes: z.number().int().nonnegative(),
      })
      .strict(),
    databases: z.array(MigrateDatabaseResultSchema),
    /** The source server's roles created on the target (by the schema test or the migration); existing ones are left alone. */
    roles: z
      .object({
        created: z.array(z.string()),
        skippedExisting: z.array(z.string()),
        createdWithoutPassword: CreatedWithoutPasswordSchema,
      })
      .strict(),
    cutover: z
      .object({ secretUpdated: z.boolean(), servicesScaled: z.array(z.string()), command: z.boolean() })
      .strict(),
  })
  .strict();
export type MigrateReport = z.infer<typeof MigrateReportSchema>;

/**
 * The executions' outputs: what was done in brief — ids, status, sizes, counts — and where the
 * full document (manifest or report) is in the store. A manifest or report lists every table and
 * would exceed Step Functions' 256 KiB for a database of a few thousand tables; `pgferry … --json`
 * prints the full document, read from the store.
 */
const documentLocation = {
  store: StoreUrlSchema,
  /** Relative to `store`. */
  key: z.string().min(1).max(1024),
};

/** The backup workflow's output; the manifest is at `key`. */
export const BackupOutcomeSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('backup'),
    status: z.literal('complete'),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The catalog name. */
    database: catalogName,
    ...documentLocation,
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    uncompressedBytes: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    objects: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
  })
  .strict();
export type BackupOutcome = z.infer<typeof BackupOutcomeSchema>;

/** The restore workflow's output; the restore report is at `key`. */
export const RestoreOutcomeSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('restore'),
    status: z.literal('passed'),
    restoreId: z.string().regex(BACKUP_ID_PATTERN),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The catalog name. */
    database: catalogName,
    ...documentLocation,
    target: RestoreReportSchema.shape.target,
    safetyBackupId: z.string().regex(BACKUP_ID_PATTERN).optional(),
    totalSeconds: z.number().nonnegative(),
    checksums: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
    /** The plan's warnings (a downgrade tried with --allow-downgrade). */
    warnings: z.array(z.string()).optional(),
  })
  .strict();
export type RestoreOutcome = z.infer<typeof RestoreOutcomeSchema>;

/** The verify workflow's output; the verification report is at `key`. */
export const VerifyOutcomeSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('verify'),
    status: z.literal('passed'),
    verifyId: z.string().regex(BACKUP_ID_PATTERN),
    backupId: z.string().regex(BACKUP_ID_PATTERN),
    /** The catalog name. */
    database: catalogName,
    ...documentLocation,
    server: VerifyReportSchema.shape.server,
    restoreSeconds: z.number().nonnegative().optional(),
    checksums: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
  })
  .strict();
export type VerifyOutcome = z.infer<typeof VerifyOutcomeSchema>;

/** The migrate workflow's output; the migrate report is at `key` (beside the first database's backup). */
export const MigrateOutcomeSchema = z
  .object({
    schemaVersion: z.literal(SCHEMA_VERSION),
    kind: z.literal('migrate'),
    status: z.literal('passed'),
    migrateId: z.string().regex(BACKUP_ID_PATTERN),
    ...documentLocation,
    source: MigrateReportSchema.shape.source,
    target: MigrateReportSchema.shape.target,
    totalSeconds: z.number().nonnegative(),
    writeDowntimeSeconds: z.number().nonnegative().optional(),
    databases: z.array(
      z
        .object({
          database: z.string(),
          targetDatabase: z.string(),
          backupId: z.string().regex(BACKUP_ID_PATTERN),
        })
        .strict(),
    ),
    tables: z.number().int().nonnegative(),
    /** Login roles created on the target without a password (see the report's `roles`). */
    rolesCreatedWithoutPassword: z.array(z.string()).optional(),
  })
  .strict();
export type MigrateOutcome = z.infer<typeof MigrateOutcomeSchema>;
