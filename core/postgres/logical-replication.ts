/**
 * An online migration's logical replication (`pgferry migrate --online`): what the source and the
 * target must offer (the preflight's refusals), the publication and the slot on the source — the
 * slot created with an exported snapshot, which the copy is made at — the subscription on the
 * target that applies the changes made since, the lag, the cutover's wait and sequences, and
 * removing all of it. Every object is named `pgferry_<migration id>`, so a slot a crashed run left
 * behind is recognisable; so is the schema of the cutover's sentinel (`sentinelTable`).
 */
import type { Client } from 'pg';
import type { Connection } from '../contracts';
import { errorMessage, PgferryError } from '../errors';
import { inTransaction } from './connect';
import { SEQUENCES_PER_QUERY, type SequenceState } from './inspect';
import { conninfoValue, quoteIdent, quoteLiteral } from './quote';
import { describeSessions } from './target-sessions';

/** The prefix of every replication object an online migration creates. */
export const REPLICATION_PREFIX = 'pgferry_';

/** The name of a migration's publication, slot and subscription: `pgferry_<id>`, lower case. */
export function replicationName(migrateId: string): string {
  return `${REPLICATION_PREFIX}${migrateId.toLowerCase().replace(/[^a-z0-9]/g, '_')}`;
}

const USER_TABLE = `c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`;

/** Of a table `c` of pg_class: it has no replica identity (NOTHING, or DEFAULT without a primary key). */
const WITHOUT_IDENTITY = `(c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS
  (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))`;

const tableName = (r: { schema: string; name: string }) => `${quoteIdent(r.schema)}.${quoteIdent(r.name)}`;

/** Lists at most 5 names, then how many more. */
function some(names: string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(', ')} and ${names.length - 5} more` : names.join(', ');
}

/** The ordinary tables (partitions included) without a primary key and with the default replica identity. */
export async function tablesWithoutReplicaIdentity(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_TABLE} AND c.relpersistence = 'p' AND ${WITHOUT_IDENTITY}
    ORDER BY 1, 2`);
  return rows.map(tableName);
}

/**
 * Everything on the source database that refuses an online migration, each with what to do: an
 * empty list lets it go ahead. `replicaIdentityFull`: tables without a key are accepted (the
 * migration sets their replica identity to FULL for its duration).
 */
export async function onlineSourceProblems(
  client: Client,
  opts: { database: string; replicaIdentityFull: boolean },
): Promise<string[]> {
  const problems: string[] = [];
  const { rows: settings } = await client.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders')`,
  );
  const setting = (name: string) => settings.find((s) => s.name === name)?.setting ?? '';
  if (setting('wal_level') !== 'logical') {
    problems.push(
      `the source's wal_level is ${setting('wal_level')}, not logical: set wal_level = logical ` +
        '(on RDS and Aurora: the parameter rds.logical_replication = 1 in the parameter group) and restart the server',
    );
  }
  const { rows: used } = await client.query<{ slots: number; senders: number }>(`
    SELECT (SELECT count(*) FROM pg_replication_slots)::int AS slots,
           (SELECT count(*) FROM pg_stat_replication)::int AS senders`);
  if (used[0].slots >= Number(setting('max_replication_slots'))) {
    problems.push(
      `the source has no free replication slot (${used[0].slots} of max_replication_slots = ${setting('max_replication_slots')} in use): ` +
        'raise max_replication_slots (a restart) or drop an unused slot',
    );
  }
  if (used[0].senders >= Number(setting('max_wal_senders'))) {
    problems.push(
      `the source has no free WAL sender (${used[0].senders} of max_wal_senders = ${setting('max_wal_senders')} in use): raise max_wal_senders (a restart)`,
    );
  }
  const { rows: role } = await client.query<{ superuser: boolean; replication: boolean; rds: boolean }>(`
    SELECT r.rolsuper AS superuser, r.rolreplication AS replication,
           EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication'
                   AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS rds
    FROM pg_roles r WHERE r.rolname = current_user`);
  if (!role[0].superuser && !role[0].replication && !role[0].rds) {
    problems.push(
      'the source login may not replicate: give it the REPLICATION attribute (ALTER ROLE … REPLICATION), ' +
        'on RDS and Aurora the rds_replication role (GRANT rds_replication TO …)',
    );
  }
  if (!role[0].superuser) {
    const { rows } = await client.query<{ schema: string; name: string }>(`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_TABLE} AND NOT pg_has_role(c.relowner, 'USAGE') ORDER BY 1, 2`);
    if (rows.length) {
      problems.push(
        `the source login does not own ${some(rows.map(tableName))}: a publication of a table needs its owner ` +
          '(migrate as the tables’ owner, or as a superuser)',
      );
    }
  }
  const { rows: create } = await client.query<{ login: string; ok: boolean }>(
    `SELECT current_user AS login, has_database_privilege(oid, 'CREATE') AS ok FROM pg_database WHERE datname = $1`,
    [opts.database],
  );
  if (create[0] && !create[0].ok) {
    problems.push(
      `the source login may not create in the database ${quoteIdent(opts.database)}, as the migration's publication ` +
        `and the cutover's sentinel schema do: GRANT CREATE ON DATABASE ${quoteIdent(opts.database)} TO ${quoteIdent(create[0].login)}`,
    );
  }
  const withoutIdentity = await tablesWithoutReplicaIdentity(client);
  if (withoutIdentity.length && !opts.replicaIdentityFull) {
    problems.push(
      `tables without a primary key or replica identity, whose updates and deletes logical replication cannot apply: ` +
        `${some(withoutIdentity)} (add a primary key, or pass --replica-identity-full: every update and delete then logs the whole old row)`,
    );
  }
  const { rows: unlogged } = await client.query<{ schema: string; name: string }>(`
    SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_TABLE} AND c.relpersistence = 'u' ORDER BY 1, 2`);
  if (unlogged.length) {
    problems.push(
      `unlogged tables, whose changes are not in the WAL logical replication reads: ${some(unlogged.map(tableName))} ` +
        '(ALTER TABLE … SET LOGGED, or migrate with --freeze-source)',
    );
  }
  const { rows: lobs } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_largeobject_metadata',
  );
  if (lobs[0].n > 0) {
    problems.push(
      `${lobs[0].n} large objects, which logical replication does not carry: migrate with --freeze-source, or move them into bytea columns`,
    );
  }
  const leftovers = await replicationLeftovers(client, opts.database);
  if (leftovers.length) {
    problems.push(
      `a replication slot an earlier online migration left on the source (it keeps WAL, which fills the disk): ` +
        `${leftovers.map((l) => `${l.slot}${l.active ? ' (active: a migration may be running)' : ''}`).join(', ')}; ` +
        `drop it when no migration runs: ${leftovers.map((l) => dropCommand(l.slot)).join(' ')}`,
    );
  }
  return problems;
}

/**
 * What a target needs to subscribe: a superuser (on RDS and Aurora a member of rds_superuser); from
 * PostgreSQL 16 a member of pg_create_subscription will do. The refusal names what to grant, for
 * the target's major.
 */
export async function onlineTargetProblems(client: Client, major: number): Promise<string[]> {
  const { rows } = await client.query<{ ok: boolean; login: string }>(`
    SELECT current_user AS login, r.rolsuper OR EXISTS (SELECT 1 FROM pg_roles g
      WHERE g.rolname IN ('rds_superuser', 'pg_create_subscription') AND pg_has_role(r.oid, g.oid, 'MEMBER')) AS ok
    FROM pg_roles r WHERE r.rolname = current_user`);
  if (rows[0].ok) return [];
  const login = quoteIdent(rows[0].login);
  return [
    major >= 16
      ? `the target login ${login} may not create a subscription: GRANT pg_create_subscription TO ${login} ` +
        '(on RDS and Aurora: GRANT rds_superuser), or migrate as a superuser of the target'
      : `the target login ${login} may not create a subscription: on PostgreSQL ${major} only a superuser may ` +
        '(on RDS and Aurora a member of rds_superuser): migrate as one, e.g. ALTER ROLE … SUPERUSER',
  ];
}

interface Leftover {
  slot: string;
  active: boolean;
}

/** Slots named like an online migration's on `database` (any run's). */
export async function replicationLeftovers(client: Client, database: string): Promise<Leftover[]> {
  const { rows } = await client.query<Leftover>(
    `SELECT slot_name AS slot, active FROM pg_replication_slots
     WHERE database = $1 AND slot_name LIKE 'pgferry\\_%' ORDER BY 1`,
    [database],
  );
  return rows;
}

function dropCommand(name: string): string {
  return `SELECT pg_drop_replication_slot(${quoteLiteral(name)}); DROP PUBLICATION IF EXISTS ${quoteIdent(name)};`;
}

/** What a publication's comment says of the tables it set to REPLICA IDENTITY FULL (see {@link createPublication}). */
const IDENTITY_NOTE = 'pgferry: REPLICA IDENTITY FULL for this migration, reset after: ';

/** A table an online migration gave REPLICA IDENTITY FULL, and the identity it had before. */
interface IdentityChange {
  table: string;
  was: 'DEFAULT' | 'NOTHING';
}

/**
 * A publication of every ordinary table of the database (by name, so the tables' owner may create
 * it; FOR ALL TABLES needs a superuser). A table created later is not in it: the DDL check stops
 * such a migration. With `replicaIdentityFull`, the tables without a replica identity get FULL in
 * the same transaction, and the publication's comment records them and what they had: whoever drops
 * the publication ({@link dropPublicationAndSlot}: the runner, or the workflow's cleanup after the
 * runner was killed) gives them back their identity. Returns those tables.
 */
export async function createPublication(
  client: Client,
  name: string,
  opts: { replicaIdentityFull?: boolean } = {},
): Promise<string[]> {
  const { rows } = await client.query<{ schema: string; name: string; keyless: boolean; ident: string }>(`
    SELECT n.nspname AS schema, c.relname AS name, c.relreplident AS ident, ${WITHOUT_IDENTITY} AS keyless
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ${USER_TABLE} AND c.relpersistence = 'p' ORDER BY 1, 2`);
  const tables = rows.map(tableName);
  const changes: IdentityChange[] = opts.replicaIdentityFull
    ? rows
        .filter((r) => r.keyless)
        .map((r) => ({ table: tableName(r), was: r.ident === 'n' ? 'NOTHING' : 'DEFAULT' }))
    : [];
  await inTransaction(client, async () => {
    for (const { table } of changes) await client.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await client.query(
      tables.length
        ? `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tables.join(', ')}`
        : `CREATE PUBLICATION ${quoteIdent(name)}`,
    );
    // Always: the note also marks the publication as the migration's own where pg_dump's
    // snapshot carries it (the target, a restore of the archived backup: {@link dropOwnPublications}).
    await client.query(
      `COMMENT ON PUBLICATION ${quoteIdent(name)} IS ${quoteLiteral(IDENTITY_NOTE + JSON.stringify(changes))}`,
    );
  });
  return changes.map((c) => c.table);
}

/**
 * Creates the logical slot (pgoutput) on a replication connection (`connectPg(…, 'database')`),
 * exporting its snapshot: the copy made at that snapshot and the changes the slot streams after it
 * meet exactly. The snapshot lives until the connection's next command or its end, so the caller
 * keeps it open, idle, until pg_dump has imported it.
 */
export async function createSlotWithSnapshot(
  replication: Client,
  name: string,
  major: number,
): Promise<{ snapshot: string; consistentPoint: string }> {
  // 15 introduced the options list; 14 knows only the keyword.
  const options = major >= 15 ? `(SNAPSHOT 'export')` : 'EXPORT_SNAPSHOT';
  const { rows } = await replication.query<{ snapshot_name: string; consistent_point: string }>(
    `CREATE_REPLICATION_SLOT ${quoteIdent(name)} LOGICAL pgoutput ${options}`,
  );
  return { snapshot: rows[0].snapshot_name, consistentPoint: rows[0].consistent_point };
}

/**
 * libpq conninfo for the target's subscription to reach the source, password included: the
 * target keeps it in `pg_subscription.subconninfo` (readable by superusers only) until the
 * subscription is dropped. The host is the source's as the migration reaches it: the target
 * server must reach it there too.
 */
function subscriptionConninfo(source: Connection, password: string | undefined): string {
  return [
    `host=${conninfoValue(source.host)}`,
    `port=${source.port}`,
    `user=${conninfoValue(source.user)}`,
    `dbname=${conninfoValue(source.database)}`,
    `sslmode=${conninfoValue(source.sslmode)}`,
    ...(source.sslrootcert ? [`sslrootcert=${conninfoValue(source.sslrootcert)}`] : []),
    ...(password === undefined ? [] : [`password=${conninfoValue(password)}`]),
  ].join(' ');
}

/**
 * Creates the subscription on the target database (the client's), on the existing slot, without
 * copying (the copy was made at the slot's snapshot). The statement holds the source's password:
 * it runs with statement logging off and pg_stat_statements not tracking it, where the login may
 * set those.
 */
export async function createSubscription(
  client: Client,
  opts: { name: string; source: Connection; sourcePassword: string | undefined },
): Promise<void> {
  const conninfo = subscriptionConninfo(opts.source, opts.sourcePassword);
  await client.query('BEGIN');
  try {
    for (const [setting, value] of [
      ['log_statement', 'none'],
      ['log_min_duration_statement', '-1'],
      ['log_min_error_statement', 'panic'],
      ['pg_stat_statements.track_utility', 'off'],
    ]) {
      await client.query('SAVEPOINT quiet');
      await client
        .query('SELECT set_config($1, $2, true)', [setting, value])
        .catch(() => client.query('ROLLBACK TO SAVEPOINT quiet'));
    }
    const name = quoteIdent(opts.name);
    await client.query(
      `CREATE SUBSCRIPTION ${name} CONNECTION ${quoteLiteral(conninfo)} PUBLICATION ${name} ` +
        `WITH (create_slot = false, slot_name = ${quoteLiteral(opts.name)}, copy_data = false, enabled = true)`,
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    // The server's message names the failure (e.g. the target cannot reach the source), never the
    // statement; the password is taken out of it all the same.
    const message = String((err as Error).message ?? err);
    const redacted = opts.sourcePassword ? message.split(opts.sourcePassword).join('***') : message;
    throw new PgferryError('MigrateFailed', `the target could not subscribe to the source: ${redacted}`);
  }
}

/** The source's current WAL position, and how far behind it the slot's subscriber has confirmed. */
export async function slotLag(
  client: Client,
  slot: string,
): Promise<{ currentLsn: string; confirmedLsn: string | null; lagBytes: number; active: boolean }> {
  const { rows } = await client.query<{
    current: string;
    confirmed: string | null;
    lag: string | null;
    active: boolean;
  }>(
    `SELECT pg_current_wal_lsn()::text AS current, confirmed_flush_lsn::text AS confirmed,
            pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint::text AS lag, active
     FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  if (!rows.length)
    throw new PgferryError('MigrateFailed', `the replication slot ${slot} is gone from the source`);
  const r = rows[0];
  return {
    currentLsn: r.current,
    confirmedLsn: r.confirmed,
    lagBytes: Math.max(0, Number(r.lag ?? 0)),
    active: r.active,
  };
}

/**
 * The cutover's sentinel: a table of the migration's own, `"pgferry_<id>".sentinel` (in a schema
 * named as the publication, slot and subscription, which no user object is), on both sides,
 * published and subscribed to. After the freeze the cutover writes a row to it on the source and
 * waits until the target has that row: the subscription applies the source's transactions one
 * after the other in commit order, so the row there proves every transaction committed before it
 * is applied there too. The slot's confirmed position proves no such thing: a subscriber with
 * nothing of its own left to flush confirms everything it has received, applied or not (seen: a
 * write held by a row lock on the target was lost at the cutover).
 *
 * The table is created after the slot's snapshot (the copy never has it: not in the archive, the
 * checks or the report) and before the subscription, which must find it on the target and in the
 * publication to apply its rows (a table the subscription does not know is skipped silently).
 */
export function sentinelTable(name: string): string {
  return `${quoteIdent(name)}.sentinel`;
}

/**
 * Creates the sentinel's schema and table with the client's login (source or target), in one
 * transaction; on the source (`publish`) the table joins the publication `name`. A schema of that
 * name already there is an error, never reused.
 */
export async function createSentinel(client: Client, name: string, publish: boolean): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`CREATE SCHEMA ${quoteIdent(name)}`);
    await client.query(
      `CREATE TABLE ${sentinelTable(name)} (token text PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())`,
    );
    if (publish) await client.query(`ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${sentinelTable(name)}`);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Writes the sentinel's row `token` on the source (a session that may write through the freeze). */
export async function writeSentinel(client: Client, name: string, token: string): Promise<void> {
  await client.query(`INSERT INTO ${sentinelTable(name)} (token) VALUES ($1)`, [token]);
}

/** Whether the target has applied the sentinel's row `token`. */
export async function sentinelArrived(client: Client, name: string, token: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM ${sentinelTable(name)} WHERE token = $1) AS ok`,
    [token],
  );
  return rows[0]?.ok === true;
}

/**
 * Drops the sentinel's table and then its schema, if they exist (on the source, dropping the table
 * takes it out of the publication). The schema is dropped only when empty: whatever else is in it
 * is not the migration's, and stays.
 */
export async function dropSentinel(client: Client, name: string): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${sentinelTable(name)}`);
  await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(name)}`).catch((err: unknown) => {
    // 2BP01: other objects are in it.
    if ((err as { code?: string }).code !== '2BP01') throw err;
  });
}

/** How many times the subscription's apply failed (a conflict, a missing column), from 15 on; 0 before. */
export async function subscriptionApplyErrors(client: Client, name: string, major: number): Promise<number> {
  if (major < 15) return 0;
  const { rows } = await client.query<{ n: string }>(
    'SELECT apply_error_count::text AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [name],
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Sets each sequence on the target to the source's state, so its next value is past the source's:
 * {@link SEQUENCES_PER_QUERY} to a statement. It runs in the cutover, while the source takes no
 * writes: one round trip each was ~1 ms of that per sequence.
 */
export async function setSequences(client: Client, states: Iterable<SequenceState>): Promise<void> {
  const all = [...states];
  for (let start = 0; start < all.length; start += SEQUENCES_PER_QUERY) {
    const some = all.slice(start, start + SEQUENCES_PER_QUERY);
    await client.query(
      `SELECT count(setval(s::regclass, v, c)) FROM unnest($1::text[], $2::bigint[], $3::boolean[]) AS t(s, v, c)`,
      [some.map(tableName), some.map((s) => s.lastValue), some.map((s) => s.isCalled)],
    );
  }
}

/**
 * Drops the subscription on the target database (the client's), leaving the slot to
 * `dropPublicationAndSlot`: detached from its slot first, so that dropping it neither needs the
 * source nor waits on it. Nothing to drop is no error.
 */
export async function dropSubscription(client: Client, name: string): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name]);
  if (!rows.length) return false;
  const sub = quoteIdent(name);
  await client.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
  await client.query(`ALTER SUBSCRIPTION ${sub} SET (slot_name = NONE)`);
  await client.query(`DROP SUBSCRIPTION ${sub}`);
  return true;
}

/**
 * Drops the publication, and gives the tables it set to REPLICA IDENTITY FULL (its comment says
 * which) back the identity they had — in one transaction: a keyless table still published would
 * refuse its updates.
 */
async function dropPublication(client: Client, name: string): Promise<void> {
  await inTransaction(client, async () => {
    const { rows } = await client.query<{ note: string | null }>(
      `SELECT obj_description(oid, 'pg_publication') AS note FROM pg_publication WHERE pubname = $1`,
      [name],
    );
    const note = rows[0]?.note;
    const changes: IdentityChange[] = note?.startsWith(IDENTITY_NOTE)
      ? JSON.parse(note.slice(IDENTITY_NOTE.length))
      : [];
    await client.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
    for (const { table, was } of changes) {
      // A table dropped since is nothing to reset.
      await client.query(
        `ALTER TABLE IF EXISTS ${table} REPLICA IDENTITY ${was === 'NOTHING' ? 'NOTHING' : 'DEFAULT'}`,
      );
    }
  });
}

/**
 * The online migrations' own publications in the client's database, dropped with the REPLICA
 * IDENTITY FULL they gave tables reset (each in one transaction, as {@link dropPublication}): a
 * copy made in the migration's snapshot (pg_dump's, so the migrated target and a restore of the
 * archived backup) carries the publication, its comment and the identity, none of them the
 * source's own. A publication is the migration's by its comment (see {@link createPublication}),
 * or by its name (`also`: the migration's own, whose comment older versions left out). `among`
 * limits the drop to those names (a restore's: the publications its archive carries, so that a
 * clean restore never drops a live migration's publication in the database it restores into).
 * Returns the names dropped.
 */
export async function dropOwnPublications(
  client: Client,
  names: { also?: string; among?: readonly string[] } = {},
): Promise<string[]> {
  if (names.among?.length === 0) return [];
  const { rows } = await client.query<{ name: string }>(
    `SELECT pubname AS name FROM pg_publication
     WHERE (starts_with(coalesce(obj_description(oid, 'pg_publication'), ''), $1) OR pubname = $2)
       AND ($3::text[] IS NULL OR pubname = ANY ($3::text[]))
     ORDER BY 1`,
    [IDENTITY_NOTE, names.also ?? null, names.among ?? null],
  );
  for (const { name } of rows) await dropPublication(client, name);
  return rows.map((r) => r.name);
}

/**
 * Drops the publication and the slot on the source (the client's database), ending the WAL sender
 * that still holds the slot; the tables the publication set to REPLICA IDENTITY FULL get their own
 * back. Nothing to drop is no error. A slot whose WAL sender the login may not end (a superuser's:
 * RDS's master user is not one), or that is still active after 20 tries (its consumer reconnects),
 * is not waited on: the error names the session that holds it and how to end it.
 */
export async function dropPublicationAndSlot(client: Client, name: string): Promise<void> {
  await dropPublication(client, name);
  for (let attempt = 0; ; attempt++) {
    const { rows } = await client.query<{ pid: number | null }>(
      'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1',
      [name],
    );
    if (!rows.length) return;
    if (rows[0].pid !== null) {
      await client
        .query('SELECT pg_terminate_backend($1, 5000)', [rows[0].pid])
        .catch(async (err: unknown) => {
          // 42501: the login may not end that WAL sender (a superuser's).
          if ((err as { code?: string }).code === '42501') throw (await slotHolder(client, name, err)) ?? err;
          throw err;
        });
    }
    try {
      await client.query('SELECT pg_drop_replication_slot($1)', [name]);
      return;
    } catch (err) {
      // 55006: still active (the WAL sender had not exited yet, or the subscriber reconnected).
      if ((err as { code?: string }).code !== '55006') throw err;
      if (attempt >= 20) throw (await slotHolder(client, name, err)) ?? err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/** The error that names the session holding slot `name`, which could not be ended (`err`); none when it is gone. */
async function slotHolder(client: Client, name: string, err: unknown): Promise<PgferryError | undefined> {
  const { rows } = await client.query<{
    pid: number;
    user: string | null;
    application: string | null;
    state: string | null;
  }>(
    `SELECT a.pid, a.usename AS user, a.application_name AS application, a.state
       FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [name],
  );
  const holder = rows[0];
  if (!holder) return undefined;
  const session = describeSessions([{ ...holder, since: null, transactionSince: null }]);
  return new PgferryError(
    'MigrateFailed',
    `the slot is in use by ${session}, a session this login could not end (${errorMessage(err)}): ` +
      `end that session first (a superuser, or its own role, may: SELECT pg_terminate_backend(${holder.pid});)`,
  );
}
