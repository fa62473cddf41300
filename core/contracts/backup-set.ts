/**
 * A backup set: the backup of a whole server (`pgferry backup --all-databases`) — every member
 * database a normal backup of its own (listed, restorable, origin `set`), and this manifest,
 * written last, naming them, the roles (globals) to restore first, and any database that failed.
 */
import { z } from 'zod';
import { BackupOriginSchema, BackupOutcomeSchema, BackupRequestSchema } from './backup';
import {
  CatalogNameSchema,
  ConnectionSchema,
  DatabaseNameSchema,
  LockWaitTimeoutSchema,
  RequestedCompressionSchema,
  RunIdSchema,
  SchemaVersionSchema,
  ServerInfoSchema,
  StoreUrlSchema,
  TimestampSchema,
} from './shared';

/** Which databases of the server a set takes: `include` glob patterns (none: all), `exclude` names. */
export const SetSelectionSchema = z
  .object({
    include: z.array(z.string().min(1).max(200)).max(100).default([]),
    exclude: z.array(DatabaseNameSchema).max(1000).default([]),
  })
  .strict();
export type SetSelection = z.infer<typeof SetSelectionSchema>;

/** A member: a complete backup, filed under `name`. */
export const SetMemberSchema = z
  .object({ database: DatabaseNameSchema, name: CatalogNameSchema, backupId: RunIdSchema })
  .strict();
export type SetMember = z.infer<typeof SetMemberSchema>;

/** A database the set meant to back up and could not: no backup of it is listed for this set. */
export const SetFailureSchema = z
  .object({
    database: DatabaseNameSchema,
    error: z.object({ name: z.string(), message: z.string() }).strict(),
  })
  .strict();
export type SetFailure = z.infer<typeof SetFailureSchema>;

/**
 * `.sets/<setId>/manifest.json` (core/store-keys.ts's `setManifestKey`). `status` is `failed` when
 * any database failed (or no member holds the roles): the complete members stay usable one by one.
 */
export const BackupSetManifestSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('backup-set'),
    id: RunIdSchema,
    status: z.enum(['complete', 'failed']),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    source: z.object({ host: z.string(), port: z.number().int(), user: z.string() }).strict(),
    server: ServerInfoSchema,
    selection: SetSelectionSchema,
    /** How many members were backed up at once. */
    parallel: z.number().int().min(1),
    /** Complete backups, by database name. */
    members: z.array(SetMemberSchema),
    failed: z.array(SetFailureSchema),
    /**
     * On AWS, the server entry's id: its members are filed under `<name>.<database>`, and the
     * next set of the server compares its databases with this one's (`disappeared`).
     */
    name: CatalogNameSchema.optional(),
    /**
     * Databases the server's previous set had (as members or failures) that the server no
     * longer has: dropped or renamed since, or no longer connectable. Absent: none, or no
     * previous set to compare with.
     */
    disappeared: z.array(DatabaseNameSchema).optional(),
    /**
     * The server's roles: the globals object of one member (the last to finish, so the newest
     * roles), restored before any database. Absent when no member completed.
     */
    globals: z
      .object({
        name: CatalogNameSchema,
        backupId: RunIdSchema,
        key: z.string(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        rolePasswords: z.boolean(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type BackupSetManifest = z.infer<typeof BackupSetManifestSchema>;

/** The most databases one server backup takes: its Map's items and results stay under 256 KiB. */
export const MAX_SET_DATABASES = 400;

/**
 * Input of the server-backup state machine: what a server entry's schedule (and, locally,
 * `pgferry backup --all-databases`) starts it with. Every selected database of `source`'s server
 * is backed up through the backup workflow, `parallel` at once (the Map's MaxConcurrencyPath).
 */
export const ServerBackupRequestSchema = z
  .object({
    /**
     * The server entry's id: members are filed under `<name>.<database>`. On AWS it is required
     * (the configured id); locally absent, members are filed under their database's name.
     */
    name: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,39}$/, 'a server entry id: letters, digits and dashes')
      .optional(),
    /** The server; its database is only where the listing connects. */
    source: ConnectionSchema,
    store: StoreUrlSchema,
    selection: SetSelectionSchema.default({ include: [], exclude: [] }),
    /** How many databases are backed up at once (the Map's maximum concurrency). */
    parallel: z.number().int().min(1).max(40).default(4),
    compression: RequestedCompressionSchema,
    withRolePasswords: z.boolean().default(false),
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
    /** The members' origin is `set`; this is the set's own (`scheduled` from a schedule). */
    origin: BackupOriginSchema.optional(),
    /** A member whose newest complete backup is older than this counts as stale (a metric). */
    staleAfterHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 31)
      .default(26),
  })
  .strict();
export type ServerBackupRequest = z.infer<typeof ServerBackupRequestSchema>;
export type ServerBackupRequestInput = z.input<typeof ServerBackupRequestSchema>;

/** What the listing step hands on: the set being made, and one backup request per database. */
export const ServerSetStateSchema = z
  .object({
    set: z
      .object({
        setId: RunIdSchema,
        startedAt: TimestampSchema,
        request: ServerBackupRequestSchema,
        server: ServerInfoSchema,
        disappeared: z.array(DatabaseNameSchema),
      })
      .strict(),
    /** The Map's items: each a backup workflow's input. */
    members: z.array(BackupRequestSchema).max(MAX_SET_DATABASES),
    /** The Map's maximum concurrency (its MaxConcurrencyPath). */
    parallel: z.number().int().min(1),
  })
  .strict();
export type ServerSetState = z.infer<typeof ServerSetStateSchema>;

/**
 * One Map iteration's result: the nested backup execution's output, or the error it failed with
 * (`Error`/`Cause` as Step Functions' Catch gives them) and the database it was for.
 */
export const SetMemberResultSchema = z.union([
  z.object({ outcome: BackupOutcomeSchema }).strict(),
  z
    .object({
      database: DatabaseNameSchema,
      error: z.object({ Error: z.string().optional(), Cause: z.string().optional() }).passthrough(),
    })
    .strict(),
]);
export type SetMemberResult = z.infer<typeof SetMemberResultSchema>;

/** The record step's input: the listing's set, and the Map's results in place of its items. */
export const ServerRecordInputSchema = z
  .object({
    set: ServerSetStateSchema.shape.set,
    members: z.array(SetMemberResultSchema),
  })
  .passthrough();

/** The server-backup workflow's output: the set in brief, naming its manifest. */
export const ServerBackupOutcomeSchema = z
  .object({
    kind: z.literal('backup-set'),
    setId: RunIdSchema,
    status: z.enum(['complete', 'failed']),
    /** The set manifest's key in the store. */
    manifestKey: z.string(),
    members: z.number().int().nonnegative(),
    failed: z.array(DatabaseNameSchema),
    disappeared: z.array(DatabaseNameSchema),
    /** Why the set failed, in one line (the Fail state's cause). */
    cause: z.string().optional(),
  })
  .strict();
export type ServerBackupOutcome = z.infer<typeof ServerBackupOutcomeSchema>;
