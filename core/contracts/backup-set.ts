/**
 * A backup set: the backup of a whole server (`pgferry backup --all-databases`) — every member
 * database a normal backup of its own (listed, restorable, origin `set`), and this manifest,
 * written last, naming them, the roles (globals) to restore first, and any database that failed.
 */
import { z } from 'zod';
import {
  CatalogNameSchema,
  DatabaseNameSchema,
  RunIdSchema,
  SchemaVersionSchema,
  ServerInfoSchema,
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
