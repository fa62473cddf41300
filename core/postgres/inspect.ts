/**
 * What pgferry reads of a server and its databases: the server's version and identity, a
 * database's existence, properties, contents (row counts, sequences, objects) and what restoring
 * it needs (see requirements.ts for the locale, collations and lz4).
 */
import type { Client } from 'pg';
import type { Connection, DatabaseProperties, Requirements } from '../contracts';
import { PgferryError } from '../errors';
import { connectPg, endQuietly, inTransaction } from './connect';
import { quoteIdent } from './quote';
import { readCollationRequirements, readDatabaseLocale, readLz4Columns } from './requirements';

/** `server_version` as reported, e.g. "17.10", and its major. Servers before 10 are refused. */
export async function serverInfo(client: Client): Promise<{ version: string; major: number }> {
  const { rows } = await client.query<{ version: string; num: string }>(
    "SELECT current_setting('server_version') AS version, current_setting('server_version_num') AS num",
  );
  const num = Number(rows[0].num);
  if (num < 100000) {
    throw new PgferryError(
      'InvalidInput',
      `PostgreSQL ${rows[0].version} is not supported (10 or newer is needed)`,
    );
  }
  const major = Math.floor(num / 10000);
  return { version: rows[0].version.split(' ')[0], major };
}

/**
 * The cluster's system identifier (`pg_control_system()`, PostgreSQL 9.6 and later): set by
 * initdb, the same on its physical replicas and on restores of its snapshots. `undefined` where
 * the session may not read it (a managed service may revoke it).
 */
export async function systemIdentifier(client: Client): Promise<string | undefined> {
  try {
    const { rows } = await client.query<{ id: string | null }>(
      'SELECT system_identifier::text AS id FROM pg_control_system()',
    );
    return rows[0]?.id ?? undefined;
  } catch {
    return undefined;
  }
}

/** The size of the client's database on disk (`pg_database_size`), in bytes. */
export async function databaseSize(client: Client): Promise<number> {
  const { rows } = await client.query<{ size: string }>(
    'SELECT pg_database_size(current_database()) AS size',
  );
  return Number(rows[0].size);
}

/**
 * How many more connections the client's login can open to its database now: the server's
 * `max_connections` less the slots reserved for superusers (and, from PostgreSQL 16,
 * `reserved_connections`) and the client backends connected, and no more than the role's and the
 * database's connection limits leave (a superuser is held to neither, and may use the reserved
 * slots). The client's own connection is among those counted.
 */
export async function freeConnections(client: Client): Promise<number> {
  // A superuser may use the reserved slots and is held to neither limit.
  const { rows } = await client.query<{ free: number }>(
    `WITH me AS (SELECT rolsuper, rolconnlimit FROM pg_roles WHERE rolname = current_user)
     SELECT least(
       current_setting('max_connections')::int
         - CASE WHEN (SELECT rolsuper FROM me) THEN 0 ELSE
             current_setting('superuser_reserved_connections')::int
             + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) END
         - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int,
       (SELECT CASE WHEN NOT rolsuper AND rolconnlimit >= 0
          THEN rolconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user)::int
        END FROM me),
       (SELECT CASE WHEN NOT (SELECT rolsuper FROM me) AND datconnlimit >= 0
          THEN datconnlimit - (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::int
        END FROM pg_database WHERE datname = current_database())
     ) AS free`,
  );
  return rows[0].free;
}

/**
 * What a dump of the client's database will roughly write: its tables' data on disk (heap and
 * TOAST, as `pg_table_size` counts them) and its large objects' — no index, and no materialized
 * view's data (a dump refreshes them). The estimate a backup's or a migration's progress is shown
 * against; plain text often takes less room than the rows on disk, so the dump usually ends short
 * of it.
 *
 * Reading a table's size takes a share lock on it, so a table another session holds locked (an
 * ALTER, a rewrite, an explicit LOCK, or one queued behind them) would hold this up for as long —
 * before pg_dump, whose wait `--lock-wait-timeout` bounds, has even started. So the read gives up
 * after `lockTimeoutMs`: an estimate is not worth a stuck run. It runs in a transaction of its own,
 * so the client must be in none.
 */
export async function tableDataSize(client: Client, lockTimeoutMs = 1000): Promise<number> {
  return inTransaction(client, async () => {
    await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
    const { rows } = await client.query<{ size: string }>(
      `SELECT coalesce(sum(pg_table_size(c.oid)), 0) + pg_table_size('pg_catalog.pg_largeobject') AS size
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    );
    return Number(rows[0].size);
  });
}

/**
 * `tableDataSize` of the database `connection` names, in a session of its own; `undefined` when it
 * cannot be read (the server unreachable, a table locked): the progress then shows no total.
 */
export async function estimateDumpSize(
  connection: Connection,
  password: string | undefined,
): Promise<number | undefined> {
  try {
    const client = await connectPg(connection, password);
    try {
      return await tableDataSize(client);
    } finally {
      await endQuietly(client);
    }
  } catch {
    return undefined;
  }
}

/**
 * {@link estimateDumpSize} read beside the dump (a backup's, a migration's) instead of before it:
 * the returned function gives the estimate once it has arrived, `undefined` until then (or when it
 * cannot be read). Reading
 * every table's size takes its time where the tables are many (1.1–2.5 s for 4,000 tables of 100
 * rows, more than pg_dump took to start dumping them), which the dump need not wait for: its
 * progress shows no total until then.
 */
export function dumpSizeAsRead(
  connection: Connection,
  password: string | undefined,
): () => number | undefined {
  let size: number | undefined;
  void estimateDumpSize(connection, password).then((bytes) => {
    size = bytes;
  });
  return () => size;
}

/** The extensions installed in the client's database, but plpgsql (every database has it). */
export async function readExtensions(client: Client): Promise<{ name: string; version: string }[]> {
  const { rows } = await client.query<{ name: string; version: string }>(
    "SELECT extname AS name, extversion AS version FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1",
  );
  return rows;
}

/**
 * The user tables (ordinary and partitioned, not the system's) of the client's database: what a
 * clean restore would replace, and so the measure of "empty" it refuses to replace unforced.
 */
export async function countUserTables(client: Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`
    SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%'`);
  return Number(rows[0].n);
}

/**
 * The user objects of the client's database — relations (tables, views, materialized views,
 * sequences, foreign tables), functions, and extensions but plpgsql: a database a migration
 * creates into must have none (it is dropped and created again only when forced).
 */
export async function countUserObjects(client: Client): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`
    SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%')
         + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%')
         + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS n`);
  return Number(rows[0].n);
}

/** Whether the server is a hot standby (in recovery): read-only, and not where writes happen. */
export async function isStandby(client: Client): Promise<boolean> {
  const { rows } = await client.query<{ standby: boolean }>('SELECT pg_is_in_recovery() AS standby');
  return rows[0].standby;
}

/** The server's databases one can connect to (not the templates), by name. */
export async function connectableDatabases(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ datname: string }>(
    'SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname',
  );
  return rows.map((r) => r.datname);
}

/** The names of the extensions the server offers (`pg_available_extensions`), installed or not. */
export async function availableExtensions(client: Client): Promise<Set<string>> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM pg_available_extensions');
  return new Set(rows.map((r) => r.name));
}

/** Whether the server has a database called `name`. */
export async function databaseExists(client: Client, name: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return rows.length > 0;
}

/**
 * Tables counted by one statement of {@link countRows}: a round trip each took ~1 ms, 2 s of a
 * restore of 2,000 small tables.
 */
export const TABLES_PER_COUNT = 100;

/**
 * Each table's row count in the client's database (`count(*)` of the table itself, not its
 * children), {@link TABLES_PER_COUNT} tables to a statement.
 */
export async function countRows<T extends { schema: string; name: string }>(
  client: Client,
  tables: readonly T[],
): Promise<(T & { restoredRows: number })[]> {
  const counted = await selectEach<T, { n: string }>(
    client,
    tables,
    TABLES_PER_COUNT,
    (t) => `count(*) AS n FROM ONLY ${quoteIdent(t.schema)}.${quoteIdent(t.name)}`,
  );
  return tables.map((t, i) => ({ ...t, restoredRows: Number(counted[i].n) }));
}

/**
 * One row of `SELECT <select(item)>` for each of `items`, `perStatement` of them to a statement
 * (their UNION ALL): a round trip per statement, not per item, and no more locks held at once than
 * a statement takes. The rows in `items`' order.
 */
async function selectEach<T, R extends object>(
  client: Client,
  items: readonly T[],
  perStatement: number,
  select: (item: T) => string,
): Promise<R[]> {
  const out: R[] = [];
  for (let start = 0; start < items.length; start += perStatement) {
    const some = items.slice(start, start + perStatement);
    const { rows } = await client.query<R & { i: number }>(
      some.map((item, i) => `SELECT ${i} AS i, ${select(item)}`).join(' UNION ALL '),
    );
    const byIndex = new Map(rows.map((r) => [Number(r.i), r]));
    for (let i = 0; i < some.length; i++) out.push(byIndex.get(i) as R);
  }
  return out;
}

/**
 * What a target must offer to restore this database: its encoding and locale, extensions, roles,
 * collations and lz4 (see requirements.ts).
 */
export async function readRequirements(client: Client): Promise<Requirements> {
  const { encoding, locale } = await readDatabaseLocale(client);
  // Owners of, and roles granted privileges on, the database's objects (not the system's).
  const roles = await client.query<{ role: string }>(`
    WITH objects AS (
      SELECT relowner AS owner, relacl AS acl FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT nspowner, nspacl FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg_%'
      UNION ALL SELECT proowner, proacl FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
      UNION ALL SELECT typowner, typacl FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      UNION ALL SELECT lomowner, lomacl FROM pg_largeobject_metadata
      UNION ALL SELECT datdba, datacl FROM pg_database WHERE datname = current_database()
    ), oids AS (
      SELECT owner AS oid FROM objects
      UNION SELECT (aclexplode(acl)).grantee FROM objects WHERE acl IS NOT NULL
    )
    SELECT rolname AS role FROM pg_roles WHERE oid IN (SELECT oid FROM oids) ORDER BY 1`);
  return {
    encoding,
    extensions: await readExtensions(client),
    roles: roles.rows.map((r) => r.role),
    locale,
    collations: await readCollationRequirements(client),
    lz4Columns: await readLz4Columns(client),
  };
}

/** Owner, comment, settings and grants of the database itself. */
export async function readDatabaseProperties(client: Client): Promise<DatabaseProperties> {
  const { rows } = await client.query<{ owner: string; comment: string | null; acl: boolean }>(`
    SELECT pg_get_userbyid(datdba) AS owner, shobj_description(oid, 'pg_database') AS comment,
           datacl IS NOT NULL AS acl
    FROM pg_database WHERE datname = current_database()`);
  const settings = await client.query<{ role: string | null; setting: string }>(`
    SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END AS role, c.setting
    FROM pg_db_role_setting s, unnest(s.setconfig) AS c(setting)
    WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY 1 NULLS FIRST, 2`);
  const grants = await client.query<{ grantee: string; privilege: string; grantable: boolean }>(`
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
           a.privilege_type AS privilege, a.is_grantable AS grantable
    FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() ORDER BY 1, 2`);
  return {
    owner: rows[0].owner,
    comment: rows[0].comment,
    settings: settings.rows,
    grants: rows[0].acl ? grants.rows : null,
  };
}

const USER_NAMESPACE = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;
const notExtensionMember = (catalog: string, oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;

export interface SequenceState {
  schema: string;
  name: string;
  /** `last_value`, as text (a bigint). */
  lastValue: string;
  isCalled: boolean;
  /** Its increment is negative. */
  descending: boolean;
}

/**
 * How many sequences are read (here) or set (`setSequences`) per statement: each holds a lock on
 * every sequence it reads or sets.
 */
export const SEQUENCES_PER_QUERY = 100;

/**
 * Every user sequence's `last_value`, `is_called` and direction, keyed by schema and name. Each
 * statement reads a hundred of them, so that no more locks are held at once.
 */
export async function sequenceStates(client: Client): Promise<Map<string, SequenceState>> {
  const { rows } = await client.query<{ schema: string; name: string; descending: boolean }>(`
    SELECT n.nspname AS schema, c.relname AS name, s.seqincrement < 0 AS descending
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
    WHERE c.relkind = 'S' AND ${USER_NAMESPACE} AND ${notExtensionMember('pg_class', 'c.oid')} ORDER BY 1, 2`);
  const read = await selectEach<(typeof rows)[number], { last_value: string; is_called: boolean }>(
    client,
    rows,
    SEQUENCES_PER_QUERY,
    (s) => `last_value::text AS last_value, is_called FROM ${quoteIdent(s.schema)}.${quoteIdent(s.name)}`,
  );
  return new Map(
    rows.map((s, i) => [
      JSON.stringify([s.schema, s.name]),
      { ...s, lastValue: read[i].last_value, isCalled: read[i].is_called },
    ]),
  );
}

export function describeSequence(s: SequenceState): string {
  return `${s.lastValue}:${s.isCalled}`;
}

/**
 * Whether the target's sequence has handed out at least what the source's had at the snapshot:
 * under writes the dump carries the value pg_dump read, later than the snapshot, so it may be
 * further along (larger; smaller for a descending sequence), never behind.
 */
export function sequenceCaughtUp(
  source: Pick<SequenceState, 'lastValue' | 'isCalled' | 'descending'>,
  target: Pick<SequenceState, 'lastValue' | 'isCalled'>,
): boolean {
  const [s, t] = [BigInt(source.lastValue), BigInt(target.lastValue)];
  if (s === t) return target.isCalled || !source.isCalled;
  return source.descending ? t < s : t > s;
}

/**
 * How many objects of each kind the database has (its own, not the system's or extensions').
 * NOT NULL constraints (`contype = 'n'`) are left out: newer servers catalogue them (domains from
 * 17, columns from 18) where older ones do not, and so are the triggers that implement foreign keys
 * (15 marks those on partitions internal, 14 does not), and triggers cloned onto partitions (14
 * marks those internal, 15 does not): their counts differ with nothing lost.
 */
export async function objectCounts(client: Client): Promise<Map<string, number>> {
  const { rows } = await client.query<{ kind: string; n: string }>(`
    SELECT kind, count(*) AS n FROM (
      SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
               WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
               WHEN 'i' THEN 'index' WHEN 'I' THEN 'partitioned index' WHEN 'c' THEN 'composite type' END AS kind
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I', 'c') AND ${USER_NAMESPACE}
          AND ${notExtensionMember('pg_class', 'c.oid')}
      UNION ALL
      SELECT CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
               ELSE 'window function' END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE ${USER_NAMESPACE} AND ${notExtensionMember('pg_proc', 'p.oid')}
      UNION ALL
      SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' ELSE 'range' END
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('e', 'd', 'r') AND ${USER_NAMESPACE} AND ${notExtensionMember('pg_type', 't.oid')}
      UNION ALL
      SELECT 'constraint' FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
        WHERE k.contype <> 'n' AND ${USER_NAMESPACE}
      UNION ALL
      SELECT 'trigger' FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT g.tgisinternal AND ${USER_NAMESPACE}
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = g.tgconstraint AND k.contype = 'f')
          AND g.tgparentid = 0
      UNION ALL
      SELECT 'policy' FROM pg_policy
      UNION ALL
      SELECT 'rule' FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND ${USER_NAMESPACE}
      UNION ALL
      SELECT 'schema' FROM pg_namespace n WHERE ${USER_NAMESPACE}
      UNION ALL
      SELECT 'extension' FROM pg_extension
      UNION ALL
      SELECT 'large object' FROM pg_largeobject_metadata
    ) objects GROUP BY kind ORDER BY kind`);
  return new Map(rows.map((r) => [r.kind, Number(r.n)]));
}
