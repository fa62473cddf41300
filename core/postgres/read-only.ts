/**
 * Making a database read-only and back (a migration's freeze of its source, `--freeze-source` or
 * `--online`'s cutover): the database-wide `default_transaction_read_only` setting, what it was
 * before, and the sessions connected before it. A session reads the setting when it connects, so
 * one connected before the freeze — a pool's, idle or in the middle of a transaction — would go on
 * writing after it, and those writes would miss the copy: the freeze ends them
 * (`endOtherSessions`), which needs `pg_signal_backend` (`sessionEndingProblem`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'pg';
import type { FreezeResult } from '../contracts';
import { PgferryError } from '../errors';
import { quoteIdent } from './quote';

const SETTING = 'default_transaction_read_only';

/** A session with a write transaction open, as `pg_stat_activity` shows it. */
export type WritingSession = FreezeResult['databases'][number]['writingSessions'][number];

/** Sets `default_transaction_read_only = on` on `database`: its new sessions can only read. */
export async function freezeDatabase(client: Client, database: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(database)} SET ${SETTING} = on`);
}

/**
 * Gives `database` back its own `default_transaction_read_only` setting, as `readOnlySetting`
 * read it before the freeze: none (`null`), `on` or `off`.
 */
export async function thawDatabase(client: Client, database: string, setting: string | null): Promise<void> {
  const name = quoteIdent(database);
  await client.query(
    setting === null
      ? `ALTER DATABASE ${name} RESET ${SETTING}`
      : `ALTER DATABASE ${name} SET ${SETTING} = ${setting === 'on' ? 'on' : 'off'}`,
  );
}

/** The client database's own `default_transaction_read_only` setting (not a role's), or null. */
export async function readOnlySetting(client: Client): Promise<string | null> {
  const { rows } = await client.query<{ value: string }>(`
      SELECT split_part(c, '=', 2) AS value
      FROM pg_db_role_setting s, unnest(s.setconfig) AS c
      WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.setrole = 0
        AND c LIKE 'default\\_transaction\\_read\\_only=%'`);
  return rows[0]?.value ?? null;
}

/** The sessions on `database` with a write transaction open, other than the caller's. */
export async function writingSessions(client: Client, database: string): Promise<WritingSession[]> {
  const { rows } = await client.query<WritingSession>(
    `SELECT pid, usename AS user, application_name AS application, xact_start::text AS "transactionStart"
         FROM pg_stat_activity
         WHERE datname = $1 AND backend_xid IS NOT NULL AND pid <> pg_backend_pid() ORDER BY pid`,
    [database],
  );
  return rows;
}

/** Lets the client's session write in a frozen database: its own setting overrides the database's. */
export async function allowWrites(client: Client): Promise<void> {
  await client.query(`SET ${SETTING} = off`);
}

/**
 * Why the client's login cannot end the other sessions of a database it freezes, or undefined when
 * it can: a superuser can end any session, a member of `pg_signal_backend` any but a superuser's
 * (on RDS and Aurora the master user is one, through rds_superuser).
 */
export async function sessionEndingProblem(client: Client): Promise<string | undefined> {
  const { rows } = await client.query<{ login: string; ok: boolean }>(`
    SELECT current_user AS login,
           r.rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS ok
    FROM pg_roles r WHERE r.rolname = current_user`);
  if (rows[0]?.ok) return undefined;
  const login = rows[0]?.login ?? 'the login';
  return (
    `the source login ${login} may not end other sessions, which the freeze does (a session connected ` +
    'before it would go on writing, and its writes would miss the copy): ' +
    `GRANT pg_signal_backend TO ${quoteIdent(login)} (on RDS and Aurora the master user has it, through rds_superuser)`
  );
}

interface ClientSession {
  pid: number;
  user: string | null;
  application: string | null;
  /** Whether the caller may end it (a superuser's session only a superuser may). */
  mayEnd: boolean;
}

/**
 * Ends every other session on `database` that connected before this call — the caller has frozen
 * it, so those read no freeze — and waits until they have exited (up to `timeoutMs`): what they
 * committed is then before anything read afterwards (the dump's snapshot, the cutover's WAL
 * position), what they had not is rolled back and their clients told so. A second round ends the
 * sessions that were starting during the first (a session reads the setting before it shows in
 * `pg_stat_activity`); one that starts later reads the freeze. WAL senders are kept.
 *
 * Only what `pg_stat_activity` shows every login decides (database, pid, user): without
 * `pg_read_all_stats` a login sees no other role's `backend_type` or `backend_start`, so a session
 * hidden so in the second round is ended too, even if it only just connected (read-only).
 * Throws when one is a superuser's and the caller is not (before ending any of that round), and
 * when one has not exited in time. Returns how many were ended.
 */
export async function endOtherSessions(client: Client, database: string, timeoutMs = 5000): Promise<number> {
  const { rows: now } = await client.query<{ cutoff: string }>('SELECT clock_timestamp()::text AS cutoff');
  let ended = 0;
  for (const round of [1, 2]) {
    const { rows } = await client.query<ClientSession>(
      `SELECT a.pid, a.usename AS user, a.application_name AS application,
              me.rolsuper OR (NOT coalesce(r.rolsuper, false)
                AND (pg_has_role(a.usesysid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE'))) AS "mayEnd"
       FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
         JOIN pg_roles me ON me.rolname = current_user
       WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL
         AND a.pid NOT IN (SELECT pid FROM pg_stat_get_wal_senders() WHERE pid IS NOT NULL)
         AND coalesce(a.backend_type, 'client backend') = 'client backend'
         AND ($2 = 1 OR coalesce(a.backend_start < $3::timestamptz, true))
       ORDER BY a.pid`,
      [database, round, now[0].cutoff],
    );
    const refused = rows.filter((s) => !s.mayEnd);
    if (refused.length) {
      throw new PgferryError(
        'MigrateFailed',
        `cannot end ${describeSessions(refused)} on ${database} (only a superuser may end a superuser's session), ` +
          'which would go on writing through the freeze: disconnect it, or migrate as a superuser',
      );
    }
    if (!rows.length) continue;
    const pids = rows.map((s) => s.pid);
    await client.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    ended += rows.length;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows: left } = await client.query<ClientSession>(
        `SELECT pid, usename AS user, application_name AS application, true AS "mayEnd"
         FROM pg_stat_activity WHERE pid = ANY($1::int[])`,
        [pids],
      );
      if (!left.length) break;
      if (Date.now() >= deadline) {
        throw new PgferryError(
          'MigrateFailed',
          `${describeSessions(left)} on ${database} did not exit within ${timeoutMs / 1000} s of being ended, and could go on writing through the freeze`,
        );
      }
      await sleep(50);
    }
  }
  return ended;
}

function describeSessions(sessions: ClientSession[]): string {
  const one = (s: ClientSession) =>
    `${s.pid} (${s.user ?? 'unknown user'}${s.application ? `, ${s.application}` : ''})`;
  const listed = sessions.slice(0, 5).map(one).join(', ');
  return `session${sessions.length > 1 ? 's' : ''} ${listed}${sessions.length > 5 ? ` and ${sessions.length - 5} more` : ''}`;
}
