/**
 * Connecting to PostgreSQL: node-postgres clients (with errors turned into one actionable line)
 * and the libpq environment of the tools, both honouring libpq's sslmode semantics, and the name
 * every session of this process carries (`application_name`).
 */
import { readFileSync } from 'node:fs';
import { Client, type ClientConfig } from 'pg';
import pgpass from 'pgpass';
import { describeConnection } from '../connection';
import type { Connection } from '../contracts';
import { PgferryError } from '../errors';

/**
 * The servers (`host:port`) that answered this process's TLS request with "does not support SSL".
 * libpq's `sslmode=prefer` asks for TLS and, refused, goes on in plain text on the same socket;
 * node-postgres cannot, so a refused attempt costs a second TCP connect and a second backend fork
 * (~20 ms). Remembered, the later sessions of the run go to such a server in plain text at once,
 * and so do those of the runner the CLI starts ({@link TLS_REFUSED_ENV}).
 * That changes no guarantee — `prefer` takes plain text from whoever answers on that address, a
 * forged refusal included — only how soon a server that gains TLS is used with it: after
 * {@link TLS_REFUSAL_MS} (a long-lived process, `pgferry serve`, asks again then).
 */
const refusedTls = new Map<string, number>();

/** How long a refusal of TLS is remembered (a long-lived process asks again after it). */
const TLS_REFUSAL_MS = 10 * 60_000;

const serverKey = (connection: Connection) => `${connection.host}:${connection.port}`;

/**
 * Where a process hands the refusals it remembers to a runner it starts (`host:port`, space
 * separated): the runner's first sessions, at its busy start, then skip the refused request too.
 */
export const TLS_REFUSED_ENV = 'PGFERRY_TLS_REFUSED';

/** Whether the server refused TLS to this process lately (or to the process that started it). */
function refusedTlsLately(connection: Connection): boolean {
  const key = serverKey(connection);
  const until = refusedTls.get(key);
  if (until !== undefined) return until > Date.now();
  return (process.env[TLS_REFUSED_ENV] ?? '').split(' ').includes(key);
}

/** The servers that refused this process TLS lately, for {@link TLS_REFUSED_ENV}. */
export function tlsRefusals(): string {
  const now = Date.now();
  return [...refusedTls]
    .filter(([, until]) => until > now)
    .map(([key]) => key)
    .join(' ');
}

/**
 * Connects, honouring `sslmode=prefer` (TLS when the server offers it, plain otherwise: TLS first,
 * plain at once to a server that refused it lately, see {@link refusedTls}), and turns off the
 * timeouts the session inherits from its login or database ({@link SESSION_TIMEOUTS}).
 */
export async function connectPg(
  connection: Connection,
  password: string | undefined,
  database?: string,
  /** `database`: a logical replication connection (walsender), which takes replication commands. */
  replication?: 'database',
): Promise<Client> {
  const config = {
    ...pgClientConfig(connection, password, database),
    ...(replication ? { replication } : {}),
  };
  const attempts =
    connection.sslmode === 'prefer' && !refusedTlsLately(connection)
      ? [{ ...config, ssl: { rejectUnauthorized: false } }, config]
      : [config];
  let lastError: unknown;
  for (const attempt of attempts) {
    const client = new Client(attempt);
    client.on('error', () => undefined); // errors surface on the next query instead of crashing
    try {
      await client.connect();
    } catch (err) {
      lastError = err;
      await endQuietly(client);
      if (!/does not support SSL/i.test((err as Error).message)) break;
      refusedTls.set(serverKey(connection), Date.now() + TLS_REFUSAL_MS);
      continue;
    }
    try {
      await client.query(TIMEOUTS_OFF);
    } catch (err) {
      await endQuietly(client);
      throw connectionError(err, connection, database);
    }
    return client;
  }
  throw connectionError(lastError, connection, database);
}

/**
 * The timeouts a session can inherit from its login, its database or the server
 * (`ALTER ROLE … SET`, `ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`,
 * postgresql.conf): what platform teams set on the roles applications log in with. pgferry's work
 * runs longer than any such bound — a dump, a load, an index build, an `ANALYZE`, a snapshot
 * exported and held while pg_dump starts, a session idle while another works —
 * so every session it opens turns them off ({@link TIMEOUTS_OFF}), as pg_dump and pg_restore do
 * for their own sessions. A bound pgferry chooses (the snapshot guard's and a clean restore's
 * `lock_timeout`) is set afterwards, in the session or its transaction, and holds.
 * `idle_session_timeout` (PostgreSQL 14's) too: a backup's observer waits idle, outside any
 * transaction, for as long as pg_dump runs, and then reads the catalog a second time.
 * `transaction_timeout` is PostgreSQL 17's; an older server has none to turn off.
 */
export const SESSION_TIMEOUTS = [
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'transaction_timeout',
  'idle_session_timeout',
] as const;

/**
 * Turns {@link SESSION_TIMEOUTS} off for the session, in one round trip and on every major (the
 * ones the server knows). It is sent after connecting, not as startup options (`options=-c …`):
 * those name a setting an older server rejects the connection for (`transaction_timeout`), and
 * connection poolers (PgBouncer, RDS Proxy) refuse startup options they do not know.
 */
const TIMEOUTS_OFF = `SELECT pg_catalog.set_config(name, '0', false) FROM pg_catalog.pg_settings
  WHERE name IN (${SESSION_TIMEOUTS.map((n) => `'${n}'`).join(', ')})`;

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
  // node-postgres asked for a password it was never given (its words: "SASL: SCRAM-SERVER-FIRST-
  // MESSAGE: client password must be a string").
  if (/client password must be a (non-empty )?string/i.test(e.message ?? '')) {
    return new PgferryError(
      'AuthenticationFailed',
      `PostgreSQL at ${where} asks for a password and there is none: put it in the URL (postgres://user:password@host/db), ` +
        'in PGPASSWORD, or in ~/.pgpass (or the file PGPASSFILE names)',
      { cause: err },
    );
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

/** What this process's database sessions are called (`application_name`). */
let applicationName = 'pgferry';

/**
 * Names every database session this process opens from now on (`application_name`, at most 63
 * bytes): the pg-tools runner names its sessions after its run, so that its progress watchdog can
 * find them on the server. Other processes keep `pgferry`.
 */
export function nameSessions(name: string): void {
  applicationName = Buffer.from(name, 'utf8').subarray(0, 63).toString('utf8');
}

/** The `application_name` of this process's sessions. */
export function sessionName(): string {
  return applicationName;
}

/** Environment for libpq tools (pg_dump, pg_restore, psql): the password never goes in argv. */
export function libpqEnv(connection: Connection, password: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGDATABASE: connection.database,
    PGSSLMODE: connection.sslmode,
    PGAPPNAME: applicationName,
    PGCONNECT_TIMEOUT: '10',
  };
  if (connection.sslrootcert) env.PGSSLROOTCERT = connection.sslrootcert;
  if (password !== undefined) env.PGPASSWORD = password;
  return env;
}

/**
 * The password libpq finds when none is given: PGPASSWORD, else the password file (PGPASSFILE, else
 * ~/.pgpass). node-postgres would look the same way, but its own password-file lookup is deprecated
 * and prints a DeprecationWarning on stderr every time it finds one; asked through this function
 * it stays quiet. `undefined`: none (trust or peer authentication, or the one-line refusal).
 */
function passwordLikeLibpq(login: Pick<Connection, 'host' | 'port' | 'database' | 'user'>): Promise<string> {
  const fromEnvironment = process.env.PGPASSWORD;
  if (fromEnvironment !== undefined) return Promise.resolve(fromEnvironment);
  // node-postgres takes `undefined` for "no password" (its type says string).
  return new Promise((resolve) => pgpass(login, (found) => resolve(found as string)));
}

/** node-postgres client settings honouring libpq's sslmode semantics. */
export function pgClientConfig(
  connection: Connection,
  password: string | undefined,
  database?: string,
): ClientConfig {
  const base: ClientConfig = {
    host: connection.host,
    port: connection.port,
    user: connection.user,
    database: database ?? connection.database,
    password:
      password ?? (() => passwordLikeLibpq({ ...connection, database: database ?? connection.database })),
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  };
  switch (connection.sslmode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      // `prefer` is tried with TLS first by `connectPg`; the plain config is its fallback.
      return { ...base, ssl: false };
    case 'require':
      return { ...base, ssl: { rejectUnauthorized: false } };
    case 'verify-ca':
    case 'verify-full': {
      const ca = connection.sslrootcert ? readCaBundle(connection.sslrootcert) : undefined;
      return {
        ...base,
        ssl: {
          ca,
          rejectUnauthorized: true,
          ...(connection.sslmode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
        },
      };
    }
  }
}

/** The CA bundle a connection names, or an error naming the file (not a bare ENOENT). */
function readCaBundle(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PgferryError('InvalidInput', `sslrootcert ${file} cannot be read: ${code}`);
  }
}

/** A connection to the server that does not need `connection`'s database to exist: `postgres`, else `template1`. */
export async function connectMaintenance(
  connection: Connection,
  password: string | undefined,
): Promise<Client> {
  try {
    return await connectPg(connection, password, 'postgres');
  } catch (err) {
    if ((err as PgferryError).code !== 'DatabaseNotFound') throw err;
    return connectPg(connection, password, 'template1');
  }
}

/** Ends `client`, ignoring a failure to (the session may be gone already). */
export async function endQuietly(client: Client | undefined): Promise<void> {
  await client?.end().catch(() => undefined);
}

/**
 * Runs `fn` in a transaction on `client` (which must be in none): committed when `fn` returns,
 * rolled back when it throws (a failed rollback, the session gone, is ignored: the error is `fn`'s).
 */
export async function inTransaction<T>(client: Client, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Runs `fn` with `client` and ends it afterwards, whatever `fn` did. */
export async function withEnd<T>(client: Client, fn: (client: Client) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    await endQuietly(client);
  }
}

/** Connects (to `database`, else the connection's), runs `fn`, and always ends the client. */
export async function withClient<T>(
  connection: Connection,
  password: string | undefined,
  fn: (client: Client) => Promise<T>,
  database?: string,
): Promise<T> {
  return withEnd(await connectPg(connection, password, database), fn);
}

/** `withClient` over {@link connectMaintenance}'s connection. */
export async function withMaintenance<T>(
  connection: Connection,
  password: string | undefined,
  fn: (admin: Client) => Promise<T>,
): Promise<T> {
  return withEnd(await connectMaintenance(connection, password), fn);
}
