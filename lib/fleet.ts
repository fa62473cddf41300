/**
 * Where each database's own resources go — its schedules and its freshness alarm — so that a
 * configuration of hundreds of databases stays inside CloudFormation's 500 resources (and 1 MB of
 * template) per stack: in the stack itself while they are few, else in nested stacks, one per
 * server (a server with very many databases fills several). Grouping by server keeps a database
 * in the same nested stack when others are added or removed elsewhere; the parent then holds one
 * resource per nested stack. Measured in test/unit/lib/fleet.test.ts; see docs/aws.md, "Fleets".
 */
import { createHash } from 'node:crypto';
import { NestedStack } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { DatabaseConfig, ServerConfig } from './config';

/**
 * The most per-database resources the stack holds itself (20 databases backed up and verified).
 * Everything else takes ~210 resources with every feature on (the HTTP API, the runbooks, the
 * widget, the run events, a server entry, a target), and each database's own security group two
 * more (its egress and ingress rule, which stay in the stack): at this maximum the stack holds
 * 275 resources, 311 when each of those databases has a group of its own, of CloudFormation's
 * 500 (150 made it 365 and 397). Measured and asserted in test/unit/lib/stack-headroom.test.ts;
 * docs/aws.md, "Headroom". Lowering it rather than moving the API or the console to nested stacks
 * keeps their names and URLs: docs/aws.md says why.
 */
export const MAX_DATABASE_RESOURCES_IN_STACK = 60;

/** The most per-database resources one nested stack holds (of CloudFormation's 500). */
export const MAX_DATABASE_RESOURCES_PER_NESTED_STACK = 300;

/** Per-server alarms of a server entry (Monitoring.watchServer): stale, disappeared, no set. */
export const SERVER_ENTRY_ALARMS = 3;

/**
 * The resources one entry adds: a database a schedule per backup schedule, its verify schedule
 * and its alarm; a server entry its schedules and its three alarms.
 */
export function databaseResourceCount(db: DatabaseConfig | ServerConfig): number {
  if (!('verifySchedule' in db) && 'maxConcurrency' in db)
    return db.backupSchedules.length + SERVER_ENTRY_ALARMS;
  return db.backupSchedules.length + ((db as DatabaseConfig).verifySchedule ? 1 : 0) + 1;
}

/** Where a database's resources are created. */
export interface DatabasePlacement {
  /** The construct to create them in: the stack, or a nested stack of its server. */
  readonly scope: Construct;
  /** Whether that is a nested stack (the resources are then named apart from the stack's own). */
  readonly nested: boolean;
}

/** A server's key: host and port, as a connection names them. */
function serverOf(db: DatabaseConfig | ServerConfig): string {
  return `${db.connection.host.toLowerCase()}:${db.connection.port}`;
}

/**
 * Places every database: all in `stack` when their resources fit `MAX_DATABASE_RESOURCES_IN_STACK`,
 * else each server's databases in nested stacks `Databases<hash of the server>[-n]` of at most
 * `MAX_DATABASE_RESOURCES_PER_NESTED_STACK` resources, filled in configuration order.
 */
export function placeDatabases(
  stack: Construct,
  databases: readonly (DatabaseConfig | ServerConfig)[],
): Map<string, DatabasePlacement> {
  const placements = new Map<string, DatabasePlacement>();
  const total = databases.reduce((sum, db) => sum + databaseResourceCount(db), 0);
  if (total <= MAX_DATABASE_RESOURCES_IN_STACK) {
    for (const db of databases) placements.set(db.id, { scope: stack, nested: false });
    return placements;
  }
  const byServer = new Map<string, (DatabaseConfig | ServerConfig)[]>();
  for (const db of databases) byServer.set(serverOf(db), [...(byServer.get(serverOf(db)) ?? []), db]);
  for (const [server, members] of byServer) {
    const hash = createHash('sha256').update(server).digest('hex').slice(0, 8);
    let part = 1;
    let used = 0;
    let nestedStack: NestedStack | undefined;
    for (const db of members) {
      const count = databaseResourceCount(db);
      if (!nestedStack || used + count > MAX_DATABASE_RESOURCES_PER_NESTED_STACK) {
        const id = `Databases${hash}${part === 1 ? '' : `-${part}`}`;
        nestedStack = new NestedStack(stack, id, {
          description: `pgferry: schedules and alarms of ${server}`,
        });
        part++;
        used = 0;
      }
      used += count;
      placements.set(db.id, { scope: nestedStack, nested: true });
    }
  }
  return placements;
}
