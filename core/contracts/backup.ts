/**
 * The backup workflow's payloads — its request, plan, state, the runner's result and the
 * workflow's output — and the document it leaves in the store, the manifest.
 */
import { z } from 'zod';
import { assertDumpPattern, MAX_DUMP_PATTERNS } from '../postgres/dump-scope';
import { DatabasePropertiesSchema, RequirementsSchema } from './database';
import {
  CatalogNameSchema,
  CompressionSchema,
  ConnectionSchema,
  DatabaseNameSchema,
  documentLocation,
  JobRefSchema,
  LockWaitTimeoutSchema,
  RequestedCompressionSchema,
  RequestedJobsSchema,
  RunIdSchema,
  SchemaVersionSchema,
  ServerInfoSchema,
  StoreUrlSchema,
  TableRowCountSchema,
  TaskSizeSchema,
  TimestampSchema,
} from './shared';

/** One of pg_dump's schema or table patterns (core/postgres/dump-scope.ts), as `assertDumpPattern` allows. */
const DumpPatternSchema = z.string().superRefine((value, ctx) => {
  try {
    assertDumpPattern(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});
const DumpPatternsSchema = z.array(DumpPatternSchema).max(MAX_DUMP_PATTERNS).default([]);

/**
 * What a backup holds when it is not the whole database: pg_dump's `--schema`, `--exclude-schema`,
 * `--table`, `--exclude-table` and `--exclude-table-data` patterns (core/postgres/dump-scope.ts).
 * Recorded in the manifest, where its absence means the whole database.
 */
export const BackupScopeSchema = z
  .object({
    schemas: DumpPatternsSchema,
    excludeSchemas: DumpPatternsSchema,
    tables: DumpPatternsSchema,
    excludeTables: DumpPatternsSchema,
    excludeTableData: DumpPatternsSchema,
  })
  .strict();
export type BackupScope = z.infer<typeof BackupScopeSchema>;

/**
 * Where a backup came from: `scheduled` (an AWS schedule), `manual` (`pgferry backup`, or the
 * API), `set` (a member of a server backup, `backup --all-databases`), `safety` (a clean restore's
 * backup of its target, taken before anything is dropped) or `migration` (the archive a migration
 * keeps). Retention treats `safety` and `migration` by their own rule (core/retention.ts).
 */
export const BACKUP_ORIGINS = ['scheduled', 'manual', 'set', 'safety', 'migration'] as const;
export const BackupOriginSchema = z.enum(BACKUP_ORIGINS);
export type BackupOrigin = z.infer<typeof BackupOriginSchema>;

/**
 * A manifest's origin: its `origin`, or — written before origins were recorded — `manual`, which
 * retention treats exactly as it treated every backup then (scheduled and manual backups share
 * one rule).
 */
export function originOf(manifest: { readonly origin?: BackupOrigin }): BackupOrigin {
  return manifest.origin ?? 'manual';
}

/** Input of the backup state machine: what `pgferry backup` and the schedules start it with. */
export const BackupRequestSchema = z
  .object({
    /**
     * The catalog name to file the backup under. On AWS it is the source's configured id (given
     * or not); locally `--name`, by default the source database's name.
     */
    name: CatalogNameSchema.optional(),
    source: ConnectionSchema,
    store: StoreUrlSchema,
    compression: RequestedCompressionSchema,
    withRolePasswords: z.boolean().default(false),
    backupId: RunIdSchema.optional(),
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
    /** Back up only part of the database; absent (or every list empty): the whole database. */
    scope: BackupScopeSchema.optional(),
    /**
     * pg_dumps in parallel, in one snapshot, each with its own share of the tables' data
     * (core/strategy.ts `planDumpJobs`); absent: one per two of the task's cores, for a database
     * large enough (`chooseDumpStrategy`).
     */
    jobs: RequestedJobsSchema.optional(),
    /** Where the request comes from; absent: `manual` (the schedules pass `scheduled`). */
    origin: BackupOriginSchema.optional(),
    /** The server backup (backup set) this backup is a member of: the set's id. */
    setId: RunIdSchema.optional(),
  })
  .strict();
export type BackupRequest = z.infer<typeof BackupRequestSchema>;
export type BackupRequestInput = z.input<typeof BackupRequestSchema>;

export const DumpStrategySchema = z
  .object({
    /** pg_dump archive format; `custom` streams to the store with no local disk. */
    format: z.literal('custom'),
    /** The pg_dumps it may run (the plan), or ran (a manifest: the main archive and each side one's). */
    jobs: z.number().int().min(1),
    /**
     * Side pg_dumps carry at least this many bytes of table data (fewer jobs until each does);
     * absent: any table of 1 MiB or more moves.
     */
    minSideJobBytes: z.number().int().min(0).optional(),
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

/** Preflight's output: everything the dump runner and the record step need. */
export const BackupPlanSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    backupId: RunIdSchema,
    /**
     * The catalog name the backup is filed under: every key of it is built from this (the
     * database's own name is `source.database`).
     */
    database: CatalogNameSchema,
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
    /** The request's scope when it limits the dump; absent: the whole database. */
    scope: BackupScopeSchema.optional(),
    /** Where the backup comes from (the manifest records it); absent: `manual`. */
    origin: BackupOriginSchema.optional(),
    /** The backup set it is a member of. */
    setId: RunIdSchema.optional(),
    startedAt: TimestampSchema,
  })
  .strict();
export type BackupPlan = z.infer<typeof BackupPlanSchema>;

/**
 * Where the dump's task runs (the ECS state's subnets): on AWS, the subnets of the database's
 * availability zone when its configuration names one, else every subnet of pgferry's; locally
 * none (no task is placed).
 */
export const TaskPlacementSchema = z
  .object({ subnets: z.array(z.string().regex(/^subnet-[0-9a-f]+$/)).max(16) })
  .strict();
export type TaskPlacement = z.infer<typeof TaskPlacementSchema>;

/**
 * The backup workflow's state after preflight: ids, the job, the task's size and placement (which
 * the ECS state reads). The steps that need the plan read it through `job`; Cleanup needs only
 * the ids.
 */
export const BackupStateSchema = z
  .object({
    job: JobRefSchema,
    backupId: RunIdSchema,
    /** The catalog name (the folder of the backup). */
    database: CatalogNameSchema,
    taskSize: TaskSizeSchema,
    placement: TaskPlacementSchema,
  })
  .strict();
export type BackupState = z.infer<typeof BackupStateSchema>;

export const StoredObjectSchema = z
  .object({
    /** Relative to the backup's folder. */
    key: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
    /**
     * `dump`: pg_dump's custom archive (the schema, and the data of every table not in a
     * `table-data` object); `table-data`: a data-only custom archive of some tables, dumped beside
     * it in the same snapshot by a backup with `jobs` > 1; `globals`: roles and tablespaces.
     */
    kind: z.enum(['dump', 'table-data', 'globals']),
    bytes: z.number().int().nonnegative(),
    /** SHA-256 (hex) of the bytes as stored, i.e. after compression. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    compression: CompressionSchema,
    /**
     * An archive's (`dump`, `table-data`) header and table of contents, in bytes as pg_dump wrote
     * them (uncompressed): every definition and no data — the definitions file, all that a streamed
     * restore writes to disk (core/task-size.ts). Absent for globals, and in older manifests.
     */
    definitionsBytes: z.number().int().nonnegative().optional(),
    /**
     * Whether the archive holds data that is not COPY text (large objects), which a restore cannot
     * stream: it restores from files (core/task-size.ts). Absent for globals, and in older manifests.
     */
    largeObjects: z.boolean().optional(),
  })
  .strict();
export type StoredObject = z.infer<typeof StoredObjectSchema>;

export const GlobalsInfoSchema = z
  .object({
    rolePasswords: z.boolean(),
    /** Why role passwords are missing although they were asked for (e.g. no access to pg_authid). */
    note: z.string().optional(),
  })
  .strict();

export const ToolInfoSchema = z.object({ pgDumpVersion: z.string(), pgDumpMajor: z.number().int() }).strict();

/**
 * A table of a backup: its rows, and the bytes of its data (COPY text) in the archive, from which a
 * restore chooses the tables it loads in several sessions while the archive still downloads
 * (absent in older manifests).
 */
export const BackupTableSchema = TableRowCountSchema.extend({
  dataBytes: z.number().int().nonnegative().optional(),
}).strict();
export type BackupTable = z.infer<typeof BackupTableSchema>;

/** What the runner reports to the record step, through the store (ECS returns no payload). */
export const DumpResultSchema = z.discriminatedUnion('status', [
  z
    .object({
      schemaVersion: SchemaVersionSchema,
      backupId: RunIdSchema,
      status: z.literal('succeeded'),
      tool: ToolInfoSchema,
      objects: z.array(StoredObjectSchema).min(1),
      tables: z.array(BackupTableSchema),
      globals: GlobalsInfoSchema,
      requires: RequirementsSchema,
      databaseProperties: DatabasePropertiesSchema,
      uncompressedBytes: z.number().int().nonnegative(),
      finishedAt: TimestampSchema,
    })
    .strict(),
  z
    .object({
      schemaVersion: SchemaVersionSchema,
      backupId: RunIdSchema,
      status: z.literal('failed'),
      error: z.object({ name: z.string(), message: z.string() }).strict(),
      finishedAt: TimestampSchema,
    })
    .strict(),
]);
export type DumpResult = z.infer<typeof DumpResultSchema>;

/** `manifest.json`: written last; a backup folder without it is incomplete and never listed. */
export const BackupManifestSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    id: RunIdSchema,
    database: DatabaseNameSchema,
    /**
     * The catalog name it is filed under (the folder); absent in manifests written before catalog
     * names existed, whose folder is the database's name (`catalogNameOf`).
     */
    name: CatalogNameSchema.optional(),
    status: z.literal('complete'),
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    durationSeconds: z.number().nonnegative(),
    source: z.object({ host: z.string(), port: z.number().int(), user: z.string() }).strict(),
    server: ServerInfoSchema,
    tool: ToolInfoSchema.extend({ pgferryVersion: z.string() }).strict(),
    format: z.literal('custom'),
    compression: CompressionSchema,
    strategy: DumpStrategySchema,
    uncompressedBytes: z.number().int().nonnegative(),
    objects: z.array(StoredObjectSchema).min(1),
    tables: z.array(BackupTableSchema),
    globals: GlobalsInfoSchema,
    requires: RequirementsSchema.optional(),
    databaseProperties: DatabasePropertiesSchema.optional(),
    /** How long the dump would wait for a table lock (absent in older manifests). */
    lockWaitTimeoutMs: LockWaitTimeoutSchema.optional(),
    /**
     * A partial backup's scope; absent: the whole database (and in older manifests). `tables`
     * then lists the tables whose rows the backup holds, which excludes those of `excludeTableData`.
     */
    scope: BackupScopeSchema.optional(),
    /** Where it came from; absent in manifests written before origins were recorded (`originOf`). */
    origin: BackupOriginSchema.optional(),
    /** The backup set (server backup) it is a member of. */
    setId: RunIdSchema.optional(),
  })
  .strict();
export type BackupManifest = z.infer<typeof BackupManifestSchema>;

/** The backup workflow's output (what was done in brief); the manifest is at `key`. */
export const BackupOutcomeSchema = z
  .object({
    schemaVersion: SchemaVersionSchema,
    kind: z.literal('backup'),
    status: z.literal('complete'),
    backupId: RunIdSchema,
    /** The catalog name. */
    database: CatalogNameSchema,
    ...documentLocation,
    startedAt: TimestampSchema,
    finishedAt: TimestampSchema,
    uncompressedBytes: z.number().int().nonnegative(),
    storedBytes: z.number().int().nonnegative(),
    objects: z.number().int().nonnegative(),
    tables: z.number().int().nonnegative(),
  })
  .strict();
export type BackupOutcome = z.infer<typeof BackupOutcomeSchema>;
