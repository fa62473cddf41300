/** The `--aws` options, and the connection an execution on AWS is given. No SDK is loaded here. */
import type { Command } from 'commander';
import { parseConnectionUrl } from '../../core/connection';
import { type Connection, ConnectionSchema, parsePayload } from '../../core/contracts';
import { PgferryError } from '../../core/errors';

/** The options every command takes for `--aws`. */
export interface AwsOptions {
  /** Run on the deployed stack. */
  aws?: boolean;
  /** The stack's name (else PGFERRY_STACK, else Pgferry). */
  stack?: string;
}

/**
 * The connection of an execution on AWS: the URL's host, port, database, user and TLS settings,
 * and the password's secret. A password in the URL is refused before anything reaches AWS.
 */
export function awsConnection(
  url: string,
  what: string,
  login: { passwordSecretArn?: string; iamAuth?: boolean },
): Connection {
  const { passwordSecretArn, iamAuth } = login;
  const { connection, password } = parseConnectionUrl(url, what);
  if (password !== undefined) {
    throw new PgferryError(
      'InvalidInput',
      `${what} contains a password, which --aws never sends: remove it and pass --password-secret-arn <arn> (a Secrets Manager secret the stack is configured to read)`,
    );
  }
  if (iamAuth && passwordSecretArn !== undefined) {
    throw new PgferryError('InvalidInput', 'pass --password-secret-arn or --iam-auth, not both');
  }
  if (iamAuth) return parsePayload(ConnectionSchema, { ...connection, iamAuth: true }, what);
  if (passwordSecretArn === undefined) {
    throw new PgferryError(
      'InvalidInput',
      `--aws needs --password-secret-arn <arn> (the Secrets Manager secret with ${what}'s password) or --iam-auth`,
    );
  }
  return parsePayload(ConnectionSchema, { ...connection, passwordSecretArn }, what);
}

/** `--stack` and `--password-secret-arn` name things on AWS: they mean nothing to a local run. */
export function refuseAwsOnlyOptions(
  opts: AwsOptions & { passwordSecretArn?: string; iamAuth?: boolean },
): void {
  if (opts.aws) return;
  if (opts.iamAuth) throw new PgferryError('InvalidInput', '--iam-auth is for --aws only');
  if (opts.stack !== undefined) throw new PgferryError('InvalidInput', '--stack is for --aws only');
  if (opts.passwordSecretArn !== undefined) {
    throw new PgferryError(
      'InvalidInput',
      '--password-secret-arn is for --aws only: locally the password comes from the URL, PGPASSWORD or ~/.pgpass',
    );
  }
}

/** Adds `--aws` and `--stack <name>` to a command. */
export function addAwsOptions(command: Command): Command {
  return command
    .option('--aws', 'run on the deployed stack instead of on this machine', false)
    .option('--stack <name>', 'with --aws: the CloudFormation stack (default: PGFERRY_STACK, else Pgferry)');
}
