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
import type { Connection } from '../contracts';
import { PgferryError, type PgferryErrorCode } from '../errors';
import { connectPg, endQuietly } from './connect';
import { quoteLiteral } from './quote';
import { untranslatableName } from './server-encodings';

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

/**
 * A session for reads outside the dump's snapshot (the second look at the catalog, and who holds
 * a lock pg_dump waits for), opened before pg_dump starts so that it answers at once.
 */
export async function openObserver(
  source: Connection,
  password: string | undefined,
  lockWaitTimeoutMs: number,
): Promise<Client> {
  const client = await connectPg(source, password);
  await client.query(`SET lock_timeout = ${Math.round(lockWaitTimeoutMs)}`);
  return client;
}

/**
 * Begins the dump's snapshot on `client` — REPEATABLE READ, READ ONLY, exported for pg_dump —
 * and starts `read` in it, without waiting: pg_dump is to start at once, for the time between the
 * snapshot and pg_dump's locks is when a rewrite can cost a table its rows. `read` must read the
 * catalog only: the session then holds no lock on any table, so it can neither block DDL nor be
 * blocked by it (waits on the catalog itself end after the lock wait timeout). `release` ends the
 * snapshot's transaction once `read` is done; call it when pg_dump has imported the snapshot.
 */
export async function exportSnapshot<T>(
  client: Client,
  lockWaitTimeoutMs: number,
  read: (client: Client) => Promise<T>,
  /** A snapshot exported elsewhere (a replication slot's) to read in, instead of a new one. */
  imported?: string,
): Promise<{ snapshot: string; read: Promise<T>; release: () => void }> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  await client.query(`SET LOCAL lock_timeout = ${Math.round(lockWaitTimeoutMs)}`);
  if (imported !== undefined) await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(imported)}`);
  const { rows } =
    imported === undefined
      ? await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot')
      : { rows: [{ snapshot: imported }] };
  const reading = read(client);
  reading.catch(() => undefined); // awaited by the caller; a failure must not go unhandled meanwhile
  let released = false;
  return {
    snapshot: rows[0].snapshot,
    read: reading,
    release: () => {
      if (released) return;
      released = true;
      reading.then(() => client.query('COMMIT')).catch(() => undefined);
    },
  };
}

/** pg_dump gave up waiting for a lock: its `--lock-wait-timeout` cancelled the LOCK TABLE. */
export function isLockWaitTimeout(stderr: string): boolean {
  return /canceling statement due to (statement|lock) timeout/i.test(stderr);
}

/** A tool could not get a table lock within the lock wait timeout; the message names the holders. */
export class LockWaitTimeoutError extends PgferryError {}

/**
 * When pg_dump failed because it could not get a lock within the lock wait timeout: an error
 * naming the tables and who holds (or is queued ahead for) their locks now, at the moment of the
 * failure, read through `observer` (a session of the same database). Undefined for any other
 * failure.
 */
export async function lockWaitFailure(
  stderr: string,
  observer: Client | (() => Promise<Client>),
  lockWaitTimeoutMs: number,
  tool = 'pg_dump',
): Promise<PgferryError | undefined> {
  if (!isLockWaitTimeout(stderr)) return undefined;
  const within = `within ${formatMilliseconds(lockWaitTimeoutMs)} (--lock-wait-timeout)`;
  const holders = await readLockHolders(observer);
  if (holders.length === 0) {
    return new LockWaitTimeoutError(
      'DumpFailed',
      `${tool} could not lock its tables ${within}; whoever held the lock has let go since: ${stderr}`,
    );
  }
  const tables = [...new Set(holders.map((h) => `${h.schema}.${h.table}`))];
  return new LockWaitTimeoutError(
    'DumpFailed',
    `${tool} could not lock ${tables.join(', ')} ${within}: ${holders.map(describeHolder).join('; ')}`,
  );
}

async function readLockHolders(observer: Client | (() => Promise<Client>)): Promise<LockHolder[]> {
  if (typeof observer !== 'function') return lockHolders(observer).catch(() => []);
  const client = await observer().catch(() => undefined);
  if (!client) return [];
  try {
    return await lockHolders(client).catch(() => []);
  } finally {
    await endQuietly(client);
  }
}

function describeHolder(h: LockHolder): string {
  const details = [
    `user ${h.user ?? '?'}`,
    `application ${JSON.stringify(h.application ?? '')}`,
    h.state ?? 'state unknown',
    ...(h.transactionStart ? [`transaction started ${h.transactionStart}`] : []),
    ...(h.queryStart ? [`last query started ${h.queryStart}`] : []),
  ];
  const how = h.status === 'held' ? 'held' : 'awaited (queued ahead of pg_dump)';
  return `ACCESS EXCLUSIVE lock on ${h.schema}.${h.table} ${how} by pid ${h.pid} (${details.join(', ')})`;
}

/** `2s`, `5min`, `1500ms`: a duration as the user would have written it. */
export function formatMilliseconds(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}min`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * When the catalog read in the snapshot (`read`, see {@link exportSnapshot}) failed on a name with
 * no UTF-8 equivalent, which fails the snapshot pg_dump imports too ("could not import the
 * requested snapshot"): that cause, in one line (`untranslatableName`) ending with `outcome`;
 * undefined when the read succeeded or failed otherwise.
 */
export function untranslatableRead(
  read: Promise<unknown>,
  database: string,
  code: PgferryErrorCode,
  outcome = '',
): Promise<PgferryError | undefined> {
  return read.then(
    () => undefined,
    (err: unknown) => {
      const untranslatable = untranslatableName(err, database);
      return untranslatable === undefined ? undefined : new PgferryError(code, `${untranslatable}${outcome}`);
    },
  );
}
