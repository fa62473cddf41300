/**
 * What pgferry changes on a server: databases created, dropped and given their source's
 * properties, roles created from a `pg_dumpall --globals-only` script, and that script read.
 */
import type { ChildProcess } from 'node:child_process';
import type { Client } from 'pg';
import type { Connection, DatabaseLocale, DatabaseProperties } from '../contracts';
import { PgferryError, type PgferryErrorCode } from '../errors';
import type { PgToolBinary } from './binaries';
import { libpqEnv } from './connect';
import { planGlobals } from './globals';
import { completeDatabase } from './incomplete-database';
import { serverInfo } from './inspect';
import { quoteIdent, quoteLiteral } from './quote';
import { createDatabaseSql } from './requirements';
import { firstError, runTool, type ToolRun } from './tools';

/** Collects the client database's planner statistics (`ANALYZE`): a restore's load leaves none. */
export async function analyze(client: Client): Promise<void> {
  await client.query('ANALYZE');
}

/**
 * What a database-wide `ANALYZE` does, on up to `jobs` sessions at once (each from `connect`,
 * ended after): the same relations — every table, materialized view and partitioned table, the
 * system catalogs included, not other sessions' temporary tables — one `ANALYZE` each, largest
 * first (a partition tree by its partitions' size). A partition tree is one task (`ANALYZE` of its root takes its partitions), so nothing is
 * analyzed twice. One session's `ANALYZE` runs on one core: a restore or migration's load leaves
 * the others idle while it runs. The first failure fails it, after every session has ended.
 */
export async function analyzeInParallel(connect: () => Promise<Client>, jobs: number): Promise<void> {
  const first = await connect();
  const sessions = [first];
  try {
    const { rows } = await first.query<{ name: string }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
        ORDER BY CASE WHEN c.relkind = 'p'
                   THEN (SELECT sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = c.oid)
                   ELSE pg_relation_size(c.oid) END DESC NULLS LAST, 1`);
    const queue = rows.map((r) => r.name);
    while (sessions.length < Math.min(jobs, queue.length)) sessions.push(await connect());
    const failed: unknown[] = [];
    await Promise.all(
      sessions.map(async (session) => {
        for (let name = queue.shift(); name !== undefined && !failed.length; name = queue.shift()) {
          await session.query(`ANALYZE ${name}`).catch((err: unknown) => failed.push(err));
        }
      }),
    );
    if (failed.length) throw failed[0];
  } finally {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
  }
}

/** The server's role names. */
export async function roleNames(client: Client): Promise<Set<string>> {
  const { rows } = await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles');
  return new Set(rows.map((r) => r.rolname));
}

/**
 * Creates `name` with the source database's encoding and locale (as recorded); `major` is the
 * server's, read from it when not given.
 */
export async function createDatabase(
  admin: Client,
  name: string,
  like: { encoding?: string; locale?: DatabaseLocale },
  major?: number,
): Promise<void> {
  const serverMajor = major ?? (await serverInfo(admin)).major;
  await admin.query(createDatabaseSql(name, serverMajor, like.encoding, like.locale));
}

/** Creates each of `schemas` that does not exist yet (owned by the session's user). */
export async function createMissingSchemas(client: Client, schemas: readonly string[]): Promise<void> {
  for (const schema of schemas) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
}

/** Ends the sessions connected to `name` (other than the caller's), then drops it if it exists. */
export async function dropDatabase(admin: Client, name: string): Promise<void> {
  await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
  await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
}

/** Settings whose value is a list: each element is quoted on its own (as pg_dump does). */
const LIST_SETTINGS = new Set([
  'search_path',
  'temp_tablespaces',
  'session_preload_libraries',
  'local_preload_libraries',
  'shared_preload_libraries',
]);

/**
 * The source database's comment, settings, owner and grants, applied to the restored database
 * under its new name (pg_restore applies them only with --create, to the original name). The
 * comment replaces the database's incomplete mark (which is removed when the source had none, or
 * when the manifest predates recorded properties): applied last, this completes the database.
 * `admin` is a session of the same server, not of `database`.
 */
export async function applyDatabaseProperties(
  admin: Client,
  database: string,
  properties: DatabaseProperties | undefined,
  opts: { noOwner: boolean; noAcl: boolean },
): Promise<void> {
  const db = quoteIdent(database);
  await completeDatabase(admin, database, properties?.comment ?? null);
  if (!properties) return;
  const roles = await roleNames(admin);
  for (const { role, setting } of properties.settings) {
    if (role !== null && !roles.has(role)) continue;
    const [name, ...rest] = setting.split('=');
    const value = rest.join('=');
    const literal = LIST_SETTINGS.has(name)
      ? value
          .split(/,\s*/)
          .map((v) => quoteLiteral(v.replace(/^"(.*)"$/, '$1')))
          .join(', ')
      : quoteLiteral(value);
    const scope = role === null ? '' : `ROLE ${quoteIdent(role)} IN `;
    await admin.query(`ALTER ${scope}DATABASE ${db} SET ${quoteIdent(name)} TO ${literal}`);
  }
  if (!opts.noOwner && roles.has(properties.owner)) {
    await admin.query(`ALTER DATABASE ${db} OWNER TO ${quoteIdent(properties.owner)}`);
  }
  if (!opts.noAcl && properties.grants !== null) {
    await admin.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    for (const grant of properties.grants) {
      if (grant.grantee !== 'PUBLIC' && !roles.has(grant.grantee)) continue;
      const grantee = grant.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(grant.grantee);
      await admin.query(
        `GRANT ${grant.privilege} ON DATABASE ${db} TO ${grantee}${grant.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
}

/** What creating a backup's roles did: the roles created, those that existed (left as they were). */
export interface RolesCreated {
  created: string[];
  skippedExisting: string[];
  createdWithoutPassword?: string[];
}

/**
 * Creates on the target server the roles of `globalsSql` (`pg_dumpall --globals-only`) that it
 * lacks, with psql; existing roles are reported and never altered (see `planGlobals`).
 */
export async function createMissingRoles(
  admin: Client,
  globalsSql: string,
  opts: {
    psql: PgToolBinary;
    target: Connection;
    password: string | undefined;
    /** The environment psql starts from (the connection's libpq settings are added). */
    env: NodeJS.ProcessEnv;
    onChild?: (child: ChildProcess) => void;
    /** The failure's code and its message's start. */
    failure: { code: PgferryErrorCode; message: string };
  },
): Promise<RolesCreated> {
  const { psql, target, password, failure } = opts;
  const globals = planGlobals(globalsSql, await roleNames(admin));
  if (globals.created.length === 0) return { created: [], skippedExisting: globals.skippedExisting };
  const out = await runTool(
    psql,
    ['--no-psqlrc', '--quiet', '-v', 'ON_ERROR_STOP=1', '--no-password', '-f', '-'],
    {
      // The database `admin` is on (`postgres`, else `template1`: a drill of a server's own
      // `postgres` database restores it under another name, renamed into place at the end).
      env: { ...opts.env, ...libpqEnv({ ...target, database: admin.database ?? 'postgres' }, password) },
      onChild: opts.onChild,
      input: globals.sql,
    },
  );
  if (out.code !== 0) throw new PgferryError(failure.code, `${failure.message}: ${firstError(out.stderr)}`);
  return {
    created: globals.created,
    skippedExisting: globals.skippedExisting,
    ...(globals.createdWithoutPassword.length
      ? { createdWithoutPassword: globals.createdWithoutPassword }
      : {}),
  };
}

/**
 * Roles and tablespaces of the server `database` is on (`pg_dumpall --globals-only`), role
 * passwords only when `withRolePasswords`; where the user cannot read pg_authid (managed
 * services), again without them, and `rolePasswordsOmitted` says so. The caller words a failure.
 */
export async function dumpGlobals(
  pgDumpall: PgToolBinary,
  database: string,
  opts: { withRolePasswords: boolean; env: NodeJS.ProcessEnv; onChild?: (child: ChildProcess) => void },
): Promise<ToolRun & { rolePasswordsOmitted: boolean }> {
  const base = ['--globals-only', '--no-password', '-l', database];
  const run = (args: string[]) => runTool(pgDumpall, args, { env: opts.env, onChild: opts.onChild });
  const out = await run(opts.withRolePasswords ? base : [...base, '--no-role-passwords']);
  if (out.code !== 0 && opts.withRolePasswords && /permission denied|pg_authid/i.test(out.stderr)) {
    return { ...(await run([...base, '--no-role-passwords'])), rolePasswordsOmitted: true };
  }
  return { ...out, rolePasswordsOmitted: false };
}
