/**
 * The target's databases and roles: a database created for the migration (or the schema test) and
 * dropped again, and the source server's roles that the target lacks, created from the source's
 * globals (dumped once per migration).
 */
import { hostname } from 'node:os';
import type { Connection, MigrateDatabasePlan, MigrateDatabaseResult } from '../../../../core/contracts';
import { PgferryError } from '../../../../core/errors';
import {
  createMarkedDatabase,
  createMissingRoles,
  dropDatabase as dropDatabaseOn,
  dumpGlobals,
} from '../../../../core/postgres/admin';
import { siblingTool } from '../../../../core/postgres/binaries';
import { withMaintenance } from '../../../../core/postgres/connect';
import type { IncompleteRun } from '../../../../core/postgres/incomplete-database';
import { databaseExists } from '../../../../core/postgres/inspect';
import { firstError } from '../../../../core/postgres/tools';
import type { GlobalsDump } from '../backup-archive';
import { toolEnv } from '../tool-env';
import { type Context, dumpEnv } from './context';

/**
 * Makes `target` an empty database with the source's encoding and locale: created (and marked
 * incomplete until its properties are applied), or — when it exists — used as it is (preflight
 * let it through: it is empty), or dropped and created again with `force`.
 */
export async function createDatabase(
  ctx: Context,
  target: Connection,
  db: MigrateDatabasePlan,
  kind: IncompleteRun['kind'],
): Promise<void> {
  await withMaintenance(target, ctx.targetPassword, async (admin) => {
    const name = target.database;
    if ((await databaseExists(admin, name)) && name === db.target.database) {
      if (!ctx.plan.request.force) return;
      await dropDatabaseOn(admin, name);
    }
    const run = { kind, id: ctx.plan.migrateId, pid: process.pid, host: hostname() };
    await createMarkedDatabase(
      admin,
      name,
      db,
      { ...run, startedAt: new Date().toISOString() },
      ctx.plan.targetServer.major,
    );
  });
}

export async function dropDatabase(ctx: Context, target: Connection): Promise<void> {
  await withMaintenance(target, ctx.targetPassword, (admin) => dropDatabaseOn(admin, target.database));
}

/**
 * The source server's roles and tablespaces (`pg_dumpall --globals-only`, without passwords unless
 * asked for), once per migration: every database of a plan is on the one source server, and each
 * archived backup's plan asks for passwords as the request does (the migrate preflight).
 */
export async function dumpSourceGlobals(ctx: Context): Promise<GlobalsDump> {
  const { plan, deps } = ctx;
  const pgDumpall = await siblingTool(ctx.pgDump, 'pg_dumpall');
  const source = plan.databases[0].source;
  const out = await dumpGlobals(pgDumpall, source.database, {
    withRolePasswords: plan.request.withRolePasswords,
    env: dumpEnv(ctx, source),
    onChild: deps.onChild,
  });
  if (out.code !== 0) {
    throw new PgferryError('DumpFailed', `pg_dumpall --globals-only failed: ${firstError(out.stderr)}`);
  }
  return out;
}

/** The source's globals, dumped once, and the roles created on the target from them. */
export interface SourceGlobals {
  globals: Promise<GlobalsDump>;
  roles: Promise<MigrateDatabaseResult['roles']>;
}

/**
 * The source server's roles that the target lacks are created on it (from `out`, what
 * `dumpSourceGlobals` printed); existing roles are left exactly as they are, and tablespaces are
 * not created (their directories belong to the target's host).
 */
export async function applyRoles(ctx: Context, out: GlobalsDump): Promise<MigrateDatabaseResult['roles']> {
  const { plan, deps } = ctx;
  const target = plan.databases[0].target;
  const psql = await siblingTool(ctx.pgDump, 'psql');
  return withMaintenance(target, ctx.targetPassword, (admin) =>
    createMissingRoles(admin, out.stdout.toString('utf8'), {
      psql,
      target,
      password: ctx.targetPassword,
      env: toolEnv(deps.env),
      onChild: deps.onChild,
      failure: { code: 'MigrateFailed', message: 'creating roles on the target failed' },
    }),
  );
}
