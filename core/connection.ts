/**
 * Connection URLs in, `Connection` contracts out, and the one place that knows where a
 * password comes from. Passwords travel only through process environments
 * (`PGPASSWORD` for libpq tools, `PGFERRY_<ROLE>_PASSWORD` between pgferry processes) or
 * Secrets Manager — never through arguments, payloads or logs.
 */
import { type Connection, ConnectionSchema, parsePayload, SslModeSchema } from './contracts';
import { PgferryError } from './errors';

export type ConnectionRole = 'source' | 'target';

/** The environment variable that carries a role's password between pgferry's own processes. */
export function passwordEnvVar(role: ConnectionRole): string {
  return `PGFERRY_${role.toUpperCase()}_PASSWORD`;
}

export interface ParsedConnectionUrl {
  connection: Connection;
  password?: string;
}

/**
 * Parses a server's URL, `postgres://user:password@host:port/` (whole-server commands: a set's
 * backup and restore): a database in it is only where to connect first; without one, `postgres`.
 */
export function parseServerUrl(url: string, what = 'server URL'): ParsedConnectionUrl {
  return parseConnectionUrl(url, what, 'postgres');
}

/** Parses `postgres://user:password@host:port/database?sslmode=…&sslrootcert=…`. */
export function parseConnectionUrl(
  url: string,
  what = 'connection URL',
  defaultDatabase?: string,
): ParsedConnectionUrl {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PgferryError(
      'InvalidInput',
      `${what} is not a URL (expected postgres://user@host:port/database)`,
    );
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PgferryError('InvalidInput', `${what} must start with postgres:// (got ${parsed.protocol}//)`);
  }
  const decode = (value: string, field: string): string => {
    try {
      return decodeURIComponent(value);
    } catch {
      throw new PgferryError('InvalidInput', `${what} has a malformed percent-encoding in its ${field}`);
    }
  };
  const database = decode(parsed.pathname.replace(/^\//, ''), 'database name') || defaultDatabase;
  if (!database)
    throw new PgferryError('InvalidInput', `${what} names no database (postgres://host/DATABASE)`);
  const socketDir = parsed.searchParams.get('host');
  const host = socketDir ?? parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new PgferryError('InvalidInput', `${what} names no host`);
  const sslmode = parsed.searchParams.get('sslmode') ?? 'prefer';
  if (!SslModeSchema.safeParse(sslmode).success) {
    throw new PgferryError('InvalidInput', `${what} has an unknown sslmode: ${sslmode}`);
  }
  for (const key of parsed.searchParams.keys()) {
    if (!['host', 'sslmode', 'sslrootcert'].includes(key)) {
      throw new PgferryError('InvalidInput', `${what} has an unsupported parameter: ${key}`);
    }
  }
  const connection = parsePayload(
    ConnectionSchema,
    {
      host,
      port: parsed.port ? Number(parsed.port) : 5432,
      database,
      user: parsed.username ? decode(parsed.username, 'user name') : 'postgres',
      sslmode,
      sslrootcert: parsed.searchParams.get('sslrootcert') ?? undefined,
    },
    what,
  );
  const password = parsed.password ? decode(parsed.password, 'password') : undefined;
  return { connection, password };
}

/** For messages and manifests: never includes a password. */
export function describeConnection(connection: Connection): string {
  return `${connection.user}@${connection.host}:${connection.port}/${connection.database}`;
}

export type SecretReader = (secretArn: string) => Promise<string>;
export type TokenSigner = (connection: Connection, env: NodeJS.ProcessEnv) => Promise<string>;

/** A 15-minute RDS IAM authentication token for the connection's user (the standard credential chain signs it). */
async function signRdsAuthToken(connection: Connection, env: NodeJS.ProcessEnv): Promise<string> {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (!region) throw new PgferryError('InvalidInput', 'RDS IAM authentication needs AWS_REGION');
  // Loaded on demand so the local CLI never pays for the signer.
  const { Signer } = await import('@aws-sdk/rds-signer');
  const signer = new Signer({
    hostname: connection.host,
    port: connection.port,
    username: connection.user,
    region,
  });
  return signer.getAuthToken();
}

/**
 * The password for a connection: from its Secrets Manager secret when it names one, else from
 * this process's environment. `undefined` means "none" (trust, peer or a .pgpass file).
 */
export async function resolvePassword(
  connection: Connection,
  role: ConnectionRole,
  env: NodeJS.ProcessEnv = process.env,
  readSecret: SecretReader = readSecretsManagerPassword,
  signToken: TokenSigner = signRdsAuthToken,
): Promise<string | undefined> {
  if (connection.iamAuth) {
    if (connection.passwordSecretArn) {
      throw new PgferryError(
        'InvalidInput',
        'a connection uses either iamAuth or passwordSecretArn, not both',
      );
    }
    if (['disable', 'allow', 'prefer'].includes(connection.sslmode)) {
      throw new PgferryError(
        'InvalidInput',
        `RDS IAM authentication needs TLS: use sslmode require or verify-full`,
      );
    }
    return signToken(connection, env);
  }
  if (connection.passwordSecretArn) return readSecret(connection.passwordSecretArn);
  const value = env[passwordEnvVar(role)];
  return value === undefined || value === '' ? undefined : value;
}

/** Secrets in the RDS format (`{"username","password",…}`) or a plain string. */
async function readSecretsManagerPassword(secretArn: string): Promise<string> {
  // Loaded on demand so the local CLI never pays for the Secrets Manager client.
  const { SecretsManagerClient, GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const client = new SecretsManagerClient({});
  const out = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const text = out.SecretString ?? '';
  try {
    const parsed = JSON.parse(text) as { password?: unknown };
    if (typeof parsed.password === 'string') return parsed.password;
  } catch {
    // not JSON: the whole secret is the password
  }
  return text;
}
