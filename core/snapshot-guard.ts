/**
 * What can go wrong between a dump's snapshot and the locks pg_dump takes, found out with catalog
 * reads only (no lock on any user table):
 *
 * - A table rewritten after the snapshot (`ALTER TABLE … TYPE`, `TRUNCATE`, `SET LOGGED`, …) is
 *   read by pg_dump from its new storage, whose rows were written after the snapshot and are
 *   therefore invisible to it: the table is dumped empty, and nothing fails. Found by comparing
 *   each table's `pg_class` row as the snapshot sees it with the row as it is once pg_dump holds
 *   its locks (`tableVersions`, `changedTables`).
 * - A lock pg_dump cannot get: who holds it (`lockHolders`), for a message that names them.
 */
import type { Client } from 'pg';

/** A table's `pg_class` row version: a new row version means it was altered or rewritten. */
export interface TableVersion {
  schema: string;
  name: string;
  /** The transaction that wrote this version of the table's `pg_class` row. */
  xmin: string;
  /** The table's storage: a new one means its rows were rewritten. */
  relfilenode: number;
}

/**
 * Every ordinary table of the database (partitions included; not the system's), keyed by oid, as
 * the client's current snapshot sees them. Reads `pg_class` only: takes no lock on a user table.
 */
export async function tableVersions(client: Client): Promise<Map<number, TableVersion>> {
  const { rows } = await client.query<{
    oid: string;
    schema: string;
    name: string;
    xmin: string;
    relfilenode: string;
  }>(`
    SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name, c.xmin::text AS xmin,
           c.relfilenode::text AS relfilenode
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`);
  return new Map(
    rows.map((r) => [
      Number(r.oid),
      { schema: r.schema, name: r.name, xmin: r.xmin, relfilenode: Number(r.relfilenode) },
    ]),
  );
}

export interface TableChange {
  schema: string;
  name: string;
  /** `rewritten`: new storage; `altered`: its definition changed; `dropped`: gone. */
  change: 'rewritten' | 'altered' | 'dropped';
}

/**
 * The tables among `dumped` (oids) whose `pg_class` row differs between `atSnapshot` and `now`.
 *
 * Why this check, exactly: pg_dump reads each table with the dump's snapshot, but from the
 * storage the table has once pg_dump has locked it. A rewrite installs new storage by writing a new
 * version of the table's `pg_class` row (new `relfilenode`, new `xmin`); ALTER TABLE writes a new
 * version too when it changes the table's columns (ADD/DROP COLUMN, …; not every form does).
 * Updates made in place keep `xmin` (VACUUM's and ANALYZE's statistics, CREATE INDEX's
 * `relhasindex`), and none of them changes the table's storage or rows. So if `now` was read while
 * pg_dump held its locks, an unchanged `xmin` proves that the table pg_dump read is the snapshot's.
 * A changed one means it may not be (or that it changed after pg_dump let go of it: a false alarm,
 * which costs a retry): the dump is not to be trusted for that table.
 */
export function changedTables(
  atSnapshot: Map<number, TableVersion>,
  now: Map<number, TableVersion>,
  dumped: Iterable<number>,
): TableChange[] {
  const changes: TableChange[] = [];
  for (const oid of dumped) {
    const before = atSnapshot.get(oid);
    if (!before) continue; // not a table the snapshot has: not one pg_dump could have dumped
    const after = now.get(oid);
    if (!after) changes.push({ schema: before.schema, name: before.name, change: 'dropped' });
    else if (after.relfilenode !== before.relfilenode)
      changes.push({ schema: before.schema, name: before.name, change: 'rewritten' });
    else if (after.xmin !== before.xmin)
      changes.push({ schema: before.schema, name: before.name, change: 'altered' });
  }
  return changes;
}

/** A session holding, or queued for, a lock that blocks readers of a table. */
export interface LockHolder {
  schema: string;
  table: string;
  /** `held`: granted; `queued`: waiting, yet ahead of any later reader. */
  status: 'held' | 'queued';
  pid: number;
  user: string | null;
  application: string | null;
  /** `active`, `idle in transaction`, … */
  state: string | null;
  transactionStart: string | null;
  queryStart: string | null;
}

/**
 * Sessions other than pg_dump's that hold or await an ACCESS EXCLUSIVE lock — the only mode that
 * blocks pg_dump's ACCESS SHARE — on a table of the client's database, holders first; at most
 * `limit`. pgferry's own sessions never take that mode.
 */
export async function lockHolders(client: Client, limit = 3): Promise<LockHolder[]> {
  const { rows } = await client.query<{
    schema: string;
    table: string;
    granted: boolean;
    pid: number;
    user: string | null;
    application: string | null;
    state: string | null;
    xact_start: Date | null;
    query_start: Date | null;
  }>(
    `SELECT n.nspname AS schema, c.relname AS table, l.granted, l.pid, a.usename AS user,
            a.application_name AS application, a.state, a.xact_start, a.query_start
     FROM pg_locks l
     JOIN pg_class c ON c.oid = l.relation
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p')
     ORDER BY l.granted DESC, a.xact_start NULLS LAST, l.pid
     LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({
    schema: r.schema,
    table: r.table,
    status: r.granted ? 'held' : 'queued',
    pid: r.pid,
    user: r.user,
    application: r.application,
    state: r.state,
    transactionStart: r.xact_start?.toISOString() ?? null,
    queryStart: r.query_start?.toISOString() ?? null,
  }));
}
