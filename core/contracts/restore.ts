/**
 * The restore workflow's payloads — its request, plan, state and output — and the report it
 * stores beside the backup.
 */
import { z } from 'zod';
import { BackupManifestSchema, BackupRequestSchema, BackupScopeSchema } from './backup';
import { DatabaseLocaleSchema } from './database';
import {
  BackupRefSchema,
  CatalogNameSchema,
  CaughtErrorSchema,
  ConnectionSchema,
  documentLocation,
  JobRefSchema,
  RequestedJobsSchema,
  RolesCreatedSchema,
  RunIdSchema,
  SchemaVersionSchema,
  ServerInfoSchema,
  StoreUrlSchema,
  TableCheckSchema,
  TaskSizeSchema,
  TimestampSchema,
  ToastCompressionSchema,
} from './shared';

/** Input of the restore state machine: what `pgferry restore` and the console start it with. */
export const RestoreRequestSchema = z
  .object({
    store: StoreUrlSchema,
    backup: BackupRefSchema,
    /** The backup's catalog name: needed with `latest`, optional with an id. */
    name: CatalogNameSchema.optional(),
    /** `name`'s earlier spelling, still accepted (a catalog name, by default a database's name). */
    database: CatalogNameSchema.optional(),
    /** The server and database to restore into (the database is created in `create` mode). */
    target: ConnectionSchema,
    mode: z.enum(['create', 'clean']).default('create'),
    /** pg_restore jobs; default: the task's vCPUs. */
    jobs: RequestedJobsSchema.optional(),
    withGlobals: z.boolean().default(false),
    noOwner: z.boolean().default(false),
    noAcl: z.boolean().default(false),
    role: z.string().min(1).max(63).optional(),
    schemas: z.array(z.string().min(1).max(63)).max(100).default([]),
    /**
     * Tables, views, sequences…: each a name (in every schema, as pg_restore's `-t`) or
     * `schema.name`, double-quoted where a name has a dot (core/postgres/restore-selection.ts): two
     * names of 63 characters, each quoted with its quotes doubled, and the dot.
     */
    tables: z.array(z.string().min(1).max(257)).max(100).default([]),
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
    schemaVersion: SchemaVersionSchema,
    restoreId: RunIdSchema,
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
    startedAt: TimestampSchema,
  })
  .strict();
export type RestorePlan = z.infer<typeof RestorePlanSchema>;

/**
 * What RestoreCleanup did after a failed restore task (lambdas/restore/cleanup), for the failure's
 * message: each note a clause of it ("the restoring database … was dropped"); none when the
 * runner had left nothing (it cleans up itself unless killed hard). `left`: what it found and
 * could not remove, each a clause naming it and what to do ("the database … is left in place (…):
 * remove it with DROP DATABASE …"). After a stopped restore both go into the run's event
 * (`cleanup`: api/events.ts) and the announcer fails on `left` (lib/run-events.ts). Absent in the
 * state of an execution whose cleanup ran before it existed.
 */
export const RestoreCleanupSchema = z
  .object({ notes: z.array(z.string()), left: z.array(z.string()).default([]) })
  .strict();
export type RestoreCleanup = z.infer<typeof RestoreCleanupSchema>;

/**
 * The restore workflow's state: ids, the job, the task's size, and with `mode: clean` the input of
 * the nested backup of the target (`safetyBackupRequest`); `safetyBackup` is that backup's id once
 * it was taken. After a failed task: its `error`, what RestoreCleanup did (`cleanup`), or the
 * cleanup's own error (`cleanupError`).
 */
export const RestoreStateSchema = z
  .object({
    job: JobRefSchema,
    restoreId: RunIdSchema,
    /** The backup restored, and its catalog name (where its report goes). */
    backupId: RunIdSchema,
    database: CatalogNameSchema,
    taskSize: TaskSizeSchema,
    safetyBackupRequest: BackupRequestSchema.optional(),
    safetyBackup: z.object({ backupId: RunIdSchema }).strict().optional(),
    error: CaughtErrorSchema.optional(),
    cleanup: RestoreCleanupSchema.optional(),
    cleanupError: CaughtErrorSchema.optional(),
  })
  .strict();
export type RestoreState = z.infer<typeof RestoreStateSchema>;

/** What a restore (or a verification) checked: the stored objects' checksums, the rows, and more. */
const RestoreChecksSchema = z
  .object({
    checksums: z.array(z.object({ key: z.string(), sha256: z.string(), verified: z.boolean() }).strict()),
    rowCounts: z.array(TableCheckSchema),
    analyzed: z.boolean(),
    globals: RolesCreatedSchema.optional(),
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
  .strict();

/** The restore report: stored next to the backup (`restore-report-<restoreId>.json`) and printed. */
export const RestoreReportSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('restore'),
    restoreId: RunIdSchema,
    backupId: RunIdSchema,
    /** The backup's catalog name. */
    database: CatalogNameSchema,
    target: z
      .object({ host: z.string(), port: z.number().int(), database: z.string(), serverVersion: z.string() })
      .strict(),
    status: z.enum(['passed', 'failed']),
    error: z.string().optional(),
    mode: z.enum(['create', 'clean']),
    /** The backup taken of the target before it was replaced (`mode: clean`). */
    safetyBackupId: RunIdSchema.optional(),
    jobs: z.number().int(),
    toastCompression: ToastCompressionSchema.optional(),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    timings: z.record(z.string(), z.number()),
    checks: RestoreChecksSchema,
    /** The plan's warnings. */
    warnings: z.array(z.string()).optional(),
    /** The restored backup's scope when it is partial: what was not in it was not restored. */
    backupScope: BackupScopeSchema.optional(),
  })
  .strict();
export type RestoreReport = z.infer<typeof RestoreReportSchema>;

/** The restore workflow's output (what was done in brief); the restore report is at `key`. */
export const RestoreOutcomeSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('restore'),
    status: z.literal('passed'),
    restoreId: RunIdSchema,
    backupId: RunIdSchema,
    /** The catalog name. */
    database: CatalogNameSchema,
    ...documentLocation,
    target: RestoreReportSchema.shape.target,
    safetyBackupId: RunIdSchema.optional(),
    totalSeconds: z.number().nonnegative(),
    checksums: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
    /** The plan's warnings (a downgrade tried with --allow-downgrade). */
    warnings: z.array(z.string()).optional(),
    /** The restored backup's scope when it is partial (as in the report). */
    backupScope: BackupScopeSchema.optional(),
  })
  .strict();
export type RestoreOutcome = z.infer<typeof RestoreOutcomeSchema>;
