/**
 * The passwords of one run, held explicitly: built once by the command that starts the run, handed
 * to the local executor, which gives them to the workflow's steps — to the in-process handlers as
 * an argument, and to the pg-tools task in its environment (`PGFERRY_SOURCE_PASSWORD`,
 * `PGFERRY_TARGET_PASSWORD`: the runner's contract, as on AWS where the task definition could set
 * them). On AWS the handlers get none: each connection names a Secrets Manager secret or uses
 * RDS IAM authentication, and `resolvePassword` reads those.
 */
import { type ConnectionRole, passwordEnvVar } from './connection';

/** A run's passwords, by the role of the connection they log in: absent means none (trust, peer, .pgpass). */
export interface Credentials {
  readonly source?: string;
  readonly target?: string;
}

const ROLES: readonly ConnectionRole[] = ['source', 'target'];

/**
 * The passwords a process was started with, in pgferry's own variables: what a Lambda function or
 * the pg-tools task reads (an empty variable is none).
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv): Credentials {
  const credentials: { -readonly [R in ConnectionRole]?: string } = {};
  for (const role of ROLES) {
    const value = env[passwordEnvVar(role)];
    if (value !== undefined && value !== '') credentials[role] = value;
  }
  return credentials;
}

/** The variables that carry `credentials` into a process's environment (none for an absent password). */
export function credentialsEnv(credentials: Credentials): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const role of ROLES) {
    const password = credentials[role];
    if (password !== undefined) env[passwordEnvVar(role)] = password;
  }
  return env;
}

/**
 * `env` with pgferry's password variables replaced by `credentials`: the environment a step reads
 * its connections' passwords from (the rest of `env` — tool paths, AWS settings — as it is).
 */
export function withCredentials(env: NodeJS.ProcessEnv, credentials: Credentials): NodeJS.ProcessEnv {
  const result: NodeJS.ProcessEnv = { ...env };
  for (const role of ROLES) delete result[passwordEnvVar(role)];
  return { ...result, ...credentialsEnv(credentials) };
}

/**
 * A local command's password for a connection, as libpq finds one: in the URL, else `PGPASSWORD`;
 * else pgferry's own variable for the role, if the command was started with one; else none (the
 * tools and node-postgres read ~/.pgpass).
 */
export function localPassword(
  urlPassword: string | undefined,
  role: ConnectionRole,
  env: NodeJS.ProcessEnv,
): string | undefined {
  return urlPassword ?? env.PGPASSWORD ?? env[passwordEnvVar(role)];
}
