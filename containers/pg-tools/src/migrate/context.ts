/**
 * What every part of a migration shares: the plan with its passwords and PostgreSQL tools resolved
 * once (`Context`), and the environment and arguments the tools are run with.
 */
import { resolvePassword } from '../../../../core/connection';
import { type Connection, DEFAULT_LOCK_WAIT_TIMEOUT_MS, type MigratePlan } from '../../../../core/contracts';
import { choosePgTool, type PgToolBinary, siblingTool } from '../../../../core/postgres/binaries';
import { libpqEnv } from '../../../../core/postgres/connect';
import { conninfoValue } from '../../../../core/postgres/quote';
import { loadSessionOptions } from '../../../../core/postgres/restore-session';
import type { PhasedDeps } from '../run';
import { toolEnv } from '../tool-env';

/** Interrupted (`signal`), a migration drops the databases it created. */
export type MigrateDeps = PhasedDeps;

export interface Context {
  plan: MigratePlan;
  deps: MigrateDeps;
  sourcePassword: string | undefined;
  targetPassword: string | undefined;
  pgDump: PgToolBinary;
  pgRestore: PgToolBinary;
  /** How long pg_dump waits for a table lock on the source. */
  lockWaitTimeoutMs: number;
}

export async function context(plan: MigratePlan, deps: MigrateDeps): Promise<Context> {
  const [sourcePassword, targetPassword] = await Promise.all([
    resolvePassword(plan.request.source, 'source', deps.env),
    resolvePassword(plan.request.target, 'target', deps.env),
  ]);
  // The target's major: the dump is made by the pg_dump that matches the server it goes to.
  const pgDump = await choosePgTool('pg_dump', plan.targetServer.major, plan.targetServer.version, deps.env);
  const pgRestore = await siblingTool(pgDump, 'pg_restore');
  const lockWaitTimeoutMs = plan.request.lockWaitTimeoutMs ?? DEFAULT_LOCK_WAIT_TIMEOUT_MS;
  return { plan, deps, sourcePassword, targetPassword, pgDump, pgRestore, lockWaitTimeoutMs };
}

export function dumpEnv(ctx: Context, source: Connection): NodeJS.ProcessEnv {
  return { ...toolEnv(ctx.deps.env), ...libpqEnv(source, ctx.sourcePassword) };
}

export function restoreEnv(ctx: Context, target: Connection): NodeJS.ProcessEnv {
  return {
    ...toolEnv(ctx.deps.env),
    ...libpqEnv(target, ctx.targetPassword),
    PGOPTIONS: loadSessionOptions(ctx.plan.toastCompression),
  };
}

/** libpq conninfo for `--dbname`: a database name is never parsed as a connection string. */
export function dbnameArg(database: string): string {
  return `--dbname=dbname=${conninfoValue(database)}`;
}
