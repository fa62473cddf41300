/**
 * Connecting to PostgreSQL with node-postgres, with errors turned into one actionable line.
 */
import { Client } from 'pg';
import { describeConnection, pgClientConfig } from './connection';
import type { Connection } from './contracts';
import { PgferryError } from './errors';

/** Connects, honouring `sslmode=prefer` (TLS when the server offers it, plain otherwise). */
export async function connectPg(
  connection: Connection,
  password: string | undefined,
  database?: string,
): Promise<Client> {
  const config = pgClientConfig(connection, password, database);
  const attempts =
    connection.sslmode === 'prefer' ? [{ ...config, ssl: { rejectUnauthorized: false } }, config] : [config];
  let lastError: unknown;
  for (const attempt of attempts) {
    const client = new Client(attempt);
    client.on('error', () => undefined); // errors surface on the next query instead of crashing
    try {
      await client.connect();
      return client;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => undefined);
      if (!/does not support SSL/i.test((err as Error).message)) break;
    }
  }
  throw connectionError(lastError, connection, database);
}

/** Maps a node-postgres or socket error to a `PgferryError` naming what to fix. */
export function connectionError(err: unknown, connection: Connection, database?: string): PgferryError {
  const e = err as { code?: string; message?: string };
  const where = describeConnection(database ? { ...connection, database } : connection);
  switch (e.code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new PgferryError('SourceUnreachable', `cannot reach PostgreSQL at ${where}: ${e.code}`, {
        cause: err,
      });
    case '28P01':
    case '28000':
      return new PgferryError(
        'AuthenticationFailed',
        `PostgreSQL refused the login for ${where}: ${e.message ?? 'authentication failed'}`,
        { cause: err },
      );
    case '3D000':
      return new PgferryError('DatabaseNotFound', `database does not exist: ${where}`, { cause: err });
  }
  if (/timeout/i.test(e.message ?? '')) {
    return new PgferryError(
      'SourceUnreachable',
      `cannot reach PostgreSQL at ${where}: connection timed out`,
      {
        cause: err,
      },
    );
  }
  return new PgferryError(
    'SourceUnreachable',
    `cannot connect to PostgreSQL at ${where}: ${e.message ?? e}`,
    {
      cause: err,
    },
  );
}

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

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
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
