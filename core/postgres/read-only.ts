/**
 * Making a database read-only for new sessions and back (a migration's freeze of its source):
 * the database-wide `default_transaction_read_only` setting, what it was before, and the sessions
 * that keep writing through it (a session reads the setting when it connects).
 */
import type { Client } from 'pg';
import type { FreezeResult } from '../contracts';
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
