/**
 * What pgferry changes on a server: databases created, dropped and given their source's
 * properties, roles created from a `pg_dumpall --globals-only` script, and that script read.
 */
import type { ChildProcess } from 'node:child_process';
import type { Client } from 'pg';
import type { Connection, DatabaseLocale, DatabaseProperties } from '../contracts';
import { errorMessage, PgferryError, type PgferryErrorCode } from '../errors';
import type { PgToolBinary } from './binaries';
import { endQuietly, libpqEnv } from './connect';
import { planGlobals } from './globals';
import {
  completeDatabase,
  creatingName,
  type IncompleteRun,
  markIncomplete,
  readIncompleteMark,
} from './incomplete-database';
import { databaseExists, serverInfo } from './inspect';
import { quoteIdent, quoteLiteral } from './quote';
import { createDatabaseSql } from './requirements';
import { otherSessions, type TargetSession } from './target-sessions';
import { firstError, runTool, type ToolRun } from './tools';

/** Collects the client database's planner statistics (`ANALYZE`): a restore's load leaves none. */
export async function analyze(client: Client): Promise<void> {
  await client.query('ANALYZE');
}

/**
 * A system catalog of the database (of `c`, a `pg_class` row) whose main fork grew by more than a
 * tenth and a page since its statistics were collected (`relpages`, which `ANALYZE` sets). A
 * database created from `template0` has its catalogs analyzed already (initdb's): a restore that
 * creates a few objects leaves them as they were, and analyzing them again (~70 of them,
 * 80–120 ms) would collect the same statistics (each is smaller than `ANALYZE`'s sample: read
 * whole); one that creates many (`pg_attribute`, `pg_depend`, `pg_class` growing) has them
 * analyzed as a database-wide `ANALYZE` would. The measure is the catalog's size, not the
 * statistics system's count of changed rows, which a session that has just ended may not have
 * reported yet. The catalogs shared by every database (`pg_authid`, `pg_database`, …) are left out:
 * their size is the server's (every role and database created since initdb: a new database's
 * `relpages` of them are template0's), not what this database's restore wrote.
 */
const CATALOG_GROWN =
  "NOT c.relisshared AND pg_relation_size(c.oid) > (c.relpages * 1.1 + 1) * current_setting('block_size')::bigint";

/**
 * What a database-wide `ANALYZE` does, on up to `jobs` sessions at once (each from `connect`,
 * ended after): the same relations — every table, materialized view and partitioned table, not
 * other sessions' temporary tables, the system catalogs that grew since their statistics were
 * collected ({@link CATALOG_GROWN}) — largest first (a partition tree by its partitions' size).
 * A partition tree is one task (`ANALYZE` of its root takes its partitions), so nothing is
 * analyzed twice. One session's `ANALYZE` runs on one core: a restore or migration's load leaves
 * the others idle while it runs. Small tables share a statement ({@link analyzeStatements}). The
 * first failure fails it, after every session has ended.
 *
 * With `early` (the load's {@link AnalyzeAsLoaded}), once its `ANALYZE` under way has ended (its
 * failure is this one's), the tables it analyzed are left out — but those the post-data gave an
 * expression index or extended statistics (`CREATE STATISTICS` is in pg_dump's post-data
 * section), whose statistics an `ANALYZE` before them lacks: the result is the same.
 */
export async function analyzeInParallel(
  connect: () => Promise<Client>,
  jobs: number,
  early?: AnalyzeAsLoaded,
): Promise<void> {
  // Oids (digits, `oid::text`), written into the query: it has no parameters.
  const analyzed = early ? [...(await early.analyzed())] : [];
  const first = await connect();
  const sessions = [first];
  try {
    const { rows } = await first.query<{ name: string; bytes: string | null }>(
      `
      SELECT format('%I.%I', n.nspname, c.relname) AS name,
             CASE WHEN c.relkind = 'p'
               THEN (SELECT sum(pg_relation_size(i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = c.oid)
               ELSE pg_relation_size(c.oid) END AS bytes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
          AND (n.nspname NOT IN ('pg_catalog', 'information_schema') OR ${CATALOG_GROWN})
          AND NOT (c.oid = ANY('{${analyzed.join(',')}}'::oid[])
                   AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indexprs IS NOT NULL)
                   AND NOT EXISTS (SELECT FROM pg_statistic_ext s WHERE s.stxrelid = c.oid))
        ORDER BY 2 DESC NULLS LAST, 1`,
    );
    const queue = analyzeStatements(rows.map((r) => ({ name: r.name, bytes: Number(r.bytes ?? 0) })));
    while (sessions.length < Math.min(jobs, queue.length)) sessions.push(await connect());
    const failed: unknown[] = [];
    await Promise.all(
      sessions.map(async (session) => {
        for (let names = queue.shift(); names !== undefined && !failed.length; names = queue.shift()) {
          await session.query(`ANALYZE ${names.join(', ')}`).catch((err: unknown) => failed.push(err));
        }
      }),
    );
    if (failed.length) throw failed[0];
  } finally {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
  }
}

/** The most tables one `ANALYZE` statement takes ({@link analyzeStatements}). */
export const ANALYZE_STATEMENT_TABLES = 100;
/** The most bytes (their main forks together) of the tables one `ANALYZE` statement takes, but one table alone. */
export const ANALYZE_STATEMENT_BYTES = 8 * 1024 * 1024;

/**
 * The tables (quoted names, with their main fork's size), in order, cut into `ANALYZE a, b, …`
 * statements: consecutive tables while they are at most {@link ANALYZE_STATEMENT_TABLES} and
 * {@link ANALYZE_STATEMENT_BYTES} together; a larger table alone. Outside a transaction block
 * PostgreSQL (≥ 11) analyzes each table of one statement in a transaction of its own, as separate
 * statements would, and takes each one's lock only while it analyzes it: the statistics are the
 * same, and thousands of small tables cost one round trip and statement per hundred, not each
 * (4,000 tables of 50–200 rows: about half the server's CPU, a tenth of the client's).
 */
export function analyzeStatements(tables: readonly { name: string; bytes: number }[]): string[][] {
  const statements: string[][] = [];
  let current: string[] = [];
  let bytes = 0;
  for (const table of tables) {
    if (
      current.length &&
      (current.length >= ANALYZE_STATEMENT_TABLES || bytes + table.bytes > ANALYZE_STATEMENT_BYTES)
    ) {
      statements.push(current);
      current = [];
      bytes = 0;
    }
    current.push(table.name);
    bytes += table.bytes;
  }
  if (current.length) statements.push(current);
  return statements;
}

/**
 * Each table analyzed as soon as its load has ended (every COPY of its rows has ended, committed),
 * on one session of its own, in the order they end, while the other tables still load: a load
 * leaves some of the machine's cores idle, the final {@link analyzeInParallel} then has less to
 * do. Only tables whose statistics nothing loaded later changes: plain tables that are neither
 * partitions nor inheritance parents (a parent's statistics cover its children), not temporary.
 * The tables whose loads ended while an `ANALYZE` ran are analyzed together
 * ({@link analyzeStatements}); a failing statement of several is run again a table at a time, so
 * that its failure names its table.
 *
 * Once the load has ended (`stop`), no statement is started (an `ANALYZE` would hold the
 * post-data's `CREATE INDEX` of its table back): the one under way completes, then the session
 * ends. Its
 * failure is `onFailure`'s at once (the caller stops the load) and `analyzed()`'s; `abort` ends
 * the session at once (interrupted, or the load failed).
 */
export class AnalyzeAsLoaded {
  private readonly queue: string[] = [];
  /** The tables analyzed, by oid. */
  private readonly done = new Set<string>();
  private client: Client | undefined;
  private worker: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private stopped = false;
  private aborted = false;
  private failure: Error | undefined;

  constructor(
    private readonly connect: () => Promise<Client>,
    private readonly opts: { errorCode: PgferryErrorCode; onFailure?: (err: Error) => void },
  ) {}

  /** Every row of `table` (a quoted, schema-qualified name) is loaded and committed. */
  loaded(table: string): void {
    if (this.stopped) return;
    this.queue.push(table);
    this.worker ??= this.work().catch((err: unknown) => {
      if (this.aborted) return; // its session ended under it
      this.failure ??=
        err instanceof PgferryError
          ? err
          : new PgferryError(
              this.opts.errorCode,
              `analyzing the loaded tables failed: ${errorMessage(err).split('\n')[0]}`,
              { cause: err },
            );
      this.opts.onFailure?.(this.failure);
    });
    this.wake?.();
  }

  /** The load has ended: no more tables are taken; the one under way completes. */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.wake?.();
  }

  /** Stops, and ends the session at once (its `ANALYZE`, if any, ended by the server). */
  async abort(): Promise<void> {
    this.aborted = true;
    this.stop();
    // With a query under way, pg's end() closes the socket rather than wait for it.
    await endQuietly(this.client);
    await this.worker;
  }

  /** Once the `ANALYZE` under way has ended: the tables analyzed (their oids); or its failure. */
  async analyzed(): Promise<Set<string>> {
    this.stop();
    await this.worker;
    if (this.failure) throw this.failure;
    return this.done;
  }

  private async work(): Promise<void> {
    const client = await this.connect();
    this.client = client;
    client.on('error', () => undefined); // its query fails with it
    try {
      for (;;) {
        if (this.stopped) return;
        const tables = this.queue.splice(0, ANALYZE_STATEMENT_TABLES);
        if (!tables.length) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = undefined;
          continue;
        }
        const { rows } = await client.query<{ name: string; oid: string; bytes: string }>(
          `SELECT t.name, c.oid::text AS oid, pg_relation_size(c.oid) AS bytes
             FROM (SELECT u.name, u.n, u.name::regclass::oid AS oid
                     FROM unnest($1::text[]) WITH ORDINALITY AS u(name, n)) t
               JOIN pg_class c ON c.oid = t.oid
             WHERE c.relkind = 'r' AND NOT c.relispartition AND NOT c.relhassubclass AND c.relpersistence <> 't'
             ORDER BY t.n`,
          [tables],
        );
        const oids = new Map(rows.map((r) => [r.name, r.oid]));
        for (const names of analyzeStatements(rows.map((r) => ({ name: r.name, bytes: Number(r.bytes) })))) {
          if (this.stopped) return;
          await this.analyzeStatement(client, names);
          for (const name of names) this.done.add(oids.get(name) as string);
        }
      }
    } finally {
      await endQuietly(client);
    }
  }

  /** `ANALYZE` of `names`; its failure names its table (a statement of several: each again alone). */
  private async analyzeStatement(client: Client, names: string[]): Promise<void> {
    try {
      await client.query(`ANALYZE ${names.join(', ')}`);
    } catch (err) {
      if (names.length > 1 && !this.aborted) {
        for (const name of names) await this.analyzeStatement(client, [name]);
      }
      throw new PgferryError(
        this.opts.errorCode,
        `analyzing ${names.join(', ')} once loaded failed: ${errorMessage(err).split('\n')[0]}`,
        { cause: err },
      );
    }
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

/**
 * Creates `name` as {@link createDatabase} does, marked incomplete by `run` (core/postgres/
 * incomplete-database.ts) from the first instant it has that name: created as the run's
 * {@link creatingName}, marked, then renamed (the mark, a comment, belongs to the database). A
 * failure on the way drops what it created, where the server still answers; a run killed on the way
 * leaves a database its cleanup drops by name ({@link dropOwnIncompleteDatabase}).
 */
export async function createMarkedDatabase(
  admin: Client,
  name: string,
  like: { encoding?: string; locale?: DatabaseLocale },
  run: IncompleteRun,
  major?: number,
): Promise<void> {
  const creating = creatingName(run.id, name);
  await createDatabase(admin, creating, like, major);
  try {
    await markIncomplete(admin, creating, run);
    await admin.query(`ALTER DATABASE ${quoteIdent(creating)} RENAME TO ${quoteIdent(name)}`);
  } catch (err) {
    await dropDatabase(admin, creating).catch(() => undefined);
    throw err;
  }
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

/**
 * What became of a database that run `runId` may have left (`dropOwnIncompleteDatabase`): dropped
 * (it carried the run's own mark), absent, left alone — unmarked (complete, or not pgferry's: a
 * preflight names it if it is in the way) or marked by another run (`markedBy`) — or not dropped,
 * the server's `error` saying why, with the `sessions` still connected to it (one the caller's
 * login may not end, a superuser's, keeps it: RDS's own, to its master user).
 */
export type LeftDatabase =
  | { database: string; fate: 'dropped' | 'absent' | 'unmarked' }
  | { database: string; fate: 'marked by another run'; markedBy: IncompleteRun }
  | { database: string; fate: 'not dropped'; error: string; sessions: TargetSession[] };

/**
 * After run `runId` failed without cleaning up (killed hard): drops `database` ({@link dropDatabase})
 * if it carries that run's own incomplete mark, and only then — a database another run marked may
 * be that run's, still going, and an unmarked one is complete or not pgferry's — or, first, the
 * database the run was creating as `database` and had not renamed yet ({@link creatingName}: the
 * run's by its name; the result names it). The caller has
 * ended the run's own sessions, so that no `CREATE DATABASE` or load of it goes on. `admin` is a
 * session of the same server, not of `database`. A failure is a fate (`not dropped`), not thrown.
 */
export async function dropOwnIncompleteDatabase(
  admin: Client,
  database: string,
  runId: string,
): Promise<LeftDatabase> {
  let dropping = creatingName(runId, database);
  try {
    if (!(await databaseExists(admin, dropping))) {
      dropping = database;
      if (!(await databaseExists(admin, database))) return { database, fate: 'absent' };
      const mark = await readIncompleteMark(admin, database);
      if (!mark) return { database, fate: 'unmarked' };
      if (mark.id !== runId) return { database, fate: 'marked by another run', markedBy: mark };
    }
    await dropDatabase(admin, dropping);
    return { database: dropping, fate: 'dropped' };
  } catch (err) {
    const sessions = await otherSessions(admin, dropping, { hidden: true }).catch(() => []);
    return { database: dropping, fate: 'not dropped', error: errorMessage(err), sessions };
  }
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
