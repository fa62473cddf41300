/**
 * The verify workflow's payloads — a restore drill of one backup into a throwaway server — and
 * the report it stores beside the backup.
 */
import { z } from 'zod';
import { BackupManifestSchema } from './backup';
import { RestoreReportSchema } from './restore';
import {
  BackupRefSchema,
  CatalogNameSchema,
  CaughtErrorSchema,
  documentLocation,
  JobRefSchema,
  RequestedJobsSchema,
  RunIdSchema,
  SchemaVersionSchema,
  StoreUrlSchema,
  TaskSizeSchema,
  TimestampSchema,
} from './shared';

/** Input of the verify state machine: a restore drill of one backup into a throwaway server. */
export const VerifyRequestSchema = z
  .object({
    store: StoreUrlSchema,
    backup: BackupRefSchema,
    /** The backup's catalog name: needed with `latest`, optional with an id. */
    name: CatalogNameSchema.optional(),
    /** `name`'s earlier spelling, still accepted. */
    database: CatalogNameSchema.optional(),
    jobs: RequestedJobsSchema.optional(),
  })
  .strict();
export type VerifyRequest = z.infer<typeof VerifyRequestSchema>;

export const VerifyPlanSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    verifyId: RunIdSchema,
    request: VerifyRequestSchema,
    manifest: BackupManifestSchema,
    jobs: z.number().int().min(1),
    taskSize: TaskSizeSchema,
    startedAt: TimestampSchema,
  })
  .strict();
export type VerifyPlan = z.infer<typeof VerifyPlanSchema>;

/** The verify workflow's state: ids, the job and the task's size. */
export const VerifyStateSchema = z
  .object({
    job: JobRefSchema,
    verifyId: RunIdSchema,
    backupId: RunIdSchema,
    /** The backup's catalog name. */
    database: CatalogNameSchema,
    taskSize: TaskSizeSchema,
    error: CaughtErrorSchema.optional(),
  })
  .strict();
export type VerifyState = z.infer<typeof VerifyStateSchema>;

/** The verification report: stored beside the backup (`verify-report-<verifyId>.json`). */
export const VerifyReportSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('verify'),
    verifyId: RunIdSchema,
    backupId: RunIdSchema,
    /** The backup's catalog name. */
    database: CatalogNameSchema,
    status: z.enum(['passed', 'failed']),
    error: z.string().optional(),
    server: z.object({ version: z.string(), major: z.number().int() }).strict().optional(),
    /** Seconds from the start of the download to a checked, analyzed database: the time to restore. */
    restoreSeconds: z.number().nonnegative().optional(),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    timings: z.record(z.string(), z.number()),
    checks: RestoreReportSchema.shape.checks,
  })
  .strict();
export type VerifyReport = z.infer<typeof VerifyReportSchema>;

/** The verify workflow's output (what was done in brief); the verification report is at `key`. */
export const VerifyOutcomeSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('verify'),
    status: z.literal('passed'),
    verifyId: RunIdSchema,
    backupId: RunIdSchema,
    /** The catalog name. */
    database: CatalogNameSchema,
    ...documentLocation,
    server: VerifyReportSchema.shape.server,
    restoreSeconds: z.number().nonnegative().optional(),
    checksums: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
  })
  .strict();
export type VerifyOutcome = z.infer<typeof VerifyOutcomeSchema>;
