/**
 * The migrate workflow's payloads — its request, plan, the steps' results, state and output — and
 * the report it stores beside each database's backup.
 */
import { z } from 'zod';
import { BackupPlanSchema } from './backup';
import { DatabaseLocaleSchema } from './database';
import {
  CatalogNameSchema,
  CaughtErrorSchema,
  CompressionSchema,
  ConnectionSchema,
  documentLocation,
  JobRefSchema,
  LockWaitTimeoutSchema,
  RequestedJobsSchema,
  RolesCreatedSchema,
  RunIdSchema,
  SchemaVersionSchema,
  SecretArnSchema,
  ServerInfoSchema,
  StoreUrlSchema,
  TableCheckSchema,
  TaskSizeSchema,
  TimestampSchema,
  ToastCompressionSchema,
} from './shared';

/**
 * Cutover actions of a migration on AWS, run by Step Functions' own integrations: point an
 * application's Secrets Manager secret at the target (its `host`, `port` and `dbname` fields are
 * replaced, the rest kept), and scale ECS services to zero before the freeze and back after.
 */
export const CutoverSchema = z
  .object({
    /** The secret whose connection fields are pointed at the target after verification. */
    secretArn: SecretArnSchema.optional(),
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
    name: CatalogNameSchema.optional(),
    source: ConnectionSchema,
    /** The target server and (for one database) the database to create there. */
    target: ConnectionSchema,
    store: StoreUrlSchema,
    /** Every non-template database of the source server, under the same names, plus roles. */
    allDatabases: z.boolean().default(false),
    freezeSource: z.boolean().default(false),
    /**
     * Restore the schema alone into a scratch database on the target before anything changes:
     * `true` always, `false` never; absent, when it protects something (the migrate plan's
     * `schemaTest` says whether and why). A plain migration into a new database needs none: its
     * first step restores the schema into the database it creates, and a failure drops it.
     */
    schemaTest: z.boolean().optional(),
    /** Replace a target database that exists and is not empty (it is dropped and created again). */
    force: z.boolean().default(false),
    /** pg_restore jobs for the post-data phase (indexes, constraints); default: the task's vCPUs. */
    jobs: RequestedJobsSchema.optional(),
    /**
     * The archived backup's compression: none unless asked for. The archive is kept a short while
     * (a migration backup's own retention) and a migration is CPU-bound on small tasks: zstd
     * level 1 was the largest client-side cost of a migration (~2.3 CPU s per 541 MB of dump,
     * docs/benchmark.md), where the dump stored as pg_dump wrote it costs its SHA-256 and the
     * store's writes.
     */
    compression: CompressionSchema.default({ codec: 'none' }),
    withRolePasswords: z.boolean().default(false),
    toastCompression: ToastCompressionSchema.default('lz4'),
    cutover: CutoverSchema.optional(),
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
    /**
     * Online: the data copied while the source takes writes, the changes since applied by logical
     * replication, and the source frozen only for the cutover (one database).
     */
    online: z.boolean().default(false),
    /** Online: tables without a key get REPLICA IDENTITY FULL for the migration's duration. */
    replicaIdentityFull: z.boolean().default(false),
    /** Online: unfreeze the source after a successful cutover (by default it stays read-only). */
    unfreezeSourceAfter: z.boolean().default(false),
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

/**
 * Whether the schema test runs, and why: asked for (`schemaTest: true`/`false`), or, when the
 * request leaves it out, because something changes before the migration's own schema step (or a
 * failure there would cost more) — the freeze, an online migration's replication, an existing
 * target database, a second database, services scaled down.
 */
export const SchemaTestDecisionSchema = z.object({ run: z.boolean(), reason: z.string() }).strict();
export type SchemaTestDecision = z.infer<typeof SchemaTestDecisionSchema>;

/** Migrate preflight's output. */
export const MigratePlanSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    migrateId: RunIdSchema,
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
    startedAt: TimestampSchema,
    /** Absent in the plans of versions that ran it as the request said (by default, always). */
    schemaTest: SchemaTestDecisionSchema.optional(),
  })
  .strict();
export type MigratePlan = z.infer<typeof MigratePlanSchema>;

/** The plan's schema-test decision; a plan made before it was recorded ran the test unless told not to. */
export function schemaTestDecision(plan: MigratePlan): SchemaTestDecision {
  return (
    plan.schemaTest ?? {
      run: plan.request.schemaTest !== false,
      reason: plan.request.schemaTest === false ? 'not asked for (schemaTest: false)' : 'asked for',
    }
  );
}

export const WritingSessionSchema = z
  .object({
    pid: z.number().int(),
    user: z.string().nullable(),
    application: z.string().nullable(),
    transactionStart: z.string().nullable(),
  })
  .strict();

/**
 * What the Freeze step did: when; which sessions had a write transaction open at the freeze (it
 * was rolled back when they were ended); how many sessions connected before it were ended.
 */
export const FreezeResultSchema = z
  .object({
    frozenAt: TimestampSchema,
    databases: z.array(
      z
        .object({
          database: z.string(),
          writingSessions: z.array(WritingSessionSchema),
          /** Absent in the reports of versions that left those sessions connected. */
          sessionsEnded: z.number().int().nonnegative().optional(),
        })
        .strict(),
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
    roles: RolesCreatedSchema.optional(),
    error: z.string().optional(),
  })
  .strict();
export type SchemaTestResult = z.infer<typeof SchemaTestResultSchema>;

/**
 * The schema test in the migrate report: what it found and why it ran, or why it did not
 * (`skipped`).
 */
export const ReportedSchemaTestSchema = z.union([
  SchemaTestResultSchema.extend({ reason: z.string().optional() }).strict(),
  z.object({ status: z.literal('skipped'), reason: z.string() }).strict(),
]);
export type ReportedSchemaTest = z.infer<typeof ReportedSchemaTestSchema>;

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

/** An online migration's replication and cutover, as the migrate task measured them. */
export const OnlineCutoverSchema = z
  .object({
    /** The publication, slot and subscription (all dropped). */
    replication: z.string(),
    /** Tables given REPLICA IDENTITY FULL for the migration (`replicaIdentityFull`), reset after. */
    replicaIdentityFull: z.array(z.string()),
    /** How far behind the target was when the source was frozen. */
    lagAtFreeze: z.object({ bytes: z.number().nonnegative(), seconds: z.number().nonnegative() }).strict(),
    /** The source's WAL position after the freeze, which the target applied up to. */
    cutoverLsn: z.string(),
    frozenAt: TimestampSchema,
    /** Client sessions on the source ended by the freeze (they had connected before it). */
    sessionsEnded: z.number().int().nonnegative(),
    /** When the task's part of the cutover (applied, sequences, verified, replication dropped) ended. */
    cutoverAt: TimestampSchema,
    /**
     * Seconds from the freeze to the end of each of the cutover's steps: `applied` (the target has
     * applied up to `cutoverLsn`), `verified` (schema compared, sequences set, checks passed),
     * `replicationDropped`.
     */
    steps: z.record(z.string(), z.number()),
  })
  .strict();
export type OnlineCutover = z.infer<typeof OnlineCutoverSchema>;

/** The migrate task's account of one database (stored beside its backup as `migrate-result.json`). */
export const MigrateDatabaseResultSchema = z
  .object({
    database: z.string(),
    targetDatabase: z.string(),
    backupId: RunIdSchema,
    sourceBytes: z.number().int().nonnegative(),
    dumpedBytes: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    timings: z.record(z.string(), z.number()),
    roles: RolesCreatedSchema,
    checks: z
      .object({
        rowCounts: z.array(TableCheckSchema),
        sequences: z.array(SequenceCheckSchema),
        objectCounts: z.array(ObjectCountSchema),
        analyzed: z.boolean(),
        /**
         * Where `rowCounts`' restored rows come from: `copy`, the command tags of the COPYs that
         * loaded each table (the migration's own COPY sessions); `target`, a count of each table
         * on the target. Absent in older reports (`target`).
         */
        restoredRowsFrom: z.enum(['copy', 'target']).optional(),
      })
      .strict(),
    online: OnlineCutoverSchema.optional(),
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
    migrateId: RunIdSchema,
    taskSize: TaskSizeSchema,
    steps: MigrateStepsSchema,
    freeze: FreezeResultSchema.optional(),
    record: z
      .object({ backupIds: z.array(z.string()), recordedAt: TimestampSchema })
      .strict()
      .optional(),
    cutoverSecret: z.unknown().optional(),
    error: CaughtErrorSchema.optional(),
  })
  .strict();
export type MigrateState = z.infer<typeof MigrateStateSchema>;

/** A server in the migrate report: its address and version. */
const ReportedServerSchema = z
  .object({ host: z.string(), port: z.number().int(), serverVersion: z.string() })
  .strict();

/**
 * The migrate report: printed, and stored beside each database's backup as
 * `migrate-report-<migrateId>.json`.
 */
export const MigrateReportSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('migrate'),
    migrateId: RunIdSchema,
    status: z.literal('passed'),
    source: ReportedServerSchema,
    target: ReportedServerSchema,
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    estimate: MigrateEstimateSchema,
    toastCompression: ToastCompressionSchema.optional(),
    /** Seconds per phase: preflight, schemaTest, freeze, migrate (the task), record, cutover, unfreeze, total. */
    timings: z.record(z.string(), z.number()),
    /**
     * How long the source refused writes: freeze to unfreeze with `freezeSource`; online, freeze
     * to the cutover's end (the source stays read-only after it, but the target takes the writes).
     */
    writeDowntimeSeconds: z.number().nonnegative().optional(),
    /** Online: the source was left read-only (`pgferry unfreeze` undoes it). */
    sourceLeftFrozen: z.boolean().optional(),
    freeze: FreezeResultSchema.optional(),
    /** Absent in the reports of versions that said nothing when it did not run. */
    schemaTest: ReportedSchemaTestSchema.optional(),
    sizes: z
      .object({
        sourceBytes: z.number().int().nonnegative(),
        dumpedBytes: z.number().int().nonnegative(),
        storedBytes: z.number().int().nonnegative(),
      })
      .strict(),
    databases: z.array(MigrateDatabaseResultSchema),
    /** The source server's roles created on the target (by the schema test or the migration); existing ones are left alone. */
    roles: RolesCreatedSchema,
    cutover: z
      .object({ secretUpdated: z.boolean(), servicesScaled: z.array(z.string()), command: z.boolean() })
      .strict(),
  })
  .strict();
export type MigrateReport = z.infer<typeof MigrateReportSchema>;

/** The migrate workflow's output (what was done in brief); the migrate report is at `key` (beside the first database's backup). */
export const MigrateOutcomeSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('migrate'),
    status: z.literal('passed'),
    migrateId: RunIdSchema,
    ...documentLocation,
    source: ReportedServerSchema,
    target: ReportedServerSchema,
    totalSeconds: z.number().nonnegative(),
    writeDowntimeSeconds: z.number().nonnegative().optional(),
    sourceLeftFrozen: z.boolean().optional(),
    databases: z.array(
      z
        .object({
          database: z.string(),
          targetDatabase: z.string(),
          backupId: RunIdSchema,
        })
        .strict(),
    ),
    tables: z.number().int().nonnegative(),
    /** Login roles created on the target without a password (see the report's `roles`). */
    rolesCreatedWithoutPassword: z.array(z.string()).optional(),
    /** Whether the schema test ran (`passed`) or not (`skipped`), and why. */
    schemaTest: z
      .object({ status: z.enum(['passed', 'skipped']), reason: z.string() })
      .strict()
      .optional(),
  })
  .strict();
export type MigrateOutcome = z.infer<typeof MigrateOutcomeSchema>;
