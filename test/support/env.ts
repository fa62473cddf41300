/**
 * How test files get the servers started by the jest global setup (test/support/global-setup.ts).
 *
 * Global setup writes a JSON description of the running servers and exports its path as
 * `PGFERRY_TEST_ENV_FILE`; test workers inherit that variable. Usage:
 *
 *   const env = testEnv();
 *   for (const pg of env.postgres) ...          // every started major (PGFERRY_TEST_MAJORS, default 14,15,17)
 *   const pg15 = env.server(15);
 *   await createDatabase(pg15, name); await withClient(pg15, name, (c) => c.query('...'));
 *   spawn(cmd, { env: { ...process.env, ...env.s3.env() } });
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { Client } from 'pg';
import type { Connection } from '../../core/contracts';
import { type IncompleteRun, markIncomplete } from '../../core/postgres/incomplete-database';
import type { PostgresServerInfo } from './postgres';

export const ENV_FILE_VAR = 'PGFERRY_TEST_ENV_FILE';

/** One server as recorded in the env file. */
export type PostgresServerRecord = Omit<PostgresServerInfo, 'baseDir'>;

export interface S3ServerRecord {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** The JSON written by global setup to `$PGFERRY_TEST_ENV_FILE`. */
export interface TestEnvFile {
  baseDir: string;
  postgres: PostgresServerRecord[];
  s3: S3ServerRecord;
}

export interface TestPostgres {
  major: number;
  /** `server_version`, e.g. `17.10` or `15.14 (Debian 15.14-0+deb12u1)`. */
  version: string;
  /** `server_version_num`, e.g. 170010. */
  versionNum: number;
  host: string;
  port: number;
  /** Superuser (`postgres`). Password auth (scram-sha-256) over TCP. */
  user: string;
  /** Contains URL-special characters on purpose. */
  password: string;
  /** `postgres://user:pct-encoded-password@127.0.0.1:port/database` (database defaults to `postgres`). */
  url(database?: string): string;
  /** `postgres://user@127.0.0.1:port/database`; supply the password some other way (PGPASSWORD, ...). */
  urlWithoutPassword(database?: string): string;
  /** Directory with this server's `initdb`, `pg_ctl`, `postgres` (client tools like pg_dump only for 15). */
  binDir: string;
  dataDir: string;
  /** Unix socket directory (local connections use `trust`). */
  socketDir: string;
  logFile: string;
  /** Connection options for `new pg.Client(...)`. */
  clientConfig(database?: string): {
    host: string;
    port: number;
    user: string;
    password: string;
    database: string;
  };
  /** libpq environment: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE. */
  env(database?: string): Record<string, string>;
  /** pgferry's connection to `database` (a plan's or a request's: no password, no TLS). */
  connection(database: string): Connection;
}

export interface TestS3 {
  /** e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** Bucket created by global setup (`pgferry-test`); share it, use unique key prefixes. */
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. */
  env(): Record<string, string>;
  /** Config for `new S3Client(...)` (endpoint, region, credentials, forcePathStyle). */
  clientConfig(): S3ClientConfig;
}

export interface TestEnv {
  postgres: TestPostgres[];
  s3: TestS3;
  /** The server of that major; throws if it was not started (see PGFERRY_TEST_MAJORS). */
  server(major: number): TestPostgres;
}

/** Double-quotes an identifier (embedded `"` doubled). */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** Single-quotes a string literal (embedded `'` doubled; standard_conforming_strings is on). */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Percent-encodes a database name for a URL path. Fully encoded names work with libpq, but node-postgres
 * (pg-connection-string) decodes the path with decodeURI, which leaves `%3B %3A %40 %26 %3D %2B %24 %2C
 * %2F %3F %23` undecoded; the first eight are valid literally in a path, so they stay literal here and
 * the URL works with both. (`/`, `?`, `#` in a name cannot work with node-postgres URLs at all.)
 */
export function encodeDatabasePath(name: string): string {
  return encodeURIComponent(name).replace(/%(3B|3A|40|26|3D|2B|24|2C)/gi, (m) => decodeURIComponent(m));
}

export function makePostgres(rec: PostgresServerRecord): TestPostgres {
  const hostPort = `${rec.host}:${rec.port}`;
  const db = (database?: string) => encodeDatabasePath(database ?? 'postgres');
  return {
    major: rec.major,
    version: rec.version,
    versionNum: rec.versionNum,
    host: rec.host,
    port: rec.port,
    user: rec.user,
    password: rec.password,
    binDir: rec.binDir,
    dataDir: rec.dataDir,
    socketDir: rec.socketDir,
    logFile: rec.logFile,
    url: (database) =>
      `postgres://${encodeURIComponent(rec.user)}:${encodeURIComponent(rec.password)}@${hostPort}/${db(database)}`,
    urlWithoutPassword: (database) =>
      `postgres://${encodeURIComponent(rec.user)}@${hostPort}/${db(database)}`,
    clientConfig: (database) => ({
      host: rec.host,
      port: rec.port,
      user: rec.user,
      password: rec.password,
      database: database ?? 'postgres',
    }),
    connection: (database) => ({
      host: rec.host,
      port: rec.port,
      user: rec.user,
      database,
      sslmode: 'disable',
    }),
    env: (database) => ({
      PGHOST: rec.host,
      PGPORT: String(rec.port),
      PGUSER: rec.user,
      PGPASSWORD: rec.password,
      PGDATABASE: database ?? 'postgres',
    }),
  };
}

function makeS3(rec: S3ServerRecord): TestS3 {
  return {
    ...rec,
    env: () => ({
      AWS_ENDPOINT_URL_S3: rec.endpoint,
      AWS_ACCESS_KEY_ID: rec.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rec.secretAccessKey,
      AWS_REGION: rec.region,
    }),
    clientConfig: () => ({
      endpoint: rec.endpoint,
      region: rec.region,
      forcePathStyle: true,
      credentials: { accessKeyId: rec.accessKeyId, secretAccessKey: rec.secretAccessKey },
    }),
  };
}

let cached: { file: string; env: TestEnv } | undefined;

/** The running test servers (reads `$PGFERRY_TEST_ENV_FILE` once per worker). */
export function testEnv(): TestEnv {
  const file = process.env[ENV_FILE_VAR];
  if (!file) {
    throw new Error(
      `${ENV_FILE_VAR} is not set: the test servers are started by jest's globalSetup ` +
        '(test/support/global-setup.ts); run the tests through jest with the repo config.',
    );
  }
  if (cached?.file === file) return cached.env;
  let parsed: TestEnvFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as TestEnvFile;
  } catch (e) {
    throw new Error(`cannot read the test environment file ${file}: ${(e as Error).message}`);
  }
  const postgres = parsed.postgres.map(makePostgres);
  const env: TestEnv = {
    postgres,
    s3: makeS3(parsed.s3),
    server(major: number): TestPostgres {
      const found = postgres.find((p) => p.major === major);
      if (!found) {
        throw new Error(
          `PostgreSQL ${major} is not running in this test run (started: ${postgres.map((p) => p.major).join(', ')}; ` +
            'see PGFERRY_TEST_MAJORS)',
        );
      }
      return found;
    },
  };
  cached = { file, env };
  return env;
}

/** Connects (password auth over TCP) to `database`, runs `fn`, always disconnects. */
export async function withClient<T>(
  pg: TestPostgres,
  database: string,
  fn: (c: import('pg').Client) => Promise<T>,
): Promise<T> {
  const client = new Client({ ...pg.clientConfig(database), connectionTimeoutMillis: 15_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops (forcing out sessions) `name` if it exists, then creates it. `name` may contain any characters. */
export async function createDatabase(pg: TestPostgres, name: string): Promise<void> {
  await withClient(pg, 'postgres', async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${quoteIdent(name)}`);
  });
}

/**
 * Creates (afresh) `name` on `pg`, marked incomplete by run `runId` (a restore unless `kind` says)
 * as a runner marks the database it creates: what a runner killed before it could drop it leaves.
 */
export async function createMarkedDatabase(
  pg: TestPostgres,
  name: string,
  runId: string,
  kind: IncompleteRun['kind'] = 'restore',
): Promise<void> {
  await createDatabase(pg, name);
  await withClient(pg, 'postgres', (c) =>
    markIncomplete(c, name, {
      kind,
      id: runId,
      pid: 4242,
      host: hostname(),
      startedAt: new Date().toISOString(),
    }),
  );
}

/** Creates (afresh) `name` on `pg` and runs `seed` (any number of statements) in it. */
export async function createSeededDatabase(pg: TestPostgres, name: string, seed: string): Promise<void> {
  await createDatabase(pg, name);
  await withClient(pg, name, (c) => c.query(seed));
}

/** Whether a database named `name` exists on `pg`. */
export async function databaseExists(pg: TestPostgres, name: string): Promise<boolean> {
  return withClient(pg, 'postgres', async (c) => {
    const { rows } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return rows.length > 0;
  });
}

/** Drops `name` if it exists, terminating its sessions. */
export async function dropDatabase(pg: TestPostgres, name: string): Promise<void> {
  await withClient(pg, 'postgres', async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}

/**
 * Makes `name` on `pg` a database DROP DATABASE refuses, even forcing its sessions out: a
 * subscription in it, created without connecting ("is being used by logical replication
 * subscription") — what a cleanup meets when it cannot drop a database. Returns what lifts it.
 */
export async function blockDrop(pg: TestPostgres, name: string): Promise<() => Promise<void>> {
  const subscription = uniqueName('blocks_drop');
  await withClient(pg, name, (c) =>
    c.query(
      `CREATE SUBSCRIPTION ${subscription} CONNECTION 'dbname=nowhere' PUBLICATION nothing WITH (connect = false)`,
    ),
  );
  return () =>
    withClient(pg, name, async (c) => {
      await c.query(`ALTER SUBSCRIPTION ${subscription} SET (slot_name = NONE)`);
      await c.query(`DROP SUBSCRIPTION ${subscription}`);
    });
}

/**
 * A login that is not a superuser, shaped like the RDS master user pgferry is often given (CREATEDB,
 * and pg_signal_backend, which rds_superuser grants: it may end any session but a superuser's), with
 * `attributes` more (`REPLICATION`): what a cleanup connects as when it may not end every session.
 * Returns its name and password; `dropLogin` removes it.
 */
export async function createLogin(
  pg: TestPostgres,
  prefix: string,
  attributes = '',
): Promise<{ user: string; password: string }> {
  const user = uniqueName(prefix);
  const password = `pw ${Math.random().toString(36).slice(2)} @:/`;
  await withClient(pg, 'postgres', (c) =>
    c.query(
      `CREATE ROLE ${quoteIdent(user)} LOGIN CREATEDB ${attributes} IN ROLE pg_signal_backend PASSWORD ${quoteLiteral(password)}`,
    ),
  );
  return { user, password };
}

/** Gives `database` on `pg` to `owner` (a login of {@link createLogin}), as its own. */
export async function giveDatabase(pg: TestPostgres, database: string, owner: string): Promise<void> {
  await withClient(pg, 'postgres', (c) =>
    c.query(`ALTER DATABASE ${quoteIdent(database)} OWNER TO ${quoteIdent(owner)}`),
  );
}

/** Drops the login `user` made (after what it owns). */
export async function dropLogin(pg: TestPostgres, user: string): Promise<void> {
  await withClient(pg, 'postgres', (c) => c.query(`DROP ROLE IF EXISTS ${quoteIdent(user)}`));
}

/**
 * A session of the superuser connected to `database`, named `application` and kept open until
 * ended: one a login that is not a superuser may not end (RDS's own `rdsadmin` sessions, to its
 * master user). Returns the client and its pid.
 */
export async function superuserSession(
  pg: TestPostgres,
  database: string,
  application: string,
): Promise<{ client: Client; pid: number }> {
  const client = new Client({ ...pg.clientConfig(database), application_name: application });
  client.on('error', () => undefined);
  await client.connect();
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return { client, pid: rows[0].pid };
}

let uniqueCounter = 0;

/**
 * `prefix_<worker>_<pid>_<counter>_<random>`, lower case, at most 63 bytes (PostgreSQL's identifier
 * limit; longer names are silently truncated by the server), usable as database name or S3 key part.
 */
export function uniqueName(prefix: string): string {
  uniqueCounter += 1;
  const worker = process.env.JEST_WORKER_ID ?? '0';
  const random = Math.random().toString(36).slice(2, 8).padEnd(6, '0');
  const suffix = `_${worker}_${process.pid}_${uniqueCounter}_${random}`;
  let head = prefix.toLowerCase();
  while (Buffer.byteLength(head + suffix, 'utf8') > 63) head = Array.from(head).slice(0, -1).join('');
  return head + suffix;
}
