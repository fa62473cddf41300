/**
 * What pgferry records about a database beside its dump, so that a restore can make one like it:
 * its locale, the collations, extensions and roles it needs, and its own properties.
 */
import { z } from 'zod';

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
