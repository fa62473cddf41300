/**
 * The mark of a database that pgferry created and has not finished filling: a restore's new
 * database, a migration's target, the schema test's scratch database. A run that is interrupted
 * drops what it created; one killed too hard to (SIGKILL of everything, a host lost) leaves it
 * behind, and the mark is how the next run recognises it and says how to remove it, instead of a
 * bare "already exists".
 *
 * The mark is the database's comment (`COMMENT ON DATABASE`), set right after `CREATE DATABASE`
 * and replaced by the source's own comment (or removed) when the restore completes. A comment
 * rather than a database-level setting because it changes nothing for the sessions that connect
 * (a setting is applied to each of them, pg_restore's included); it is shown where people look
 * (`\l+`, pgAdmin); it can be read from any database of the server without connecting to the
 * marked one (`shobj_description`); and it needs no privilege beyond the ownership its creator
 * has. `CREATE DATABASE` cannot run in a transaction with the comment, so a database is created
 * under a name of the run's own ({@link creatingName}), marked, then renamed into place: no
 * instant leaves it both under its own name and unmarked (`createMarkedDatabase`,
 * core/postgres/admin.ts). (A run killed while the server still runs its `CREATE DATABASE` does
 * not stop it; the workflows' cleanup steps end the run's sessions, which rolls it back.) When only
 * the runner was killed, those steps (MigrateCleanup, RestoreCleanup) also drop what carries the
 * run's own mark (`dropOwnIncompleteDatabase`, core/postgres/admin.ts); the mark is for what is
 * left after that.
 */
import { createHash } from 'node:crypto';
import type { Client } from 'pg';
import { quoteIdent, quoteLiteral } from './quote';
import { describeSessions, type TargetSession } from './target-sessions';

/** The run that created an incomplete database. */
export interface IncompleteRun {
  kind: 'restore' | 'migration' | 'schema test';
  /** The restore's or migration's id. */
  id: string;
  pid: number;
  host: string;
  startedAt: string;
}

const MARK =
  /^pgferry: incomplete (restore|migration|schema test) (\S+), started (\S+) by pid (\d+) on host (.*?)\. /;

/** The comment that marks a database as being created by `run`. */
export function incompleteMark(run: IncompleteRun): string {
  return (
    `pgferry: incomplete ${run.kind} ${run.id}, started ${run.startedAt} by pid ${run.pid} on host ${run.host}. ` +
    'This database is not complete: drop it unless that run is still going.'
  );
}

/** Marks `database` (which the caller just created and owns) as incomplete. */
export async function markIncomplete(admin: Client, database: string, run: IncompleteRun): Promise<void> {
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(database)} IS ${quoteLiteral(incompleteMark(run))}`);
}

/**
 * The name run `runId` creates `database` under, to mark it before it takes its own name
 * (`createMarkedDatabase`, core/postgres/admin.ts): derived from the run and the database alone, so
 * that a database of this name is the run's, marked or not — its cleanup drops it by name
 * (`dropOwnIncompleteDatabase`) after a run killed between the `CREATE DATABASE` and the mark.
 */
export function creatingName(runId: string, database: string): string {
  return `pgferry_creating_${createHash('sha256').update(`${runId}\0${database}`).digest('hex').slice(0, 16)}`;
}

/** The run that left `database` incomplete, when it carries the mark; `undefined` otherwise. */
export async function readIncompleteMark(
  client: Client,
  database: string,
): Promise<IncompleteRun | undefined> {
  const { rows } = await client.query<{ comment: string | null }>(
    "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1",
    [database],
  );
  const m = MARK.exec(rows[0]?.comment ?? '');
  if (!m) return undefined;
  return {
    kind: m[1] as IncompleteRun['kind'],
    id: m[2],
    startedAt: m[3],
    pid: Number(m[4]),
    host: m[5],
  };
}

/**
 * Ends the mark of a database that is now complete: `comment` (its source's) replaces it, or with
 * none the mark is removed. A database without the mark keeps its comment unless one is given.
 */
export async function completeDatabase(
  admin: Client,
  database: string,
  comment: string | null,
): Promise<void> {
  if (comment === null && !(await readIncompleteMark(admin, database))) return;
  await admin.query(
    `COMMENT ON DATABASE ${quoteIdent(database)} IS ${comment === null ? 'NULL' : quoteLiteral(comment)}`,
  );
}

/** The SQL that removes a leftover database, ending its sessions first where the server can (13+). */
export function dropDatabaseCommand(database: string, serverMajor: number): string {
  return `DROP DATABASE ${quoteIdent(database)}${serverMajor >= 13 ? ' WITH (FORCE)' : ''};`;
}

/**
 * What removes a leftover database a cleanup could not drop: the `sessions` still connected to it
 * (which kept it: a superuser's, which a login that is not one may not end) ended first, then
 * {@link dropDatabaseCommand}.
 */
export function removeLeftDatabase(
  database: string,
  serverMajor: number,
  sessions: readonly TargetSession[],
): string {
  const drop = `remove it with ${dropDatabaseCommand(database, serverMajor)}`;
  if (!sessions.length) return drop;
  return (
    `still connected to it: ${describeSessions(sessions)}; those sessions must end first (a superuser, or their ` +
    `own role, may end them: SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ` +
    `${quoteLiteral(database)};), then ${drop}`
  );
}

/** The scratch database of a migration's schema test, for the plan's `index`th database. */
export function schemaTestDatabaseName(migrateId: string, index: number): string {
  return `pgferry_schema_test_${migrateId.replace('-', '_').toLowerCase()}_${index}`;
}

/** The longest database name PostgreSQL keeps (NAMEDATALEN − 1 bytes); a longer one is cut. */
const MAX_NAME_BYTES = 63;

/**
 * The database a restore into `target` loads into, renamed to `target` once the backup is verified
 * and the restore's checks passed: derived from `target` alone, so that a second restore into the
 * same target meets a first one's (running, or left by a run killed too hard to drop it) and the
 * preflight can name it. A hash of the whole name, then as much of the name as fits in
 * PostgreSQL's 63 bytes (cut between characters): readable, and distinct for targets that share
 * a long prefix.
 */
export function restoringName(target: string): string {
  const hash = createHash('sha256').update(target).digest('hex').slice(0, 8);
  const prefix = `pgferry_restoring_${hash}_`;
  let name = prefix;
  for (const char of target) {
    if (Buffer.byteLength(name + char) > MAX_NAME_BYTES) break;
    name += char;
  }
  return name;
}

/**
 * Why a run cannot use `database`: what left it incomplete, and the command that removes it — for
 * the preflights' refusals. `restoringInto`: `database` is the name a restore into that target
 * loads into ({@link restoringName}).
 */
export function describeIncompleteDatabase(
  database: string,
  run: IncompleteRun,
  serverMajor: number,
  restoringInto?: string,
): string {
  const what = restoringInto
    ? `the database ${quoteIdent(database)}, which a restore into ${quoteIdent(restoringInto)} loads before renaming it into place,`
    : `the target database ${quoteIdent(database)}`;
  return (
    `${what} is an incomplete copy left by pgferry ${run.kind} ${run.id} ` +
    `(started ${run.startedAt} by pid ${run.pid} on host ${run.host}, which was interrupted or is still going): ` +
    `once that run is gone, remove it on the target server with ${dropDatabaseCommand(database, serverMajor)} and run again`
  );
}
