/**
 * Which logins belong to which servers, as the deployment's configuration says: the pairings a
 * workflow on AWS may use. The CDK stack builds them from its configuration (`PgferryStack.bindings`,
 * lib/bindings.ts); the runtime is given them to refuse, before connecting, an execution input that
 * pairs a configured secret with another host, or that restores into a server nobody configured.
 * Typed and versioned here, once, for both sides.
 */
import { z } from 'zod';
import { RetentionPolicySchema } from './retention';

export const BINDINGS_VERSION = 1;

/** An ECS service that a migration's cutover may scale (`ecs:UpdateService`). */
export const CutoverEcsServiceSchema = z
  .object({
    /** The cluster's name. */
    cluster: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, "the cluster's name (letters, digits, - and _)"),
    /** The service's name. */
    service: z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, "the service's name (letters, digits, - and _)"),
  })
  .strict();
export type CutoverEcsService = z.infer<typeof CutoverEcsServiceSchema>;

/**
 * One configured login: a server (host and port), a database on it, the user, how it logs in, and
 * what pgferry may do with it. Exactly one of `passwordSecretArn` and `iamAuth` is set.
 */
export const DatabaseBindingSchema = z
  .object({
    /** The configured id (`databases[].id` or `targets[].id`): the catalog name of a database. */
    id: z.string(),
    /** May be read: backed up (on its schedules or ad hoc) and migrated from. */
    source: z.boolean(),
    /** May be written: restored into, migrated into. */
    target: z.boolean(),
    host: z.string(),
    port: z.number().int(),
    database: z.string(),
    /**
     * A target only: any database on the server may be written, not only `database` (for
     * migrations of every database of a server).
     */
    anyDatabase: z.boolean(),
    user: z.string(),
    sslmode: z.enum(['verify-ca', 'verify-full']),
    /** The Secrets Manager secret holding this user's password on this server. */
    passwordSecretArn: z.string().optional(),
    /** Logs in with an RDS IAM authentication token (granted on `rdsResourceId`). */
    iamAuth: z.boolean().optional(),
    rdsResourceId: z.string().optional(),
    /** A target only: the services a migration into it may scale during its cutover. */
    cutoverEcsServices: z.array(CutoverEcsServiceSchema),
    /**
     * A database only, when its configuration overrides the deployment's retention policy: the
     * policy its record step tags its backups' tiers by (`retentionFor`, core/deployment.ts).
     */
    retention: RetentionPolicySchema.optional(),
    /**
     * A database only, when its configuration names it: the availability zone the database is
     * in, where its dumps' tasks run (`taskPlacement`, core/deployment.ts).
     */
    availabilityZone: z.string().optional(),
    /**
     * A server entry (`servers[]`): every database of the server may be backed up, each filed
     * under `<id>.<database>` (`memberCatalogName`). `database` is only where the listing connects.
     */
    allDatabases: z.boolean().optional(),
    /** A server entry only: per-database retention policies over the server's `retention`. */
    databaseRetention: z.record(z.string(), RetentionPolicySchema).optional(),
  })
  .strict();
export type DatabaseBinding = z.infer<typeof DatabaseBindingSchema>;

/** Every binding of a deployment. */
export const DatabaseBindingsSchema = z
  .object({
    version: z.literal(BINDINGS_VERSION),
    bindings: z.array(DatabaseBindingSchema),
  })
  .strict();
export type DatabaseBindings = z.infer<typeof DatabaseBindingsSchema>;

/**
 * The catalog name of `database`'s backups when it is backed up as part of the server entry
 * `serverId`: `<serverId>.<database>`. A configured id has no dot, so no database entry's id is
 * ever a member's name, and the server's id is the name's part up to its first dot.
 */
export function memberCatalogName(serverId: string, database: string): string {
  return `${serverId}.${database}`;
}

/**
 * The binding whose backups are filed under `name` — a database entry's id, or a server entry's
 * member name (`memberCatalogName`) — with, for a member, its database's name.
 */
export function bindingOfName(
  bindings: DatabaseBindings,
  name: string,
): { binding: DatabaseBinding; database?: string } | undefined {
  for (const binding of bindings.bindings) {
    if (!binding.source) continue;
    if (binding.id === name && !binding.allDatabases) return { binding };
    if (binding.allDatabases && name.startsWith(`${binding.id}.`)) {
      return { binding, database: name.slice(binding.id.length + 1) };
    }
  }
  return undefined;
}

/** The retention policy a binding sets for `database` (a member's own, else the binding's). */
export function bindingRetention(
  found: { binding: DatabaseBinding; database?: string } | undefined,
): z.infer<typeof RetentionPolicySchema> | undefined {
  if (!found) return undefined;
  const own = found.database === undefined ? undefined : found.binding.databaseRetention?.[found.database];
  return own ?? found.binding.retention;
}
